"""payment-api under `shopctl up`: charged by a real service token, read through the gateway."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from tests.utils.e2e import Platform
from tests.utils.factories import unique_email

PASSWORD = "a-long-and-unusual-passphrase"


@pytest.fixture
def gw(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.gateway, timeout=20) as client:
        yield client


def order_mgmt_token(gw: httpx.Client, platform: Platform) -> str:
    """A service token as order-mgmt gets it: client credentials at user-auth."""
    secret = platform.secrets["clients"]["order-mgmt"]
    response = gw.post(
        "/auth/oauth/token",
        data={"grant_type": "client_credentials", "scope": "payments:charge payments:refund"},
        auth=("order-mgmt", secret),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_a_charge_is_read_back_by_its_owner_only(gw: httpx.Client, platform: Platform) -> None:
    email = unique_email()
    user = gw.post("/auth/register", json={"email": email, "password": PASSWORD, "name": "P"})
    assert user.status_code == 201
    login = gw.post("/auth/login", json={"email": email, "password": PASSWORD}).json()
    mine = {"Authorization": f"Bearer {login['access_token']}"}

    # payment-api's internal API is not routed by the gateway; order-mgmt calls it directly.
    internal = f"http://127.0.0.1:{platform.ports['PAYMENT_API']}"
    service = {"Authorization": f"Bearer {order_mgmt_token(gw, platform)}"}
    body = {
        "order_id": str(uuid.uuid4()),
        "customer_id": user.json()["id"],
        "amount_cents": 1500,
        "currency": "GBP",
        "card": {
            "number": "4242 4242 4242 4242",
            "exp_month": 12,
            "exp_year": datetime.now(UTC).year + 1,
            "cvc": "123",
        },
    }
    charged = httpx.post(
        f"{internal}/internal/payments",
        json=body,
        headers={**service, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert charged.status_code == 201, charged.text
    payment_id = charged.json()["id"]
    assert gw.post("/internal/payments", json=body).status_code == 404

    read = gw.get(f"/payments/{payment_id}", headers=mine)
    assert read.status_code == 200
    assert read.json()["card"] == {"brand": "visa", "last4": "4242"}
    assert gw.get(f"/payments/{payment_id}").status_code == 401
    other = unique_email()
    gw.post("/auth/register", json={"email": other, "password": PASSWORD, "name": "S"})
    theirs = gw.post("/auth/login", json={"email": other, "password": PASSWORD}).json()
    stranger = {"Authorization": f"Bearer {theirs['access_token']}"}
    assert gw.get(f"/payments/{payment_id}", headers=stranger).status_code == 404
    assert "/payments/{payment_id}" in gw.get("/payments/openapi.json").json()["paths"]

    refunded = httpx.post(f"{internal}/internal/payments/{payment_id}/refund", headers=service)
    assert refunded.status_code == 200 and refunded.json()["status"] == "refunded"
