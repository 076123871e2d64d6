"""Child processes that die with their parent, and waiting for readiness."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    # If shopctl is killed outright (SIGKILL), the kernel stops the children too.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _in_child(nice: int) -> Callable[[], None] | None:
    """What runs in the child before exec: die with the parent, and ``nice`` if any."""
    if sys.platform != "linux":
        return None

    def prepare() -> None:  # pragma: no cover - runs in the child
        _die_with_parent()
        if nice:
            os.nice(nice)

    return prepare


@dataclass
class Child:
    name: str
    args: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    cwd: Path | None = None
    #: Added to the child's niceness (lower CPU priority), for work off the request path.
    nice: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(  # noqa: S603
            list(self.args),
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
            preexec_fn=_in_child(self.nice),
            # Its own process group: a terminal's Ctrl-C reaches only the
            # supervisor, which then stops the children in order.
            process_group=0,
        )
        log.close()
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` (longer than a service's own drain)."""
        if not self.alive():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def sanic_args(factory: str, port: int, host: str = "127.0.0.1") -> list[str]:
    """How every service runs: Sanic's CLI with ``--factory``, one process."""
    return [
        sys.executable,
        "-m",
        "sanic",
        factory,
        "--factory",
        "--single-process",
        "--host",
        host,
        "--port",
        str(port),
        "--no-motd",
        "--no-access-logs",
    ]


def wait_http(
    url: str, child: Child | None = None, timeout: float = 60.0, accept: tuple[int, ...] = (200,)
) -> None:
    """Wait until ``url`` answers a status in ``accept``; fail early if ``child`` exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            raise RuntimeError(f"{child.name} exited during start-up:\n{child.log_tail()}")
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code in accept:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.1)
    tail = f"\n{child.log_tail()}" if child else ""
    raise TimeoutError(f"{url} was not ready after {timeout:.0f}s ({last}){tail}")
