"""user-auth: the Sanic app and its background housekeeping."""

from __future__ import annotations

import asyncio
from typing import Any

from sanic import Sanic
from shopflow_kit import create_app as kit_create_app
from shopflow_kit.idempotency import purge_expired
from shopflow_kit.outbox import relay_task
from shopflow_kit.security import TokenVerifier

from auth_service import service
from auth_service.api import bp, internal
from auth_service.config import MODELS, SERVICE, Settings
from auth_service.keys import key_ring


async def housekeeping(app: Sanic[Any, Any]) -> None:
    """Drop expired throttling rows, refresh tokens and idempotency keys."""
    settings: Settings = app.ctx.settings
    while True:
        await service.purge_expired_state(settings)
        await purge_expired()
        await asyncio.sleep(600)


def create_app() -> Sanic[Any, Any]:
    settings = Settings()

    async def prepare_keys(app: Sanic[Any, Any]) -> None:
        # At start-up rather than at build time, so the app can be built (for its
        # OpenAPI document) without key material; a missing key fails the start.
        keys = key_ring(settings)
        await keys.ensure_key()
        app.ctx.keys = keys
        app.ctx.minter = service.TokenMinter(keys, settings)
        # user-auth verifies its own tokens against its key ring, not over HTTP.
        app.ctx.verifier = TokenVerifier(
            keys, settings.jwt_issuer, leeway=settings.jwt_leeway_seconds
        )

    return kit_create_app(
        SERVICE,
        settings,
        [bp, internal],
        MODELS,
        startup=[prepare_keys],
        background=[housekeeping, relay_task(settings)],
    )
