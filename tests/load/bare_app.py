"""The baseline: a bare Sanic JSON endpoint, no database, no middleware."""

from __future__ import annotations

from typing import Any

from sanic import HTTPResponse, Request, Sanic, json


def create_app() -> Sanic[Any, Any]:
    app = Sanic("bare_baseline")

    @app.get("/health")
    async def health(request: Request) -> HTTPResponse:
        return json({"status": "ok"})

    @app.get("/products")
    async def products(request: Request) -> HTTPResponse:
        return json({"items": [], "total": 0, "page": 1, "page_size": 20})

    return app
