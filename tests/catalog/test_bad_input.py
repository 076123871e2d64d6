"""catalog-api under hostile input: a precise 4xx naming the field, and nothing written."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.utils.catalog import admin, make_product, new_category
from tests.utils.issuer import TokenIssuer
from tests.utils.sql import fetchval

JSON = {"content-type": "application/json"}


async def product_count(database_url: str) -> int:
    return int(await fetchval(database_url, "SELECT count(*) FROM products"))


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("min_price_cents=2147483648", "min_price_cents"),
        ("max_price_cents=1663390773269358", "max_price_cents"),
        pytest.param("min_price_cents=" + "9" * 1000, "min_price_cents", id="1000-digits"),
        ("page=100000000000000000000", "page"),
        ("page_size=100000000000000000000", "page_size"),
        ("q=mug%00", "q"),
        ("category=mugs%00", "category"),
        ("sort=name%00", "sort"),
    ],
)
async def test_query_parameters_beyond_range_or_with_nul_are_400(
    client: httpx.AsyncClient, query: str, name: str
) -> None:
    response = await client.get(f"/products?{query}")
    assert response.status_code == 400, response.text
    body = response.json()
    assert [e["field"] for e in body["errors"]] == [name] and name in body["detail"]


async def test_the_largest_stored_price_is_still_a_valid_filter(client: httpx.AsyncClient) -> None:
    response = await client.get("/products?min_price_cents=2147483647&max_price_cents=2147483647")
    assert response.status_code == 200 and response.json()["items"] == []


def mug(**changes: object) -> dict[str, object]:
    return {
        "sku": f"SKU-{uuid.uuid4().hex[:8]}",
        "name": "Mug",
        "description": "A mug.",
        "category": new_category(),
        "price_cents": 100,
        "currency": "USD",
        "stock": 1,
        **changes,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        *(pytest.param(f, f"{f}-\u0000", id=f"nul-in-{f}") for f in ("name", "description")),
        pytest.param("sku", "SKU-1\u0000", id="nul-in-sku"),
        pytest.param("category", "kitchen\u0000", id="nul-in-category"),
        # A product nobody could pay for: payment-api would refuse every checkout of it.
        pytest.param("currency", "JPY", id="a-currency-the-shop-cannot-charge"),
        pytest.param("price_cents", 0, id="free"),
        pytest.param("price_cents", 100_000_001, id="more-than-one-charge-may-be"),
    ],
)
async def test_a_refused_product_field_is_422_and_nothing_is_written(
    client: httpx.AsyncClient, issuer: TokenIssuer, database_url: str, field: str, value: object
) -> None:
    before = await product_count(database_url)
    response = await client.post("/products", json=mug(**{field: value}), headers=admin(issuer))
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert await product_count(database_url) == before

    product = await make_product(client, issuer, new_category())
    patch = await client.patch(
        f"/products/{product['id']}", json={field: value}, headers=admin(issuer)
    )
    assert patch.status_code == 422, patch.text
    assert (await client.get(f"/products/{product['id']}")).json() == product


async def test_integers_beyond_a_column_in_a_body_are_422(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    product = await make_product(client, issuer, new_category())
    for value in ("2147483648", "9" * 1000, "-1"):
        for field in ("price_cents", "stock"):
            response = await client.patch(
                f"/products/{product['id']}",
                content=f'{{"{field}": {value}}}'.encode(),
                headers={**JSON, **admin(issuer)},
            )
            assert response.status_code == 422, (field, value, response.text)
            assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_deeply_nested_json_and_forms_are_refused(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    response = await client.post("/products", content=deep, headers={**JSON, **admin(issuer)})
    assert response.status_code == 400 and "nest" in response.json()["detail"]
    form = await client.post("/products", data={"sku": "x"}, headers=admin(issuer))
    assert form.status_code == 415
