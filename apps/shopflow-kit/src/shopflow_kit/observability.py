"""Request ids, JSON access logs, Prometheus metrics, health and readiness."""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import random
import re
import sys
import threading
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sanic import HTTPResponse, Request, Sanic, raw
from sanic import json as json_response
from sanic.response import BaseHTTPResponse
from tortoise import connections

from shopflow_kit.errors import problem_response
from shopflow_kit.redaction import redact, scrub_card_numbers

REQUEST_ID = "x-request-id"
# A caller's id is kept only if it is short and plain, so logs cannot be forged.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

access_log = logging.getLogger("shopflow.access")
#: The request being handled, so that every line logged while handling it carries its id.
current_request_id: ContextVar[str | None] = ContextVar("shopflow_request_id", default=None)

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra=`` fields become keys."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        entry.setdefault("request_id", current_request_id.get())
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        # Card data never reaches a log: card fields by name, card numbers by shape
        # (again after serialisation, for values only ``default=str`` turns into text).
        return scrub_card_numbers(json.dumps(redact(entry), default=str))


class _PendingLines:
    """Access lines waiting for the end of the event loop's turn, written with one call.

    ``PYTHONUNBUFFERED=1`` (the images set it, so that a crash loses no log
    line) makes every write to stdout a system call. Access lines are instead
    collected here and written together once per turn of the event loop:
    under load one ``write`` then carries the lines of every request answered
    in that turn (py-spy put a write per line at 16% of a ``/health``
    request's CPU), and with one request at a time it is the same single write
    as before. Every other log line goes through :class:`OrderedStreamHandler`,
    which writes the pending lines first, so lines keep their order. A
    ``kill -9`` can lose at most the lines of the turn it interrupts (Envoy's
    access log, by comparison, flushes once a second).
    """

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        if not self.lines:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # outside the event loop: nothing batches, write it now
                self.lines.append(line)
                self.flush()
                return
        self.lines.append(line)

    def flush(self) -> None:
        # Swapped, not cleared after the join: a line another thread logs
        # meanwhile lands in one list or the other, never in neither. And the
        # lines are gone before the write, so a failing stdout cannot loop back
        # here through the error it logs.
        lines, self.lines = self.lines, []
        if lines:
            sys.stdout.write("".join(lines))
            sys.stdout.flush()


_pending = _PendingLines()
atexit.register(_pending.flush)  # a loop stopped with lines still pending


class OrderedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """stdout's handler: writes any pending access lines before its own record."""

    def emit(self, record: logging.LogRecord) -> None:
        _pending.flush()
        super().emit(record)


class AccessLog:
    """Per-request lines in :class:`JsonFormatter`'s shape, without logging's per-record cost.

    An access line is written on every request, so it skips the LogRecord,
    handler lock and stdlib ``json`` of the logging path, encodes with orjson,
    formats the date and time once a second, and masks card numbers in the one
    field a client writes (the path) instead of the whole line. It still
    honours the logger's level, so ``LOG_LEVEL=WARNING`` silences it, and it
    writes to the same stdout as every other line, in order, once per turn of
    the event loop (:class:`_PendingLines`).
    """

    def __init__(self, service: str, logger: logging.Logger) -> None:
        self.service = service
        self.logger = logger
        self._second = -1
        self._stamp = ""

    def _timestamp(self, now: float) -> str:
        # The text of ``datetime.isoformat(timespec="milliseconds")``.
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._stamp}.{int((now - second) * 1000):03d}+00:00"

    def write(self, fields: dict[str, Any]) -> None:
        if self.logger.disabled or not self.logger.isEnabledFor(logging.INFO):
            return
        entry: dict[str, Any] = {
            "ts": self._timestamp(time.time()),
            "level": "info",
            "service": self.service,
            "logger": self.logger.name,
            "msg": "request",
        }
        entry.update(fields)
        # A card number in the path is masked like anywhere else. (A request id
        # never holds one: see accepted_request_id.)
        path = entry.get("path")
        if isinstance(path, str):
            entry["path"] = scrub_card_numbers(path)
        _pending.add(orjson.dumps(entry, default=str).decode() + "\n")


def new_request_id() -> str:
    """A random id in UUID form, as Envoy generates ``x-request-id``.

    The UUID form matters: the card-number scrubber skips UUIDs whole, while a
    plain 32-digit hex id can hold a run of 12 decimal digits that passes the
    Luhn check. A request id correlates log lines and guards nothing, so it
    comes from the ``random`` module (seeded from the OS in each process)
    rather than a system call per request for ``os.urandom``.
    """
    h = f"{random.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def accepted_request_id(incoming: str) -> str:
    """The caller's request id if it is short, plain and holds no card number; else a new one.

    Plain, so logs cannot be forged; no card number, so the id can be logged
    and echoed as it is.
    """
    if _SAFE_REQUEST_ID.match(incoming) and scrub_card_numbers(incoming) == incoming:
        return incoming
    return new_request_id()


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    logging.getLogger("shopflow").critical("uncaught exception", exc_info=(kind, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is not None:
        _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback)


def configure_logging(service: str, level: str) -> None:
    # `python -m sanic` loads tracerite, which prints multi-line coloured
    # tracebacks from every StreamHandler and from sys.excepthook. Logs are
    # JSON lines, with the traceback in the "exc" field.
    try:
        import tracerite
    except ImportError:  # pragma: no cover - Sanic depends on it
        pass
    else:
        tracerite.unload()
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
    logging.captureWarnings(True)
    handler = OrderedStreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Sanic's own access log duplicates ours in a non-JSON format.
    for name in ("sanic.access", "sanic.root", "sanic.error", "sanic.server"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("sanic.access").disabled = True
    # httpx logs every call it makes at INFO; the callee's access line already
    # records it under the same request id. Kept at DEBUG.
    if root.level > logging.DEBUG:
        logging.getLogger("httpx").setLevel(logging.WARNING)


class Metrics:
    """Per-app registry so several apps can live in one test process."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "shopflow_http_requests_total",
            "HTTP requests served",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "shopflow_http_request_duration_seconds",
            "HTTP request latency",
            ["service", "method", "route"],
            registry=self.registry,
        )
        self.service = service

        # Labelled children, looked up once: ``labels()`` takes a lock and
        # builds a key on every call.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(self.service, method, route, str(status)),
                self.latency.labels(self.service, method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


def route_template(request: Request) -> str:
    """The matched route's template (``/products/<id>``), never the raw path."""
    route = request.route
    if route is None:
        return "unmatched"
    return "/" + route.path.lstrip("/")


class RequestObserver:
    """Request ids, the access line and the metrics of every request.

    The kit's request class (:class:`shopflow_kit.server.KitRequest`) calls
    :meth:`start` when a request's head has been read and :meth:`finish` with
    its response, so they frame every handler, error and 404. They are not
    Sanic middleware, which Sanic runs with two signal dispatches around each
    call (py-spy put those at a few percent of a ``/health`` request).
    """

    def __init__(self, service: str) -> None:
        self.metrics = Metrics(service)
        self.access = AccessLog(service, access_log)

    def start(self, request: Request) -> None:
        request.ctx.request_id = accepted_request_id(request.headers.get(REQUEST_ID, ""))
        current_request_id.set(request.ctx.request_id)
        request.ctx.started = time.perf_counter()

    def finish(self, request: Request, response: BaseHTTPResponse) -> None:
        request_id = getattr(request.ctx, "request_id", None) or new_request_id()
        response.headers[REQUEST_ID] = request_id
        started = getattr(request.ctx, "started", None)
        elapsed = time.perf_counter() - started if started else 0.0
        route = route_template(request)
        if route != "/metrics":
            self.metrics.observe(request.method, route, response.status, elapsed)
        self.access.write(
            {
                "request_id": request_id,
                "method": request.method,
                "path": request.path,
                "route": route,
                "status": response.status,
                "duration_ms": round(elapsed * 1000, 2),
            }
        )
        current_request_id.set(None)  # the connection's next request gets its own


def install(app: Sanic[Any, Any], service: str, public_prefix: str) -> None:
    observer = RequestObserver(service)
    app.ctx.observer = observer
    app.ctx.metrics = metrics = observer.metrics

    async def health(request: Request) -> HTTPResponse:
        return json_response({"status": "ok", "service": service})

    async def ready(request: Request) -> HTTPResponse:
        try:
            conn = connections.get("default")
            await asyncio.wait_for(conn.execute_query("SELECT 1"), timeout=2)
        except Exception as exc:  # any failure means "not ready", never a 500
            return problem_response(503, f"database unavailable: {type(exc).__name__}")
        return json_response({"status": "ready", "service": service})

    async def metrics_endpoint(request: Request) -> HTTPResponse:
        return raw(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST)

    app.add_route(health, "/health", methods=["GET"], name="health")
    app.add_route(ready, "/ready", methods=["GET"], name="ready")
    app.add_route(metrics_endpoint, "/metrics", methods=["GET"], name="metrics")
    # Through the gateway only the service's prefix is routed, so health is
    # also served there (``GET /auth/health``).
    app.add_route(health, f"{public_prefix}/health", methods=["GET"], name="prefixed_health")
    app.add_route(ready, f"{public_prefix}/ready", methods=["GET"], name="prefixed_ready")
