"""notify-hub's HTTP API (the notifications section of API.md) and its internal endpoint."""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request, json
from shopflow_kit import json_body, parse_query, require_scope, require_user
from shopflow_kit.http import PageQuery, page_body
from shopflow_kit.openapi import Page, operation

from notify_hub import service
from notify_hub.schemas import EventIn, NotificationOut

bp = Blueprint("notifications", url_prefix="/notifications")
internal = Blueprint("notify_internal", url_prefix="/internal")


@bp.get("")
@operation(
    "The caller's notifications",
    description="Only the caller's own, newest first, paginated. `status` moves from "
    "`queued` to `sent` (with `sent_at`) or `failed`.",
    responses={200: Page[NotificationOut]},
    query=PageQuery,
)
@require_user
async def list_notifications(request: Request) -> HTTPResponse:
    query = parse_query(request, PageQuery)
    items, total = await service.list_notifications(request.ctx.principal.subject, query)
    # Personal data: never kept by a shared cache.
    return json(page_body(items, total, query), headers={"Cache-Control": "private, no-store"})


# --- internal: the producers' outbox relays, with notifications:publish -------------------


@internal.post("/events")
@require_scope("notifications:publish")
@json_body(EventIn)
async def receive_event(request: Request, body: EventIn) -> HTTPResponse:
    receipt = await service.receive_event(
        body, request.app.ctx.directory, request.app.ctx.templates
    )
    if receipt.queued:
        request.app.ctx.delivery.wake()
    return json(receipt.body(), status=202 if receipt.first else 200)
