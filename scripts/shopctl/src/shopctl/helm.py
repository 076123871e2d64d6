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


#: The longest one Helm command may take before it is killed.
HELM_TIMEOUT_SECONDS = 120


def run(root: Path, args: Sequence[str]) -> str:
    """Run the pinned Helm with ``args``; its stdout, or :class:`RenderError` with its errors.

    A blocking call (render it from a thread to run several at once): unlike an
    asyncio subprocess, it cannot be left waiting on a process it was
    cancelled from, and a Helm that hangs is killed after the timeout.
    """
    command = [str(require_helm(root)), *args]
    try:
        result = subprocess.run(  # noqa: S603
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=HELM_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RenderError(f"helm {args[0]} took over {HELM_TIMEOUT_SECONDS}s") from None
    if result.returncode != 0:
        # Helm's INFO lines (e.g. about the symlinked values schema) are noise here.
        errors = [ln for ln in result.stderr.splitlines() if not ln.startswith("level=INFO")]
        raise RenderError("\n".join(errors).strip() or f"helm exited with {result.returncode}")
    return result.stdout


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
    args = ["template", release, str(chart), "--namespace", namespace]
    for values in value_files:
        args += ["--values", str(values)]
    if kube_version:
        args += ["--kube-version", kube_version]
    for api in api_versions:
        args += ["--api-versions", api]
    try:
        return run(root, args)
    except RenderError as exc:
        raise RenderError(f"helm template {chart.name} failed:\n{exc}") from None


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
