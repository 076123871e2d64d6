"""The local gateway: routes by the mesh chart's Istio VirtualService.

It implements the subset of Istio's HTTPRoute that the repo's VirtualServices
use, with Istio's semantics: routes are tried in order and the first match
wins; match blocks are OR-ed, the conditions inside one block AND-ed. Any field
it does not implement stops it at start-up, naming the field, so the local
gateway can never silently route differently from the cluster.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from sanic import HTTPResponse, Request, Sanic
from sanic.compat import Header
from shopflow_kit.errors import ProblemErrorHandler, problem_response
from shopflow_kit.observability import REQUEST_ID, configure_logging

log = logging.getLogger("shopflow.gateway")

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
RETRY_BODY_LIMIT = 1024 * 1024  # like Envoy, retries need a buffered request body
# API.md: a body over 1 MiB gets 413. Enforced at the edge too, because an
# upstream that rejects a body mid-upload resets the connection and the proxy
# could only answer 502.
MAX_BODY_BYTES = 1024 * 1024
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
SUPPORTED_RETRY_ON = {"5xx", "connect-failure", "gateway-error"}


class GatewayConfigError(ValueError):
    """A VirtualService uses something the local gateway does not implement."""


# --- parsing ---------------------------------------------------------------


def _only(obj: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise GatewayConfigError(
            f"{where}.{unknown[0]} is not implemented by the local gateway "
            f"(it implements: {', '.join(sorted(allowed))})"
        )


def parse_duration(value: Any, where: str) -> float:
    match = _DURATION.match(str(value))
    if not match:
        raise GatewayConfigError(f"{where}: {value!r} is not a duration such as 500ms or 3s")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class StringMatch:
    kind: str  # exact | prefix | regex
    value: str
    pattern: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, obj: Any, where: str) -> StringMatch:
        if not isinstance(obj, dict) or len(obj) != 1:
            raise GatewayConfigError(f"{where}: needs exactly one of exact, prefix, regex")
        _only(obj, {"exact", "prefix", "regex"}, where)
        kind, value = next(iter(obj.items()))
        pattern = None
        if kind == "regex":
            try:
                pattern = re.compile(str(value))
            except re.error as exc:
                raise GatewayConfigError(f"{where}.regex: {exc}") from None
        return cls(kind, str(value), pattern)

    def matches(self, text: str | None) -> bool:
        if text is None:
            return False
        if self.kind == "exact":
            return text == self.value
        if self.kind == "prefix":
            return text.startswith(self.value)
        assert self.pattern is not None
        return self.pattern.fullmatch(text) is not None  # Istio regexes are RE2, anchored


@dataclass(frozen=True)
class Match:
    uri: StringMatch | None = None
    method: StringMatch | None = None
    headers: tuple[tuple[str, StringMatch], ...] = ()

    @classmethod
    def parse(cls, obj: Any, where: str) -> Match:
        if not isinstance(obj, dict):
            raise GatewayConfigError(f"{where}: must be a mapping")
        _only(obj, {"name", "uri", "method", "headers"}, where)
        headers = tuple(
            (name.lower(), StringMatch.parse(cond, f"{where}.headers.{name}"))
            for name, cond in (obj.get("headers") or {}).items()
        )
        return cls(
            uri=StringMatch.parse(obj["uri"], f"{where}.uri") if "uri" in obj else None,
            method=StringMatch.parse(obj["method"], f"{where}.method") if "method" in obj else None,
            headers=headers,
        )

    def matches(self, method: str, path: str, headers: Mapping[str, str]) -> bool:
        if self.uri and not self.uri.matches(path):
            return False
        if self.method and not self.method.matches(method):
            return False
        return all(cond.matches(headers.get(name)) for name, cond in self.headers)


@dataclass(frozen=True)
class Destination:
    host: str
    port: int
    weight: int


@dataclass(frozen=True)
class Retries:
    attempts: int
    per_try_timeout: float | None
    retry_on: frozenset[str]


@dataclass(frozen=True)
class Fault:
    delay: float | None = None
    delay_percent: float = 100.0
    abort_status: int | None = None
    abort_percent: float = 100.0


def _percentage(obj: Mapping[str, Any], where: str) -> float:
    if "percentage" not in obj:
        return 100.0
    pct = obj["percentage"]
    _only(pct, {"value"}, f"{where}.percentage")
    return float(pct.get("value", 0))


@dataclass(frozen=True)
class Route:
    name: str
    matches: tuple[Match, ...]
    destinations: tuple[Destination, ...]
    rewrite_uri: str | None = None
    timeout: float | None = None
    retries: Retries | None = None
    fault: Fault | None = None

    @classmethod
    def parse(cls, obj: Any, where: str) -> Route:
        _only(obj, {"name", "match", "route", "rewrite", "timeout", "retries", "fault"}, where)
        matches = tuple(
            Match.parse(m, f"{where}.match[{i}]") for i, m in enumerate(obj.get("match") or [])
        )
        destinations = []
        routes = obj.get("route") or []
        if not routes:
            raise GatewayConfigError(f"{where}.route: at least one destination is required")
        for i, dest in enumerate(routes):
            here = f"{where}.route[{i}]"
            _only(dest, {"destination", "weight"}, here)
            target = dest.get("destination") or {}
            _only(target, {"host", "port"}, f"{here}.destination")
            port = (target.get("port") or {}).get("number")
            if "host" not in target or not isinstance(port, int):
                raise GatewayConfigError(f"{here}.destination: host and port.number are required")
            weight = dest.get("weight", 100 if len(routes) == 1 else 0)
            destinations.append(Destination(str(target["host"]), port, int(weight)))
        if len(destinations) > 1 and sum(d.weight for d in destinations) <= 0:
            raise GatewayConfigError(f"{where}.route: weights must add up to more than 0")
        rewrite = obj.get("rewrite")
        if rewrite is not None:
            _only(rewrite, {"uri"}, f"{where}.rewrite")
        retries = None
        if "retries" in obj:
            spec = obj["retries"]
            _only(spec, {"attempts", "perTryTimeout", "retryOn"}, f"{where}.retries")
            retry_on = frozenset(
                c.strip() for c in str(spec.get("retryOn", "5xx,connect-failure")).split(",")
            )
            unsupported = sorted(retry_on - SUPPORTED_RETRY_ON)
            if unsupported:
                raise GatewayConfigError(
                    f"{where}.retries.retryOn: {unsupported[0]} is not implemented by the "
                    f"local gateway (it implements: {', '.join(sorted(SUPPORTED_RETRY_ON))})"
                )
            per_try = spec.get("perTryTimeout")
            retries = Retries(
                attempts=int(spec.get("attempts", 0)),
                per_try_timeout=(
                    parse_duration(per_try, f"{where}.retries.perTryTimeout") if per_try else None
                ),
                retry_on=retry_on,
            )
        fault = None
        if "fault" in obj:
            spec = obj["fault"]
            _only(spec, {"delay", "abort"}, f"{where}.fault")
            delay, abort = spec.get("delay"), spec.get("abort")
            if delay is not None:
                _only(delay, {"fixedDelay", "percentage"}, f"{where}.fault.delay")
            if abort is not None:
                _only(abort, {"httpStatus", "percentage"}, f"{where}.fault.abort")
            fault = Fault(
                delay=parse_duration(delay["fixedDelay"], f"{where}.fault.delay.fixedDelay")
                if delay
                else None,
                delay_percent=_percentage(delay, f"{where}.fault.delay") if delay else 0.0,
                abort_status=int(abort["httpStatus"]) if abort else None,
                abort_percent=_percentage(abort, f"{where}.fault.abort") if abort else 0.0,
            )
        return cls(
            name=str(obj.get("name", where)),
            matches=matches,
            destinations=tuple(destinations),
            rewrite_uri=rewrite.get("uri") if rewrite else None,
            timeout=parse_duration(obj["timeout"], f"{where}.timeout")
            if "timeout" in obj
            else None,
            retries=retries,
            fault=fault,
        )

    def first_match(self, method: str, path: str, headers: Mapping[str, str]) -> Match | None:
        if not self.matches:
            return Match()
        for match in self.matches:
            if match.matches(method, path, headers):
                return match
        return None

    def pick_destination(self) -> Destination:
        if len(self.destinations) == 1:
            return self.destinations[0]
        weights = [d.weight for d in self.destinations]
        return random.choices(self.destinations, weights=weights)[0]

    def rewritten(self, path: str, match: Match) -> str:
        if self.rewrite_uri is None:
            return path
        if match.uri is not None and match.uri.kind == "prefix":
            return self.rewrite_uri + path[len(match.uri.value) :]
        return self.rewrite_uri


@dataclass
class RoutingTable:
    routes: list[Route] = field(default_factory=list)

    @classmethod
    def from_virtual_service(cls, vs: Mapping[str, Any]) -> RoutingTable:
        name = (vs.get("metadata") or {}).get("name", "virtualservice")
        spec = vs.get("spec") or {}
        where = f"VirtualService {name}: spec"
        _only(spec, {"hosts", "gateways", "http"}, where)
        return cls(
            [Route.parse(r, f"{where}.http[{i}]") for i, r in enumerate(spec.get("http") or [])]
        )

    def resolve(
        self, method: str, path: str, headers: Mapping[str, str]
    ) -> tuple[Route, Match] | None:
        for route in self.routes:
            match = route.first_match(method, path, headers)
            if match is not None:
                return route, match
        return None


def normalize_path(raw: str) -> str | None:
    """RFC 3986 dot-segment removal, as Istio's default path normalisation does.

    Returns ``None`` for a path that tries to climb above the root.
    """
    segments: list[str] = []
    parts = raw.split("/")
    for i, part in enumerate(parts[1:], start=1):
        if part == "..":
            if not segments:
                return None
            segments.pop()
            if i == len(parts) - 1:
                segments.append("")
        elif part == ".":
            if i == len(parts) - 1:
                segments.append("")
        else:
            segments.append(part)
    return "/" + "/".join(segments)


# --- serving ----------------------------------------------------------------


class UpstreamFailure(Exception):
    """A try failed in a way ``retryOn`` may retry: a refused connection or a 5xx."""


def create_gateway_app(
    table: RoutingTable,
    upstreams: Mapping[str, str],
    *,
    name: str = "shopflow_gateway",
    max_body: int = MAX_BODY_BYTES,
) -> Sanic[Any, Any]:
    """``upstreams`` maps a destination's short host name (``user-auth``) to a base URL."""
    configure_logging("gateway", "INFO")
    app = Sanic(name, configure_logging=False, error_handler=ProblemErrorHandler())
    app.config.REQUEST_MAX_SIZE = max_body
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.RESPONSE_TIMEOUT = 3600

    @app.before_server_start
    async def open_client(app: Sanic[Any, Any]) -> None:
        app.ctx.client = httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=5.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    @app.after_server_stop
    async def close_client(app: Sanic[Any, Any]) -> None:
        await app.ctx.client.aclose()

    def upstream_base(dest: Destination) -> str | None:
        short = dest.host.split(".", 1)[0]
        return upstreams.get(f"{short}:{dest.port}") or upstreams.get(short)

    async def proxy(request: Request, path: str = "") -> HTTPResponse | None:
        started = time.perf_counter()
        incoming = request.headers.get(REQUEST_ID, "")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        common = {REQUEST_ID: request_id}

        def fail(status: int, detail: str, **extra: str) -> HTTPResponse:
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": request.method,
                    "path": request.path,
                    "status": status,
                    "upstream": None,
                },
            )
            return problem_response(status, detail, headers={**common, **extra})

        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_body:
            return fail(413, f"the request body is larger than the {max_body} byte limit")
        normalized = normalize_path(request.path)
        if normalized is None:
            return fail(400, "the path climbs above the root")
        path = normalized
        headers = {k.lower(): v for k, v in request.headers.items()}
        resolved = table.resolve(request.method, path, headers)
        if resolved is None:
            return fail(404, f"no route for {request.method} {path}")
        route, match = resolved

        if route.fault:
            if route.fault.delay and random.uniform(0, 100) < route.fault.delay_percent:
                await asyncio.sleep(route.fault.delay)
            if route.fault.abort_status and random.uniform(0, 100) < route.fault.abort_percent:
                return fail(route.fault.abort_status, "fault injected by the route")

        dest = route.pick_destination()
        base = upstream_base(dest)
        if base is None:
            return fail(503, f"no upstream is configured for {dest.host}:{dest.port}")
        target = base.rstrip("/") + route.rewritten(path, match)
        if request.query_string:
            target += "?" + request.query_string

        forward = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        forward[REQUEST_ID] = request_id
        client_ip = request.remote_addr or request.ip
        prior = request.headers.get("x-forwarded-for")
        forward["x-forwarded-for"] = f"{prior}, {client_ip}" if prior else client_ip
        forward["x-forwarded-proto"] = request.scheme
        forward["x-forwarded-host"] = request.headers.get("host", "")

        retries = route.retries
        attempts = 1 + (retries.attempts if retries else 0)
        body: bytes | None = None
        if retries and retries.attempts:
            body = await _read_limited(request, RETRY_BODY_LIMIT)
            if body is None:
                attempts = 1  # too large to replay: stream it once, as Envoy does
        client: httpx.AsyncClient = request.app.ctx.client

        async def one_try() -> httpx.Response:
            content: bytes | AsyncIterator[bytes] = body if body is not None else _stream(request)
            upstream_request = client.build_request(
                request.method, target, headers=forward, content=content
            )
            try:
                response = await client.send(upstream_request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                raise UpstreamFailure("connect-failure") from exc
            if response.status_code >= 500 and retries:
                retryable = "5xx" in retries.retry_on or (
                    "gateway-error" in retries.retry_on and response.status_code in (502, 503, 504)
                )
                if retryable:
                    await response.aclose()
                    raise UpstreamFailure(str(response.status_code))
            return response

        async def with_retries() -> httpx.Response:
            last: UpstreamFailure | None = None
            for attempt in range(attempts):
                try:
                    if retries and retries.per_try_timeout:
                        return await asyncio.wait_for(one_try(), retries.per_try_timeout)
                    return await one_try()
                except UpstreamFailure as exc:
                    last = exc
                    condition = "connect-failure" if str(exc) == "connect-failure" else "5xx"
                    can_retry = retries is not None and (
                        condition in retries.retry_on
                        or (condition == "5xx" and "gateway-error" in retries.retry_on)
                    )
                    if not can_retry or attempt == attempts - 1:
                        break
                except TimeoutError:
                    if attempt == attempts - 1:
                        raise
                await asyncio.sleep(min(0.025 * 2**attempt, 0.25))
            assert last is not None
            raise last

        try:
            if route.timeout:
                upstream = await asyncio.wait_for(with_retries(), route.timeout)
            else:
                upstream = await with_retries()
        except TimeoutError:
            return fail(504, f"the upstream {dest.host} did not answer in time")
        except UpstreamFailure as exc:
            if str(exc) == "connect-failure":
                return fail(503, f"the upstream {dest.host} is unreachable")
            return fail(int(str(exc)), f"the upstream {dest.host} failed")
        except httpx.HTTPError as exc:
            return fail(502, f"the upstream {dest.host} failed: {type(exc).__name__}")

        out_headers = [
            (k, v) for k, v in upstream.headers.multi_items() if k.lower() not in HOP_BY_HOP
        ]
        out_headers = [(k, v) for k, v in out_headers if k.lower() != REQUEST_ID]
        out_headers.append((REQUEST_ID, request_id))
        response = await request.respond(status=upstream.status_code, headers=Header(out_headers))
        try:
            async for chunk in upstream.aiter_raw():
                await response.send(chunk)
        finally:
            await upstream.aclose()
        await response.eof()
        log.info(
            "request",
            extra={
                "request_id": request_id,
                "method": request.method,
                "path": request.path,
                "route": route.name,
                "upstream": f"{dest.host}:{dest.port}",
                "status": upstream.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
        return None

    app.add_route(proxy, "/", methods=METHODS, stream=True, name="root")
    app.add_route(proxy, "/<path:path>", methods=METHODS, stream=True, name="proxy")
    return app


async def _stream(request: Request) -> AsyncIterator[bytes]:
    stream: Any = request.stream  # Sanic's HTTP/1 stream; typed as a bare protocol
    if stream is None:
        return
    while True:
        chunk = await stream.read()
        if chunk is None:
            break
        yield chunk


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """Buffer the body for retries; ``None`` (and the body left unread) if over ``limit``."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        return None
    if length is None and request.headers.get("transfer-encoding"):
        return None
    chunks = [chunk async for chunk in _stream(request)]
    return b"".join(chunks)
