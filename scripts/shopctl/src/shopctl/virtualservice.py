"""The VirtualService model: Istio's HTTPRoute subset that the local gateway implements.

Pure code, no I/O: it parses a VirtualService into a :class:`RoutingTable` and
answers routing questions (which route, which destination, which rewritten
path, whether a failed try may be retried). The proxy in ``shopctl.gateway``
does the networking.

Semantics follow Istio: routes are tried in order and the first match wins;
match blocks are OR-ed, the conditions inside one block AND-ed. Any field it
does not implement stops it at start-up, naming the field, so the local
gateway can never silently route differently from the cluster.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
SUPPORTED_RETRY_ON = {"5xx", "connect-failure", "gateway-error"}
#: Why a try failed: the upstream could not be reached, or it answered this status.
CONNECT_FAILURE = "connect-failure"


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

    def retryable(self, failure: str | int) -> bool:
        """The one retry predicate: may a try that failed this way be retried?

        ``failure`` is the upstream's HTTP status, or a connection-level failure
        (:data:`CONNECT_FAILURE`, or ``reset`` when the upstream went away before
        answering). As in Envoy, ``5xx`` covers every 5xx and connection-level
        failures; ``gateway-error`` covers 502, 503, 504 and connection-level
        failures; ``connect-failure`` covers refused or timed-out connects.
        """
        if isinstance(failure, str):
            if failure == CONNECT_FAILURE and "connect-failure" in self.retry_on:
                return True
            return bool(self.retry_on & {"5xx", "gateway-error"})
        if "5xx" in self.retry_on and 500 <= failure <= 599:
            return True
        return "gateway-error" in self.retry_on and failure in (502, 503, 504)


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
