"""Shopping through `shopctl up`'s gateway: cart, checkout, the payment, cancellation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from tests.e2e.test_catalog_flow import admin_token
from tests.utils.e2e import Platform

PASSWORD = "a-long-and-unusual-passphrase"


@pytest.fixture
def gw(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.gateway, timeout=40) as client:
        yield client


def shopper(gw: httpx.Client) -> dict[str, str]:
    email = f"e2e-{uuid.uuid4().hex[:10]}@example.com"
    created = gw.post("/auth/register", json={"email": email, "password": PASSWORD, "name": "E"})
    assert created.status_code == 201, created.text
    login = gw.post("/auth/login", json={"email": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def test_a_shopper_buys_and_cancels(gw: httpx.Client, platform: Platform) -> None:
    admin = admin_token(gw, platform)
    product = gw.post(
        "/products",
        json={
            "sku": f"E2E-{uuid.uuid4().hex[:8]}",
            "name": "Gateway Teapot",
            "description": "",
            "category": "kitchen",
            "price_cents": 2450,
            "currency": "USD",
            "stock": 3,
        },
        headers=admin,
    ).json()
    me = shopper(gw)
    assert gw.get("/cart").status_code == 401
    cart = gw.put(f"/cart/items/{product['id']}", json={"quantity": 2}, headers=me)
    assert cart.status_code == 200 and cart.json()["total_cents"] == 4900
    body = {
        "payment": {
            "card_number": "4242424242424242",
            "exp_month": 12,
            "exp_year": datetime.now(UTC).year + 1,
            "cvc": "123",
        },
        "shipping_address": {
            "name": "E",
            "line1": "1 Gateway Road",
            "city": "Mesh",
            "postal_code": "4000",
            "country": "GB",
        },
    }
    key = {"Idempotency-Key": str(uuid.uuid4())}
    order = gw.post("/orders", json=body, headers={**me, **key})
    assert order.status_code == 201, order.text
    assert order.json()["status"] == "confirmed" and order.json()["total_cents"] == 4900
    again = gw.post("/orders", json=body, headers={**me, **key})
    assert again.json() == order.json() and again.headers["idempotent-replayed"] == "true"
    payment = gw.get(f"/payments/{order.json()['payment_id']}", headers=me)
    assert payment.status_code == 200 and payment.json()["status"] == "captured"
    assert gw.get(f"/products/{product['id']}").json()["stock_available"] == 1
    assert [o["id"] for o in gw.get("/orders", headers=me).json()["items"]] == [order.json()["id"]]

    cancelled = gw.post(f"/orders/{order.json()['id']}/cancel", headers=me)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert gw.get(f"/products/{product['id']}").json()["stock_available"] == 3
    refunded = gw.get(f"/payments/{order.json()['payment_id']}", headers=me).json()
    assert refunded["status"] == "refunded"
    assert gw.get("/orders/openapi.json").json()["paths"]["/orders"]["post"]
    assert gw.get("/internal/payments", params={"order_id": order.json()["id"]}).status_code == 404
