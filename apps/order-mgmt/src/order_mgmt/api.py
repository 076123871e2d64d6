"""order-mgmt's HTTP API: the orders section of API.md (customers only)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sanic import Blueprint, HTTPResponse, Request, json
from shopflow_kit import json_body, parse_query, require_role
from shopflow_kit.http import page_body
from shopflow_kit.idempotency import HEADER, stored_json, validate_key
from shopflow_kit.openapi import Link, Page, operation

from order_mgmt import service
from order_mgmt.schemas import CartLineIn, CartOut, CheckoutIn, OrderOut, OrderQuery

bp = Blueprint("orders")

customer_only = require_role("customer")

#: A checkout the sandbox approves (its test card, two years from now), for the links
#: that lead to one.
_SANDBOX_CHECKOUT = {
    "payment": {
        "card_number": "4242424242424242",
        "exp_month": 12,
        "exp_year": datetime.now(UTC).year + 2,
        "cvc": "123",
    },
    "shipping_address": {
        "name": "Link Shopper",
        "line1": "1 Gateway Road",
        "city": "Mesh",
        "postal_code": "4000",
        "country": "GB",
    },
}
_ORDER = {"order_id": "$response.body#/id"}
#: Where a placed or cancelled order leads: itself, its payment, its cancellation.
_ORDER_LINKS = {
    "GetOrder": Link("get_order", parameters=_ORDER),
    "CancelOrder": Link("cancel_order", parameters=_ORDER),
    "GetPayment": Link(
        service="payment-api",
        method="GET",
        path="/payments/{payment_id}",
        parameters={"payment_id": "$response.body#/payment_id"},
    ),
}


def _deps(request: Request) -> service.Deps:
    deps: service.Deps = request.app.ctx.deps
    return deps


def _customer(request: Request) -> uuid.UUID:
    return service.customer_of(request.ctx.principal.subject)


def _request_id(request: Request) -> str:
    return str(request.ctx.request_id)


@bp.get("/cart")
@operation(
    "The cart, with live names and prices",
    description="Lines whose product left the catalog drop out, each with a note in `notes`.",
    responses={200: CartOut},
    problems=[503],
)
@customer_only
async def view_cart(request: Request) -> HTTPResponse:
    return json(await service.view_cart(_deps(request), _customer(request), _request_id(request)))


@bp.put("/cart/items/<product_id:str>")
@operation(
    "Set a product's quantity in the cart",
    description="404 for an unknown product; 409 for more than `stock_available` shows now "
    "or for a product in another currency than the cart's.",
    responses={200: CartOut},
    problems=[404, 409, 503],
    links={
        200: {
            "ViewCart": Link("view_cart"),
            "Checkout": Link("place_order", request_body=_SANDBOX_CHECKOUT),
        }
    },
)
@customer_only
@json_body(CartLineIn)
async def set_cart_line(request: Request, product_id: str, body: CartLineIn) -> HTTPResponse:
    cart = await service.set_cart_line(
        _deps(request), _customer(request), product_id, body.quantity, _request_id(request)
    )
    return json(cart)


@bp.delete("/cart/items/<product_id:str>")
@operation("Remove a product from the cart", responses={200: CartOut}, problems=[404, 503])
@customer_only
async def remove_cart_line(request: Request, product_id: str) -> HTTPResponse:
    cart = await service.remove_cart_line(
        _deps(request), _customer(request), product_id, _request_id(request)
    )
    return json(cart)


@bp.delete("/cart")
@operation("Empty the cart", responses={204: None})
@customer_only
async def empty_cart(request: Request) -> HTTPResponse:
    await service.empty_cart(_customer(request))
    return HTTPResponse(status=204)


@bp.post("/orders")
@operation(
    "Check out the cart",
    description="Prices come from catalog-api. 409: out of stock (`short_items`), empty or "
    "changed cart, or the same key still in flight (`Retry-After`). 402: payment declined "
    "(`decline_code`; the order is kept as `payment_failed`). 503: a dependency is down; "
    "the order keeps its step and a retry with the same key returns the final result.",
    responses={201: OrderOut},
    problems=[402, 409, 503],
    links={201: _ORDER_LINKS},
    headers={HEADER: "Required. Repeating a request with the same key replays its result."},
)
@customer_only
@json_body(CheckoutIn)
async def place_order(request: Request, body: CheckoutIn) -> HTTPResponse:
    key = validate_key(request.headers.get(HEADER))
    stored = await service.checkout(
        _deps(request), _customer(request), key, request.body, body, _request_id(request)
    )
    return stored_json(stored)


@bp.get("/orders")
@operation("The caller's orders, newest first", responses={200: Page[OrderOut]}, query=OrderQuery)
@customer_only
async def list_orders(request: Request) -> HTTPResponse:
    query = parse_query(request, OrderQuery)
    items, total = await service.list_orders(_customer(request), query)
    return json(page_body(items, total, query))


@bp.get("/orders/<order_id:str>")
@operation(
    "One of the caller's orders",
    responses={200: OrderOut},
    problems=[404],
    links={200: _ORDER_LINKS},
)
@customer_only
async def get_order(request: Request, order_id: str) -> HTTPResponse:
    return json(await service.get_order(_customer(request), order_id))


@bp.post("/orders/<order_id:str>/cancel")
@operation(
    "Cancel a confirmed order: refund and restock",
    responses={200: OrderOut},
    problems=[404, 409, 503],
)
@customer_only
async def cancel_order(request: Request, order_id: str) -> HTTPResponse:
    order = await service.cancel_order(
        _deps(request), _customer(request), order_id, _request_id(request)
    )
    return json(order)
