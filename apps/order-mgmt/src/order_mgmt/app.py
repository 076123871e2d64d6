"""order-mgmt: the Sanic app, its crash-recovery loop and its outbox relay."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sanic import Sanic
from shopflow_kit import create_app as kit_create_app
from shopflow_kit.config import ConfigError
from shopflow_kit.idempotency import purge_expired
from shopflow_kit.outbox import relay_task

from order_mgmt import service
from order_mgmt.api import bp
from order_mgmt.clients import connect
from order_mgmt.config import MODELS, SERVICE, Settings

log = logging.getLogger("order_mgmt.recovery")

#: Expired Idempotency-Keys are purged this often.
PURGE_INTERVAL_SECONDS = 600


async def open_clients(app: Sanic[Any, Any]) -> None:
    settings: Settings = app.ctx.settings
    if settings.fingerprint_key is None:
        # Checked at start-up, not when the app is built: `python -m order_mgmt openapi`
        # builds it without any secret.
        raise ConfigError(
            f"order-mgmt: set {settings.env_name('fingerprint_key')} (a random secret) to serve"
        )
    app.ctx.deps = service.Deps(settings, connect(settings))


async def recovery_loop(app: Sanic[Any, Any]) -> None:
    """Resume orders stuck in an intermediate step; runs in every replica."""
    deps: service.Deps = app.ctx.deps
    while True:
        try:
            resumed = await service.recover_stuck_orders(deps)
        except Exception:
            log.exception("recovery round failed")
            resumed = 0
        if resumed < deps.settings.recovery_batch_size:
            await asyncio.sleep(deps.settings.recovery_interval_seconds)


async def housekeeping(app: Sanic[Any, Any]) -> None:
    while True:
        try:
            await purge_expired()
        except Exception:
            log.exception("purging idempotency keys failed")
        await asyncio.sleep(PURGE_INTERVAL_SECONDS)


def create_app() -> Sanic[Any, Any]:
    settings = Settings()
    app = kit_create_app(
        SERVICE,
        settings,
        [bp],
        MODELS,
        startup=[open_clients],
        background=[recovery_loop, housekeeping, relay_task(settings)],
    )

    @app.after_server_stop
    async def close_clients(app: Sanic[Any, Any]) -> None:
        deps = getattr(app.ctx, "deps", None)
        if deps is not None:
            await deps.clients.aclose()

    return app
