"""The catalog through `shopctl up`'s gateway: public reads, admin writes, seed data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.utils.e2e import Platform


@pytest.fixture
def gw(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.gateway, timeout=20) as client:
        yield client


def admin_token(gw: httpx.Client, platform: Platform) -> dict[str, str]:
    login = gw.post(
        "/auth/login",
        json={"email": "admin@shopflow.example", "password": platform.secrets["admin_password"]},
    )
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def test_products_need_no_token_and_hold_the_seed(gw: httpx.Client) -> None:
    page = gw.get("/products", params={"page_size": 100})
    assert page.status_code == 200
    assert page.json()["total"] >= 50
    categories = gw.get("/categories").json()["items"]
    assert len(categories) >= 5 and sum(c["product_count"] for c in categories) >= 50
    search = gw.get("/products", params={"q": "coffee", "category": "kitchen"}).json()
    assert search["items"] and "Coffee" in search["items"][0]["name"]
    assert gw.get("/products", params={"page_size": 500}).status_code == 400


def test_admin_writes_through_the_gateway(gw: httpx.Client, platform: Platform) -> None:
    body = {
        "sku": f"E2E-{uuid.uuid4().hex[:8]}",
        "name": "Gateway Globe",
        "description": "A test globe.",
        "category": "home-office",
        "price_cents": 4200,
        "currency": "USD",
        "stock": 2,
    }
    assert gw.post("/products", json=body).status_code == 401
    created = gw.post("/products", json=body, headers=admin_token(gw, platform))
    assert created.status_code == 201
    assert gw.get(f"/products/{created.json()['id']}").json()["stock_available"] == 2
    assert (
        gw.delete(
            f"/products/{created.json()['id']}", headers=admin_token(gw, platform)
        ).status_code
        == 204
    )


def test_internal_reservations_are_not_routed(gw: httpx.Client) -> None:
    assert gw.post("/internal/reservations", json={}).status_code == 404
    assert gw.get("/products/openapi.json").json()["paths"]
