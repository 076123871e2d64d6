"""Response helpers shared by the services: lists, pages and HTTP caching."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from sanic import HTTPResponse, Request, raw

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


def cached_json(request: Request, body: Any, *, max_age: int = 5) -> HTTPResponse:
    """JSON with a strong ETag and short public caching; answers 304 on a matching If-None-Match."""
    payload = dumps(body)
    etag = f'"{hashlib.sha256(payload).hexdigest()[:32]}"'
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}"}
    wanted = request.headers.get("if-none-match")
    if wanted is not None:
        tags = {t.strip().removeprefix("W/") for t in wanted.split(",")}
        if etag in tags or "*" in tags:
            return HTTPResponse(status=304, headers=headers)
    return raw(payload, headers=headers, content_type="application/json")
