"""catalog-api: the Sanic app and its reservation sweeper."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sanic import Sanic
from shopflow_kit import create_app as kit_create_app

from catalog_api import service
from catalog_api.api import bp, internal
from catalog_api.config import MODELS, SERVICE, Settings

log = logging.getLogger("catalog.sweeper")


async def sweep_reservations(app: Sanic[Any, Any]) -> None:
    """Expire reservations past their TTL (their stock is already free to others)."""
    while True:
        try:
            expired = await service.expire_reservations()
            if expired:
                log.info("expired reservations", extra={"count": expired})
        except Exception:
            log.exception("reservation sweep failed")
        await asyncio.sleep(app.ctx.settings.sweep_interval_seconds)


def create_app() -> Sanic[Any, Any]:
    settings = Settings()
    app = kit_create_app(
        SERVICE,
        settings,
        [bp, internal],
        MODELS,
        background=[sweep_reservations],
    )
    return app
