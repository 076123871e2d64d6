"""catalog-api: the app factory, settings and the reservation sweeper."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from sanic import Sanic
from shopflow_kit import ServiceSettings
from shopflow_kit import create_app as kit_create_app

from catalog_api import service
from catalog_api.api import bp, internal

MODELS = "catalog_api.models"
log = logging.getLogger("catalog.sweeper")


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPFLOW_CATALOG_API_")
    service_name: str = "catalog-api"
    database_name: str = "catalog"
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    # Searches are the hot read: enough connections for both cores' worth of
    # PostgreSQL work while requests queue in the app, not in the database.
    database_pool_max: int = Field(default=10, ge=1, le=50)


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


async def open_search_pool(app: Sanic[Any, Any]) -> None:
    settings = app.ctx.settings
    await service.SEARCH_POOL.open(settings.resolved_database_url(), settings.database_pool_max)


def create_app() -> Sanic[Any, Any]:
    settings = Settings()
    app = kit_create_app(
        "catalog-api",
        settings,
        [bp, internal],
        MODELS,
        public_prefix="/products",
        startup=[open_search_pool],
        background=[sweep_reservations],
    )

    @app.after_server_stop
    async def close_search_pool(app: Sanic[Any, Any]) -> None:
        await service.SEARCH_POOL.close()

    return app
