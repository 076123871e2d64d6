"""`shopctl seed --synthetic N`: realistic products, idempotent, and ready to be read fast."""

from __future__ import annotations

import asyncpg
from catalog_api.config import MODELS, Settings
from catalog_api.synthetic import generate_catalog
from shopflow_kit.db import migrate
from shopflow_kit.money import MAX_AMOUNT_CENTS

N = 3000


async def test_a_synthetic_catalog_is_realistic_idempotent_and_vacuumed(database_url: str) -> None:
    await migrate(Settings(database_url=database_url), MODELS)
    assert await generate_catalog(database_url, N) == N
    assert await generate_catalog(database_url, N) == 0  # the same N products, not twice
    conn = await asyncpg.connect(database_url)
    try:
        stats = await conn.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT name) AS names, count(DISTINCT category_id) "
            "AS categories, min(price_cents) AS low, max(price_cents) AS high, "
            "count(*) FILTER (WHERE stock = 0) AS sold_out FROM products"
        )
        assert stats["n"] == N and stats["names"] > N * 0.9 and stats["categories"] >= 5
        assert 1 <= stats["low"] < stats["high"] <= MAX_AMOUNT_CENTS
        assert 0 < stats["sold_out"] < N / 2
        # The listing reads of a fresh shop come from the indexes alone, as on a
        # vacuumed one: every page is all-visible although this server commits
        # asynchronously (tests run PostgreSQL with synchronous_commit off).
        pages = await conn.fetchrow(
            "SELECT relpages, relallvisible FROM pg_class WHERE relname = 'products'"
        )
        assert pages["relpages"] > 0 and pages["relallvisible"] == pages["relpages"]
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                "EXPLAIN SELECT id FROM products WHERE search @@ websearch_to_tsquery('english', "
                "'steel')"
            )
        )
        assert "products_search_idx" in plan
        # A page deep in a name-ordered category listing skips its rows in the index
        # alone (migration 0004: the index carries ``name``).
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                "EXPLAIN SELECT p.id FROM products p WHERE p.category_id = "
                "(SELECT id FROM categories WHERE slug = 'kitchen') "
                "ORDER BY lower(p.name), p.id LIMIT 20 OFFSET 200"
            )
        )
        assert "Index Only Scan using products_category_name_idx" in plan, plan
    finally:
        await conn.close()
