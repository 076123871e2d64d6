"""The whole local platform (`shopctl up`), started once for the end-to-end tests."""

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
from pathlib import Path

import psutil
import pytest
from shopctl.pg import free_port

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
    """One platform shared by the API flow tests."""
    running = start_platform()
    yield running
    running.stop()
    shutil.rmtree(running.state.parent, ignore_errors=True)
