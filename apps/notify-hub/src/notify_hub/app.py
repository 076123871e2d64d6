"""notify-hub: the Sanic app and its delivery worker."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter
from sanic import Sanic
from shopflow_kit import create_app as kit_create_app

from notify_hub.api import bp, internal
from notify_hub.config import MODELS, SERVICE, Settings
from notify_hub.delivery import DeliveryWorker
from notify_hub.emails import Templates
from notify_hub.schemas import EVENT_DATA
from notify_hub.service import UserDirectory


def create_app() -> Sanic[Any, Any]:
    settings = Settings()
    templates = Templates(EVENT_DATA)  # a broken template stops the start

    async def open_directory(app: Sanic[Any, Any]) -> None:
        app.ctx.directory = UserDirectory(settings)

    async def deliver(app: Sanic[Any, Any]) -> None:
        await app.ctx.delivery.run()

    app = kit_create_app(
        SERVICE,
        settings,
        [bp, internal],
        MODELS,
        startup=[open_directory],
        background=[deliver],
    )
    app.ctx.templates = templates
    app.ctx.delivery = DeliveryWorker(
        settings,
        outcomes=Counter(
            "shopflow_notifications_total",
            "Email send attempts by event type and outcome (sent, retried, failed)",
            ["type", "outcome"],
            registry=app.ctx.metrics.registry,
        ),
    )

    @app.after_server_stop
    async def close_clients(app: Sanic[Any, Any]) -> None:
        directory = getattr(app.ctx, "directory", None)
        if directory is not None:
            await directory.aclose()
        await app.ctx.delivery.aclose()

    return app
