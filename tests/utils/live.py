"""Running real servers on loopback ports for tests."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from shopctl.ports import free_port
from shopctl.procs import Child, sanic_args, wait_http

ROOT = Path(__file__).resolve().parents[2]


async def log_once(path: Path, present: Callable[[str], bool], timeout: float = 10.0) -> str:
    """The log at ``path`` as soon as ``present(text)`` holds (or as it is after ``timeout``).

    A service writes its access lines at the end of the event loop's turn in
    which it answered (``shopflow_kit.observability``), so a client can read
    an answer before its line is in the file.
    """
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(errors="replace")
        if present(text) or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.02)


@dataclass
class LiveService:
    child: Child
    base_url: str

    def stop(self) -> None:
        self.child.stop()

    def kill(self) -> None:
        """A crash: SIGKILL, no shutdown hooks."""
        assert self.child.process is not None
        self.child.process.kill()
        self.child.process.wait(5)


def start_service(
    name: str, factory: str, env: Mapping[str, str], log_dir: Path, *, port: int | None = None
) -> LiveService:
    """Start ``factory`` with Sanic's CLI as its own process; wait for /health."""
    port = port or free_port()
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    child = Child(
        name, sanic_args(factory, port), {**env, "PYTHONPATH": pythonpath}, log_dir / f"{name}.log"
    ).start()
    base_url = f"http://127.0.0.1:{port}"
    wait_http(f"{base_url}/health", child, timeout=60)
    return LiveService(child, base_url)


Handler = Callable[[BaseHTTPRequestHandler, bytes], tuple[int, dict[str, str], bytes]]


class _Server(ThreadingHTTPServer):
    # The stdlib's listen backlog is 5: a burst of concurrent connections
    # (the gateway's tests open 25 at once) overflows it on a busy machine,
    # and the kernel then resets connections the client believes are open.
    request_queue_size = 128


class LoopbackHTTPServer:
    """A plain threaded HTTP server on 127.0.0.1 whose answers a test defines."""

    def __init__(self, handle: Handler, port: int | None = None) -> None:
        self.port = port or free_port()
        self._handle = handle
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackHTTPServer:
        handle = self._handle

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    body = b""
                    while True:
                        size = int(self.rfile.readline().strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        body += self.rfile.read(size)
                        self.rfile.readline()
                else:
                    body = self.rfile.read(length) if length else b""
                status, headers, payload = handle(self, body)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

            def log_message(self, *args: object) -> None:
                pass

        self._server = _Server(("127.0.0.1", self.port), _Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
