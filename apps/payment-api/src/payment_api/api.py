"""payment-api's HTTP API: the public read (API.md, payments) and the internal charge/refund."""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request, json
from shopflow_kit import json_body, parse_query, require_scope, require_user
from shopflow_kit.idempotency import idempotent_response
from shopflow_kit.openapi import operation

from payment_api import service
from payment_api.schemas import ChargeIn, OrderPaymentsQuery, PaymentOut

bp = Blueprint("payments", url_prefix="/payments")
internal = Blueprint("payments_internal", url_prefix="/internal")


@bp.get("/<payment_id:str>")
@operation(
    "One payment (its owner or an admin)",
    description="Another customer's payment is 404, as is an unknown id. The card is only "
    "ever its brand and last 4 digits.",
    responses={200: PaymentOut},
    problems=[404],
)
@require_user
async def get_payment(request: Request, payment_id: str) -> HTTPResponse:
    return json(await service.get_payment(request.ctx.principal, payment_id))


# --- internal: order-mgmt's service token ------------------------------------------------


@internal.post("/payments")
@require_scope("payments:charge")
@json_body(ChargeIn)
async def charge(request: Request, body: ChargeIn) -> HTTPResponse:
    ctx = request.app.ctx

    async def work() -> tuple[int, object]:
        return await service.charge(ctx.acquirer, ctx.card_fingerprint_key, body)

    # Keys are per calling client (Stripe's per-account keys), so two callers never collide.
    return await idempotent_response(
        request,
        f"payments:{request.ctx.principal.subject}",
        work,
        fingerprint_key=ctx.idempotency_key,
        conflict_in_flight=True,
    )


@internal.get("/payments")
@require_scope("payments:charge")
async def payments_of_order(request: Request) -> HTTPResponse:
    """The payments of ``?order_id=``: how order-mgmt learns a lost charge's outcome."""
    query = parse_query(request, OrderPaymentsQuery)
    return json({"items": await service.payments_of_order(query.order_id)})


@internal.post("/payments/<payment_id:str>/refund")
@require_scope("payments:refund")
async def refund(request: Request, payment_id: str) -> HTTPResponse:
    return json(await service.refund(request.app.ctx.acquirer, payment_id))
