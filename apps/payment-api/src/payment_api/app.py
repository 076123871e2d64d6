"""payment-api: the Sanic app, its acquirer, its outbox relay and its housekeeping."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sanic import Sanic
from shopflow_kit import create_app as kit_create_app
from shopflow_kit.idempotency import purge_expired
from shopflow_kit.outbox import relay_task

from payment_api.acquirers import acquirer_for
from payment_api.api import bp, internal
from payment_api.config import MODELS, SERVICE, Settings

log = logging.getLogger("payments.housekeeping")


async def housekeeping(app: Sanic[Any, Any]) -> None:
    """Drop idempotency keys past their 24 hours."""
    while True:
        try:
            await purge_expired()
        except Exception:
            log.exception("idempotency key purge failed")
        await asyncio.sleep(600)


async def load_keys(app: Sanic[Any, Any]) -> None:
    """Serving needs the fingerprint key; building the app (``openapi``) does not."""
    settings: Settings = app.ctx.settings
    app.ctx.card_fingerprint_key = settings.derived_key("card-fingerprint")
    app.ctx.idempotency_key = settings.derived_key("idempotency-fingerprint")


def create_app() -> Sanic[Any, Any]:
    settings = Settings()
    app = kit_create_app(
        SERVICE,
        settings,
        [bp, internal],
        MODELS,
        startup=[load_keys],
        background=[
            housekeeping,
            relay_task(settings, poll_interval=settings.outbox_poll_seconds),
        ],
    )
    app.ctx.acquirer = acquirer_for(settings)
    return app
