"""The kit's database engine in-process: cancellation never leaks a pooled connection."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest_asyncio
from shopflow_kit.db import close_db, init_db, pool
from tortoise import connections
from tortoise.transactions import in_transaction

from tests.kit_sample.app import MODELS, Settings
from tests.kit_sample.models import Widget
from tests.utils.kit import migrate_sample

POOL = 5


@pytest_asyncio.fixture(scope="module")
async def orm(database_url: str) -> AsyncIterator[None]:
    await migrate_sample(database_url)
    await init_db(Settings(database_url=database_url, database_pool_max=POOL), MODELS)
    yield
    await close_db()


async def test_transactions_cancelled_at_any_moment_give_their_connection_back(orm: None) -> None:
    """Sanic cancels a handler whose caller hung up, wherever it is, BEGIN included.

    Tortoise's own pooled transaction kept the connection of a cancelled BEGIN
    for ever; after five such hang-ups no request could get a connection.
    """
    rng = random.Random(7)

    async def work() -> None:
        async with in_transaction():
            await Widget.create(name="cancelled-maybe", count=1)

    for _ in range(300):
        task = asyncio.ensure_future(work())
        await asyncio.sleep(rng.uniform(0, 0.003))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    pool = connections.get("default")._pool
    async with asyncio.timeout(10):
        held = [await pool.acquire() for _ in range(POOL)]  # every one is back
    try:
        for conn in held:
            assert not conn.is_in_transaction()
    finally:
        for conn in held:
            await pool.release(conn)
    # Whatever was cancelled before its COMMIT left nothing behind; the rest is whole.
    assert all(w.count == 1 for w in await Widget.filter(name="cancelled-maybe"))


async def test_statements_are_planned_once_and_the_pool_is_tortoises(orm: None) -> None:
    assert pool() is connections.get("default")._pool
    async with in_transaction() as conn:  # an ORM connection
        [row] = await conn.execute_query_dict("SHOW plan_cache_mode")
    assert row["plan_cache_mode"] == "force_generic_plan"
    assert await pool().fetchval("SHOW plan_cache_mode") == "force_generic_plan"
