"""Schemathesis against the public OpenAPI documents, through `shopctl up`'s gateway.

Used by tests/contracts/test_live.py (bounded: a few examples per operation, a
fixed seed) and by `make fuzz` (``python -m tests.contracts.fuzz``: a platform of
its own and as many examples as you ask for). The run is schemathesis's own CLI,
so a failure prints its report and the curl command that reproduces it.

Checks that must find nothing: not_a_server_error, status_code_conformance,
content_type_conformance, response_schema_conformance.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from shopctl.services import SERVICES, Service

from tests.utils.e2e import Platform, start_platform
from tests.utils.factories import unique_email

ROOT = Path(__file__).resolve().parents[2]
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
PASSWORD = "fuzzing-shopper-passphrase"
SEED = 20240616


@dataclass(frozen=True)
class Run:
    command: list[str]
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def report(self) -> str:
        """Schemathesis's report from its failures (or its summary) on, long lines cut."""
        lines = [ln if len(ln) <= 400 else ln[:400] + " ..." for ln in self.output.splitlines()]
        starts = [i for i, ln in enumerate(lines) if " FAILURES " in ln or " ERRORS " in ln]
        return "\n".join(lines[starts[0] :] if starts else lines[-60:])


def customer(platform: Platform) -> str:
    """A fresh customer account on the platform, as ``email:password``."""
    email = unique_email()
    response = httpx.post(
        f"{platform.gateway}/auth/register",
        json={"email": email, "password": PASSWORD, "name": "Fuzz Shopper"},
        timeout=20,
    )
    response.raise_for_status()
    return f"{email}:{PASSWORD}"


def session(platform: Platform, account: str) -> dict[str, str]:
    """A logged-in session (access and refresh token) for ``email:password``."""
    email, _, password = account.partition(":")
    response = httpx.post(
        f"{platform.gateway}/auth/login", json={"email": email, "password": password}, timeout=20
    )
    response.raise_for_status()
    return {k: response.json()[k] for k in ("access_token", "refresh_token")}


def sessions(platform: Platform, shopper: str) -> dict[str, dict[str, str]]:
    """One customer and one admin session, for one schemathesis run."""
    admin = ":".join(platform.admin)
    return {"customer": session(platform, shopper), "admin": session(platform, admin)}


def documents(platform: Platform, services: Sequence[Service] = SERVICES) -> dict[str, Any]:
    """Each running service's public document, as the gateway serves it."""
    found = {}
    for service in services:
        response = httpx.get(f"{platform.gateway}{service.openapi_prefix}/openapi.json", timeout=20)
        if response.status_code == 200:
            found[service.name] = response.json()
    return found


def schemathesis(
    platform: Platform,
    document: Mapping[str, Any],
    *,
    tokens: Mapping[str, Mapping[str, str]],
    phases: str = "examples,coverage,fuzzing",
    max_examples: int = 10,
    seed: int = SEED,
    checks: Sequence[str] = CHECKS,
    extra: Sequence[str] = (),
) -> Run:
    """``schemathesis run`` on ``document`` (written to a file) against the gateway.

    ``tokens`` are this run's own sessions (:func:`sessions`), logged in beforehand.
    """
    with tempfile.TemporaryDirectory(prefix="shopflow-fuzz-") as folder:
        path = Path(folder) / "openapi.json"
        path.write_text(json.dumps(document))
        command = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            str(path),
            "--url",
            platform.gateway,
            "--checks",
            ",".join(checks),
            "--phases",
            phases,
            "--max-examples",
            str(max_examples),
            "--seed",
            str(seed),
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--no-color",
            *extra,
        ]
        env = {
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.contracts.schemathesis_hooks",
            "SHOPFLOW_FUZZ_GATEWAY": platform.gateway,
            "SHOPFLOW_FUZZ_SESSIONS": json.dumps(tokens),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        result = subprocess.run(
            command, cwd=folder, env=env, capture_output=True, text=True, check=False
        )
    return Run(command, result.returncode, result.stdout + result.stderr)


# --- one document for the whole gateway, for the stateful runs -----------------------

_REF = re.compile(r"#/components/schemas/([^\"/]+)")


def _renamed(value: Any, prefix: str) -> Any:
    """``value`` with every schema reference moved under ``prefix``."""
    text = json.dumps(value)
    return json.loads(_REF.sub(lambda m: f"#/components/schemas/{prefix}{m.group(1)}", text))


def gateway_document(docs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The five public documents as one: the API the gateway serves.

    Schemathesis follows links inside one document, and the shopper's journey
    crosses services (login, then the cart; an order, then its payment), so the
    documents are merged: schemas are namespaced per service, operationIds must
    be unique across services, and an ``operationRef`` into another service's
    document becomes a local one. A link whose target service is not running
    is dropped.
    """
    by_document = {f"{s.openapi_prefix}/openapi.json": s.name for s in SERVICES}
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for name, doc in docs.items():
        prefix = re.sub(r"[^A-Za-z0-9]", "_", name) + "__"
        for schema_name, schema in (doc.get("components") or {}).get("schemas", {}).items():
            schemas[prefix + schema_name] = _renamed(schema, prefix)
        for path, item in _renamed(doc.get("paths") or {}, prefix).items():
            for spec in item.values():
                operation_id = spec.get("operationId")
                if operation_id in seen:
                    raise ValueError(
                        f"operationId {operation_id} is used by {seen[operation_id]} and {name}"
                    )
                seen[operation_id] = name
                for response in (spec.get("responses") or {}).values():
                    links = response.get("links") or {}
                    for link_name, link in list(links.items()):
                        reference = link.get("operationRef")
                        if reference is None:
                            continue
                        document, _, pointer = reference.partition("#")
                        if by_document.get(document) not in docs:
                            del links[link_name]
                        else:
                            link["operationRef"] = f"#{pointer}"
            paths[path] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": "ShopFlow through the gateway", "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=None, help="default: a new one each run")
    parser.add_argument("--stateful-examples", type=int, default=100)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(3), "big")
    print(f"starting a platform (shopctl up on free ports); seed {seed}", flush=True)
    platform = start_platform()
    failed = []
    try:
        docs = documents(platform)
        shopper = customer(platform)
        runs = [
            (name, doc, "examples,coverage,fuzzing", args.max_examples)
            for name, doc in docs.items()
        ]
        runs.append(
            ("gateway (stateful)", gateway_document(docs), "stateful", args.stateful_examples)
        )
        # Every session first: fuzzing the login soon throttles this address's logins.
        logged_in = [sessions(platform, shopper) for _ in runs]
        for (name, doc, phases, examples), tokens in zip(runs, logged_in, strict=True):
            print(f"==> {name}: {phases}, up to {examples} examples per operation", flush=True)
            run = schemathesis(
                platform, doc, tokens=tokens, phases=phases, max_examples=examples, seed=seed
            )
            print(run.report(), flush=True)
            if not run.ok:
                failed.append(name)
    finally:
        platform.stop()
        shutil.rmtree(platform.state.parent, ignore_errors=True)
    print(f"failures in: {', '.join(failed)}" if failed else "no failures", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
