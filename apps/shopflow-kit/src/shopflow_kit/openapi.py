"""The service's OpenAPI document at ``<prefix>/openapi.json``."""

from __future__ import annotations

from typing import Any

from sanic import HTTPResponse, Request, Sanic, json
from sanic_ext.extensions.openapi.builders import SpecificationBuilder


def install(app: Sanic[Any, Any], public_prefix: str) -> None:
    async def openapi_json(request: Request) -> HTTPResponse:
        # sanic-ext fills the builder at start-up; this only serialises it.
        spec: dict[str, Any] = SpecificationBuilder().build(request.app).serialize()
        return json(spec)

    app.add_route(openapi_json, f"{public_prefix}/openapi.json", methods=["GET"], name="openapi")
