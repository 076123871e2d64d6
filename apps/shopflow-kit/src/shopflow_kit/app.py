"""The app factory every service is built from."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sanic import Blueprint, Sanic

from shopflow_kit import observability, openapi, server
from shopflow_kit.config import ServiceSettings
from shopflow_kit.db import close_db, init_db
from shopflow_kit.errors import ProblemErrorHandler
from shopflow_kit.security import JWKSCache, TokenVerifier

BackgroundTask = Callable[[Sanic[Any, Any]], Awaitable[None]]


def create_app(
    name: str,
    settings: ServiceSettings,
    blueprints: Sequence[Blueprint],
    models_module: str | None,
    *,
    public_prefix: str,
    startup: Sequence[BackgroundTask] = (),
    background: Sequence[BackgroundTask] = (),
) -> Sanic[Any, Any]:
    """Build a service's Sanic app.

    ``public_prefix`` (``/auth``, ``/products``) is where the gateway routes the
    service; its OpenAPI document is served at ``<prefix>/openapi.json``.
    ``startup`` coroutines run after the database is up and before the first
    request; ``background`` coroutines then run until the server stops (the
    outbox relay, sweepers).
    """
    observability.configure_logging(settings.service_name, settings.log_level)
    app = Sanic(
        re.sub(r"[^A-Za-z0-9_]", "_", name),
        error_handler=ProblemErrorHandler(),
        configure_logging=False,
        request_class=server.KitRequest,
    )
    server.install(app, settings.shutdown_grace_seconds)
    app.config.FALLBACK_ERROR_FORMAT = "json"
    # sanic-ext's UI lives at <prefix>/docs (its index would otherwise claim
    # GET <prefix>, and /products is a real route); the kit adds the JSON
    # document at <prefix>/openapi.json, the contract's address.
    app.config.OAS_URL_PREFIX = f"{public_prefix}/docs"
    app.config.OAS_UI_DEFAULT = "redoc"
    app.config.OAS_UI_SWAGGER = False
    app.ext.openapi.describe(f"ShopFlow {settings.service_name}", version="1.0.0")
    openapi.install(app, public_prefix)
    app.ctx.settings = settings
    app.ctx.verifier = TokenVerifier(
        JWKSCache(settings.jwks_url, min_refetch_interval=settings.jwks_refetch_interval),
        settings.jwt_issuer,
        leeway=settings.jwt_leeway_seconds,
    )

    observability.install(app, settings.service_name, public_prefix)
    for blueprint in blueprints:
        app.blueprint(blueprint)

    @app.before_server_start
    async def open_database(app: Sanic[Any, Any]) -> None:
        await init_db(settings, models_module)
        for hook in startup:
            await hook(app)
        app.ctx.background = [asyncio.ensure_future(task(app)) for task in background]

    @app.after_server_stop
    async def close_database(app: Sanic[Any, Any]) -> None:
        # Sanic has waited for the connections (up to the grace period) by now.
        server.report_drain(app)
        for task in getattr(app.ctx, "background", []):
            task.cancel()
        await asyncio.gather(*getattr(app.ctx, "background", []), return_exceptions=True)
        await close_db()
        server.log.info("database closed")

    return app
