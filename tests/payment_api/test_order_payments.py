"""``GET /internal/payments?order_id=``: how order-mgmt learns a lost charge's outcome."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx

from tests.utils.issuer import TokenIssuer
from tests.utils.payment_api import (
    APPROVED,
    PROCESSING_ERROR,
    Payments,
    charge,
    charge_body,
    service_auth,
)


async def payments_of(
    client: httpx.AsyncClient, issuer: TokenIssuer, order_id: str, **auth: str
) -> httpx.Response:
    return await client.get(
        "/internal/payments",
        params={"order_id": order_id},
        headers=service_auth(issuer, **auth),
    )


async def test_lists_an_orders_payments_oldest_first(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    body = charge_body(PROCESSING_ERROR)
    failed = await charge(client, issuer, body)
    paid = await charge(client, issuer, {**body, "card": charge_body(APPROVED)["card"]})
    assert (failed.status_code, paid.status_code) == (402, 201)
    response = await payments_of(client, issuer, body["order_id"])
    assert response.status_code == 200
    items = response.json()["items"]
    assert [(i["id"], i["status"]) for i in items] == [
        (failed.json()["payment_id"], "failed"),
        (paid.json()["id"], "captured"),
    ]
    assert items[1] == paid.json()
    nothing = await payments_of(client, issuer, str(uuid.uuid4()))
    assert nothing.status_code == 200 and nothing.json() == {"items": []}


async def test_waits_for_a_charge_in_flight(
    client: httpx.AsyncClient, issuer: TokenIssuer, payments: Payments
) -> None:
    order_id = uuid.uuid4()
    # A charge in flight: it holds the order's lock and has not committed its row yet.
    charging = await asyncpg.connect(payments.database_url)
    try:
        transaction = charging.transaction()
        await transaction.start()
        await charging.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            f"payment-api:order:{order_id}",
        )
        payment_id = uuid.uuid4()
        await charging.execute(
            "INSERT INTO payments (id, order_id, customer_id, status, amount_cents, currency,"
            " card_brand, card_last4, card_exp_month, card_exp_year, card_fingerprint,"
            " acquirer, created_at, updated_at)"
            " VALUES ($1, $2, $3, 'captured', 100, 'USD', 'visa', '4242', 12, 2099,"
            " repeat('a', 64), 'sandbox', now(), now())",
            payment_id,
            order_id,
            uuid.uuid4(),
        )
        lookup = asyncio.ensure_future(payments_of(client, issuer, str(order_id)))
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        while not await charging.fetchval(waiting):
            assert not lookup.done(), (await lookup).text
            await asyncio.sleep(0.05)
        await transaction.commit()
    finally:
        await charging.close()
    # Asked while the charge ran, the answer still has the charge's outcome.
    items = (await lookup).json()["items"]
    assert [(i["id"], i["status"]) for i in items] == [(str(payment_id), "captured")]


async def test_needs_the_charge_scope_and_an_order_id(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    order_id = str(uuid.uuid4())
    refund_only = await payments_of(client, issuer, order_id, scope="payments:refund")
    assert refund_only.status_code == 403
    anonymous = await client.get("/internal/payments", params={"order_id": order_id})
    assert anonymous.status_code == 401
    for bad in ({}, {"order_id": "x"}, {"order_id": order_id, "extra": "1"}):
        response = await client.get("/internal/payments", params=bad, headers=service_auth(issuer))
        assert response.status_code == 400
