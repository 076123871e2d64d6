"""Render an environment exactly as Argo CD would: its Applications, through Helm.

For each Application the ApplicationSets generate for the environment, run
``helm template`` with the Application's release name, namespace, value files
in order, ``kubeVersion`` and ``apiVersions``. Value files are passed as files,
in order, so Helm itself merges them (pyhelm3's ``template_resources`` would
concatenate lists, and it has no kube-version or api-versions options, so
pyhelm3's ``Command.run`` is used with the exact arguments instead).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pyhelm3 import Command
from pyhelm3.errors import Error as HelmError

from shopctl.argocd import all_applications
from shopctl.helm import RenderError, ensure_dependencies
from shopctl.toolchain import require_helm

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


async def _render_one(root: Path, command: Command, app: dict[str, Any]) -> RenderedApplication:
    chart, args = helm_arguments(root, app)
    await asyncio.to_thread(ensure_dependencies, root, chart)
    try:
        output = await asyncio.wait_for(command.run(args), timeout=120)
    except TimeoutError:
        raise RenderError(f"{app['metadata']['name']}: helm template took over 120s") from None
    except HelmError as exc:
        lines = [ln for ln in str(exc).splitlines() if not ln.startswith("level=INFO")]
        raise RenderError(f"{app['metadata']['name']}: " + "\n".join(lines).strip()) from None
    return RenderedApplication(app, output.decode())


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
    command = Command(executable=str(require_helm(root)))
    gate = asyncio.Semaphore(concurrency)

    async def one(app: dict[str, Any]) -> RenderedApplication:
        async with gate:
            rendered = await _render_one(root, command, app)
        if progress:
            progress(f"rendered {rendered.name} ({len(rendered.documents)} objects)")
        return rendered

    rendered = await asyncio.gather(*(one(a) for a in apps))
    return EnvironmentRender(target, list(rendered), time.monotonic() - started)


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
