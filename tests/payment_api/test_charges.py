"""Charging cards over real HTTP: the sandbox's test cards, validation and access."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.utils.issuer import TokenIssuer
from tests.utils.payment_api import (
    AMEX,
    APPROVED,
    DECLINED,
    DISCOVER,
    INSUFFICIENT_FUNDS,
    MASTERCARD,
    PROCESSING_ERROR,
    Payments,
    card,
    charge,
    charge_body,
    db_fetch,
    service_auth,
    user_auth,
)

INTERNAL_FIELDS = {
    "id",
    "order_id",
    "customer_id",
    "status",
    "amount_cents",
    "currency",
    "card",
    "created_at",
    "refunded_at",
}


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        (APPROVED, "visa"),
        ("4242 4242 4242 4242", "visa"),
        ("4242-4242-4242-4242", "visa"),
        (MASTERCARD, "mastercard"),
        ("2223003122003222", "mastercard"),
        (AMEX, "amex"),
        (DISCOVER, "discover"),
        ("9000000000000001", "unknown"),
    ],
)
async def test_approved_cards_are_captured(
    client: httpx.AsyncClient, issuer: TokenIssuer, number: str, brand: str
) -> None:
    body = charge_body(number)
    response = await charge(client, issuer, body)
    assert response.status_code == 201, response.text
    payment = response.json()
    assert set(payment) == INTERNAL_FIELDS
    assert payment["status"] == "captured"
    assert payment["card"] == {"brand": brand, "last4": number[-4:]}
    assert payment["order_id"] == body["order_id"]
    assert payment["customer_id"] == body["customer_id"]
    assert payment["amount_cents"] == 4999 and payment["currency"] == "USD"
    assert payment["refunded_at"] is None
    assert payment["created_at"].endswith("Z")
    uuid.UUID(payment["id"])
    assert "idempotent-replayed" not in response.headers


@pytest.mark.parametrize(
    ("number", "code", "retryable", "status"),
    [
        (DECLINED, "card_declined", False, "declined"),
        (INSUFFICIENT_FUNDS, "insufficient_funds", False, "declined"),
        (PROCESSING_ERROR, "processing_error", True, "failed"),
    ],
)
async def test_declining_test_cards_answer_402(
    client: httpx.AsyncClient,
    issuer: TokenIssuer,
    payments: Payments,
    number: str,
    code: str,
    retryable: bool,
    status: str,
) -> None:
    body = charge_body(number)
    response = await charge(client, issuer, body)
    assert response.status_code == 402, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 402 and problem["title"] and problem["detail"]
    assert problem["decline_code"] == code
    assert problem["retryable"] is retryable
    # The declined or failed attempt is kept, and the owner can read it.
    mine = await client.get(
        f"/payments/{problem['payment_id']}", headers=user_auth(issuer, body["customer_id"])
    )
    assert mine.status_code == 200
    assert mine.json()["status"] == status
    assert mine.json()["card"] == {"brand": "visa", "last4": number[-4:]}
    (row,) = await db_fetch(
        payments.database_url,
        "SELECT status, decline_code FROM payments WHERE id = $1",
        uuid.UUID(problem["payment_id"]),
    )
    assert (row["status"], row["decline_code"]) == (status, code)


def _expired() -> tuple[dict[str, Any], str]:
    """Last month's card, and which field is to blame (the year when last month was December)."""
    now = datetime.now(UTC)
    year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    return {"exp_month": month, "exp_year": year}, (
        "card.exp_month" if year == now.year else "card.exp_year"
    )


EXPIRED, EXPIRED_FIELD = _expired()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"card": card("4242424242424241")}, "card.number"),  # Luhn
        ({"card": card("42424242424")}, "card.number"),  # 11 digits
        ({"card": card("42424242424242424242")}, "card.number"),  # 20 digits
        ({"card": card("4242x42424242424")}, "card.number"),
        ({"card": card("4242_4242_4242_4242")}, "card.number"),
        ({"card": {**card(), "number": 4242424242424242}}, "card.number"),
        ({"card": card(exp_month=13)}, "card.exp_month"),
        ({"card": card(exp_month=0)}, "card.exp_month"),
        ({"card": card(**EXPIRED)}, EXPIRED_FIELD),
        ({"card": card(exp_month=1, exp_year=datetime.now(UTC).year - 1)}, "card.exp_year"),
        ({"card": card(exp_year=datetime.now(UTC).year + 40)}, "card.exp_year"),
        ({"card": card(exp_year="2030")}, "card.exp_year"),
        ({"card": card(cvc="12")}, "card.cvc"),
        ({"card": card(cvc="1234")}, "card.cvc"),  # 4 digits on a Visa
        ({"card": card(AMEX, cvc="123")}, "card.cvc"),  # 3 digits on an Amex
        ({"card": card(cvc="12a")}, "card.cvc"),
        ({"card": card(cvc=123)}, "card.cvc"),
        ({"card": {**card(), "pin": "0000"}}, "card.pin"),
        ({"card": {k: v for k, v in card().items() if k != "cvc"}}, "card.cvc"),
        ({"amount_cents": 0}, "amount_cents"),
        ({"amount_cents": -100}, "amount_cents"),
        ({"amount_cents": 19.99}, "amount_cents"),
        ({"amount_cents": "1999"}, "amount_cents"),
        ({"amount_cents": 100_000_001}, "amount_cents"),
        ({"currency": "JPY"}, "currency"),
        ({"currency": "usd"}, "currency"),
        ({"currency": "DOLLARS"}, "currency"),
        ({"order_id": "order-1"}, "order_id"),
        ({"customer_id": None}, "customer_id"),
    ],
)
async def test_invalid_charges_are_422_naming_the_field(
    client: httpx.AsyncClient, issuer: TokenIssuer, changes: dict[str, Any], field: str
) -> None:
    response = await charge(client, issuer, charge_body(**changes))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert field in [e["field"] for e in problem["errors"]], problem
    # The number is never echoed, however it was written.
    sent = str(changes.get("card", {}).get("number", "4242424242424242"))
    for form in {sent, sent.replace(" ", "").replace("-", ""), "4242424242424242"}:
        assert form not in response.text


async def test_current_month_is_not_expired_and_amex_takes_four_digits(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    now = datetime.now(UTC)
    this_month = card(exp_month=now.month, exp_year=now.year)
    assert (await charge(client, issuer, charge_body(card=this_month))).status_code == 201
    amex = await charge(client, issuer, charge_body(card=card(AMEX, cvc="1234")))
    assert amex.status_code == 201 and amex.json()["card"]["brand"] == "amex"


async def test_the_currencies_the_platform_supports(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    for currency in ("USD", "EUR", "GBP"):
        response = await charge(client, issuer, charge_body(currency=currency, amount_cents=1))
        assert response.status_code == 201 and response.json()["currency"] == currency


async def test_malformed_json_and_missing_key_are_400(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    bad = await client.post(
        "/internal/payments",
        content=b'{"card": {"number": "4242424242424242"',
        headers={
            **service_auth(issuer),
            "Idempotency-Key": "k",
            "content-type": "application/json",
        },
    )
    assert bad.status_code == 400 and "4242424242424242" not in bad.text
    no_key = await client.post(
        "/internal/payments", json=charge_body(), headers=service_auth(issuer)
    )
    assert no_key.status_code == 400 and "Idempotency-Key" in no_key.json()["detail"]
    long_key = await charge(client, issuer, charge_body(), key="k" * 256)
    assert long_key.status_code == 400


async def test_only_a_service_token_with_the_charge_scope_may_charge(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    body, key = charge_body(), {"Idempotency-Key": str(uuid.uuid4())}
    anonymous = await client.post("/internal/payments", json=body, headers=key)
    assert anonymous.status_code == 401
    shopper = await client.post(
        "/internal/payments", json=body, headers={**user_auth(issuer, str(uuid.uuid4())), **key}
    )
    assert shopper.status_code == 401  # a user token is not for aud=shopflow-internal
    refund_only = await client.post(
        "/internal/payments", json=body, headers={**service_auth(issuer, "payments:refund"), **key}
    )
    assert refund_only.status_code == 403
