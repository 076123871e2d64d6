"""The I/O around :mod:`shopctl.contracts`: renders, value files and the services' documents.

shopctl imports no service package: each public OpenAPI document comes from the
service's own CLI, ``python -m <package> openapi``, which builds the app without
a database, in a subprocess.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from shopctl.contracts import Deployment, Finding, Source, check_environment
from shopctl.helm import RenderError
from shopctl.render import EnvironmentRender, helm_arguments, render_environment
from shopctl.services import SERVICES, Service, has_code


class ContractsError(RuntimeError):
    """A document or a render could not be had; the message names which."""


async def _document(root: Path, service: Service) -> dict[str, Any] | None:
    if not has_code(service, root):
        return None
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        service.package,
        "openapi",
        cwd=root,
        env={**os.environ},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        detail = err.decode(errors="replace").strip()[-1500:]
        raise ContractsError(
            f"{service.name}: `python -m {service.package} openapi` failed:\n{detail}"
        )
    try:
        document: dict[str, Any] = json.loads(out)
    except json.JSONDecodeError as exc:
        raise ContractsError(
            f"{service.name}: `python -m {service.package} openapi` printed no JSON: {exc}"
        ) from None
    return document


async def load_documents(
    root: Path, services: Sequence[Service] = SERVICES
) -> dict[str, dict[str, Any] | None]:
    """Each service's public OpenAPI document; None for a service without code yet."""
    found = await asyncio.gather(*(_document(root, s) for s in services))
    return {s.name: doc for s, doc in zip(services, found, strict=True)}


def _relative(root: Path, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def deployment(root: Path, render: EnvironmentRender) -> Deployment:
    """The rendered objects of each Application, with the value files that made them."""
    sources = []
    for app in render.applications:
        chart, args = helm_arguments(root, app.application)
        files = [chart / "values.yaml"] + [
            Path(args[i + 1]) for i, arg in enumerate(args) if arg == "--values"
        ]
        layers: list[tuple[str, Mapping[str, Any]]] = []
        for path in files:
            values = yaml.safe_load(path.read_text()) if path.is_file() else {}
            layers.append((_relative(root, path), values if isinstance(values, dict) else {}))
        sources.append(
            Source(
                component=app.component,
                chart=_relative(root, chart),
                value_files=tuple(layers),
                objects=tuple(app.documents),
            )
        )
    return Deployment(render.environment.name, render.environment.namespace, tuple(sources))


async def check(root: Path, envs: Sequence[str]) -> dict[str, list[Finding]]:
    """Render each environment and check it; documents are read once for all."""
    documents = await load_documents(root)
    results: dict[str, list[Finding]] = {}
    for env in envs:
        try:
            render = await render_environment(root, env)
        except RenderError as exc:
            raise ContractsError(str(exc)) from None
        results[env] = check_environment(deployment(root, render), documents)
    return results
