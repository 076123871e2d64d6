"""Each service's own operations: ``python -m <package> <command>``.

The same entry point serves ``shopctl`` locally (as a subprocess), the chart's
migration Job and ``kubectl exec`` in the cluster, so an operation always runs
inside the service's own image with the service's own settings. Every service
gets ``migrate``, ``openapi`` (prints its public document) and ``reach URL``
(a GET as this service makes it, cluster names such as
``http://catalog-api:4000/health`` included); a service adds
its own operations (``seed``, user-auth's ``create-admin`` and ``rotate-keys``)
as :class:`Operation` objects.

Exit codes: 0 done, 1 the operation failed (the message says why), 2 a usage or
configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError

from shopflow_kit import openapi
from shopflow_kit.config import ConfigError, ServiceSettings
from shopflow_kit.db import close_db, init_db, migrate
from shopflow_kit.registry import SERVICES


class OperationError(RuntimeError):
    """An operation could not be done; the message is for the operator, as it is."""


Configure = Callable[[argparse.ArgumentParser], None]
Run = Callable[[Any, argparse.Namespace], Awaitable[str]]


@dataclass(frozen=True)
class Operation:
    """One ``python -m <package> <name>`` command.

    ``run(settings, args)`` runs with the service's database open (unless
    ``needs_database`` is false) and returns the line to print on success.
    """

    name: str
    help: str
    run: Run
    configure: Configure = field(default=lambda parser: None)
    needs_database: bool = True


def _migrate_operation(models: str | None) -> Operation:
    async def run(settings: ServiceSettings, args: argparse.Namespace) -> str:
        await migrate(settings, models)
        return f"{settings.service_name}: migrations applied"

    return Operation("migrate", "apply every pending migration", run, needs_database=False)


def _openapi_operation(package: str) -> Operation:
    async def run(settings: ServiceSettings, args: argparse.Namespace) -> str:
        # The service's own app, built but not served: the document is what it would serve.
        factory = importlib.import_module(f"{package}.app").create_app
        service = next(s for s in SERVICES if s.package == package)
        document = openapi.build(factory(), f"ShopFlow {service.name}", service.prefixes)
        return json.dumps(document, indent=2, sort_keys=True)

    return Operation(
        "openapi",
        "print the public OpenAPI document (no database needed)",
        run,
        needs_database=False,
    )


def _reach_operation() -> Operation:
    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("url", help="for example http://catalog-api:4000/health")

    async def run(settings: ServiceSettings, args: argparse.Namespace) -> str:
        url = settings.resolve_url(args.url)
        via = "" if url == args.url else f" (via {url})"
        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(5.0)) as client:
                response = await client.get(url)
        except httpx.HTTPError as exc:
            raise OperationError(f"GET {args.url}{via}: {type(exc).__name__} {exc}") from None
        if response.status_code >= 400:
            raise OperationError(f"GET {args.url}{via} answered {response.status_code}")
        return f"GET {args.url}{via}: {response.status_code}"

    return Operation(
        "reach",
        "GET a URL as this service would (cluster names resolve as they do for it)",
        run,
        configure,
        needs_database=False,
    )


async def _execute(
    operation: Operation, settings: ServiceSettings, models: str | None, args: argparse.Namespace
) -> str:
    if not operation.needs_database:
        return await operation.run(settings, args)
    await init_db(settings, models)
    try:
        return await operation.run(settings, args)
    finally:
        await close_db()


def run(
    package: str,
    settings_factory: Callable[[], ServiceSettings],
    models: str | None,
    operations: Sequence[Operation] = (),
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv`` and run one operation; returns the process exit code."""
    known = [
        _migrate_operation(models),
        _openapi_operation(package),
        _reach_operation(),
        *operations,
    ]
    parser = argparse.ArgumentParser(prog=f"python -m {package}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    for operation in known:
        operation.configure(commands.add_parser(operation.name, help=operation.help))
    args = parser.parse_args(argv)
    chosen = next(op for op in known if op.name == args.command)
    try:
        settings = settings_factory()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        print(f"error: invalid settings: {problems}", file=sys.stderr)
        return 2
    try:
        print(asyncio.run(_execute(chosen, settings, models, args)))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OperationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot reach the database: {exc}", file=sys.stderr)
        return 1
    return 0
