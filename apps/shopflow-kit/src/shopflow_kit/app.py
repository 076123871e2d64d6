"""The app factory every service is built from."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sanic import Blueprint, Sanic
from sanic_ext.extensions.http.extension import HTTPExtension

from shopflow_kit import heap, observability, openapi, server
from shopflow_kit.config import ServiceSettings
from shopflow_kit.db import close_db, init_db
from shopflow_kit.errors import ProblemErrorHandler
from shopflow_kit.registry import Service
from shopflow_kit.security import JWKSCache, TokenVerifier

BackgroundTask = Callable[[Sanic[Any, Any]], Awaitable[None]]


def create_app(
    service: Service,
    settings: ServiceSettings,
    blueprints: Sequence[Blueprint],
    models_module: str | None,
    *,
    startup: Sequence[BackgroundTask] = (),
    background: Sequence[BackgroundTask] = (),
) -> Sanic[Any, Any]:
    """Build ``service``'s Sanic app.

    The service's public OpenAPI document is served under each of its public
    prefixes: ``/auth/openapi.json``, ``/products/openapi.json``, ...
    ``startup`` coroutines run after the database is up and before the first
    request; ``background`` coroutines then run until the server stops (the
    outbox relay, sweepers).
    """
    observability.configure_logging(settings.service_name, settings.log_level)
    app = Sanic(
        re.sub(r"[^A-Za-z0-9_]", "_", service.name),
        error_handler=ProblemErrorHandler(),
        configure_logging=False,
        request_class=server.KitRequest,
    )
    server.install(app, settings.shutdown_grace_seconds)
    app.config.FALLBACK_ERROR_FORMAT = "json"
    # Of sanic-ext only its HTTP extension stays, for HTTP semantics (HEAD and
    # OPTIONS for every route). The kit builds the public OpenAPI document
    # itself (shopflow_kit.openapi explains why), no origin is allowed
    # cross-site, and no handler uses dependency injection, whose signal
    # sanic-ext would otherwise dispatch on every request (py-spy: about 10% of
    # a ``/health`` request).
    app.config.OAS = False
    app.config.CORS = False
    app.extend(built_in_extensions=False, extensions=[HTTPExtension])
    openapi.install(app, f"ShopFlow {service.name}", service.prefixes)
    app.ctx.settings = settings
    app.ctx.verifier = TokenVerifier(
        JWKSCache(settings.jwks_url, min_refetch_interval=settings.jwks_refetch_interval),
        settings.jwt_issuer,
        leeway=settings.jwt_leeway_seconds,
    )

    observability.install(app, settings.service_name, service.openapi_prefix)
    for blueprint in blueprints:
        app.blueprint(blueprint)

    @app.before_server_start
    async def open_database(app: Sanic[Any, Any]) -> None:
        await init_db(settings, models_module)
        for hook in startup:
            await hook(app)
        app.ctx.background = [asyncio.ensure_future(task(app)) for task in background]

    @app.after_server_start
    async def freeze_startup_heap(app: Sanic[Any, Any]) -> None:
        heap.freeze_startup_heap()  # full collections would stall requests otherwise

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
