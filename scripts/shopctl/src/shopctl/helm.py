"""Rendering charts with the pinned Helm."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from shopctl.toolchain import require_helm


class RenderError(RuntimeError):
    pass


_built: set[Path] = set()


def ensure_dependencies(root: Path, chart: Path) -> None:
    """Package ``file://`` dependencies (the library chart) into ``charts/``, once per process."""
    chart = chart.resolve()
    if chart in _built:
        return
    meta = yaml.safe_load((chart / "Chart.yaml").read_text()) or {}
    if meta.get("dependencies"):
        result = subprocess.run(  # noqa: S603
            [str(require_helm(root)), "dependency", "build", str(chart), "--skip-refresh"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RenderError(
                f"helm dependency build {chart.name} failed:\n{result.stderr.strip()}"
            )
    _built.add(chart)


def template(
    root: Path,
    chart: Path,
    *,
    release: str,
    namespace: str,
    value_files: Sequence[Path] = (),
    kube_version: str | None = None,
    api_versions: Sequence[str] = (),
) -> str:
    """``helm template`` with Argo CD's arguments; returns the rendered YAML."""
    ensure_dependencies(root, chart)
    args = [str(require_helm(root)), "template", release, str(chart), "--namespace", namespace]
    for values in value_files:
        args += ["--values", str(values)]
    if kube_version:
        args += ["--kube-version", kube_version]
    for api in api_versions:
        args += ["--api-versions", api]
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
    except subprocess.TimeoutExpired:
        raise RenderError(f"helm template {chart.name} took over 120s") from None
    if result.returncode != 0:
        # Helm's INFO lines (e.g. about the symlinked values schema) are noise here.
        errors = [ln for ln in result.stderr.splitlines() if not ln.startswith("level=INFO")]
        raise RenderError(f"helm template {chart.name} failed:\n" + "\n".join(errors).strip())
    return result.stdout


def documents(rendered: str) -> Iterator[dict[str, Any]]:
    for doc in yaml.safe_load_all(rendered):
        if isinstance(doc, dict) and doc:
            yield doc


def find_object(rendered: str, kind: str, name: str) -> dict[str, Any]:
    for doc in documents(rendered):
        if doc.get("kind") == kind and (doc.get("metadata") or {}).get("name") == name:
            return doc
    raise RenderError(f"the render has no {kind} named {name}")


def mesh_virtual_service(root: Path, namespace: str = "shopflow-local") -> dict[str, Any]:
    """The VirtualService Istio routes by, rendered from the real mesh chart."""
    rendered = template(
        root, root / "charts" / "shopflow-mesh", release="shopflow-mesh", namespace=namespace
    )
    return find_object(rendered, "VirtualService", "shopflow-virtualservice")
