"""The kit's database engine in-process: pooled connections, cancellation, shared reads."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest
import pytest_asyncio
from shopflow_kit.db import close_db, init_db, reads, transaction
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


async def test_transaction_joins_an_open_one_and_opens_one_otherwise(orm: None) -> None:
    async with in_transaction() as outer:
        async with transaction() as joined:
            assert joined is outer  # no SAVEPOINT
            await Widget.create(name="joined", count=1)
        await outer.execute_query("SELECT 1")
    assert await Widget.filter(name="joined").count() == 1

    async def joined_then_failed() -> None:
        async with in_transaction():
            async with transaction():
                await Widget.create(name="joined-then-failed", count=1)
            raise RuntimeError("the outer transaction fails")

    with pytest.raises(RuntimeError):
        await joined_then_failed()
    assert await Widget.filter(name="joined-then-failed").count() == 0  # all of it rolled back

    async def alone_then_failed() -> None:
        async with transaction() as alone:
            assert alone is connections.get("default")  # a transaction of its own
            await Widget.create(name="alone-then-failed", count=1)
            raise RuntimeError("its own transaction fails")

    with pytest.raises(RuntimeError):
        await alone_then_failed()
    assert await Widget.filter(name="alone-then-failed").count() == 0


async def test_statements_are_planned_once_and_reads_borrow_tortoises_connections(
    orm: None,
) -> None:
    async with in_transaction() as conn:  # an ORM connection
        [row] = await conn.execute_query_dict("SHOW plan_cache_mode")
    assert row["plan_cache_mode"] == "force_generic_plan"
    assert reads().source is connections.get("default")._pool
    assert await reads().fetchval("SHOW plan_cache_mode") == "force_generic_plan"


async def _backends() -> int:
    """This database's client connections other than the asking one."""
    async with in_transaction() as conn:
        [row] = await conn.execute_query_dict(
            "SELECT count(*) AS n FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    return int(row["n"])


async def test_more_reads_than_connections_share_them(orm: None) -> None:
    pids = await asyncio.gather(
        *(reads().fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.02)") for _ in range(40))
    )
    assert len(set(pids)) == POOL  # every connection used, never more
    assert reads().borrowed == POOL and len(reads().idle) == POOL


async def test_reads_cancelled_at_any_moment_leave_no_connection_behind(orm: None) -> None:
    """A hung-up search gives its connection back to asyncpg, which cleans it up."""
    rng = random.Random(11)
    for _ in range(200):
        task = asyncio.ensure_future(reads().fetch("SELECT pg_sleep(0.002)"))
        await asyncio.sleep(rng.uniform(0, 0.004))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await asyncio.gather(*reads().background)
    assert reads().borrowed <= POOL
    # Every connection still answers, and the ORM's share of the pool is intact.
    pids = await asyncio.gather(
        *(reads().fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.02)") for _ in range(20))
    )
    assert len(set(pids)) == POOL
    source = connections.get("default")._pool
    async with asyncio.timeout(10):
        held = [await source.acquire() for _ in range(POOL)]
    for conn in held:
        await source.release(conn)
    assert await _backends() <= 2 * POOL


async def test_a_refused_statement_keeps_its_connection(orm: None) -> None:
    before = reads().borrowed
    with pytest.raises(asyncpg.UndefinedTableError):
        await reads().fetch("SELECT * FROM no_such_table")
    assert reads().borrowed == before
    assert await reads().fetchval("SELECT 1") == 1


async def test_a_shared_read_sees_every_write_made_before_it_arrived(orm: None) -> None:
    """A read waits for the next run of its statement, never one already running."""
    widget = await Widget.create(name="shared-read", count=1)
    sql = "SELECT count, clock_timestamp() AS at FROM widgets, pg_sleep(0.3) WHERE id = $1"
    first = asyncio.ensure_future(reads().fetch_shared(sql, widget.id))
    await asyncio.sleep(0.1)  # the first run has started and has its snapshot
    await Widget.filter(id=widget.id).update(count=2)
    second = asyncio.ensure_future(reads().fetch_shared(sql, widget.id))
    third = asyncio.ensure_future(reads().fetch_shared(sql, widget.id))
    [old], [new], [also_new] = await asyncio.gather(first, second, third)
    assert old["count"] == 1
    assert new["count"] == 2 and also_new["count"] == 2
    assert new["at"] == also_new["at"] > old["at"]  # one run served both late readers
    assert not reads().flights


async def test_shared_reads_coalesce_and_survive_a_cancelled_reader(orm: None) -> None:
    sql = "SELECT clock_timestamp() AS at FROM pg_sleep(0.05)"
    readers = [asyncio.ensure_future(reads().fetch_shared(sql)) for _ in range(30)]
    await asyncio.sleep(0)
    readers[3].cancel()
    done = await asyncio.gather(*readers, return_exceptions=True)
    assert isinstance(done[3], asyncio.CancelledError)
    runs = {rows[0]["at"] for rows in done if isinstance(rows, list)}
    assert len(runs) == 1  # all arrived before the statement was sent
    # Different arguments are different reads.
    a, b = await asyncio.gather(
        reads().fetch_shared("SELECT $1::int AS n", 1),
        reads().fetch_shared("SELECT $1::int AS n", 2),
    )
    assert (a[0]["n"], b[0]["n"]) == (1, 2)
    # Ids as asyncpg returns them (its own UUID type) are shared like any other.
    ids = [row["id"] for row in await reads().fetch("SELECT gen_random_uuid() AS id")]
    sql = "SELECT clock_timestamp() AS at, $1::uuid[] AS ids FROM pg_sleep(0.05)"
    runs = {
        rows[0]["at"]
        for rows in await asyncio.gather(*(reads().fetch_shared(sql, list(ids)) for _ in range(10)))
    }
    assert len(runs) == 1
    with pytest.raises(asyncpg.UndefinedTableError):
        await reads().fetch_shared("SELECT * FROM no_such_table")
    assert not reads().flights


async def _terminate(query: str) -> None:
    """End the backends whose last statement was ``query``, and wait until they are gone."""
    where = "WHERE datname = current_database() AND query = $1 AND pid <> pg_backend_pid()"
    async with in_transaction() as conn:
        await conn.execute_query(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity {where}",  # noqa: S608
            [query],
        )
    async with asyncio.timeout(10):
        while True:
            async with in_transaction() as conn:
                [row] = await conn.execute_query_dict(
                    f"SELECT count(*) AS n FROM pg_stat_activity {where}",  # noqa: S608
                    [query],
                )
            if row["n"] == 0:
                break
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)  # and the client has read each one's end of stream


async def test_connections_killed_mid_query_or_idle_are_replaced(orm: None) -> None:
    """A PostgreSQL restart with searches in flight and connections idle."""
    slow = "SELECT pg_sleep(5) AS killed_mid_query"
    in_flight = [asyncio.ensure_future(reads().fetch(slow)) for _ in range(3)]
    await asyncio.sleep(0.3)
    await _terminate(slow)
    failed = await asyncio.gather(*in_flight, return_exceptions=True)
    assert all(isinstance(f, asyncpg.PostgresError | asyncpg.InterfaceError) for f in failed)
    # The idle ones die too (their last query was this one).
    await asyncio.gather(*(reads().fetch("SELECT 1 AS idle_then_killed") for _ in range(POOL)))
    await _terminate("SELECT 1 AS idle_then_killed")
    async with asyncio.timeout(10):
        answers = await asyncio.gather(*(reads().fetchval("SELECT 7") for _ in range(3 * POOL)))
        shared = await asyncio.gather(*(reads().fetch_shared("SELECT 8 AS n") for _ in range(9)))
    assert answers == [7] * (3 * POOL)
    assert all(rows[0]["n"] == 8 for rows in shared)
    assert 0 < reads().borrowed <= POOL


async def test_a_cancelled_waiter_passes_its_turn_on(orm: None) -> None:
    holders = [asyncio.ensure_future(reads().fetch("SELECT pg_sleep(3)")) for _ in range(POOL)]
    await asyncio.sleep(0.3)  # every connection busy
    first = asyncio.ensure_future(reads().fetchval("SELECT 1"))
    second = asyncio.ensure_future(reads().fetchval("SELECT 2"))
    await asyncio.sleep(0.05)  # both waiting
    holders[0].cancel()  # its connection goes back to asyncpg: the first waiter's turn...
    first.cancel()  # ...which it gives up before it runs
    async with asyncio.timeout(2):  # not after the other holders' 3 s
        assert await second == 2
    await asyncio.gather(*holders, first, return_exceptions=True)


async def test_only_reads_with_the_same_values_in_sql_are_shared(orm: None) -> None:
    sql = "SELECT $1::numeric::text AS n"
    a, b, c = await asyncio.gather(
        reads().fetch_shared(sql, Decimal("1.0")),
        reads().fetch_shared(sql, Decimal("1.00")),
        reads().fetch_shared(sql, 1),
    )
    assert [a[0]["n"], b[0]["n"], c[0]["n"]] == ["1.0", "1.00", "1"]
    [grid] = await reads().fetch_shared("SELECT $1::int[] AS g", [[1, 2], [3, 4]])
    assert grid["g"] == [[1, 2], [3, 4]]
