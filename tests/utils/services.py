"""Any of the five services as a real process on a real PostgreSQL, as shopctl runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from shopflow_kit.registry import lookup

from tests.utils.live import ROOT, LiveService, start_service


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def run_operation(
    name: str, args: list[str], env: Mapping[str, str], stdin: str | None = None
) -> str:
    """``python -m <package> <args>`` for service ``name``; fails the test with its output."""
    service = lookup(name)
    result = subprocess.run(
        [sys.executable, "-m", service.package, *args],
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{name} {args}: {result.stderr or result.stdout}"
    return result.stdout


def service_env(name: str, database_url: str, **settings: str) -> dict[str, str]:
    """``name``'s environment: its database plus ``settings`` under its own prefix."""
    prefix = lookup(name).env_prefix
    env = {f"{prefix}DATABASE_URL": database_url}
    env.update({f"{prefix}{key.upper()}": value for key, value in settings.items()})
    return env


def start(
    name: str,
    database_url: str,
    log_dir: Path,
    *,
    migrate: bool = True,
    port: int | None = None,
    extra: Mapping[str, str] | None = None,
    **settings: str,
) -> LiveService:
    """Migrate service ``name``'s database with its own CLI, then serve it on loopback.

    ``settings`` are the service's settings by field name (``user_auth_url=...``);
    they are passed under the service's env prefix, exactly as the chart does.
    ``extra`` takes more of them from a mapping built at run time.
    """
    env = service_env(name, database_url, **{**(extra or {}), **settings})
    if migrate:
        run_operation(name, ["migrate"], env)
    return start_service(name, lookup(name).factory, env, log_dir, port=port)
