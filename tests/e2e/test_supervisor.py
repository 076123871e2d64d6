"""`shopctl up` supervises like a Deployment: real `kill -9`, real restarts, real Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.utils.e2e import ROOT, Platform, start_platform

CRASH_LIMIT = 5


@pytest.fixture(scope="module")
def supervised() -> Iterator[Platform]:
    running = start_platform()
    yield running
    running.stop()
    shutil.rmtree(running.state.parent, ignore_errors=True)


def service_process(platform: Platform, package: str) -> psutil.Process | None:
    for child in psutil.Process(platform.process.pid).children(recursive=True):
        try:
            if f"{package}.app:create_app" in " ".join(child.cmdline()):
                return child
        except psutil.NoSuchProcess:
            continue
    return None


def wait_for(condition, timeout: float = 90.0, message: str = "") -> object:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out: {message}")


def status(platform: Platform) -> str:
    env = {**os.environ, "SHOPFLOW_STATE_DIR": str(platform.state)}
    result = subprocess.run(
        [sys.executable, "-m", "shopctl", "status"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout + result.stderr


def catalog_line(platform: Platform) -> str:
    return next(line for line in status(platform).splitlines() if "catalog-api" in line)


def test_a_killed_service_restarts_while_the_others_keep_serving(supervised: Platform) -> None:
    catalog_port = supervised.ports["CATALOG_API"]
    victim = service_process(supervised, "catalog_api")
    assert victim is not None
    victim.kill()  # kill -9
    served = 0
    while True:
        # The rest of the platform answers throughout.
        assert httpx.get(f"{supervised.gateway}/auth/health", timeout=10).status_code == 200
        served += 1
        replacement = service_process(supervised, "catalog_api")
        if replacement is not None and replacement.pid != victim.pid:
            try:
                if (
                    httpx.get(f"http://127.0.0.1:{catalog_port}/ready", timeout=5).status_code
                    == 200
                ):
                    break
            except httpx.TransportError:
                pass
        assert served < 2000, supervised.output()
        time.sleep(0.05)
    assert httpx.get(f"{supervised.gateway}/products", timeout=10).status_code == 200
    output = supervised.output()
    assert "catalog-api exited (killed by SIGKILL); restarting in 1s" in output, output
    line = catalog_line(supervised)
    assert "running" in line and "restarts 1" in line, line
    assert supervised.process.poll() is None


def test_a_crash_looping_service_stays_down_and_says_so(supervised: Platform) -> None:
    def noticed() -> int:
        output = supervised.output()
        return output.count("catalog-api exited") + output.count("catalog-api crashed")

    for _ in range(CRASH_LIMIT):
        if "leaving it down" in supervised.output():
            break
        before = noticed()
        victim = wait_for(
            lambda: service_process(supervised, "catalog_api"),
            message=f"catalog-api restart\n{supervised.output()}",
        )
        victim.kill()  # type: ignore[attr-defined]
        wait_for(lambda b=before: noticed() > b, message="the supervisor noticed the crash")
    output = supervised.output()
    assert f"catalog-api crashed {CRASH_LIMIT} times within 60s; leaving it down" in output, output
    assert str(supervised.state / "logs" / "catalog-api.log") in output
    time.sleep(3)  # longer than any backoff so far: it really stays down
    assert service_process(supervised, "catalog_api") is None
    assert "down" in catalog_line(supervised)
    # The rest keeps serving, and shopctl up keeps running.
    assert httpx.get(f"{supervised.gateway}/auth/health", timeout=10).status_code == 200
    assert supervised.process.poll() is None


def test_ctrl_c_stops_everything_without_orphans(supervised: Platform) -> None:
    children = psutil.Process(supervised.process.pid).children(recursive=True)
    assert children
    supervised.process.send_signal(signal.SIGINT)
    supervised.exit_code = supervised.process.wait(90)
    assert supervised.exit_code == 0, supervised.output()
    time.sleep(0.5)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    output = supervised.output()
    assert "stopped." in output
    # Messages name the state folder in use, not the default one.
    assert f"Logs: {supervised.state / 'logs'}" in output
    assert ".shopflow" not in output, output
