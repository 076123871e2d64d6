"""Tortoise set-up per service database, and the migration entry point."""

from __future__ import annotations

from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.migrations.api import migrate as tortoise_migrate

from shopflow_kit.config import ServiceSettings

KIT_APP = {"models": ["shopflow_kit.models"], "migrations": "shopflow_kit.migrations"}


def tortoise_config(settings: ServiceSettings, models_module: str | None) -> dict[str, Any]:
    """One connection (the service's own database); the kit's tables plus the service's."""
    connection = expand_db_url(settings.resolved_database_url())
    connection["engine"] = "shopflow_kit.pg_engine"  # Tortoise's asyncpg backend, fixed
    connection["credentials"]["maxsize"] = settings.database_pool_max
    apps: dict[str, Any] = {"kit": dict(KIT_APP)}
    if models_module:
        package = models_module.rsplit(".", 1)[0]
        label = package.rsplit(".", 1)[-1]
        apps[label] = {"models": [models_module], "migrations": f"{package}.migrations"}
    return {
        "connections": {"default": connection},
        "apps": apps,
        "use_tz": True,
        "timezone": "UTC",
    }


async def init_db(settings: ServiceSettings, models_module: str | None) -> None:
    # Sanic runs before_server_start and the request handlers in different
    # contexts, so Tortoise's context-local state would be invisible to the
    # handlers; the global fallback is what Tortoise's own Sanic integration uses.
    await Tortoise.init(
        config=tortoise_config(settings, models_module), _enable_global_fallback=True
    )


async def close_db() -> None:
    await Tortoise.close_connections()


async def migrate(settings: ServiceSettings, models_module: str | None) -> None:
    """Apply every pending migration of the kit and of the service (Tortoise's own runner)."""
    try:
        await tortoise_migrate(config=tortoise_config(settings, models_module))
    finally:
        await Tortoise.close_connections()
