"""The cart: one per shopper in PostgreSQL, live catalog data, one currency, stock checks."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.utils.order_mgmt import Shop, cart_held
from tests.utils.services import bearer

NEEDS_PAYMENTS = False


async def put(
    api: httpx.AsyncClient, who: dict[str, str], product_id: str, quantity: object
) -> httpx.Response:
    return await api.put(f"/cart/items/{product_id}", json={"quantity": quantity}, headers=who)


async def test_an_empty_cart(api: httpx.AsyncClient, shop: Shop) -> None:
    response = await api.get("/cart", headers=shop.shopper())
    assert response.status_code == 200
    assert response.json() == {"items": [], "total_cents": 0, "currency": None, "notes": []}


async def test_lines_show_live_names_and_prices(api: httpx.AsyncClient, shop: Shop) -> None:
    me = shop.shopper()
    mug = await shop.product(price_cents=1250, name="Blue Mug")
    pen = await shop.product(price_cents=199, name="Pen")
    assert (await put(api, me, mug["id"], 2)).status_code == 200
    cart = (await put(api, me, pen["id"], 3)).json()
    assert cart["items"] == [
        {
            "product_id": mug["id"],
            "name": "Blue Mug",
            "unit_price_cents": 1250,
            "quantity": 2,
            "line_total_cents": 2500,
        },
        {
            "product_id": pen["id"],
            "name": "Pen",
            "unit_price_cents": 199,
            "quantity": 3,
            "line_total_cents": 597,
        },
    ]
    assert cart["total_cents"] == 3097 and cart["currency"] == "USD"

    # PUT sets the quantity; the catalog's later price and name are what the cart shows.
    assert (await put(api, me, mug["id"], 1)).json()["items"][0]["quantity"] == 1
    patched = await shop.catalog_call(
        "PATCH",
        f"/products/{mug['id']}",
        json={"price_cents": 1400, "name": "Navy Mug"},
        headers=shop.admin(),
    )
    assert patched.status_code == 200
    cart = (await api.get("/cart", headers=me)).json()
    assert cart["items"][0] == {
        "product_id": mug["id"],
        "name": "Navy Mug",
        "unit_price_cents": 1400,
        "quantity": 1,
        "line_total_cents": 1400,
    }
    assert cart["total_cents"] == 1400 + 597


async def test_quantity_must_be_1_to_99(api: httpx.AsyncClient, shop: Shop) -> None:
    me = shop.shopper()
    product = await shop.product(stock=500)
    for bad in (0, 100, -1, 1.5, "2", None):
        response = await put(api, me, product["id"], bad)
        assert response.status_code == 422, bad
        assert response.json()["errors"][0]["field"] == "quantity"
    extra = await api.put(
        f"/cart/items/{product['id']}", json={"quantity": 1, "price_cents": 1}, headers=me
    )
    assert extra.status_code == 422
    malformed = await api.put(
        f"/cart/items/{product['id']}",
        content=b"{",
        headers={**me, "Content-Type": "application/json"},
    )
    assert malformed.status_code == 400
    # The same bytes not declared as JSON: a JSON endpoint answers 415.
    undeclared = await api.put(f"/cart/items/{product['id']}", content=b"{", headers=me)
    assert undeclared.status_code == 415
    assert (await put(api, me, product["id"], 99)).status_code == 200


async def test_unknown_products_are_404(api: httpx.AsyncClient, shop: Shop) -> None:
    me = shop.shopper()
    assert (await put(api, me, str(uuid.uuid4()), 1)).status_code == 404
    assert (await put(api, me, "not-a-uuid", 1)).status_code == 404
    assert (await api.delete("/cart/items/not-a-uuid", headers=me)).status_code == 404
    assert (await api.delete(f"/cart/items/{uuid.uuid4()}", headers=me)).status_code == 404


async def test_more_than_is_available_now_is_409(api: httpx.AsyncClient, shop: Shop) -> None:
    me = shop.shopper()
    product = await shop.product(stock=5)
    # Someone else's checkout holds 3 of the 5: only 2 are available now.
    token = shop.issuer.token(sub="order-mgmt", aud="shopflow-internal", scope="inventory:reserve")
    held = await shop.catalog_call(
        "POST",
        "/internal/reservations",
        json={
            "order_id": str(uuid.uuid4()),
            "items": [{"product_id": product["id"], "quantity": 3}],
            "ttl_seconds": 600,
        },
        headers=bearer(token),
    )
    assert held.status_code == 201
    too_many = await put(api, me, product["id"], 3)
    assert too_many.status_code == 409
    assert too_many.json()["available"] == 2
    assert (await put(api, me, product["id"], 2)).status_code == 200


async def test_one_currency_per_cart(api: httpx.AsyncClient, shop: Shop) -> None:
    me = shop.shopper()
    dollars = await shop.product(currency="USD")
    euros = await shop.product(currency="EUR")
    assert (await put(api, me, dollars["id"], 1)).status_code == 200
    mixed = await put(api, me, euros["id"], 1)
    assert mixed.status_code == 409
    assert "one currency" in mixed.json()["detail"]
    # Once the dollars are gone, euros are fine.
    assert (await api.delete(f"/cart/items/{dollars['id']}", headers=me)).status_code == 200
    assert (await put(api, me, euros["id"], 1)).json()["currency"] == "EUR"


async def test_concurrent_adds_never_mix_currencies(api: httpx.AsyncClient, shop: Shop) -> None:
    me = shop.shopper()
    products = [await shop.product(currency=c) for c in ("USD", "EUR") * 5]
    responses = await asyncio.gather(*(put(api, me, p["id"], 1) for p in products))
    assert {r.status_code for r in responses} <= {200, 409}
    cart = (await api.get("/cart", headers=me)).json()
    winners = [p for p, r in zip(products, responses, strict=True) if r.status_code == 200]
    assert {p["currency"] for p in winners} == {cart["currency"]}
    assert len(cart["items"]) == len(winners) == 5


@pytest.mark.parametrize("change", ["quantity", "currency"])
async def test_a_cart_changed_while_a_put_waits_for_its_lock_is_read_again(
    api: httpx.AsyncClient, shop: Shop, change: str
) -> None:
    """A put reads the cart, then writes under the cart's lock; what changed in between counts."""
    me = shop.shopper()
    mug = await shop.product(currency="USD", name="Mug")
    pen = await shop.product(currency="USD", name="Pen")
    euros = await shop.product(currency="EUR", name="Euro mug")
    assert (await put(api, me, mug["id"], 1)).status_code == 200
    async with cart_held(shop, me.id) as hold:
        putting = asyncio.create_task(put(api, me, pen["id"], 2))
        await hold.waited_on_by("INSERT INTO carts")
        if change == "quantity":
            await hold.conn.execute(
                "UPDATE cart_items SET quantity = 5 WHERE product_id = $1", uuid.UUID(mug["id"])
            )
        else:  # the mug's line became a line in euros
            await hold.conn.execute(
                "UPDATE cart_items SET product_id = $1, name = 'Euro mug', currency = 'EUR' "
                "WHERE product_id = $2",
                uuid.UUID(euros["id"]),
                uuid.UUID(mug["id"]),
            )
    response = await putting
    if change == "quantity":
        assert response.status_code == 200, response.text
        items = [(i["name"], i["quantity"]) for i in response.json()["items"]]
        assert items == [("Mug", 5), ("Pen", 2)]
    else:
        assert response.status_code == 409, response.text
        assert "holds EUR products" in response.json()["detail"]
    cart = (await api.get("/cart", headers=me)).json()
    assert cart["currency"] == ("USD" if change == "quantity" else "EUR")


async def test_the_cart_currency_follows_a_repriced_product_as_get_cart_shows_it(
    api: httpx.AsyncClient, shop: Shop
) -> None:
    """PUT and GET /cart agree on the cart's currency: its oldest line's live one."""
    me = shop.shopper()
    first = await shop.product(currency="EUR")
    euros, dollars = await shop.product(currency="EUR"), await shop.product(currency="USD")
    assert (await put(api, me, first["id"], 2)).status_code == 200
    moved = await shop.catalog_call(
        "PATCH", f"/products/{first['id']}", json={"currency": "USD"}, headers=shop.admin()
    )
    assert moved.status_code == 200, moved.text
    # The cart is in dollars now: a euro product is refused, never accepted and dropped.
    refused = await put(api, me, euros["id"], 1)
    assert refused.status_code == 409, refused.text
    assert "the cart holds USD products" in refused.json()["detail"]
    added = await put(api, me, dollars["id"], 1)
    assert added.status_code == 200, added.text
    cart = added.json()
    assert cart["currency"] == "USD" and cart["notes"] == []
    assert [i["product_id"] for i in cart["items"]] == [first["id"], dollars["id"]]
    assert (await api.get("/cart", headers=me)).json() == cart


async def test_deleted_products_drop_out_with_a_note(api: httpx.AsyncClient, shop: Shop) -> None:
    me = shop.shopper()
    keep = await shop.product(name="Keeper")
    gone = await shop.product(name="Discontinued Lamp")
    await put(api, me, keep["id"], 1)
    await put(api, me, gone["id"], 2)
    deleted = await shop.catalog_call("DELETE", f"/products/{gone['id']}", headers=shop.admin())
    assert deleted.status_code == 204
    cart = (await api.get("/cart", headers=me)).json()
    assert [i["product_id"] for i in cart["items"]] == [keep["id"]]
    assert cart["notes"] == [
        {
            "product_id": gone["id"],
            "name": "Discontinued Lamp",
            "message": "this product is no longer sold and was removed from the cart",
        }
    ]
    assert (await api.get("/cart", headers=me)).json()["notes"] == []


async def test_remove_a_line_and_empty_the_cart(api: httpx.AsyncClient, shop: Shop) -> None:
    me = shop.shopper()
    a, b = await shop.product(), await shop.product()
    await put(api, me, a["id"], 1)
    await put(api, me, b["id"], 1)
    removed = await api.delete(f"/cart/items/{a['id']}", headers=me)
    assert removed.status_code == 200
    assert [i["product_id"] for i in removed.json()["items"]] == [b["id"]]
    assert (await api.delete(f"/cart/items/{a['id']}", headers=me)).status_code == 404
    emptied = await api.delete("/cart", headers=me)
    assert emptied.status_code == 204 and emptied.content == b""
    assert (await api.get("/cart", headers=me)).json()["items"] == []
    assert (await api.delete("/cart", headers=me)).status_code == 204


async def test_each_shopper_has_their_own_cart(api: httpx.AsyncClient, shop: Shop) -> None:
    alice, bob = shop.shopper(), shop.shopper()
    product = await shop.product()
    await put(api, alice, product["id"], 4)
    assert (await api.get("/cart", headers=bob)).json()["items"] == []
    await api.delete("/cart", headers=bob)
    assert (await api.get("/cart", headers=alice)).json()["items"][0]["quantity"] == 4


async def test_customers_only(api: httpx.AsyncClient, shop: Shop) -> None:
    assert (await api.get("/cart")).status_code == 401
    assert (await api.get("/cart", headers=shop.admin())).status_code == 403
    wrong_audience = bearer(shop.issuer.token(aud="shopflow-internal", scope="inventory:reserve"))
    assert (await api.get("/cart", headers=wrong_audience)).status_code == 401


async def test_catalog_down_is_503(api: httpx.AsyncClient, shop: Shop) -> None:
    me = shop.shopper()
    product = await shop.product()
    await put(api, me, product["id"], 1)
    shop.catalog.stop()
    try:
        response = await api.get("/cart", headers=me)
        assert response.status_code == 503
        assert response.headers["retry-after"]
        assert (await put(api, me, product["id"], 2)).status_code == 503
    finally:
        shop.restart_catalog()
    assert (await api.get("/cart", headers=me)).json()["items"][0]["quantity"] == 1


async def test_openapi_is_served_under_both_prefixes(api: httpx.AsyncClient) -> None:
    orders = (await api.get("/orders/openapi.json")).json()
    cart = (await api.get("/cart/openapi.json")).json()
    assert orders == cart
    assert set(orders["paths"]) == {
        "/cart",
        "/cart/items/{product_id}",
        "/orders",
        "/orders/{order_id}",
        "/orders/{order_id}/cancel",
    }
    checkout = orders["paths"]["/orders"]["post"]
    assert {"201", "400", "402", "409", "422", "503"} <= set(checkout["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in checkout["parameters"])
