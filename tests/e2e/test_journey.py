"""The shopper's whole journey through `shopctl up`'s gateway, all five services together.

Register (welcome email), search and browse, a cart of two products, checkout
(confirmation email listing the items and the total), the order list, the
payment captured with last4 only, cancel (stock back, payment refunded,
cancellation and refund emails), the notification list. Then the unhappy paths
(declined card, insufficient funds, empty cart, out of stock) and a second
shopper who sees none of the first one's orders, payments or notifications.

Emails are read from the SMTP sink's Maildir in the platform's state folder.
Delivery is asynchronous (outbox relay -> notify-hub -> SMTP), so the test
waits for each message, with a deadline: it asserts what arrives, never how fast.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from typing import Any, TypeVar

import httpx
import pytest

from tests.utils.e2e import Platform

PASSWORD = "journey-through-the-gateway"
T = TypeVar("T")
APPROVED = "4242424242424242"
DECLINED = "4000000000000002"
INSUFFICIENT_FUNDS = "4000000000009995"


@dataclass
class Shopper:
    email: str
    name: str
    headers: dict[str, str]


@pytest.fixture
def gw(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.gateway, timeout=60) as client:
        yield client


def eventually(probe: Callable[[], T | None], what: str, within: float = 90) -> T:
    """Poll until ``probe`` answers; asynchronous delivery is waited for, never timed."""
    deadline = time.monotonic() + within
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.25)


def register(gw: httpx.Client, name: str) -> Shopper:
    email = f"journey-{uuid.uuid4().hex[:10]}@example.com"
    created = gw.post("/auth/register", json={"email": email, "password": PASSWORD, "name": name})
    assert created.status_code == 201, created.text
    login = gw.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return Shopper(email, name, {"Authorization": f"Bearer {login.json()['access_token']}"})


def admin(gw: httpx.Client, platform: Platform) -> dict[str, str]:
    email, password = platform.admin
    login = gw.post("/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def new_product(
    gw: httpx.Client, admin: dict[str, str], name: str, price: int, stock: int
) -> dict[str, Any]:
    body = {
        "sku": f"JRN-{uuid.uuid4().hex[:10]}",
        "name": name,
        "description": f"{name}, for the journey test.",
        "category": "kitchen",
        "price_cents": price,
        "currency": "USD",
        "stock": stock,
    }
    created = gw.post("/products", json=body, headers=admin)
    assert created.status_code == 201, created.text
    return dict(created.json())


def checkout_body(card: str = APPROVED) -> dict[str, Any]:
    return {
        "payment": {
            "card_number": card,
            "exp_month": 12,
            "exp_year": datetime.now(UTC).year + 2,
            "cvc": "123",
        },
        "shipping_address": {
            "name": "Jo Journey",
            "line1": "1 Gateway Road",
            "city": "Mesh",
            "postal_code": "4000",
            "country": "GB",
        },
    }


def checkout(gw: httpx.Client, shopper: Shopper, card: str = APPROVED) -> httpx.Response:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    return gw.post("/orders", json=checkout_body(card), headers={**shopper.headers, **key})


def stock(gw: httpx.Client, product: dict[str, Any]) -> int:
    return int(gw.get(f"/products/{product['id']}").json()["stock_available"])


def usd(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"


def text_of(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError(f"no text part in {message['Subject']!r}")


def mail_to(platform: Platform, shopper: Shopper, subject: str) -> Message:
    """The one message to ``shopper`` whose subject starts with ``subject``."""

    def probe() -> Message | None:
        found = [
            m
            for m in platform.mail()
            if shopper.email in (m["To"] or "") and (m["Subject"] or "").startswith(subject)
        ]
        assert len(found) <= 1, f"{subject!r} sent {len(found)} times"
        return found[0] if found else None

    return eventually(probe, f"an email {subject!r} to {shopper.email}")


def notifications(gw: httpx.Client, shopper: Shopper, count: int) -> list[dict[str, Any]]:
    """The shopper's notifications once ``count`` exist and all were sent."""

    def probe() -> list[dict[str, Any]] | None:
        items = gw.get("/notifications", headers=shopper.headers).json()["items"]
        done = len(items) == count and all(n["status"] == "sent" for n in items)
        return list(items) if done else None

    return eventually(probe, f"{count} notification(s) sent to {shopper.email}")


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = dict(response.json())
    assert {"type", "title", "status", "detail"} <= set(body) and body["status"] == status
    return body


def test_a_shopper_buys_two_products_then_cancels(gw: httpx.Client, platform: Platform) -> None:
    word = f"zyx{uuid.uuid4().hex[:8]}"  # a search term only this test's products contain
    boss = admin(gw, platform)
    kettle = new_product(gw, boss, f"Journey Kettle {word}", 2450, 5)
    mugs = new_product(gw, boss, f"Journey Mugs {word}", 1299, 4)

    # Register: the welcome email arrives.
    jo = register(gw, "Jo Journey")
    welcome = mail_to(platform, jo, "Welcome to ShopFlow")
    assert "Jo Journey" in welcome["Subject"]

    # Search and browse, as anyone.
    found = gw.get("/products", params={"q": word})
    assert found.status_code == 200
    assert {p["id"] for p in found.json()["items"]} == {kettle["id"], mugs["id"]}
    categories = {c["slug"]: c for c in gw.get("/categories").json()["items"]}
    assert categories["kitchen"]["product_count"] >= 2
    page = gw.get("/products", params={"category": "kitchen", "sort": "price_asc"})
    assert page.status_code == 200 and page.json()["items"]
    assert gw.get(f"/products/{kettle['id']}").json()["name"] == kettle["name"]

    # A cart of two products.
    gw.put(f"/cart/items/{kettle['id']}", json={"quantity": 2}, headers=jo.headers)
    cart = gw.put(f"/cart/items/{mugs['id']}", json={"quantity": 1}, headers=jo.headers)
    assert cart.status_code == 200, cart.text
    total = 2 * 2450 + 1299
    assert cart.json()["total_cents"] == total and cart.json()["currency"] == "USD"
    assert {(i["product_id"], i["quantity"]) for i in cart.json()["items"]} == {
        (kettle["id"], 2),
        (mugs["id"], 1),
    }

    # Checkout: confirmed, the cart is empty, the stock is taken.
    placed = checkout(gw, jo)
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["status"] == "confirmed" and order["total_cents"] == total
    assert {(i["product_id"], i["quantity"], i["unit_price_cents"]) for i in order["items"]} == {
        (kettle["id"], 2, 2450),
        (mugs["id"], 1, 1299),
    }
    assert gw.get("/cart", headers=jo.headers).json()["items"] == []
    assert (stock(gw, kettle), stock(gw, mugs)) == (3, 3)

    # The confirmation email lists the items and the total.
    confirmation = mail_to(platform, jo, "Your ShopFlow order is confirmed")
    assert usd(total) in confirmation["Subject"]
    body = text_of(confirmation)
    assert order["id"] in body
    assert kettle["name"] in body and "2 x $24.50 = $49.00" in body
    assert mugs["name"] in body and "1 x $12.99 = $12.99" in body
    assert f"Total: {usd(total)}" in body

    # The order list, and the payment: captured, last4 only.
    orders = gw.get("/orders", headers=jo.headers).json()
    assert [o["id"] for o in orders["items"]] == [order["id"]] and orders["total"] == 1
    assert gw.get(f"/orders/{order['id']}", headers=jo.headers).json()["status"] == "confirmed"
    payment = gw.get(f"/payments/{order['payment_id']}", headers=jo.headers)
    assert payment.status_code == 200
    assert set(payment.json()) == {
        "id",
        "order_id",
        "status",
        "amount_cents",
        "currency",
        "card",
        "created_at",
    }
    assert payment.json()["status"] == "captured" and payment.json()["amount_cents"] == total
    assert payment.json()["card"] == {"brand": "visa", "last4": "4242"}
    assert APPROVED not in payment.text

    # Cancel: stock back, payment refunded, cancellation and refund emails.
    cancelled = gw.post(f"/orders/{order['id']}/cancel", headers=jo.headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert (stock(gw, kettle), stock(gw, mugs)) == (5, 4)
    refunded = gw.get(f"/payments/{order['payment_id']}", headers=jo.headers).json()
    assert refunded["status"] == "refunded"
    problem(gw.post(f"/orders/{order['id']}/cancel", headers=jo.headers), 409)
    mail_to(platform, jo, "Your ShopFlow order has been cancelled")
    refund = mail_to(platform, jo, "Your refund of")
    assert usd(total) in refund["Subject"]

    # The notification list: all four, newest first, each sent by email.
    notes = notifications(gw, jo, 4)
    assert all(n["status"] == "sent" for n in notes)
    assert {n["type"] for n in notes} == {
        "user.registered",
        "order.confirmed",
        "order.cancelled",
        "payment.refunded",
    }
    assert notes[-1]["type"] == "user.registered"  # newest first: the welcome is oldest
    assert all(n["channel"] == "email" for n in notes)
    stamps = [n["created_at"] for n in notes]
    assert stamps == sorted(stamps, reverse=True)


@pytest.mark.parametrize(
    ("card", "decline_code"),
    [(DECLINED, "card_declined"), (INSUFFICIENT_FUNDS, "insufficient_funds")],
    ids=["declined", "insufficient-funds"],
)
def test_a_refused_card_keeps_the_order_and_the_stock(
    gw: httpx.Client, platform: Platform, card: str, decline_code: str
) -> None:
    product = new_product(gw, admin(gw, platform), "Journey Lamp", 3100, 2)
    sam = register(gw, "Sam Declined")
    gw.put(f"/cart/items/{product['id']}", json={"quantity": 2}, headers=sam.headers)
    body = problem(checkout(gw, sam, card), 402)
    assert body["decline_code"] == decline_code and card not in str(body)
    assert stock(gw, product) == 2  # the reservation was released
    (kept,) = gw.get("/orders", headers=sam.headers).json()["items"]
    assert kept["status"] == "payment_failed"
    # The cart is kept for another try with another card.
    assert gw.get("/cart", headers=sam.headers).json()["total_cents"] == 6200


def test_an_empty_cart_cannot_be_checked_out(gw: httpx.Client) -> None:
    emma = register(gw, "Emma Empty")
    problem(checkout(gw, emma), 409)
    assert gw.get("/orders", headers=emma.headers).json()["items"] == []


def test_out_of_stock(gw: httpx.Client, platform: Platform) -> None:
    boss = admin(gw, platform)
    product = new_product(gw, boss, "Journey Last One", 999, 1)
    olly = register(gw, "Olly Outofstock")
    problem(gw.put(f"/cart/items/{product['id']}", json={"quantity": 2}, headers=olly.headers), 409)
    cart = gw.put(f"/cart/items/{product['id']}", json={"quantity": 1}, headers=olly.headers)
    assert cart.status_code == 200
    # Someone else buys the last one first.
    quick = register(gw, "Quinn Quicker")
    gw.put(f"/cart/items/{product['id']}", json={"quantity": 1}, headers=quick.headers)
    assert checkout(gw, quick).status_code == 201
    assert stock(gw, product) == 0
    problem(checkout(gw, olly), 409)
    (rejected,) = gw.get("/orders", headers=olly.headers).json()["items"]
    assert rejected["status"] == "rejected"
    assert stock(gw, product) == 0  # never negative


def test_a_second_shopper_sees_nothing_of_the_first(gw: httpx.Client, platform: Platform) -> None:
    product = new_product(gw, admin(gw, platform), "Journey Secret", 1500, 3)
    first = register(gw, "First Shopper")
    gw.put(f"/cart/items/{product['id']}", json={"quantity": 1}, headers=first.headers)
    order = checkout(gw, first).json()
    second = register(gw, "Second Shopper")

    assert gw.get("/orders", headers=second.headers).json()["items"] == []
    problem(gw.get(f"/orders/{order['id']}", headers=second.headers), 404)
    problem(gw.post(f"/orders/{order['id']}/cancel", headers=second.headers), 404)
    problem(gw.get(f"/payments/{order['payment_id']}", headers=second.headers), 404)
    assert gw.get("/cart", headers=second.headers).json()["items"] == []

    theirs = notifications(gw, second, 1)
    assert [n["type"] for n in theirs] == ["user.registered"]
    mine = notifications(gw, first, 2)
    assert not {n["id"] for n in mine} & {n["id"] for n in theirs}
    # The first shopper's order is still theirs, untouched.
    assert gw.get(f"/orders/{order['id']}", headers=first.headers).json()["status"] == "confirmed"
