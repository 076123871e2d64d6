"""A dependency down or hanging: 503 with Retry-After, the order keeps its step, a retry finishes it.

The dependencies are really stopped and started again (or their line really
hangs). Recovery is set far off here, so only the shopper's retry moves orders.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.utils.order_mgmt import Shop, checkout, eventually, fill_cart

ORDER_SETTINGS = {
    "catalog_timeout_seconds": "2",
    "payment_timeout_seconds": "2",
    "checkout_deadline_seconds": "10",
    "recovery_after_seconds": "600",
}


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert "Idempotency-Key" in response.json()["detail"]


async def test_catalog_down_then_back(api: httpx.AsyncClient, shop: Shop) -> None:
    me = shop.shopper()
    product = await shop.product(stock=5)
    await fill_cart(api, me, (product, 2))
    key = f"k-{uuid.uuid4()}"
    shop.catalog.stop()
    try:
        assert_unavailable(await checkout(api, me, key))
        assert await shop.orders_of(me) == []  # nothing was priced, so nothing was written
    finally:
        shop.restart_catalog()
    done = await checkout(api, me, key)
    assert done.status_code == 201 and done.json()["status"] == "confirmed"
    assert await shop.physical_stock(product["id"]) == 3


async def test_payment_api_down_then_back(api: httpx.AsyncClient, shop: Shop) -> None:
    me = shop.shopper()
    product = await shop.product(stock=5)
    await fill_cart(api, me, (product, 2))
    key = f"k-{uuid.uuid4()}"
    assert shop.payments is not None
    shop.payments.stop()
    try:
        assert_unavailable(await checkout(api, me, key))
        [pending] = (await api.get("/orders", headers=me)).json()["items"]
        assert pending["status"] == "pending" and pending["payment_id"] is None
        assert await shop.available(product["id"]) == 3  # still held for this order
    finally:
        shop.restart_payments()
    done = await checkout(api, me, key)
    assert done.status_code == 201, done.text
    assert done.json()["id"] == pending["id"] and done.json()["status"] == "confirmed"
    [payment] = await shop.payments_for(pending["id"])
    assert payment["status"] == "captured"
    assert await shop.physical_stock(product["id"]) == 3
    replay = await checkout(api, me, key)
    assert replay.json() == done.json() and replay.headers["idempotent-replayed"] == "true"


async def test_payment_api_hanging_then_answering(api: httpx.AsyncClient, shop: Shop) -> None:
    me = shop.shopper()
    product = await shop.product(stock=5)
    await fill_cart(api, me, (product, 1))
    key = f"k-{uuid.uuid4()}"
    assert shop.payment_line is not None
    shop.payment_line.hold()
    try:
        assert_unavailable(await checkout(api, me, key))  # the call timed out
    finally:
        # The held request now reaches payment-api, late: it may or may not be charged.
        shop.payment_line.let_go()
    [pending] = (await api.get("/orders", headers=me)).json()["items"]
    assert pending["status"] == "pending"
    done = await eventually(lambda: _finished(checkout(api, me, key)), within=60, every=0.5)
    assert done.status_code == 201 and done.json()["id"] == pending["id"]
    # Whatever the late request did, the retry reused its key: one captured payment.
    payments = await shop.payments_for(pending["id"])
    assert [p["status"] for p in payments] == ["captured"]


async def _finished(response: object) -> httpx.Response | None:
    answered: httpx.Response = await response  # type: ignore[misc]
    # 409: payment-api is still working on the late attempt; 503: so is order-mgmt's call.
    return None if answered.status_code in (409, 503) else answered


async def test_a_shopper_who_hangs_up_leaves_the_order_to_their_retry(
    api: httpx.AsyncClient, shop: Shop
) -> None:
    me = shop.shopper()
    product = await shop.product(stock=5)
    await fill_cart(api, me, (product, 1))
    key = f"k-{uuid.uuid4()}"
    assert shop.payment_line is not None and shop.orders is not None
    shop.payment_line.hold()
    try:
        async with httpx.AsyncClient(base_url=shop.orders.base_url, timeout=1) as impatient:
            with pytest.raises(httpx.ReadTimeout):
                await checkout(impatient, me, key)

        async def parked() -> bool:
            rows = await shop.query(
                "orders",
                "SELECT lease_owner FROM orders WHERE customer_id = $1",
                uuid.UUID(me.id),
            )
            return bool(rows) and rows[0]["lease_owner"] is None

        # Sanic cancels the handler when its client goes; the order is let go at once
        # (recovery is 10 minutes away here), so the retry need not wait for a lease.
        await eventually(parked)
    finally:
        shop.payment_line.let_go()
    done = await eventually(lambda: _finished(checkout(api, me, key)), within=60, every=0.5)
    assert done.status_code == 201
    [row] = await shop.orders_of(me)
    assert [p["status"] for p in await shop.payments_for(str(row["id"]))] == ["captured"]
