"""Search rankings: never older than this process's last write, never shown against a filter."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import httpx
from catalog_api.service import RANKING_TTL, RankingCache, _Ranking

from tests.utils.catalog import make_product, new_category
from tests.utils.issuer import TokenIssuer


def _ranking(*ids: uuid.UUID, expires_in: float = RANKING_TTL) -> _Ranking:
    return _Ranking(list(ids), len(ids), time.monotonic() + expires_in)


async def test_a_search_never_waits_for_a_ranking_begun_before_a_write() -> None:
    cache, before, after = RankingCache(), uuid.uuid4(), uuid.uuid4()
    gate = asyncio.Event()

    async def slow_old() -> _Ranking:
        await gate.wait()
        return _ranking(before)

    async def fresh() -> _Ranking:
        return _ranking(after)

    first = asyncio.ensure_future(cache.get(("steel",), slow_old))
    await asyncio.sleep(0)  # its ranking is under way
    cache.clear()  # a write in this process
    async with asyncio.timeout(5):  # it used to wait for the old ranking, for ever here
        assert (await cache.get(("steel",), fresh)).ids == [after]
    gate.set()
    assert (await first).ids == [before]  # its request began before the write
    assert cache.entries[("steel",)].ids == [after]  # and it is not kept


async def test_a_ranking_unused_long_after_it_expired_is_recomputed() -> None:
    cache, old, new = RankingCache(), uuid.uuid4(), uuid.uuid4()

    async def fresh() -> _Ranking:
        return _ranking(new)

    cache.entries[("a",)] = _ranking(old, expires_in=-0.5)  # just expired: served once
    assert (await cache.get(("a",), fresh)).ids == [old]
    await asyncio.gather(*cache.refreshing)
    cache.entries[("b",)] = _ranking(old, expires_in=-2 * RANKING_TTL)  # long expired
    assert (await cache.get(("b",), fresh)).ids == [new]


async def test_a_row_changed_by_another_replica_is_never_shown_against_its_filter(
    client: httpx.AsyncClient, issuer: TokenIssuer, database_url: str
) -> None:
    """Another replica's write does not clear this one's rankings; the page rechecks the rows."""
    cat, word = new_category(), f"quarzite{uuid.uuid4().hex[:6]}"
    product = await make_product(client, issuer, cat, name=f"{word} Bowl", price_cents=1000)
    query: dict[str, str | int] = {"q": word, "max_price_cents": 2000, "in_stock": "true"}
    first = (await client.get("/products", params=query)).json()
    assert [p["id"] for p in first["items"]] == [product["id"]]  # ranked and cached
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE products SET price_cents = 9000 WHERE id = $1", product["id"])
        repriced = (await client.get("/products", params=query)).json()
        await conn.execute(
            "UPDATE products SET price_cents = 1000, stock = 0 WHERE id = $1", product["id"]
        )
        sold_out = (await client.get("/products", params=query)).json()
    finally:
        await conn.close()
    assert repriced["items"] == [] and sold_out["items"] == []
