"""Idempotency keys with Stripe semantics, through the sample service over real HTTP."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx

from tests.utils.issuer import TokenIssuer


def headers(issuer: TokenIssuer, key: str, sub: str = "user-a") -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.token(sub=sub)}", "Idempotency-Key": key}


async def count_widgets(database_url: str, widget_id: str | None = None) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        if widget_id:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM widgets WHERE id = $1", uuid.UUID(widget_id)
                )
            )
        return int(await conn.fetchval("SELECT count(*) FROM widgets WHERE name = 'once'"))
    finally:
        await conn.close()


async def test_twenty_concurrent_duplicates_run_the_work_once(
    client: httpx.AsyncClient, issuer: TokenIssuer, database_url: str
) -> None:
    before = await count_widgets(database_url)
    key = f"k-{uuid.uuid4()}"
    hdrs = headers(issuer, key)
    responses = await asyncio.gather(
        *(client.post("/widgets/idempotent", json={"n": 1}, headers=hdrs) for _ in range(20))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 19
    assert await count_widgets(database_url) == before + 1


async def test_replay_returns_the_first_response(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    key = f"k-{uuid.uuid4()}"
    first = await client.post(
        "/widgets/idempotent", json={"a": 1, "b": 2}, headers=headers(issuer, key)
    )
    # Same data, different key order and spacing: the same request.
    again = await client.post(
        "/widgets/idempotent", content=b'{ "b": 2, "a": 1 }', headers=headers(issuer, key)
    )
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"


async def test_same_key_different_body_is_422(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    key = f"k-{uuid.uuid4()}"
    await client.post("/widgets/idempotent", json={"a": 1}, headers=headers(issuer, key))
    response = await client.post("/widgets/idempotent", json={"a": 2}, headers=headers(issuer, key))
    assert response.status_code == 422
    assert "different request" in response.json()["detail"]


async def test_missing_or_oversized_key_is_400(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    auth = {"Authorization": f"Bearer {issuer.token()}"}
    assert (await client.post("/widgets/idempotent", json={}, headers=auth)).status_code == 400
    long_key = {**auth, "Idempotency-Key": "x" * 300}
    assert (await client.post("/widgets/idempotent", json={}, headers=long_key)).status_code == 400


async def test_keys_are_scoped_per_user(client: httpx.AsyncClient, issuer: TokenIssuer) -> None:
    key = f"k-{uuid.uuid4()}"
    a = await client.post("/widgets/idempotent", json={}, headers=headers(issuer, key, "user-a"))
    b = await client.post("/widgets/idempotent", json={}, headers=headers(issuer, key, "user-b"))
    assert a.json()["id"] != b.json()["id"]
    assert "idempotent-replayed" not in b.headers


async def test_expired_key_runs_the_work_again(
    client: httpx.AsyncClient, issuer: TokenIssuer, database_url: str
) -> None:
    key = f"k-{uuid.uuid4()}"
    first = await client.post("/widgets/idempotent", json={}, headers=headers(issuer, key))
    conn = await asyncpg.connect(database_url)
    try:
        ttl = await conn.fetchval(
            "SELECT expires_at - created_at FROM idempotency_keys WHERE key = $1", key
        )
        assert ttl.total_seconds() == 24 * 3600
        await conn.execute(
            "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = $1",
            key,
        )
    finally:
        await conn.close()
    second = await client.post("/widgets/idempotent", json={}, headers=headers(issuer, key))
    assert second.status_code == 201
    assert second.json()["id"] != first.json()["id"]
    assert "idempotent-replayed" not in second.headers
