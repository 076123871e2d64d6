"""How a service treats its connections: the 1 MiB body limit, and draining on SIGTERM.

Both hook into Sanic's HTTP/1.1 connection loop (``sanic/http/http1.py``)
through its supported extension point, a custom request class, so no Sanic
internals are patched.

**Body limit.** Sanic refuses an oversized body by answering 413 and closing
the socket while the client is still sending. Closing a socket with unread
input makes the kernel send a reset, which can destroy the 413 before the
client reads it. The kit instead answers with ``Connection: close`` and lets
Sanic read and discard the rest of the body (at most ``DISCARD_LIMIT_BYTES``,
for at most ``LINGER_SECONDS``) before it closes: nginx's lingering close.

**Draining.** On SIGTERM Sanic stops the listener, closes idle connections
and waits up to ``GRACEFUL_SHUTDOWN_TIMEOUT`` for the rest, but it would keep
serving new requests on busy keep-alive connections until that time runs out
and then cut them off. The kit's drain makes the response to every request in
flight the last one on its connection, so connections close as soon as their
work is done.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sanic import Request, Sanic
from sanic.exceptions import PayloadTooLarge
from sanic.http import Stage

MAX_BODY_BYTES = 1024 * 1024  # 1 MiB; larger bodies get 413
#: After a 413, the most of the refused body the service reads and throws away.
DISCARD_LIMIT_BYTES = 64 * 1024 * 1024
#: ... and the longest it spends doing so (nginx's ``lingering_time``).
LINGER_SECONDS = 30.0

log = logging.getLogger("shopflow.shutdown")


class KitRequest(Request):
    """Sanic's request, with the body limit applied before any body byte is read,
    and the kit's request observer (request id, access line, metrics) around it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ctx = self.app.ctx
        if getattr(ctx, "connections", None) is None and self.transport is not None:
            # Sanic's set of open connections, shared by every connection of the
            # server: the drain needs it and Sanic offers no other way to reach it.
            protocol: Any = self.transport.get_protocol()
            ctx.connections = protocol.connections
        observer = getattr(ctx, "observer", None)
        if observer is not None:
            observer.start(self)

    async def respond(self, *args: Any, **kwargs: Any) -> Any:
        stream: Any = self.stream
        if stream is not None and stream.request_body is True and not stream.request_bytes_left:
            # "Content-Length: 0" on a GET: nothing is left to read, so nothing
            # was left unread. Sanic would log "body not consumed" as an error.
            stream.request_body = None
        response = await super().respond(*args, **kwargs)
        observer = getattr(self.app.ctx, "observer", None)
        if observer is not None and response is not None:
            try:
                observer.finish(self, response)
            except Exception:  # an access line must never turn a response into an error
                log.exception("request observer failed")
        return response

    async def receive_body(self) -> None:
        stream: Any = self.stream  # sanic.http.Http
        if stream is None or not stream.request_body:
            await super().receive_body()
            return
        stream.request_max_size = MAX_BODY_BYTES
        try:
            if stream.request_bytes > MAX_BODY_BYTES:  # a Content-Length over the limit
                stream.expecting_continue = False  # never invite a body that is refused
                raise PayloadTooLarge("the request body is larger than the 1 MiB limit")
            await super().receive_body()
        except PayloadTooLarge:
            _linger(stream)
            raise


#: Request headers a service accepts: the gateway's limit, and Sanic's ceiling.
MAX_HEADER_BYTES = 16384


def _linger(stream: Any) -> None:
    """Answer with ``Connection: close``, then drain the body (bounded) before closing."""
    stream.keep_alive = False
    # Sanic drains an unread body after the response, up to this size (it takes
    # the smaller of this and the app's REQUEST_MAX_SIZE).
    stream.request_max_size = DISCARD_LIMIT_BYTES
    protocol = stream.protocol
    protocol.loop.call_later(LINGER_SECONDS, protocol.close)


def install(app: Sanic[Any, Any], grace_seconds: float) -> None:
    """Body limit and graceful shutdown for ``app`` (built with ``request_class=KitRequest``)."""
    # Sanic's own ceiling is what the service will drain; requests get 1 MiB.
    app.config.REQUEST_MAX_SIZE = DISCARD_LIMIT_BYTES
    # The gateway passes headers up to 16 KiB (docs/gateway.md); so do the services
    # (Sanic's ceiling), and larger ones get 431 here too.
    app.config.REQUEST_MAX_HEADER_SIZE = MAX_HEADER_BYTES
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = grace_seconds
    app.ctx.connections = None

    @app.before_server_stop
    async def drain(app: Sanic[Any, Any]) -> None:
        # Runs after SIGTERM, just before Sanic closes the listener.
        app.ctx.drain_started = time.monotonic()
        app.config.KEEP_ALIVE = False  # requests read from now on are each the last
        open_connections = list(app.ctx.connections or ())
        busy = 0
        for connection in open_connections:
            http = connection.http
            if http is not None:
                http.keep_alive = False  # the response in flight closes its connection
                busy += http.stage is not Stage.IDLE
        log.info(
            "draining",
            extra={"open_connections": len(open_connections), "busy": busy, "grace": grace_seconds},
        )


def report_drain(app: Sanic[Any, Any]) -> None:
    """Log whether every connection closed within the grace period (after Sanic's wait)."""
    started = getattr(app.ctx, "drain_started", None)
    if started is None:
        return
    seconds = round(time.monotonic() - started, 2)
    grace = float(app.config.GRACEFUL_SHUTDOWN_TIMEOUT)
    if seconds < grace:
        log.info("drained", extra={"seconds": seconds})
    else:
        log.warning(
            "grace period exhausted; connections still open were cut off",
            extra={"seconds": seconds, "grace": grace},
        )
