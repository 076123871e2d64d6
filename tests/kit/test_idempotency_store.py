"""The idempotency store in-process: a failed run leaves nothing behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from shopflow_kit.db import close_db, init_db
from shopflow_kit.errors import Problem
from shopflow_kit.idempotency import fingerprint, purge_expired, run_once
from shopflow_kit.models import IdempotencyRecord

from tests.kit_sample.app import MODELS, Settings
from tests.kit_sample.models import Widget
from tests.utils.kit import migrate_sample


@pytest_asyncio.fixture(scope="module")
async def orm(database_url: str) -> AsyncIterator[None]:
    await migrate_sample(database_url)
    await init_db(Settings(database_url=database_url), MODELS)
    yield
    await close_db()


async def test_failed_work_is_rolled_back_and_the_key_freed(orm: None) -> None:
    calls = 0

    async def failing() -> tuple[int, object]:
        nonlocal calls
        calls += 1
        await Widget.create(name="half-written", count=0)
        raise RuntimeError("crash mid-way")

    with pytest.raises(RuntimeError):
        await run_once("s", "k1", "fp", failing)
    assert await Widget.filter(name="half-written").count() == 0
    assert await IdempotencyRecord.filter(key="k1").count() == 0

    async def working() -> tuple[int, object]:
        nonlocal calls
        calls += 1
        return 200, {"ok": True}

    stored = await run_once("s", "k1", "fp", working)
    assert stored.body == {"ok": True} and not stored.replayed and calls == 2


async def test_fingerprint_mismatch_is_a_422_problem(orm: None) -> None:
    async def work() -> tuple[int, object]:
        return 201, {"n": 1}

    await run_once("s", "k2", "fp-a", work)
    with pytest.raises(Problem) as raised:
        await run_once("s", "k2", "fp-b", work)
    assert raised.value.status_code == 422


async def test_purge_removes_only_expired(orm: None) -> None:
    from datetime import timedelta

    async def work() -> tuple[int, object]:
        return 200, {}

    await run_once("s", "old", "fp", work, ttl=timedelta(seconds=-1))
    await run_once("s", "fresh", "fp", work)
    assert await purge_expired() >= 1
    assert await IdempotencyRecord.filter(key="old").count() == 0
    assert await IdempotencyRecord.filter(key="fresh").count() == 1


def test_fingerprint_treats_json_as_data() -> None:
    assert fingerprint("POST", "/x", b'{"a":1,"b":2}') == fingerprint(
        "POST", "/x", b'{ "b": 2, "a": 1 }'
    )
    assert fingerprint("POST", "/x", b'{"a":1}') != fingerprint("POST", "/y", b'{"a":1}')
    assert fingerprint("POST", "/x", b"\xff") != fingerprint("POST", "/x", b"\xfe")


async def test_a_key_in_flight_can_be_answered_409_at_once(orm: None) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow() -> tuple[int, object]:
        started.set()
        await release.wait()
        return 201, {"n": 1}

    first = asyncio.create_task(run_once("s", "flight", "fp", slow, conflict_in_flight=True))
    await started.wait()
    with pytest.raises(Problem) as raised:
        await run_once("s", "flight", "fp", slow, conflict_in_flight=True)
    assert raised.value.status_code == 409
    assert raised.value.headers["Retry-After"] == "1"
    release.set()
    assert not (await first).replayed
    again = await run_once("s", "flight", "fp", slow, conflict_in_flight=True)
    assert again.replayed and again.body == {"n": 1} and again.status == 201


def test_a_keyed_fingerprint_is_an_hmac() -> None:
    body = b'{"card":{"number":"4242424242424242"}}'
    plain = fingerprint("POST", "/x", body)
    keyed = fingerprint("POST", "/x", body, key=b"k" * 32)
    assert keyed != plain and len(keyed) == 64
    assert keyed == fingerprint(
        "POST", "/x", b'{ "card": {"number": "4242424242424242"}}', key=b"k" * 32
    )
    assert keyed != fingerprint("POST", "/x", body, key=b"j" * 32)


async def test_a_claim_replays_once_complete(orm: None) -> None:
    from datetime import timedelta

    from shopflow_kit.idempotency import claim, complete

    lease = timedelta(seconds=30)
    assert await claim("s", "c1", "fp", lease=lease) is None
    # While the holder works, the same key is a 409 with Retry-After, never a second run.
    with pytest.raises(Problem) as in_flight:
        await claim("s", "c1", "fp", lease=lease)
    assert in_flight.value.status_code == 409
    assert 1 <= int(in_flight.value.headers["Retry-After"]) <= 30
    with pytest.raises(Problem) as different:
        await claim("s", "c1", "other-fp", lease=lease)
    assert different.value.status_code == 422
    await complete("s", "c1", 201, {"id": "o-1"})
    stored = await claim("s", "c1", "fp", lease=lease)
    assert stored is not None and stored.replayed
    assert (stored.status, stored.body) == (201, {"id": "o-1"})
    record = await IdempotencyRecord.get(scope="s", key="c1")
    assert record.expires_at - record.created_at == timedelta(hours=24)


async def test_a_released_or_lapsed_claim_is_taken_over(orm: None) -> None:
    from datetime import timedelta

    from shopflow_kit.idempotency import claim, release

    assert await claim("s", "c2", "fp", lease=timedelta(seconds=30)) is None
    await release("s", "c2")
    assert await claim("s", "c2", "fp", lease=timedelta(seconds=30)) is None
    # A holder that vanished (its lease ran out) loses the key to the next request...
    await IdempotencyRecord.filter(scope="s", key="c2").update(
        expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    assert await claim("s", "c2", "fp", lease=timedelta(seconds=30)) is None
    # ...but only to the same request, and purging keeps it bound for the full TTL.
    await release("s", "c2")
    assert await purge_expired() >= 0
    with pytest.raises(Problem) as different:
        await claim("s", "c2", "other", lease=timedelta(seconds=30))
    assert different.value.status_code == 422
