"""A minimal service built on the kit, used only by the kit's own tests."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import SettingsConfigDict
from sanic import Blueprint, HTTPResponse, Request, Sanic, json
from shopflow_kit import (
    Problem,
    ServiceSettings,
    json_body,
    parse_query,
    require_role,
    require_scope,
    require_user,
)
from shopflow_kit import (
    create_app as kit_create_app,
)
from shopflow_kit.http import PageQuery
from shopflow_kit.idempotency import idempotent_response
from shopflow_kit.outbox import publish, relay_task
from shopflow_kit.registry import Service
from shopflow_kit.validation import Int4
from tortoise.transactions import in_transaction

from tests.kit_sample.models import Widget

MODELS = "tests.kit_sample.models"
#: Not one of the five: a sample service the kit's tests build the way the five are built.
SERVICE = Service("kit-sample", "kit-sample", "kit_sample", 0, ("/widgets",))


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPFLOW_KIT_SAMPLE_")
    service_name: str = "kit-sample"
    database_name: str = "kit_sample"
    run_relay: bool = False


class WidgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=50)
    count: Annotated[Int4, Field(ge=0)]


class Page(PageQuery):
    q: str | None = Field(None, max_length=200)


bp = Blueprint("sample")


@bp.post("/widgets")
@json_body(WidgetIn)
async def create_widget(request: Request, body: WidgetIn) -> HTTPResponse:
    widget = await Widget.create(id=uuid.uuid4(), name=body.name, count=body.count)
    return json({"id": str(widget.id), "name": widget.name}, status=201)


@bp.get("/widgets")
async def list_widgets(request: Request) -> HTTPResponse:
    query = parse_query(request, Page)
    return json({"page": query.page, "page_size": query.page_size})


@bp.get("/widgets/slow")
async def slow(request: Request) -> HTTPResponse:
    """Work that is still in flight when a shutdown starts."""
    await asyncio.sleep(float(request.args.get("seconds", "0.3")))
    return json({"widgets": await Widget.all().count()})


@bp.get("/widgets/<widget_id:uuid>")
async def get_widget(request: Request, widget_id: uuid.UUID) -> HTTPResponse:
    widget = await Widget.get(id=widget_id)
    return json({"id": str(widget.id), "name": widget.name})


@bp.post("/widgets/idempotent")
@require_user
async def create_once(request: Request) -> HTTPResponse:
    async def work() -> tuple[int, object]:
        widget = await Widget.create(id=uuid.uuid4(), name="once", count=1)
        await asyncio.sleep(0.3)  # widen the window in which duplicates race
        return 201, {"id": str(widget.id)}

    return await idempotent_response(request, f"user:{request.ctx.principal.subject}", work)


@bp.post("/widgets/publish")
async def create_and_publish(request: Request) -> HTTPResponse:
    async with in_transaction():
        widget = await Widget.create(id=uuid.uuid4(), name="evented", count=0)
        event = await publish("widget.created", {"widget_id": str(widget.id)})
        if request.args.get("fail"):
            raise Problem(409, "rolled back on purpose")
    return json({"event_id": str(event.id)}, status=201)


@bp.get("/me")
@require_user
async def me(request: Request) -> HTTPResponse:
    p = request.ctx.principal
    return json({"sub": p.subject, "role": p.role})


@bp.get("/admin")
@require_role("admin")
async def admin(request: Request) -> HTTPResponse:
    return json({"ok": True})


@bp.get("/internal/ping")
@require_scope("widgets:read")
async def internal_ping(request: Request) -> HTTPResponse:
    return json({"caller": request.ctx.principal.subject})


@bp.get("/boom")
async def boom(request: Request) -> HTTPResponse:
    raise RuntimeError("secret internal detail")


def create_app() -> Sanic:
    settings = Settings()
    background = [relay_task(settings, poll_interval=0.2, base_delay=0.1, max_delay=0.5)]
    return kit_create_app(
        SERVICE,
        settings,
        [bp],
        MODELS,
        background=background if settings.run_relay else (),
    )
