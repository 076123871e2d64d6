"""Tortoise set-up per service database, and the migration entry point."""

from __future__ import annotations

from typing import Any

import asyncpg
from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.migrations.api import migrate as tortoise_migrate

from shopflow_kit.config import ServiceSettings

KIT_APP = {"models": ["shopflow_kit.models"], "migrations": "shopflow_kit.migrations"}


class KitConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection released without asyncpg's reset query.

    asyncpg resets a connection on every release back to the pool with
    ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``: a
    round trip after every query outside a transaction, the largest single cost
    of order-mgmt's checkout (py-spy). The services keep no session state to
    reset: their advisory locks are transaction-scoped, and nothing SETs,
    LISTENs or keeps a cursor outside a transaction. A transaction left open is
    still rolled back by asyncpg, whatever this query says.
    """

    def get_reset_query(self) -> str:
        return ""


def tortoise_config(settings: ServiceSettings, models_module: str | None) -> dict[str, Any]:
    """One connection (the service's own database); the kit's tables plus the service's."""
    connection = expand_db_url(settings.resolved_database_url())
    connection["credentials"]["maxsize"] = settings.database_pool_max
    connection["credentials"]["connection_class"] = KitConnection
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
