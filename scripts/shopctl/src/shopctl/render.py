"""Render an environment exactly as Argo CD would: its Applications, through Helm.

For each Application the ApplicationSets generate for the environment, run
``helm template`` with the Application's release name, namespace, value files
in order, ``kubeVersion`` and ``apiVersions``. Value files are passed as files,
in order, so Helm itself merges them. Four Applications render at a time, each
in a thread; when some fail, the others still finish and every failure is
reported together.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shopctl.argocd import all_applications
from shopctl.helm import RenderError, ensure_dependencies, run

ENVIRONMENT_LABEL = "shopflow.io/environment"
COMPONENT_LABEL = "shopflow.io/component"
Progress = Callable[[str], None]


class UnknownEnvironment(ValueError):
    pass


@dataclass(frozen=True)
class Environment:
    name: str
    data: dict[str, Any]

    @property
    def namespace(self) -> str:
        return str(self.data["namespace"])

    @property
    def kube_version(self) -> str:
        return str(self.data["kubeVersion"])


def environments(root: Path) -> dict[str, Environment]:
    found = {}
    for path in sorted((root / "environments").glob("*/env.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        found[path.parent.name] = Environment(path.parent.name, data)
    return found


def environment(root: Path, name: str) -> Environment:
    envs = environments(root)
    if name not in envs:
        known = ", ".join(sorted(envs)) or "none"
        raise UnknownEnvironment(f"unknown environment {name!r}; environments: {known}")
    return envs[name]


@dataclass
class RenderedApplication:
    application: dict[str, Any]
    text: str

    @property
    def name(self) -> str:
        return str(self.application["metadata"]["name"])

    @property
    def component(self) -> str:
        return str(self.application["metadata"].get("labels", {}).get(COMPONENT_LABEL, ""))

    @property
    def documents(self) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all(self.text) if isinstance(d, dict) and d]


@dataclass
class EnvironmentRender:
    environment: Environment
    applications: list[RenderedApplication] = field(default_factory=list)
    seconds: float = 0.0


def applications_for(root: Path, env: str) -> list[dict[str, Any]]:
    return [
        app
        for app in all_applications(root)
        if app["metadata"].get("labels", {}).get(ENVIRONMENT_LABEL) == env
    ]


def helm_arguments(root: Path, app: dict[str, Any]) -> tuple[Path, list[str]]:
    """The chart and the ``helm template`` arguments Argo CD would use for ``app``."""
    spec = app["spec"]
    sources = spec.get("sources") or [spec["source"]]
    charts = [s for s in sources if "path" in s]
    refs = {s["ref"]: s for s in sources if "ref" in s}
    if len(charts) != 1:
        raise RenderError(
            f"{app['metadata']['name']}: expected one chart source, found {len(charts)}"
        )
    chart_source = charts[0]
    chart = root / chart_source["path"]
    helm = chart_source.get("helm") or {}
    name = app["metadata"]["name"]
    args = [
        "template",
        helm.get("releaseName", name),
        str(chart),
        "--namespace",
        helm.get("namespace") or spec["destination"]["namespace"],
    ]
    for value_file in helm.get("valueFiles") or []:
        if value_file.startswith("$"):
            ref, _, rest = value_file[1:].partition("/")
            if ref not in refs:
                raise RenderError(f"{name}: value file {value_file} names no ref source {ref!r}")
            path = root / rest
        else:
            path = chart / value_file
        if not path.is_file():
            raise RenderError(f"{name}: value file {path.relative_to(root)} does not exist")
        args += ["--values", str(path)]
    if helm.get("kubeVersion"):
        args += ["--kube-version", str(helm["kubeVersion"])]
    for api in helm.get("apiVersions") or []:
        args += ["--api-versions", str(api)]
    return chart, args


def _render_one(root: Path, app: dict[str, Any]) -> RenderedApplication:
    chart, args = helm_arguments(root, app)
    ensure_dependencies(root, chart)
    try:
        output = run(root, args)
    except RenderError as exc:
        raise RenderError(f"{app['metadata']['name']}: {exc}") from None
    return RenderedApplication(app, output)


async def render_environment(
    root: Path,
    env: str,
    *,
    service: str | None = None,
    progress: Progress | None = None,
    concurrency: int = 4,
) -> EnvironmentRender:
    started = time.monotonic()
    target = environment(root, env)
    apps = applications_for(root, env)
    if service is not None:
        apps = [a for a in apps if a["metadata"].get("labels", {}).get(COMPONENT_LABEL) == service]
        if not apps:
            raise UnknownEnvironment(f"no Application for service {service!r} in {env}")
    gate = asyncio.Semaphore(concurrency)

    async def one(app: dict[str, Any]) -> RenderedApplication:
        async with gate:
            rendered = await asyncio.to_thread(_render_one, root, app)
        if progress:
            progress(f"rendered {rendered.name} ({len(rendered.documents)} objects)")
        return rendered

    # Every render runs to its end: one failure neither cancels the others nor
    # hides their errors.
    outcomes = await asyncio.gather(*(one(a) for a in apps), return_exceptions=True)
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    for failure in failures:
        if not isinstance(failure, RenderError):
            raise failure
    if failures:
        raise RenderError("\n".join(str(f) for f in failures))
    rendered = [o for o in outcomes if isinstance(o, RenderedApplication)]
    return EnvironmentRender(target, rendered, time.monotonic() - started)


def write_render(result: EnvironmentRender, out: Path) -> list[Path]:
    """One file per Application, named after it; stale files of the environment are removed."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for app in result.applications:
        path = out / f"{app.name}.yaml"
        path.write_text(app.text)
        written.append(path)
    for stale in out.glob(f"{result.environment.name}-*.yaml"):
        if stale not in written:
            stale.unlink()
    return written
