"""Reading and cancelling orders: only one's own, refunds and restocks exactly once."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from tests.utils.order_mgmt import DECLINED, Shop, checkout, fill_cart


async def confirmed_order(
    api: httpx.AsyncClient, shop: Shop, me: dict[str, str], *, stock: int = 5, quantity: int = 2
) -> tuple[dict, dict]:
    product = await shop.product(stock=stock)
    await fill_cart(api, me, (product, quantity))
    response = await checkout(api, me)
    assert response.status_code == 201, response.text
    return response.json(), product


async def test_cancel_refunds_restocks_and_emits_the_event(
    api: httpx.AsyncClient, shop: Shop
) -> None:
    me = shop.shopper()
    order, product = await confirmed_order(api, shop, me, stock=5, quantity=2)
    assert await shop.physical_stock(product["id"]) == 3
    response = await api.post(f"/orders/{order['id']}/cancel", headers=me)
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["status"] == "cancelled" and cancelled["id"] == order["id"]
    assert cancelled["payment_id"] == order["payment_id"]
    assert await shop.physical_stock(product["id"]) == 5
    assert await shop.available(product["id"]) == 5
    [payment] = await shop.payments_for(order["id"])
    assert payment["status"] == "refunded" and payment["refunded_at"] is not None
    events = [
        e for e in await shop.outbox("order.cancelled") if e["data"]["order_id"] == order["id"]
    ]
    assert events == [
        {
            "subject_user_id": me.id,
            "data": {"order_id": order["id"], "total_cents": 2000, "currency": "USD"},
        }
    ]
    again = await api.post(f"/orders/{order['id']}/cancel", headers=me)
    assert again.status_code == 409
    assert (await api.get(f"/orders/{order['id']}", headers=me)).json()["status"] == "cancelled"


async def test_concurrent_cancels_refund_once(api: httpx.AsyncClient, shop: Shop) -> None:
    me = shop.shopper()
    order, product = await confirmed_order(api, shop, me, stock=4, quantity=3)
    responses = await asyncio.gather(
        *(api.post(f"/orders/{order['id']}/cancel", headers=me) for _ in range(10))
    )
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 409} and 200 in statuses
    assert await shop.physical_stock(product["id"]) == 4  # restocked once, not ten times
    [payment] = await shop.payments_for(order["id"])
    assert payment["status"] == "refunded"
    events = [
        e for e in await shop.outbox("order.cancelled") if e["data"]["order_id"] == order["id"]
    ]
    assert len(events) == 1


async def test_only_confirmed_orders_can_be_cancelled(api: httpx.AsyncClient, shop: Shop) -> None:
    me = shop.shopper()
    product = await shop.product(stock=1)
    await fill_cart(api, me, (product, 1))
    failed = await checkout(api, me, card=DECLINED)
    assert failed.status_code == 402
    response = await api.post(f"/orders/{failed.json()['order_id']}/cancel", headers=me)
    assert response.status_code == 409 and "payment_failed" in response.json()["detail"]
    # The stock runs out between adding to the cart and checking out: rejected.
    emptied = await shop.catalog_call(
        "PATCH", f"/products/{product['id']}", json={"stock": 0}, headers=shop.admin()
    )
    assert emptied.status_code == 200
    rejected = await checkout(api, me)
    assert rejected.status_code == 409 and rejected.json()["title"] == "Out of stock"
    response = await api.post(f"/orders/{rejected.json()['order_id']}/cancel", headers=me)
    assert response.status_code == 409 and "rejected" in response.json()["detail"]


async def test_other_shoppers_orders_are_404(api: httpx.AsyncClient, shop: Shop) -> None:
    alice, bob = shop.shopper(), shop.shopper()
    order, _ = await confirmed_order(api, shop, alice)
    assert (await api.get(f"/orders/{order['id']}", headers=bob)).status_code == 404
    assert (await api.post(f"/orders/{order['id']}/cancel", headers=bob)).status_code == 404
    assert (await api.get("/orders", headers=bob)).json()["items"] == []
    assert (await api.get(f"/orders/{order['id']}", headers=alice)).status_code == 200
    for missing in (str(uuid.uuid4()), "not-a-uuid"):
        assert (await api.get(f"/orders/{missing}", headers=alice)).status_code == 404
        assert (await api.post(f"/orders/{missing}/cancel", headers=alice)).status_code == 404
    assert (await api.get(f"/orders/{order['id']}")).status_code == 401
    assert (await api.get(f"/orders/{order['id']}", headers=shop.admin())).status_code == 403


async def test_orders_are_listed_newest_first_in_pages(api: httpx.AsyncClient, shop: Shop) -> None:
    me = shop.shopper()
    ids = []
    for _ in range(3):
        order, _ = await confirmed_order(api, shop, me, quantity=1)
        ids.append(order["id"])
    listing = (await api.get("/orders", headers=me)).json()
    assert [o["id"] for o in listing["items"]] == ids[::-1]
    assert (listing["total"], listing["page"], listing["page_size"]) == (3, 1, 20)
    second = (await api.get("/orders", params={"page": 2, "page_size": 2}, headers=me)).json()
    assert [o["id"] for o in second["items"]] == [ids[0]]
    assert (second["total"], second["page"], second["page_size"]) == (3, 2, 2)
    for bad in ({"page_size": 101}, {"page": 0}, {"page": "x"}, {"sort": "id"}):
        assert (await api.get("/orders", params=bad, headers=me)).status_code == 400
