"""Idempotency with Stripe's semantics, and at most one capture per order, under real concurrency."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from tests.utils.issuer import TokenIssuer
from tests.utils.payment_api import (
    APPROVED,
    DECLINED,
    PROCESSING_ERROR,
    Payments,
    card,
    charge,
    charge_body,
    db_fetch,
    service_auth,
)


async def payments_for(payments: Payments, order_id: str) -> list[asyncpg.Record]:
    return await db_fetch(
        payments.database_url,
        "SELECT id, status FROM payments WHERE order_id = $1 ORDER BY created_at",
        uuid.UUID(order_id),
    )


async def test_a_replay_answers_the_first_result_with_the_marker(
    client: httpx.AsyncClient, issuer: TokenIssuer, payments: Payments
) -> None:
    body, key = charge_body(), str(uuid.uuid4())
    first = await charge(client, issuer, body, key)
    again = await charge(client, issuer, body, key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(await payments_for(payments, body["order_id"])) == 1


async def test_a_decline_is_replayed_too(
    client: httpx.AsyncClient, issuer: TokenIssuer, payments: Payments
) -> None:
    body, key = charge_body(DECLINED), str(uuid.uuid4())
    first = await charge(client, issuer, body, key)
    again = await charge(client, issuer, body, key)
    assert first.status_code == again.status_code == 402
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json() == first.json() and again.json()["decline_code"] == "card_declined"
    assert again.headers["idempotent-replayed"] == "true"
    assert len(await payments_for(payments, body["order_id"])) == 1


async def test_same_key_with_different_parameters_is_422(
    client: httpx.AsyncClient, issuer: TokenIssuer, payments: Payments
) -> None:
    body, key = charge_body(), str(uuid.uuid4())
    assert (await charge(client, issuer, body, key)).status_code == 201
    for changed in (
        {**body, "amount_cents": body["amount_cents"] + 1},
        {**body, "card": card("5555555555554444")},
    ):
        response = await charge(client, issuer, changed, key)
        assert response.status_code == 422
        assert "different request" in response.json()["detail"]
        assert "5555555555554444" not in response.text
    assert len(await payments_for(payments, body["order_id"])) == 1


async def test_keys_belong_to_the_calling_client(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    key = str(uuid.uuid4())
    ours = await charge(client, issuer, charge_body(), key)
    other_client = service_auth(issuer, "payments:charge", sub="another-client")
    theirs = await client.post(
        "/internal/payments",
        json=charge_body(),
        headers={**other_client, "Idempotency-Key": key},
    )
    assert ours.status_code == theirs.status_code == 201
    assert ours.json()["id"] != theirs.json()["id"]
    assert "idempotent-replayed" not in theirs.headers


async def _wait_until_blocked(payments: Payments, conn: asyncpg.Connection) -> None:
    """Until another session of this database waits on a lock while inserting a payment."""
    for _ in range(600):
        waiting = await conn.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND pid <> pg_backend_pid()
                 AND wait_event_type = 'Lock' AND query ILIKE 'INSERT INTO "payments"%'"""
        )
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the first charge never reached its INSERT")


async def test_a_key_in_flight_gets_409_with_retry_after(
    client: httpx.AsyncClient, issuer: TokenIssuer, payments: Payments
) -> None:
    body, key = charge_body(), str(uuid.uuid4())
    # Hold the first request in flight, mid-transaction, by making its INSERT wait.
    blocker = await asyncpg.connect(payments.database_url)
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("LOCK TABLE payments IN SHARE ROW EXCLUSIVE MODE")
        first = asyncio.create_task(charge(client, issuer, body, key))
        observer = await asyncpg.connect(payments.database_url)
        try:
            await _wait_until_blocked(payments, observer)
        finally:
            await observer.close()
        in_flight = await charge(client, issuer, body, key)
        assert in_flight.status_code == 409
        assert in_flight.headers["content-type"] == "application/problem+json"
        assert int(in_flight.headers["retry-after"]) >= 1
        await transaction.rollback()
    finally:
        await blocker.close()
    assert (await first).status_code == 201
    retried = await charge(client, issuer, body, key)
    assert retried.status_code == 201 and retried.json() == (await first).json()
    assert retried.headers["idempotent-replayed"] == "true"


async def test_fifty_concurrent_identical_requests_charge_once(
    client: httpx.AsyncClient, issuer: TokenIssuer, payments: Payments
) -> None:
    body, key = charge_body(), str(uuid.uuid4())
    responses = await asyncio.gather(*(charge(client, issuer, body, key) for _ in range(50)))
    assert {r.status_code for r in responses} <= {201, 409}
    fresh = [
        r for r in responses if r.status_code == 201 and "idempotent-replayed" not in r.headers
    ]
    assert len(fresh) == 1
    payment_id = fresh[0].json()["id"]
    assert {r.json()["id"] for r in responses if r.status_code == 201} == {payment_id}
    assert all(r.headers["retry-after"] for r in responses if r.status_code == 409)
    # Whoever was told to retry gets the one payment.
    for retry in [r for r in responses if r.status_code == 409]:
        again = await charge(client, issuer, body, key)
        assert again.status_code == 201 and again.json()["id"] == payment_id, retry
    rows = await payments_for(payments, body["order_id"])
    assert [(str(r["id"]), r["status"]) for r in rows] == [(payment_id, "captured")]


async def test_concurrent_keys_for_one_order_capture_it_once(
    client: httpx.AsyncClient, issuer: TokenIssuer, payments: Payments
) -> None:
    body = charge_body()
    responses = await asyncio.gather(*(charge(client, issuer, body) for _ in range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 19 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    rows = await payments_for(payments, body["order_id"])
    assert [r["status"] for r in rows] == ["captured"]


async def test_a_retry_after_a_processing_error_never_double_charges(
    client: httpx.AsyncClient, issuer: TokenIssuer, payments: Payments
) -> None:
    body = charge_body(PROCESSING_ERROR)
    failed = await charge(client, issuer, body)
    assert failed.status_code == 402 and failed.json()["retryable"] is True
    # order-mgmt retries with a new key (and here, another card): one capture...
    retry = {**body, "card": card(APPROVED)}
    first, second = await asyncio.gather(
        charge(client, issuer, retry), charge(client, issuer, retry)
    )
    assert sorted([first.status_code, second.status_code]) == [200, 201]
    assert first.json()["id"] == second.json()["id"]
    # ...and any later attempt for the order, whatever the card, answers that payment.
    later = await charge(client, issuer, {**body, "card": card("5555555555554444")})
    assert later.status_code == 200 and later.json()["id"] == first.json()["id"]
    rows = await payments_for(payments, body["order_id"])
    assert [r["status"] for r in rows] == ["failed", "captured"]


async def test_the_database_refuses_a_second_capture_for_an_order(payments: Payments) -> None:
    """The guarantee under the code: even a direct INSERT cannot capture an order twice."""
    conn = await asyncpg.connect(payments.database_url)
    order = uuid.uuid4()
    insert = """INSERT INTO payments (id, order_id, customer_id, status, amount_cents, currency,
                    card_brand, card_last4, card_exp_month, card_exp_year, card_fingerprint,
                    acquirer, created_at, updated_at, refunded_at)
                VALUES ($1, $2, $3, $4, 100, 'USD', 'visa', '4242', 12, 2040, $5,
                        'sandbox', now(), now(), $6)"""
    fingerprint = "0" * 64
    try:
        await conn.execute(insert, uuid.uuid4(), order, uuid.uuid4(), "captured", fingerprint, None)
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                insert, uuid.uuid4(), order, uuid.uuid4(), "captured", fingerprint, None
            )
        # Declined and failed attempts are not captures; any number of them may exist.
        await conn.execute(insert, uuid.uuid4(), order, uuid.uuid4(), "declined", fingerprint, None)
        await conn.execute(insert, uuid.uuid4(), order, uuid.uuid4(), "failed", fingerprint, None)
        with pytest.raises(asyncpg.CheckViolationError):  # refunded needs refunded_at
            await conn.execute(
                insert, uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), "refunded", fingerprint, None
            )
        with pytest.raises(asyncpg.CheckViolationError):  # last4 is 4 digits, nothing else
            await conn.execute(
                insert.replace("'4242'", "'42-4'"),
                uuid.uuid4(),
                uuid.uuid4(),
                uuid.uuid4(),
                "captured",
                fingerprint,
                None,
            )
    finally:
        await conn.execute("DELETE FROM payments WHERE card_fingerprint = $1", fingerprint)
        await conn.close()
