"""POST /orders against real catalog-api and payment-api processes, with real concurrency."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.utils.live import log_once
from tests.utils.order_mgmt import (
    APPROVED,
    DECLINED,
    INSUFFICIENT_FUNDS,
    PROCESSING_ERROR,
    Shop,
    cart_held,
    checkout,
    checkout_body,
    eventually,
    fill_cart,
)


async def test_a_checkout_reserves_charges_commits_and_clears_the_cart(
    api: httpx.AsyncClient, shop: Shop
) -> None:
    me = shop.shopper()
    mug = await shop.product(stock=10, price_cents=1250, name="Mug")
    pen = await shop.product(stock=10, price_cents=199, name="Pen")
    await fill_cart(api, me, (mug, 2), (pen, 3))
    response = await checkout(api, me)
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "confirmed"
    assert order["items"] == [
        {"product_id": mug["id"], "name": "Mug", "unit_price_cents": 1250, "quantity": 2},
        {"product_id": pen["id"], "name": "Pen", "unit_price_cents": 199, "quantity": 3},
    ]
    assert (order["total_cents"], order["currency"]) == (2500 + 597, "USD")
    assert order["shipping_address"] == checkout_body()["shipping_address"]
    assert set(order) == {
        "id",
        "status",
        "items",
        "total_cents",
        "currency",
        "payment_id",
        "shipping_address",
        "created_at",
        "updated_at",
    }
    # Stock taken for good, the cart emptied, one captured payment of the total.
    assert await shop.physical_stock(mug["id"]) == 8
    assert await shop.available(pen["id"]) == 7
    assert (await api.get("/cart", headers=me)).json()["items"] == []
    [payment] = await shop.payments_for(order["id"])
    assert (str(payment["id"]), payment["status"]) == (order["payment_id"], "captured")
    assert payment["amount_cents"] == 3097
    assert shop.payments is not None
    async with httpx.AsyncClient(base_url=shop.payments.base_url) as http:
        seen = await http.get(f"/payments/{order['payment_id']}", headers=me)
    assert seen.status_code == 200 and seen.json()["status"] == "captured"
    # order.confirmed was written with the order, and the relay delivers it.
    events = [
        e for e in await shop.outbox("order.confirmed") if e["data"]["order_id"] == order["id"]
    ]
    assert events == [
        {
            "subject_user_id": me.id,
            "data": {
                "order_id": order["id"],
                "items": [
                    {
                        "product_id": mug["id"],
                        "name": "Mug",
                        "quantity": 2,
                        "unit_price_cents": 1250,
                        "line_total_cents": 2500,
                    },
                    {
                        "product_id": pen["id"],
                        "name": "Pen",
                        "quantity": 3,
                        "unit_price_cents": 199,
                        "line_total_cents": 597,
                    },
                ],
                "total_cents": 3097,
                "currency": "USD",
            },
        }
    ]
    delivered = await eventually(
        lambda: [
            e
            for e in shop.receiver.of_type("order.confirmed")
            if e["data"]["order_id"] == order["id"]
        ]
    )
    assert delivered[0]["subject_user_id"] == me.id
    # The order reads back the same.
    assert (await api.get(f"/orders/{order['id']}", headers=me)).json() == order


async def test_prices_come_from_the_catalog_at_checkout(api: httpx.AsyncClient, shop: Shop) -> None:
    me = shop.shopper()
    product = await shop.product(price_cents=1000)
    await fill_cart(api, me, (product, 1))
    raised = await shop.catalog_call(
        "PATCH", f"/products/{product['id']}", json={"price_cents": 1500}, headers=shop.admin()
    )
    assert raised.status_code == 200
    order = (await checkout(api, me)).json()
    assert order["total_cents"] == 1500 and order["items"][0]["unit_price_cents"] == 1500


async def test_the_same_key_replays_and_a_different_body_is_422(
    api: httpx.AsyncClient, shop: Shop
) -> None:
    me = shop.shopper()
    product = await shop.product(stock=5)
    await fill_cart(api, me, (product, 1))
    key = f"k-{uuid.uuid4()}"
    first = await checkout(api, me, key)
    assert first.status_code == 201
    # The same data, another key order and spacing: the same request.
    body = checkout_body()
    reordered = {"shipping_address": body["shipping_address"], "payment": body["payment"]}
    again = await api.post("/orders", json=reordered, headers={**me, "Idempotency-Key": key})
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    different = await api.post(
        "/orders",
        json={**body, "shipping_address": {**body["shipping_address"], "city": "Shelbyville"}},
        headers={**me, "Idempotency-Key": key},
    )
    assert different.status_code == 422
    assert len(await shop.orders_of(me)) == 1
    assert await shop.available(product["id"]) == 4
    # Keys belong to their shopper: another shopper's same key is a new checkout.
    other = shop.shopper()
    assert (await checkout(api, other, key)).status_code == 409  # their cart is empty


async def test_the_idempotency_key_is_required(api: httpx.AsyncClient, shop: Shop) -> None:
    me = shop.shopper()
    missing = await api.post("/orders", json=checkout_body(), headers=me)
    assert missing.status_code == 400 and "Idempotency-Key" in missing.json()["detail"]
    too_long = await checkout(api, me, "x" * 256)
    assert too_long.status_code == 400


async def test_invalid_bodies_are_422_and_never_echo_the_card(
    api: httpx.AsyncClient, shop: Shop
) -> None:
    me = shop.shopper()
    bad_number = "4242424242424241"  # fails the Luhn check
    response = await checkout(api, me, card=bad_number)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "payment.card_number"
    assert bad_number not in response.text
    body = checkout_body()
    body["payment"]["exp_year"] = 2001
    body["shipping_address"]["country"] = "United States"
    del body["shipping_address"]["city"]
    response = await api.post("/orders", json=body, headers={**me, "Idempotency-Key": "k"})
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {
        "payment.exp_year",
        "shipping_address.country",
        "shipping_address.city",
    }


async def test_what_payment_api_would_refuse_is_refused_before_anything_is_held(
    api: httpx.AsyncClient, shop: Shop
) -> None:
    """Never "declined" for a card or cart payment-api could not charge at all."""
    me = shop.shopper()
    product = await shop.product(stock=200, price_cents=1_500_000)
    await fill_cart(api, me, (product, 1))
    for number, cvc in (("378282246310005", "123"), ("4242424242424242", "1234")):
        body = checkout_body(card=number)
        body["payment"]["cvc"] = cvc
        response = await api.post("/orders", json=body, headers={**me, "Idempotency-Key": cvc})
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["payment.cvc"]
    amex = checkout_body(card="378282246310005")
    amex["payment"]["cvc"] = "1234"
    await fill_cart(api, me, (product, 99))  # 99 x 15,000.00: more than one charge may be
    too_much = await api.post("/orders", json=amex, headers={**me, "Idempotency-Key": "big"})
    assert too_much.status_code == 409, too_much.text
    assert too_much.json()["title"] == "Cart cannot be charged"
    await shop.query(
        "catalog", "UPDATE products SET currency = 'JPY' WHERE id = $1", uuid.UUID(product["id"])
    )
    await fill_cart(api, me, (product, 1))
    yen = await checkout(api, me)
    assert yen.status_code == 409 and "JPY" in yen.json()["detail"], yen.text
    assert await shop.orders_of(me) == []
    assert await shop.available(product["id"]) == 200
    # An Amex card with its 4-digit CVC, on a cart that can be charged, goes through.
    await shop.query(
        "catalog", "UPDATE products SET currency = 'USD' WHERE id = $1", uuid.UUID(product["id"])
    )
    bought = await api.post("/orders", json=amex, headers={**me, "Idempotency-Key": "amex"})
    assert bought.status_code == 201, bought.text


async def test_an_empty_cart_is_409(api: httpx.AsyncClient, shop: Shop) -> None:
    response = await checkout(api, shop.shopper())
    assert response.status_code == 409, response.text
    assert response.json()["title"] == "Cart empty"


async def test_a_key_in_flight_is_409_with_retry_after(api: httpx.AsyncClient, shop: Shop) -> None:
    me = shop.shopper()
    product = await shop.product(stock=5)
    await fill_cart(api, me, (product, 1))
    key = f"k-{uuid.uuid4()}"
    assert shop.payment_line is not None
    shop.payment_line.hold()  # payment-api does not answer: the first request stays in flight
    try:
        first = asyncio.ensure_future(checkout(api, me, key))
        await eventually(lambda: shop.payment_line is not None and shop.payment_line.held_bytes)
        duplicate = await checkout(api, me, key)
        assert duplicate.status_code == 409
        assert int(duplicate.headers["retry-after"]) >= 1
        different = await api.post(
            "/orders",
            json=checkout_body(card="5555555555554444"),
            headers={**me, "Idempotency-Key": key},
        )
        assert different.status_code == 422
    finally:
        shop.payment_line.let_go()
    assert (await first).status_code == 201
    replay = await checkout(api, me, key)
    assert replay.status_code == 201 and replay.json() == (await first).json()


async def test_twenty_concurrent_submits_of_one_key_make_one_order_and_one_charge(
    api: httpx.AsyncClient, shop: Shop
) -> None:
    me = shop.shopper()
    product = await shop.product(stock=50)
    await fill_cart(api, me, (product, 2))
    key = f"k-{uuid.uuid4()}"
    responses = await asyncio.gather(*(checkout(api, me, key) for _ in range(20)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 409} and 201 in statuses
    assert all(r.headers.get("retry-after") for r in responses if r.status_code == 409)
    assert len({r.json()["id"] for r in responses if r.status_code == 201}) == 1
    [order] = await shop.orders_of(me)
    [payment] = await shop.payments_for(str(order["id"]))
    assert payment["status"] == "captured"
    assert await shop.physical_stock(product["id"]) == 48
    final = await checkout(api, me, key)
    assert final.status_code == 201 and final.json()["id"] == str(order["id"])


async def test_parallel_checkouts_of_one_cart_under_different_keys_buy_it_once(
    api: httpx.AsyncClient, shop: Shop
) -> None:
    """A double click or two tabs: each request has its own key, the cart is one."""
    me = shop.shopper()
    product = await shop.product(stock=50)
    await fill_cart(api, me, (product, 3))
    responses = await asyncio.gather(*(checkout(api, me) for _ in range(12)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 1, [r.text for r in responses]
    for response in responses:
        if response.status_code != 201:
            assert response.status_code == 409, response.text
            body = response.json()
            assert body["title"] in ("Checkout in progress", "Cart empty"), body
            if body["title"] == "Checkout in progress":
                assert int(response.headers["retry-after"]) >= 1
    [order] = await shop.orders_of(me)
    assert [p["status"] for p in await shop.payments_for(str(order["id"]))] == ["captured"]
    assert await shop.physical_stock(product["id"]) == 47
    confirmed = [e for e in await shop.outbox("order.confirmed") if e["subject_user_id"] == me.id]
    assert len(confirmed) == 1
    # The cart is bought: the next checkout, whatever its key, finds it empty.
    again = await checkout(api, me)
    assert again.status_code == 409 and again.json()["title"] == "Cart empty"


async def test_a_second_checkout_waits_for_the_first_and_a_changed_line_stays(
    api: httpx.AsyncClient, shop: Shop
) -> None:
    me = shop.shopper()
    mug = await shop.product(stock=20, name="Mug")
    pen = await shop.product(stock=20, name="Pen")
    await fill_cart(api, me, (mug, 1), (pen, 2))
    assert shop.payment_line is not None
    shop.payment_line.hold()  # the first checkout waits on payment-api
    try:
        first = asyncio.ensure_future(checkout(api, me))
        await eventually(lambda: shop.payment_line is not None and shop.payment_line.held_bytes)
        second = await checkout(api, me)
        assert second.status_code == 409, second.text
        assert second.json()["title"] == "Checkout in progress"
        assert int(second.headers["retry-after"]) >= 1
        busy_with = second.json()["order_id"]
        # The shopper changes the mug's line while the first checkout is under way.
        await fill_cart(api, me, (mug, 4))
    finally:
        shop.payment_line.let_go()
    placed = await first
    assert placed.status_code == 201, placed.text
    assert placed.json()["id"] == busy_with  # the 409 named the checkout under way
    assert [(i["name"], i["quantity"]) for i in placed.json()["items"]] == [("Mug", 1), ("Pen", 2)]
    cart = (await api.get("/cart", headers=me)).json()
    # The pen line was bought as it was; the mug line changed since, so it stays.
    assert [(i["name"], i["quantity"]) for i in cart["items"]] == [("Mug", 4)]
    # With the first checkout done, the second key goes through.
    retried = await checkout(api, me)
    assert retried.status_code == 201, retried.text


CHANGES = {
    "quantity": "UPDATE cart_items SET quantity = 3 "
    "WHERE cart_id = (SELECT id FROM carts WHERE customer_id = $1)",
    "added": "INSERT INTO cart_items (cart_id, product_id, name, currency, quantity, added_at) "
    "SELECT id, $2, 'Pen', 'USD', 1, now() FROM carts WHERE customer_id = $1",
    "emptied": "DELETE FROM cart_items "
    "WHERE cart_id = (SELECT id FROM carts WHERE customer_id = $1)",
}


@pytest.mark.parametrize(
    ("change", "status", "expected"),
    [
        ("quantity", 201, [("Mug", 3)]),
        ("added", 409, "Cart changed"),
        ("emptied", 409, "Cart empty"),
    ],
)
async def test_a_cart_changed_while_the_checkout_waits_for_its_lock_is_read_again(
    api: httpx.AsyncClient, shop: Shop, change: str, status: int, expected: object
) -> None:
    """The checkout prices the cart, then places the order under the cart's lock.

    A change that lands between the two (here: while the checkout waits for the
    lock) is what the order is checked against, never the cart as it was priced.
    """
    me = shop.shopper()
    mug = await shop.product(stock=20, name="Mug")
    pen = await shop.product(stock=20, name="Pen")
    await fill_cart(api, me, (mug, 1))
    async with cart_held(shop, me.id) as hold:
        placing = asyncio.create_task(checkout(api, me))
        await hold.waited_on_by("SELECT id FROM carts WHERE customer_id = $1 FOR UPDATE")
        params = (
            [uuid.UUID(me.id), uuid.UUID(pen["id"])] if change == "added" else [uuid.UUID(me.id)]
        )
        await hold.conn.execute(CHANGES[change], *params)
    placed = await placing
    assert placed.status_code == status, placed.text
    if status == 201:
        assert [(i["name"], i["quantity"]) for i in placed.json()["items"]] == expected
        assert placed.json()["total_cents"] == 3 * mug["price_cents"]
    else:
        assert placed.json()["title"] == expected
        assert await shop.orders_of(me) == []


async def test_thirty_shoppers_racing_for_five_units(api: httpx.AsyncClient, shop: Shop) -> None:
    product = await shop.product(stock=5)
    shoppers = [shop.shopper() for _ in range(30)]
    for who in shoppers:
        await fill_cart(api, who, (product, 1))
    responses = await asyncio.gather(*(checkout(api, who) for who in shoppers))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 5 + [409] * 25, [r.text for r in responses if r.status_code >= 500]
    for response in responses:
        if response.status_code == 409:
            body = response.json()
            assert body["title"] == "Out of stock"
            assert body["short_items"] == [
                {"product_id": product["id"], "requested": 1, "available": 0}
            ]
            rejected = await api.get(
                f"/orders/{body['order_id']}", headers=shoppers[responses.index(response)]
            )
            assert rejected.json()["status"] == "rejected"
    assert await shop.physical_stock(product["id"]) == 0
    assert await shop.available(product["id"]) == 0
    confirmed = {r.json()["id"] for r in responses if r.status_code == 201}
    assert await shop.captured_orders() >= confirmed
    for response in responses:
        if response.status_code == 409:
            assert await shop.payments_for(response.json()["order_id"]) == []


async def test_declines_keep_the_order_and_give_the_stock_back(
    api: httpx.AsyncClient, shop: Shop
) -> None:
    for card, code in ((DECLINED, "card_declined"), (INSUFFICIENT_FUNDS, "insufficient_funds")):
        me = shop.shopper()
        product = await shop.product(stock=3)
        await fill_cart(api, me, (product, 2))
        response = await checkout(api, me, card=card)
        assert response.status_code == 402, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["decline_code"] == code and problem["status"] == 402
        order = (await api.get(f"/orders/{problem['order_id']}", headers=me)).json()
        assert order["status"] == "payment_failed"
        assert await shop.available(product["id"]) == 3
        assert await shop.physical_stock(product["id"]) == 3
        [payment] = await shop.payments_for(order["id"])
        assert payment["status"] == "declined" and str(payment["id"]) == order["payment_id"]
        # The cart is kept, so the shopper can pay with another card.
        assert (await api.get("/cart", headers=me)).json()["items"][0]["quantity"] == 2
        assert (await checkout(api, me)).status_code == 201


async def test_a_processing_error_is_retried_three_times(
    api: httpx.AsyncClient, shop: Shop
) -> None:
    me = shop.shopper()
    product = await shop.product(stock=3)
    await fill_cart(api, me, (product, 1))
    response = await checkout(api, me, card=PROCESSING_ERROR)
    assert response.status_code == 402 and response.json()["decline_code"] == "processing_error"
    attempts = await shop.payments_for(response.json()["order_id"])
    assert [a["status"] for a in attempts] == ["failed"] * 4  # the first try and 3 retries
    assert await shop.available(product["id"]) == 3


async def test_no_card_number_is_stored_or_logged(api: httpx.AsyncClient, shop: Shop) -> None:
    me = shop.shopper()
    product = await shop.product(stock=3)
    await fill_cart(api, me, (product, 1))
    card = "5555555555554444"
    assert (await checkout(api, me, card=card)).status_code == 201
    dump = await shop.query(
        "orders",
        "SELECT string_agg(t::text, ' ') AS everything FROM ("
        " SELECT row_to_json(o)::text AS t FROM orders o"
        " UNION ALL SELECT row_to_json(i)::text FROM idempotency_keys i"
        " UNION ALL SELECT row_to_json(e)::text FROM outbox e) rows",
    )
    assert card not in dump[0]["everything"] and "4242424242424242" not in dump[0]["everything"]
    logs = (shop.log_dir / "order-mgmt.log").read_text()
    assert card not in logs and APPROVED not in logs


async def test_calls_carry_the_request_id_and_reuse_one_token(
    api: httpx.AsyncClient, shop: Shop
) -> None:
    def call_tokens() -> int:
        return sum(1 for client, scope in shop.issuer.issued if "payments:charge" in scope)

    request_ids: list[str] = []
    tokens_before = None
    for _ in range(5):
        if request_ids and tokens_before is None:
            tokens_before = call_tokens()  # after the first checkout: a token is cached
        me = shop.shopper()
        product = await shop.product(stock=2)
        await fill_cart(api, me, (product, 1))
        request_id = f"rid-{uuid.uuid4()}"
        response = await api.post(
            "/orders",
            json=checkout_body(),
            headers={**me, "Idempotency-Key": str(uuid.uuid4()), "x-request-id": request_id},
        )
        assert response.status_code == 201 and response.headers["x-request-id"] == request_id
        request_ids.append(request_id)
    # Four more checkouts call catalog-api and payment-api a dozen times with the
    # cached service token (one more at most, if it came near expiry meanwhile).
    assert tokens_before is not None and tokens_before >= 1
    assert call_tokens() - tokens_before <= 1
    catalog_log = await log_once(
        shop.log_dir / "catalog-api.log",
        lambda text: all(text.count(request_id) >= 3 for request_id in request_ids),
    )
    payment_log = await log_once(
        shop.log_dir / "payment-api.log",
        lambda text: all(request_id in text for request_id in request_ids),
    )
    for request_id in request_ids:
        assert catalog_log.count(request_id) >= 3  # prices, reserve, commit
        assert payment_log.count(request_id) >= 1  # charge
