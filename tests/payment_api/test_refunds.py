"""Refunds: full, idempotent, only of captured payments, one under concurrency, with an event."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from joserfc import jwt

from tests.utils.issuer import TokenIssuer
from tests.utils.payment_api import (
    DECLINED,
    PROCESSING_ERROR,
    EventSink,
    Payments,
    charge,
    charge_body,
    db_fetch,
    service_auth,
    user_auth,
)


async def captured(http: httpx.AsyncClient, issuer: TokenIssuer) -> dict[str, Any]:
    response = await charge(http, issuer, charge_body(amount_cents=2599, currency="EUR"))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def refund(
    http: httpx.AsyncClient, issuer: TokenIssuer, payment_id: str, scope: str = "payments:refund"
) -> httpx.Response:
    return await http.post(
        f"/internal/payments/{payment_id}/refund", headers=service_auth(issuer, scope)
    )


async def outbox_events(payments: Payments, payment_id: str) -> list[Any]:
    return await db_fetch(
        payments.database_url,
        "SELECT * FROM outbox WHERE type = 'payment.refunded' AND data->>'payment_id' = $1",
        payment_id,
    )


async def test_a_refund_is_full_and_repeatable(
    client: httpx.AsyncClient, issuer: TokenIssuer, payments: Payments
) -> None:
    payment = await captured(client, issuer)
    first = await refund(client, issuer, payment["id"])
    assert first.status_code == 200, first.text
    refunded = first.json()
    assert refunded["status"] == "refunded"
    assert datetime.fromisoformat(refunded["refunded_at"]) >= datetime.fromisoformat(
        refunded["created_at"]
    )
    assert {k: v for k, v in refunded.items() if k not in ("status", "refunded_at")} == {
        k: v for k, v in payment.items() if k not in ("status", "refunded_at")
    }
    again = await refund(client, issuer, payment["id"])
    assert again.status_code == 200 and again.json() == refunded
    assert len(await outbox_events(payments, payment["id"])) == 1
    # A refunded payment stays refunded for its owner too.
    mine = await client.get(
        f"/payments/{payment['id']}", headers=user_auth(issuer, payment["customer_id"])
    )
    assert mine.json()["status"] == "refunded"


@pytest.mark.parametrize("number", [DECLINED, PROCESSING_ERROR])
async def test_only_captured_payments_can_be_refunded(
    client: httpx.AsyncClient, issuer: TokenIssuer, payments: Payments, number: str
) -> None:
    declined = await charge(client, issuer, charge_body(number))
    payment_id = declined.json()["payment_id"]
    response = await refund(client, issuer, payment_id)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert "only a captured payment" in response.json()["detail"]
    assert await outbox_events(payments, payment_id) == []


@pytest.mark.parametrize("payment_id", [str(uuid.uuid4()), "not-a-uuid", "1"])
async def test_unknown_payments_are_404(
    client: httpx.AsyncClient, issuer: TokenIssuer, payment_id: str
) -> None:
    response = await refund(client, issuer, payment_id)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_refunding_needs_the_refund_scope(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    payment = await captured(client, issuer)
    assert (await refund(client, issuer, payment["id"], "payments:charge")).status_code == 403
    shopper = await client.post(
        f"/internal/payments/{payment['id']}/refund",
        headers=user_auth(issuer, payment["customer_id"], role="admin"),
    )
    assert shopper.status_code == 401
    assert (await client.post(f"/internal/payments/{payment['id']}/refund")).status_code == 401


async def test_concurrent_refunds_give_one_refund(
    client: httpx.AsyncClient, issuer: TokenIssuer, payments: Payments
) -> None:
    payment = await captured(client, issuer)
    responses = await asyncio.gather(*(refund(client, issuer, payment["id"]) for _ in range(20)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["refunded_at"] for r in responses}) == 1
    assert len(await outbox_events(payments, payment["id"])) == 1


async def test_the_refund_event_reaches_notify_hub(
    client: httpx.AsyncClient, issuer: TokenIssuer, payments: Payments, sink: EventSink
) -> None:
    payment = await captured(client, issuer)
    assert (await refund(client, issuer, payment["id"])).status_code == 200
    (row,) = await outbox_events(payments, payment["id"])
    (envelope,) = await sink.wait_for("payment.refunded", payment_id=payment["id"])
    assert envelope["id"] == str(row["id"])
    assert envelope["subject_user_id"] == payment["customer_id"]
    assert envelope["data"] == {
        "payment_id": payment["id"],
        "order_id": payment["order_id"],
        "amount_cents": 2599,
        "currency": "EUR",
    }
    # Delivered with payment-api's own service token, scoped to publishing only.
    claims = jwt.decode(sink.tokens[-1], issuer.keys[0]).claims
    assert claims["sub"] == "payment-api" and claims["scope"] == "notifications:publish"
    for _ in range(100):
        (row,) = await outbox_events(payments, payment["id"])
        if row["delivered_at"] is not None:
            break
        await asyncio.sleep(0.1)
    assert row["delivered_at"] is not None and row["attempts"] == 0
