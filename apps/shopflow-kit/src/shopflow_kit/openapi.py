"""The service's OpenAPI document at ``<prefix>/openapi.json``."""

from __future__ import annotations

from sanic import HTTPResponse, Request, Sanic, json
from sanic_ext.extensions.openapi.builders import SpecificationBuilder


def install(app: Sanic, public_prefix: str) -> None:
    async def openapi_json(request: Request) -> HTTPResponse:
        # sanic-ext fills the builder at start-up; this only serialises it.
        return json(SpecificationBuilder().build(request.app).serialize())

    app.add_route(openapi_json, f"{public_prefix}/openapi.json", methods=["GET"], name="openapi")
