"""The whole local platform (`shopctl up`) on free ports, for the tests through its gateway.

The session's ``platform`` fixture is re-exported by the root tests/conftest.py, so
tests/e2e and tests/contracts share one platform in a `make test` run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from unittest import mock

import psutil
import pytest
from shopctl.ports import free_port
from shopctl.runner import ADMIN_EMAIL, service_env
from shopctl.services import lookup
from shopctl.smtp import read_messages

ROOT = Path(__file__).resolve().parents[2]
PORTS = (
    "GATEWAY",
    "SMTP",
    "POSTGRES",
    "USER_AUTH",
    "CATALOG_API",
    "ORDER_MGMT",
    "PAYMENT_API",
    "NOTIFY_HUB",
)


@dataclass
class Platform:
    process: subprocess.Popen[bytes]
    state: Path
    log: Path
    ports: dict[str, int]
    children: list[psutil.Process] = field(default_factory=list)
    exit_code: int | None = None

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['GATEWAY']}"

    @property
    def secrets(self) -> dict:
        return json.loads((self.state / "secrets.json").read_text())

    @property
    def admin(self) -> tuple[str, str]:
        """The local admin `shopctl up` seeded: (email, generated password)."""
        return ADMIN_EMAIL, str(self.secrets["admin_password"])

    def mail(self) -> list[Message]:
        """Every message the SMTP sink kept (a Maildir in the state folder), oldest first."""
        return list(read_messages(self.state / "mail"))

    def service_env(self, name: str) -> dict[str, str]:
        """The settings `shopctl up` gives a service, with this platform's ports."""
        service = lookup(name)
        ports = {f"SHOPFLOW_PORT_{k}": str(v) for k, v in self.ports.items()}
        with mock.patch.dict(os.environ, ports):
            database = (
                f"postgresql://postgres@127.0.0.1:{self.ports['POSTGRES']}/{service.database}"
            )
            return service_env(
                service, database, self.secrets, self.ports["GATEWAY"], self.ports["SMTP"]
            )

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        if self.exit_code is None:
            self.process.send_signal(signal.SIGTERM)
            self.exit_code = self.process.wait(60)
        return self.exit_code


def start_platform() -> Platform:
    """`shopctl up` on free ports with its own state folder; waits for its table."""
    # Outside pytest's basetemp (see tests/conftest.py): the platform's PostgreSQL lives here.
    folder = Path(tempfile.mkdtemp(prefix="shopflow-e2e-"))
    ports = {name: free_port() for name in PORTS}
    env = {**os.environ, "SHOPFLOW_STATE_DIR": str(folder / "state")}
    env.update({f"SHOPFLOW_PORT_{k}": str(v) for k, v in ports.items()})
    env.pop("SHOPFLOW_DATABASE_URL", None)
    log = folder / "up.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "shopctl", "up"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Platform(process, folder / "state", log, ports)
    deadline = time.monotonic() + 180
    while "ShopFlow is up" not in running.output():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"shopctl up did not start:\n{running.output()}")
        time.sleep(0.2)
    running.children = psutil.Process(process.pid).children(recursive=True)
    return running


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    """One platform for the session, shared by tests/e2e and tests/contracts."""
    running = start_platform()
    yield running
    running.stop()
    shutil.rmtree(running.state.parent, ignore_errors=True)
