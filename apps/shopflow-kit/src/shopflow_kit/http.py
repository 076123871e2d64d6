"""HTTP helpers shared by the services: lists, pages, caching and the client's address."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from ipaddress import ip_address
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from sanic import HTTPResponse, Request

MAX_PAGE_SIZE = 100


class PageQuery(BaseModel):
    """``page`` from 1, ``page_size`` 1-100 (default 20); unknown parameters are refused."""

    model_config = ConfigDict(extra="forbid")
    page: int = Field(1, ge=1, le=1_000_000)
    page_size: int = Field(20, ge=1, le=MAX_PAGE_SIZE)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


def page_body(items: Sequence[Any], total: int, query: PageQuery) -> dict[str, Any]:
    return {"items": list(items), "total": total, "page": query.page, "page_size": query.page_size}


def dumps(body: Any) -> bytes:
    """Compact JSON; orjson, because list pages are the services' hottest responses."""
    return orjson.dumps(body, default=str)


class ReadResponse(HTTPResponse):
    """Sanic's response, which strips CR, LF and NUL from its headers more cheaply.

    Sanic does it with ``str.translate`` and a table, one dictionary lookup per
    character of every header name and value: 5% of a catalog search's CPU
    (py-spy). Three substring tests find that there is nothing to strip, which
    is always so for the headers of a read (a hash, fixed text, the request id).
    """

    __slots__ = ()

    @staticmethod
    def _sanitize_header_value(value: str) -> str:
        if "\r" in value or "\n" in value or "\0" in value:
            return HTTPResponse._sanitize_header_value(value)
        return value


def cached_json(request: Request, body: Any, *, max_age: int = 5) -> HTTPResponse:
    """JSON with a strong ETag and short public caching; answers 304 on a matching If-None-Match."""
    payload = dumps(body)
    etag = f'"{hashlib.sha256(payload).hexdigest()[:32]}"'
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}"}
    wanted = request.headers.get("if-none-match")
    if wanted is not None:
        tags = {t.strip().removeprefix("W/") for t in wanted.split(",")}
        if etag in tags or "*" in tags:
            return ReadResponse(status=304, headers=headers)
    return ReadResponse(payload, headers=headers, content_type="application/json")


def client_address(request: Request) -> str:
    """The caller's address, as the platform's trusted proxy saw it.

    ``X-Forwarded-For`` is read only when the connection comes from a trusted
    proxy (``trusted_proxies``), and then only the entry ``trusted_proxy_hops``
    from the right: the one that proxy appended. Entries to its left were
    written by the caller and are ignored. Anything else means the caller
    reached the service directly, and its socket address is the answer.
    """
    settings = request.app.ctx.settings
    peer: str = request.ip
    hops: int = settings.trusted_proxy_hops
    try:
        trusted = hops > 0 and any(ip_address(peer) in net for net in settings.trusted_proxies)
    except ValueError:  # not an IP (a unix socket)
        trusted = False
    if not trusted:
        return peer
    entries = [e.strip() for e in request.headers.get("x-forwarded-for", "").split(",")]
    entries = [e for e in entries if e]
    if len(entries) < hops:
        return peer  # reached the trusted proxy without passing the outer ones
    entry = entries[-hops]
    try:
        if "%" in entry:  # an IPv6 zone is free text; no proxy sends one
            raise ValueError(entry)
        return str(ip_address(entry))
    except ValueError:
        return peer  # a proxy we trust never writes this; do not store it
