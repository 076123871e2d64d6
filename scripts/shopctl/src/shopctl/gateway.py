"""The local gateway's proxy: HTTP/1.1 on uvloop, parsed by httptools (llhttp).

What it routes by lives in ``shopctl.virtualservice`` (pure, no I/O); this
module only moves bytes. It was chosen by measurement (docs/benchmarks.md): a
Sanic server with an httpx client kept 7% of the upstream's throughput at 32
connections, an aiohttp server and client about half; a protocol-level proxy on
the same parser Sanic's and uvicorn's servers use keeps over 80%, because a
request costs it one parse, one write and one read on pooled keep-alive
connections, with no per-request client object.

Behaviour at the edge, as a front proxy must have it (docs/gateway.md):

- Request bodies are buffered up to ``MAX_BODY_BYTES`` (1 MiB, the kit's limit),
  then forwarded with a Content-Length, so retries can replay them and a body
  over the limit gets 413 before any upstream sees it, with Content-Length or
  chunked alike. A 413 says ``Connection: close`` and the connection is closed
  gracefully: what the client is still sending is read and discarded for a
  bounded time and size (nginx's lingering close), so the client can read the
  answer instead of a reset.
- ``Expect: 100-continue`` gets ``100 Continue`` only when the declared length
  is within the limit (otherwise 413 straight away), and on a pipelined
  connection only after the answers to the requests before it.
- A request line over ``max_request_line`` gets 414, headers over
  ``max_header_bytes`` (or ``max_headers``) get 431; bytes llhttp refuses get 400.
- A connection idle between requests is closed after ``idle_timeout``; one that
  sends its headers or body too slowly gets 408 and is closed.
- Upstream answers, 4xx and 5xx included, pass through unchanged apart from the
  hop-by-hop headers; header values are forwarded as bytes, never re-encoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast

import httptools
from shopflow_kit.heap import freeze_startup_heap
from shopflow_kit.limits import MAX_BODY_BYTES, MAX_REQUEST_LINE_BYTES
from shopflow_kit.observability import (
    AccessLog,
    accepted_request_id,
    configure_logging,
    new_request_id,
)

from shopctl.virtualservice import (
    CONNECT_FAILURE,
    Destination,
    Retries,
    Route,
    RoutingTable,
    normalize_path,
)

log = logging.getLogger("shopflow.gateway")

#: Headers that describe one connection, not the message (RFC 9110 7.6.1);
#: the gateway sets its own framing, so Content-Length goes too.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
        b"expect",
    }
)
# Set by the gateway itself on the way in; a client's own values are dropped.
FORWARDED = frozenset({b"x-request-id", b"x-forwarded-proto", b"x-forwarded-host"})
_REQUEST_ID = b"x-request-id"
#: The ``Retry-After`` of the gateway's own 503 and 504: a restarting service is
#: back within about a second under `shopctl up`.
RETRY_AFTER_SECONDS = 1
# A pooled upstream connection idle longer than this is not reused: Sanic closes
# keep-alive connections after 120 s by default, so a few seconds is safe.
_POOL_IDLE_SECONDS = 4.0


@dataclass(frozen=True)
class Limits:
    """Edge limits; every one of them answers with a precise status, never a reset."""

    max_body: int = MAX_BODY_BYTES
    max_request_line: int = MAX_REQUEST_LINE_BYTES
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 60.0
    connect_timeout: float = 5.0
    #: Lingering close after an early answer (413): discard at most this much...
    linger_bytes: int = 256 * 1024 * 1024
    #: ...for at most this long in all, and stop after this long without data.
    linger_seconds: float = 30.0
    linger_idle: float = 2.0


@dataclass
class _Request:
    method: bytes = b""
    url: bytearray = field(default_factory=bytearray)
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    header_bytes: int = 0
    body: list[bytes] = field(default_factory=list)
    body_size: int = 0
    keep_alive: bool = True
    http_10: bool = False
    # Whether the client framed a body (Content-Length or Transfer-Encoding).
    framed: bool = False
    # "Expect: 100-continue" while earlier requests were still being answered:
    # the 100 waits for their answers (responses go out in request order).
    continue_pending: bool = False
    # An early answer (413, 414, 431, 400) that replaces proxying; sent in turn.
    reject: tuple[int, str] | None = None


class _Rejected(Exception):
    """Raised inside a parser callback to stop parsing; the reason is on the request."""


def problem(status: int, detail: str) -> bytes:
    """An RFC 9457 body, the same shape as the kit's ``problem_response``."""
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    return json.dumps(
        {"type": "about:blank", "title": phrase, "status": status, "detail": detail}
    ).encode()


def _connection(*, keep: bool, http_10: bool) -> bytes:
    """The Connection header of an answer (RFC 9112 9.3): HTTP/1.1 persists unless told
    ``close``; an HTTP/1.0 client that asked for ``keep-alive`` is told it was granted."""
    if not keep:
        return b"connection: close\r\n"
    return b"connection: keep-alive\r\n" if http_10 else b""


def _status_line(status: int, reason: bytes = b"") -> bytes:
    if not reason:
        reason = (
            HTTPStatus(status).phrase.encode()
            if status in HTTPStatus._value2member_map_
            else b"Unknown"
        )
    return b"HTTP/1.1 %d %s\r\n" % (status, reason)


def _request_id(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The caller's id when the kit would accept it (plain, short, no card number), else new."""
    for name, value in headers:
        if name == _REQUEST_ID:
            return accepted_request_id(value.decode("latin-1")).encode("latin-1")
    return new_request_id().encode()


class UpstreamFailure(Exception):
    """A try failed before the upstream answered: ``reason`` is ``connect-failure``."""

    def __init__(self, reason: str, fresh: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fresh = fresh  # False: a reused keep-alive connection went away


class _RetryableStatus(Exception):
    """The upstream answered a status the route retries; the answer was discarded."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


# --- upstream side ---------------------------------------------------------------------


class _Upstream(asyncio.Protocol):
    """One keep-alive connection to an upstream; one exchange at a time."""

    def __init__(self, pool: _Pool, key: tuple[str, int]) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.head: asyncio.Future[tuple[int, bytes, list[tuple[bytes, bytes]]]] | None = None
        self.done: asyncio.Future[None] | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.reason = b""
        self.sink: _Client | None = None
        self.early: list[bytes] = []
        self.chunked = False
        self.head_only = False
        self.reusable = False
        self.got_bytes = False
        self.idle_since = 0.0
        self.interim = False

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.forget(self)
        self.transport = None
        if self.head is not None and not self.head.done():
            self.head.set_exception(UpstreamFailure("reset", fresh=not self.reusable))
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("the upstream closed mid-response"))

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.head is not None and not self.head.done():
                self.head.set_exception(ConnectionError(f"bad upstream response: {exc}"))
            elif self.done is not None and not self.done.done():
                self.done.set_exception(ConnectionError(f"bad upstream response: {exc}"))
            self.abort()

    def pause_writing(self) -> None:  # requests are small; nothing to do
        pass

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.headers, self.reason, self.interim = [], b"", False

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # we never send Expect; skip any interim answer
            self.interim = True
            return
        for name, value in self.headers:
            if name.lower() == b"transfer-encoding" and b"chunked" in value.lower():
                self.chunked = True
        self.reusable = self.parser.should_keep_alive() and not self.head_only
        assert self.head is not None
        if not self.head.done():
            self.head.set_result((status, self.reason, self.headers))
        if self.head_only:  # HEAD: no body follows, whatever the headers say
            self._complete()

    def on_body(self, body: bytes) -> None:
        if self.sink is not None:
            self.sink.write_body(body, self.chunked)
        else:
            self.early.append(body)

    def on_message_complete(self) -> None:
        if not self.head_only and not self.interim:
            self._complete()

    def _complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    # used by the proxy
    def send(self, data: bytes, head_only: bool) -> None:
        loop = asyncio.get_running_loop()
        self.head, self.done = loop.create_future(), loop.create_future()
        self.headers, self.reason, self.early = [], b"", []
        self.sink, self.chunked, self.head_only, self.got_bytes = None, False, head_only, False
        self.reusable = False
        assert self.transport is not None
        self.transport.write(data)

    def attach(self, sink: _Client, head: bytes) -> None:
        """Write ``head`` and what arrived of the body, then stream the rest to ``sink``.

        A small answer usually arrives whole with its headers: it leaves in one write.
        """
        self.sink = sink
        if self.chunked:
            body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in self.early if c)
        else:
            body = b"".join(self.early)
        self.early = []
        sink.write(head + body)

    def pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def release(self) -> None:
        """Back to the pool if the exchange ended cleanly and both sides allow it."""
        self.sink = None
        if self.reusable and self.transport is not None and not self.transport.is_closing():
            self.parser = httptools.HttpResponseParser(self)
            self.idle_since = time.monotonic()
            self.pool.put(self)
        else:
            self.abort()

    def abort(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()


class _Pool:
    """Idle keep-alive connections per upstream address, most recently used first."""

    def __init__(self, connect_timeout: float) -> None:
        self.idle: dict[tuple[str, int], list[_Upstream]] = {}
        self.connect_timeout = connect_timeout

    async def acquire(self, key: tuple[str, int]) -> tuple[_Upstream, bool]:
        """A connection and whether it was reused."""
        idle = self.idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if now - conn.idle_since < _POOL_IDLE_SECONDS and conn.transport is not None:
                return conn, True
            conn.abort()
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Upstream(self, key), key[0], key[1]),
                self.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise UpstreamFailure(CONNECT_FAILURE) from exc
        return conn, False

    def put(self, conn: _Upstream) -> None:
        self.idle.setdefault(conn.key, []).append(conn)

    def forget(self, conn: _Upstream) -> None:
        idle = self.idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)

    def close(self) -> None:
        for conns in self.idle.values():
            for conn in conns:
                conn.abort()
        self.idle.clear()


def _deadline(future: asyncio.Future[Any], seconds: float | None) -> asyncio.TimerHandle | None:
    """Fail ``future`` with TimeoutError after ``seconds``; cheaper than ``wait_for``."""
    if seconds is None:
        return None

    def expire() -> None:
        if not future.done():
            future.set_exception(TimeoutError())

    return asyncio.get_running_loop().call_later(max(seconds, 0.0), expire)


# --- client side -----------------------------------------------------------------------


class _Client(asyncio.Protocol):
    """One client connection: parse requests, answer them in order."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.limits = gateway.limits
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.current: _Request | None = None
        self.queue: deque[_Request] = deque()
        self.task: asyncio.Task[None] | None = None
        # One deadline at a time (idle, headers, body or linger), checked by the
        # gateway's sweeper: cheaper than a timer handle per request.
        self.deadline: float | None = None
        self.on_deadline: Callable[[], None] = self._close
        self.peer = ""
        self.closing = False
        self.lingering = False
        self.linger_left = 0
        self.linger_until = 0.0
        self.upstream: _Upstream | None = None
        self.writable: asyncio.Future[None] | None = None
        self.write_paused = False

    # -- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else ""
        self.gateway.clients.add(self)
        self._arm(self.limits.idle_timeout, self._idle_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gateway.clients.discard(self)
        self.transport = None
        self._disarm()
        if self.upstream is not None:
            self.upstream.abort()  # nobody will read the rest
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.upstream is not None:
            self.upstream.resume_reading()
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            self._linger(len(data))
            return
        if self.closing:
            return
        try:
            self.parser.feed_data(data)
        except _Rejected:
            self._stop_parsing()
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, _Rejected):
                log.error("gateway bug while parsing a request", exc_info=exc.__context__)
                self._reject(500, "the gateway failed to parse the request")
            self._stop_parsing()
        except httptools.HttpParserUpgrade:
            self._reject(400, "protocol upgrades are not supported by the local gateway")
            self._stop_parsing()
        except httptools.HttpParserError as exc:
            detail = str(exc) or "the request is not valid HTTP/1.1"
            self._reject(400, f"malformed request: {detail}")
            self._stop_parsing()

    def eof_received(self) -> bool | None:
        if self.lingering or (self.task is None and not self.queue):
            self._close()
            return None
        self.closing = True
        return True  # half-closed: answer what is in flight, then close

    @property
    def _too_large(self) -> str:
        return f"the request body is larger than the {self.limits.max_body} byte limit"

    # -- httptools callbacks
    def on_message_begin(self) -> None:
        self.current = _Request()
        self._arm(self.limits.header_timeout, self._slow_headers)

    def on_url(self, url: bytes) -> None:
        assert self.current is not None
        self.current.url += url
        if len(self.current.url) > self.limits.max_request_line:
            self._reject(414, f"the request target is longer than {self.limits.max_request_line}")
            raise _Rejected

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self.current
        assert request is not None
        request.header_bytes += len(name) + len(value) + 4
        request.headers.append((name.lower(), value.strip(b" \t")))
        if (
            request.header_bytes > self.limits.max_header_bytes
            or len(request.headers) > self.limits.max_headers
        ):
            self._reject(
                431,
                f"the request headers are larger than {self.limits.max_header_bytes} bytes "
                f"or more than {self.limits.max_headers}",
            )
            raise _Rejected

    def on_headers_complete(self) -> None:
        request = self.current
        assert request is not None
        request.method = self.parser.get_method()
        request.keep_alive = self.parser.should_keep_alive()
        version = self.parser.get_http_version()
        request.http_10 = version == "1.0"
        if version not in ("1.0", "1.1"):
            self._reject(505, f"HTTP/{version} is not supported here; use HTTP/1.1")
            raise _Rejected
        length = expect = None
        codings: list[bytes] = []
        has_host = False
        for name, value in request.headers:
            if name == b"host":
                has_host = True
            elif name == b"content-length":
                length = value
            elif name == b"expect":
                expect = value.lower()
            elif name == b"transfer-encoding":
                codings += [c.strip().lower() for c in value.split(b",")]
        request.framed = length is not None or bool(codings)
        if not has_host and not request.http_10:
            self._reject(400, "an HTTP/1.1 request needs a Host header (RFC 9112 3.2)")
            raise _Rejected
        if unknown := [c for c in codings if c != b"chunked"]:
            # RFC 9112 6.1: a transfer coding the server does not understand is a 501;
            # forwarding the body as if it were plain would hand the service garbage.
            coding = unknown[0].decode("latin-1")
            self._reject(501, f"the transfer coding {coding!r} is not supported; only chunked is")
            raise _Rejected
        if length is not None and length.isdigit() and int(length) > self.limits.max_body:
            self._reject(
                413, f"the request body is larger than the {self.limits.max_body} byte limit"
            )
            raise _Rejected
        if expect == b"100-continue" and self.transport is not None:
            if self.task is None and not self.queue:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            else:  # RFC 9112 9.3.2: after the answers to the requests before it
                request.continue_pending = True
        self._arm(self.limits.body_timeout, self._slow_body)

    def on_body(self, body: bytes) -> None:
        request = self.current
        assert request is not None
        request.body_size += len(body)
        if request.body_size > self.limits.max_body:
            self._reject(
                413, f"the request body is larger than the {self.limits.max_body} byte limit"
            )
            raise _Rejected
        request.body.append(body)
        self._arm(self.limits.body_timeout, self._slow_body)

    def on_message_complete(self) -> None:
        request, self.current = self.current, None
        assert request is not None
        self._disarm()
        self._enqueue(request)

    # -- queueing and answering
    def _enqueue(self, request: _Request) -> None:
        self.queue.append(request)
        if len(self.queue) > 8 and self.transport is not None:
            self.transport.pause_reading()  # a pipelining client waits for us
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        try:
            while self.queue and self.transport is not None:
                request = self.queue.popleft()
                if request.reject is not None:
                    self._answer_reject(request)
                    return
                keep = await self.gateway.handle(request, self)
                if not keep or self.closing:
                    self._close()
                    return
        finally:
            self.task = None
        if self.transport is not None:
            self.transport.resume_reading()
            if self.current is None:
                self._arm(self.limits.idle_timeout, self._idle_expired)
            elif self.current.continue_pending:  # its turn has come
                self.current.continue_pending = False
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                self._arm(self.limits.body_timeout, self._slow_body)

    def _reject(self, status: int, detail: str) -> None:
        request = self.current or _Request()
        request.reject = (status, detail)
        self.current = None
        self._disarm()
        self._enqueue(request)

    def _answer_reject(self, request: _Request) -> None:
        assert request.reject is not None
        status, detail = request.reject
        request_id = _request_id(request.headers)
        self.write_problem(status, detail, request_id, close=True)
        self.gateway.access(request, request_id, status, self.peer, None, None, 0.0)
        if self.transport is not None:
            self._start_lingering()

    def write_problem(
        self,
        status: int,
        detail: str,
        request_id: bytes,
        *,
        close: bool = False,
        http_10: bool = False,
    ) -> None:
        body = problem(status, detail)
        head = [
            _status_line(status),
            b"content-type: application/problem+json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"x-request-id: %s\r\n" % request_id,
        ]
        if status in (503, 504):
            # API.md: an unavailable dependency says when to retry (the same
            # Idempotency-Key then gets the final result).
            head.append(b"retry-after: %d\r\n" % RETRY_AFTER_SECONDS)
        head.append(_connection(keep=not close, http_10=http_10))
        if self.transport is not None:
            self.transport.write(b"".join(head) + b"\r\n" + body)

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def write_body(self, chunk: bytes, chunked: bool) -> None:
        if self.transport is None:
            return
        if chunked:
            self.transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        else:
            self.transport.write(chunk)

    async def drained(self) -> None:
        if self.write_paused and self.transport is not None:
            self.writable = asyncio.get_running_loop().create_future()
            await self.writable

    # -- timers, lingering, closing
    def _arm(self, seconds: float, callback: Callable[[], None]) -> None:
        self.deadline = time.monotonic() + seconds
        self.on_deadline = callback

    def _disarm(self) -> None:
        self.deadline = None

    def expire(self, now: float) -> None:
        if self.deadline is not None and now >= self.deadline:
            self.deadline = None
            self.on_deadline()

    def _idle_expired(self) -> None:
        if self.task is None and not self.queue:
            self._close()

    def _slow_headers(self) -> None:
        self._reject(
            408, f"the request headers did not arrive within {self.limits.header_timeout}s"
        )
        self._stop_parsing()

    def _slow_body(self) -> None:
        self._reject(408, f"the request body stalled for {self.limits.body_timeout}s")
        self._stop_parsing()

    def _stop_parsing(self) -> None:
        # The parser's state is unusable after an error; what follows is discarded.
        self.closing = True
        if self.transport is not None:
            self.transport.resume_reading()

    def _start_lingering(self) -> None:
        assert self.transport is not None
        self.lingering = True
        self.linger_left = self.limits.linger_bytes
        self.linger_until = time.monotonic() + self.limits.linger_seconds
        self.transport.resume_reading()
        # Our side is done: the client sees EOF after the 413 once it reads.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._arm(self.limits.linger_idle, self._close)

    def _linger(self, size: int) -> None:
        self.linger_left -= size
        if self.linger_left <= 0 or time.monotonic() > self.linger_until:
            self._close()
        else:
            self._arm(self.limits.linger_idle, self._close)

    def _close(self) -> None:
        self._disarm()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


# --- the gateway ---------------------------------------------------------------------------


class Gateway:
    """Routes each request by the VirtualService and proxies it to its upstream."""

    def __init__(
        self, table: RoutingTable, upstreams: Mapping[str, str], limits: Limits | None = None
    ) -> None:
        self.table = table
        self.limits = limits or Limits()
        self.upstreams: dict[str, tuple[str, int]] = {}
        for name, url in upstreams.items():
            hostport = url.split("://", 1)[-1].rstrip("/")
            host, _, port = hostport.rpartition(":")
            self.upstreams[name] = (host or hostport, int(port) if port else 80)
        self.pool = _Pool(self.limits.connect_timeout)
        self.clients: set[_Client] = set()
        self.access_log = AccessLog("gateway", log)

    def address(self, dest: Destination) -> tuple[str, int] | None:
        short = dest.host.split(".", 1)[0]
        return self.upstreams.get(f"{short}:{dest.port}") or self.upstreams.get(short)

    def access(
        self,
        request: _Request,
        request_id: bytes,
        status: int,
        peer: str,
        route: Route | None,
        dest: Destination | None,
        started: float,
    ) -> None:
        self.access_log.write(
            {
                "request_id": request_id.decode(),
                "method": request.method.decode("latin-1"),
                "path": request.url.decode("latin-1").split("?", 1)[0],
                "route": route.name if route else None,
                "upstream": f"{dest.host}:{dest.port}" if dest else None,
                "status": status,
                "client": peer,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else 0,
            },
        )

    async def handle(self, request: _Request, client: _Client) -> bool:
        """Answer one request; returns whether the client connection stays open."""
        started = time.perf_counter()
        request_id = _request_id(request.headers)
        keep = request.keep_alive and not client.closing
        method = request.method.decode("latin-1")
        raw_path, _, query = bytes(request.url).partition(b"?")
        try:
            path = normalize_path(raw_path.decode("utf-8")) if raw_path[:1] == b"/" else None
        except UnicodeDecodeError:
            path = None
        route = dest = None

        def fail(status: int, detail: str) -> bool:
            client.write_problem(
                status, detail, request_id, close=not keep, http_10=request.http_10
            )
            self.access(request, request_id, status, client.peer, route, dest, started)
            return keep

        if path is None:
            return fail(400, "the path is not a valid absolute path, or it climbs above the root")
        text_headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.headers}
        resolved = self.table.resolve(method, path, text_headers)
        if resolved is None:
            return fail(404, f"no route for {method} {path}")
        route, match = resolved
        fault = route.fault
        if fault:
            if fault.delay and random.uniform(0, 100) < fault.delay_percent:
                await asyncio.sleep(fault.delay)
            if fault.abort_status and random.uniform(0, 100) < fault.abort_percent:
                return fail(fault.abort_status, "fault injected by the route")
        dest = route.pick_destination()
        address = self.address(dest)
        if address is None:
            return fail(503, f"no upstream is configured for {dest.host}:{dest.port}")

        target = route.rewritten(path, match).encode("utf-8")
        if query:
            target += b"?" + query
        body = b"".join(request.body)
        prior = b""
        lines = [b"%s %s HTTP/1.1\r\n" % (request.method, target)]
        for name, value in request.headers:
            if name in HOP_BY_HOP or name in FORWARDED:
                continue
            if name == b"x-forwarded-for":
                prior = value
                continue
            lines.append(b"%s: %s\r\n" % (name, value))
        host_header = next((v for k, v in request.headers if k == b"host"), b"")
        peer = client.peer.encode()
        lines.append(
            b"host: %s:%d\r\nx-request-id: %s\r\nx-forwarded-for: %s\r\n"
            b"x-forwarded-proto: http\r\nx-forwarded-host: %s\r\n"
            % (
                address[0].encode(),
                address[1],
                request_id,
                prior + b", " + peer if prior else peer,
                host_header,
            )
        )
        # A request without a body (a GET, as clients send it) goes on without
        # framing, as Envoy forwards it: "Content-Length: 0" on a GET makes
        # Sanic log "body not consumed" as an error for every such request.
        if body or request.framed:
            lines.append(b"content-length: %d\r\n" % len(body))
        lines.append(b"\r\n")
        outgoing = b"".join(lines) + body

        try:
            upstream, status, reason, headers = await self._exchange(
                route, address, outgoing, request.method == b"HEAD"
            )
        except TimeoutError:
            return fail(504, f"the upstream {dest.host} did not answer in time")
        except UpstreamFailure as exc:
            if exc.reason == CONNECT_FAILURE:
                return fail(503, f"the upstream {dest.host} is unreachable")
            # Envoy's "upstream connect error or disconnect/reset before headers" is
            # a 503 too, and API.md knows no 502.
            return fail(503, f"the upstream {dest.host} closed the connection")
        except _RetryableStatus as exc:
            return fail(exc.status, f"the upstream {dest.host} failed")
        except ConnectionError as exc:
            return fail(503, f"the upstream {dest.host} failed: {exc}")

        keep = await self._relay(
            client, upstream, status, reason, headers, request, request_id, keep
        )
        self.access(request, request_id, status, client.peer, route, dest, started)
        return keep

    async def _exchange(
        self, route: Route, address: tuple[str, int], outgoing: bytes, head_only: bool
    ) -> tuple[_Upstream, int, bytes, list[tuple[bytes, bytes]]]:
        """Send with the route's retries and timeouts; returns the upstream and its head."""
        retries = route.retries
        attempts = 1 + (retries.attempts if retries else 0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + route.timeout if route.timeout else None
        per_try = retries.per_try_timeout if retries else None
        last: Exception | None = None
        for attempt in range(attempts):
            budget = per_try
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError
                budget = left if budget is None else min(budget, left)
            try:
                return await self._try(address, outgoing, head_only, budget, retries, attempt)
            except (UpstreamFailure, _RetryableStatus, TimeoutError) as exc:
                last = exc
                if isinstance(exc, TimeoutError):
                    if deadline is not None and loop.time() >= deadline:
                        raise
                    # a per-try timeout: Envoy retries it like a 5xx
                elif retries is None or not retries.retryable(
                    exc.reason if isinstance(exc, UpstreamFailure) else exc.status
                ):
                    raise
            if attempt < attempts - 1:
                await asyncio.sleep(min(0.025 * 2**attempt, 0.25))
        assert last is not None
        raise last

    async def _try(
        self,
        address: tuple[str, int],
        outgoing: bytes,
        head_only: bool,
        budget: float | None,
        retries: Retries | None,
        attempt: int,
    ) -> tuple[_Upstream, int, bytes, list[tuple[bytes, bytes]]]:
        for _ in range(2):  # a second go only when a reused connection had gone stale
            upstream, reused = await self.pool.acquire(address)
            upstream.send(outgoing, head_only)
            assert upstream.head is not None
            timer = _deadline(upstream.head, budget)
            try:
                status, reason, headers = await upstream.head
            except UpstreamFailure as exc:
                if reused and not upstream.got_bytes:
                    continue
                raise UpstreamFailure("reset") from exc
            except TimeoutError:
                upstream.abort()
                raise
            finally:
                if timer is not None:
                    timer.cancel()
            if retries is not None and attempt < retries.attempts and retries.retryable(status):
                upstream.abort()
                raise _RetryableStatus(status)
            return upstream, status, reason, headers
        raise UpstreamFailure("reset")

    async def _relay(
        self,
        client: _Client,
        upstream: _Upstream,
        status: int,
        reason: bytes,
        headers: list[tuple[bytes, bytes]],
        request: _Request,
        request_id: bytes,
        keep: bool,
    ) -> bool:
        """Write the upstream's answer to the client; returns whether to keep the client."""
        drop = set(HOP_BY_HOP) - {b"content-length"}
        for name, value in headers:
            if name.lower() == b"connection":  # and whatever it names (RFC 9110 7.6.1)
                drop.update(t.strip().lower() for t in value.split(b","))
        has_length = False
        out = [_status_line(status, reason)]
        for name, value in headers:
            lower = name.lower()
            if lower in drop or lower == _REQUEST_ID:
                continue
            if lower == b"content-length":
                if upstream.chunked:
                    continue  # RFC 9112 6.3: chunked wins over a length
                has_length = True
            out.append(b"%s: %s\r\n" % (name, value))
        bodyless = request.method == b"HEAD" or status in (204, 304) or 100 <= status < 200
        rechunk = not bodyless and not has_length
        if rechunk and request.http_10:
            keep = False  # an HTTP/1.0 client reads to EOF
            upstream.chunked = False
        elif rechunk:
            out.append(b"transfer-encoding: chunked\r\n")
            upstream.chunked = True
        out.append(b"x-request-id: %s\r\n" % request_id)
        out.append(_connection(keep=keep, http_10=request.http_10))
        client.upstream = upstream
        upstream.attach(client, b"".join(out) + b"\r\n")
        try:
            assert upstream.done is not None
            await upstream.done
        except ConnectionError:
            client.upstream = None
            return False  # the answer is cut short: only closing tells the client
        client.upstream = None
        if rechunk and upstream.chunked:
            client.write(b"0\r\n\r\n")
        upstream.release()
        await client.drained()
        return keep

    async def sweep(self, every: float = 0.25) -> None:
        """Apply the clients' idle, header, body and linger deadlines."""
        while True:
            await asyncio.sleep(every)
            now = time.monotonic()
            for client in list(self.clients):
                client.expire(now)

    def close(self) -> None:
        self.pool.close()


async def serve(
    gateway: Gateway, host: str, port: int, *, ready: Callable[[], None] | None = None
) -> None:
    """Serve until SIGTERM or SIGINT; in-flight answers get a short grace period."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Client(gateway), host, port, backlog=1024, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sweeper = loop.create_task(gateway.sweep())
    log.info("gateway listening", extra={"host": host, "port": port})
    freeze_startup_heap()
    if ready is not None:
        ready()
    try:
        await stop.wait()
    finally:
        server.close()
        sweeper.cancel()
        in_flight = [c.task for c in gateway.clients if c.task is not None]
        if in_flight:
            await asyncio.wait(in_flight, timeout=5)
        for client in list(gateway.clients):
            client._close()
        gateway.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 1)


def run(
    table: RoutingTable, upstreams: Mapping[str, str], host: str, port: int, limits: Limits
) -> None:
    """The ``shopctl gateway`` process: JSON logs, uvloop, one event loop."""
    import uvloop

    configure_logging("gateway", "INFO")
    uvloop.run(serve(Gateway(table, upstreams, limits), host, port))
