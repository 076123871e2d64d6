"""kill -9 of order-mgmt at every step boundary, then a restart: every order finishes.

order-mgmt runs with a test-only crash point (``test_sigkill_after_step`` /
``test_sigkill_before_step``): it SIGKILLs itself right after persisting an
order at that step, or right before persisting it. It is then started again
without one, and its recovery loop (a short threshold here) must bring the
order to a final state with stock = initial - confirmed quantities and money
taken for exactly the confirmed orders.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from order_mgmt.service import _CLAIM_STUCK

from tests.utils.order_mgmt import (
    APPROVED,
    DECLINED,
    Shop,
    Shopper,
    checkout,
    eventually,
    fill_cart,
)
from tests.utils.services import start

ORDER_SETTINGS = {
    "catalog_timeout_seconds": "3",
    "payment_timeout_seconds": "3",
    "checkout_deadline_seconds": "8",
    # Above the longest stretch without a write: a charge (3 s) and a commit (3 s).
    "recovery_after_seconds": "7",
    "recovery_interval_seconds": "0.3",
}
STOCK, BOUGHT = 5, 2
FINAL = frozenset({"confirmed", "payment_failed", "rejected", "cancelled"})


async def crash_during(shop: Shop, call: Any, **crash: str) -> None:
    """Run ``call`` against an order-mgmt that kills itself at the crash point; restart it."""
    shop.start_orders(migrate=False, **crash)
    assert shop.orders is not None
    with pytest.raises(httpx.TransportError):
        await call()
    process = shop.orders.child.process
    assert process is not None
    assert process.wait(30) == -signal.SIGKILL
    shop.start_orders(migrate=False)


async def settled_order(
    api: httpx.AsyncClient, me: Shopper, ends: frozenset[str] = FINAL
) -> dict[str, Any]:
    """The shopper's (only) order once its status is one of ``ends``."""

    async def final() -> dict[str, Any] | None:
        orders = (await api.get("/orders", headers=me)).json()["items"]
        return orders[0] if orders and orders[0]["status"] in ends else None

    order: dict[str, Any] = await eventually(final)
    return order


async def assert_books_balance(shop: Shop, order: dict[str, Any], product: dict[str, Any]) -> None:
    confirmed = order["status"] == "confirmed"
    stock = STOCK - BOUGHT if confirmed else STOCK
    assert await shop.physical_stock(product["id"]) == stock
    assert await shop.available(product["id"]) == stock  # nothing is left held
    charged = order["id"] in await shop.captured_orders()
    assert charged == confirmed
    events = [
        e for e in await shop.outbox("order.confirmed") if e["data"]["order_id"] == order["id"]
    ]
    assert len(events) == (1 if order["status"] in ("confirmed", "cancelled") else 0)


def after(step: str) -> dict[str, str]:
    return {"test_sigkill_after_step": step}


def before(step: str) -> dict[str, str]:
    return {"test_sigkill_before_step": step}


@pytest.mark.parametrize(
    ("crash", "card", "expected"),
    [
        # Before the charge the card is gone with the process: the stock is given back.
        pytest.param(after("placed"), APPROVED, "payment_failed", id="after-placed"),
        pytest.param(after("reserved"), APPROVED, "payment_failed", id="after-reserved"),
        # The attempt was noted but never sent: payment-api holds nothing for the order.
        pytest.param(after("charging"), APPROVED, "payment_failed", id="after-charging"),
        # Captured, but the process died before it could note it: found, then committed.
        pytest.param(before("charged"), APPROVED, "confirmed", id="before-charged"),
        pytest.param(after("charged"), APPROVED, "confirmed", id="after-charged"),
        pytest.param(before("confirmed"), APPROVED, "confirmed", id="before-confirmed"),
        pytest.param(after("confirmed"), APPROVED, "confirmed", id="after-confirmed"),
        # Declined, and killed before the stock was released.
        pytest.param(after("releasing"), DECLINED, "payment_failed", id="after-releasing"),
    ],
)
async def test_a_checkout_killed_at_a_step_boundary_finishes(
    api: httpx.AsyncClient, shop: Shop, crash: dict[str, str], card: str, expected: str
) -> None:
    me = shop.shopper()
    product = await shop.product(stock=STOCK)
    await fill_cart(api, me, (product, BOUGHT))
    key = f"k-{uuid.uuid4()}"
    await crash_during(shop, lambda: checkout(api, me, key, card=card), **crash)
    order = await settled_order(api, me)
    assert order["status"] == expected
    await assert_books_balance(shop, order, product)
    assert len(await shop.orders_of(me)) == 1
    # The shopper's retry gets the final result, once the dead request's claim has lapsed.
    retry = await eventually(
        lambda: _unless_in_flight(checkout(api, me, key, card=card)), within=60, every=1
    )
    assert retry.status_code == {"confirmed": 201, "payment_failed": 402}[expected]
    assert retry.json().get("id", retry.json().get("order_id")) == order["id"]


async def _unless_in_flight(response: Any) -> httpx.Response | None:
    """The answer, unless it says "still in progress, retry" (a final 409 has no Retry-After)."""
    answered: httpx.Response = await response
    in_flight = answered.status_code == 409 and "retry-after" in answered.headers
    return None if in_flight else answered


@pytest.mark.parametrize(
    "crash",
    [
        pytest.param(after("cancelling"), id="after-cancelling"),
        pytest.param(before("restocking"), id="before-restocking"),
        pytest.param(after("restocking"), id="after-restocking"),
        pytest.param(before("cancelled"), id="before-cancelled"),
    ],
)
async def test_a_cancellation_killed_at_a_step_boundary_finishes(
    api: httpx.AsyncClient, shop: Shop, crash: dict[str, str]
) -> None:
    me = shop.shopper()
    product = await shop.product(stock=STOCK)
    await fill_cart(api, me, (product, BOUGHT))
    order = (await checkout(api, me)).json()
    assert order["status"] == "confirmed"
    await crash_during(shop, lambda: api.post(f"/orders/{order['id']}/cancel", headers=me), **crash)
    # A cancellation under way still reads "confirmed"; only "cancelled" ends it.
    settled = await settled_order(api, me, frozenset({"cancelled"}))
    await assert_books_balance(shop, settled, product)
    [payment] = await shop.payments_for(order["id"])
    assert payment["status"] == "refunded"
    cancelled = [
        e for e in await shop.outbox("order.cancelled") if e["data"]["order_id"] == order["id"]
    ]
    assert len(cancelled) == 1


async def test_a_reservation_that_lapsed_while_down_is_refunded_and_rejected(
    api: httpx.AsyncClient, shop: Shop
) -> None:
    me = shop.shopper()
    product = await shop.product(stock=STOCK)
    await fill_cart(api, me, (product, BOUGHT))
    key = f"k-{uuid.uuid4()}"
    shop.start_orders(migrate=False, test_sigkill_after_step="charged")
    with pytest.raises(httpx.TransportError):
        await checkout(api, me, key)
    assert shop.orders is not None and shop.orders.child.process is not None
    assert shop.orders.child.process.wait(30) == -signal.SIGKILL
    [row] = await shop.orders_of(me)
    order_id = row["id"]
    # Time passes while order-mgmt is down: the reservation's TTL runs out.
    await shop.query(
        "catalog",
        "UPDATE reservations SET expires_at = now() - interval '1 second' WHERE order_id = $1",
        order_id,
    )
    assert await shop.available(product["id"]) == STOCK
    shop.start_orders(migrate=False)
    order = await settled_order(api, me)
    assert order["status"] == "rejected"
    [payment] = await shop.payments_for(str(order_id))
    assert payment["status"] == "refunded"  # charged, then refunded: never oversold
    await assert_books_balance(shop, order, product)
    retry = await eventually(lambda: _unless_in_flight(checkout(api, me, key)), within=60, every=1)
    assert retry.status_code == 409 and retry.json()["title"] == "Reservation expired"


async def test_orders_caught_mid_flight_are_finished_by_two_replicas(
    api: httpx.AsyncClient, shop: Shop
) -> None:
    """Many checkouts at once; the process dies under them; two replicas share the recovery."""
    product = await shop.product(stock=20)
    shoppers = [shop.shopper() for _ in range(12)]
    for who in shoppers:
        await fill_cart(api, who, (product, 1))
    shop.start_orders(migrate=False, test_sigkill_after_step="charged")
    assert shop.orders is not None
    results = await asyncio.gather(
        *(checkout(api, who) for who in shoppers), return_exceptions=True
    )
    assert any(isinstance(r, httpx.TransportError) for r in results)
    assert shop.orders.child.process is not None
    assert shop.orders.child.process.wait(30) == -signal.SIGKILL
    orders = [o for who in shoppers for o in await shop.orders_of(who)]
    assert any(o["step"] not in FINAL for o in orders)  # some were caught half-way
    # Two replicas on the same database, each running the recovery loop (SKIP LOCKED).
    shop.start_orders(migrate=False)
    second = start(
        "order-mgmt", shop.databases["orders"], shop.log_dir, migrate=False, extra=shop.order_env()
    )
    try:

        async def all_final() -> bool:
            steps = await shop.query(
                "orders",
                "SELECT step FROM orders WHERE id = ANY($1::uuid[])",
                [o["id"] for o in orders],
            )
            return all(r["step"] in FINAL for r in steps)

        await eventually(all_final, within=120)
    finally:
        second.stop()
    rows = await shop.query(
        "orders",
        "SELECT id, step FROM orders WHERE id = ANY($1::uuid[])",
        [o["id"] for o in orders],
    )
    confirmed = {str(r["id"]) for r in rows if r["step"] == "confirmed"}
    assert await shop.physical_stock(product["id"]) == 20 - len(confirmed)
    assert await shop.available(product["id"]) == 20 - len(confirmed)
    ours = {str(r["id"]) for r in rows}
    assert (await shop.captured_orders()) & ours == confirmed
    events = [e for e in await shop.outbox("order.confirmed") if e["data"]["order_id"] in ours]
    assert sorted(e["data"]["order_id"] for e in events) == sorted(confirmed)


async def test_the_recovery_sweep_reads_the_unfinished_orders_index(shop: Shop) -> None:
    """Under one generic plan per statement (shopflow_kit.db), as the service plans it.

    With the unfinished steps as a parameter PostgreSQL could not prove that the
    partial index applies, and every sweep read every order ever placed.
    """
    conn = await asyncpg.connect(
        shop.databases["orders"], server_settings={"plan_cache_mode": "force_generic_plan"}
    )
    try:
        await conn.execute("SET enable_seqscan = off")  # a tiny table would be scanned anyway
        # A prepared statement's generic plan (a plain EXPLAIN would plan it
        # with the parameters' values).
        await conn.execute(f"PREPARE claim(uuid, timestamptz, int) AS {_CLAIM_STUCK}")
        plan = "\n".join(
            row[0]
            for row in await conn.fetch("EXPLAIN EXECUTE claim(gen_random_uuid(), now(), 10)")
        )
    finally:
        await conn.close()
    assert "orders_unfinished_idx" in plan, plan
