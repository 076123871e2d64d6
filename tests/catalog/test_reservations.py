"""Reservations: all-or-nothing, idempotent, expiring, and never overselling."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from tests.utils.catalog import (
    admin,
    catalog_env,
    customer,
    make_product,
    new_category,
    service_token,
)
from tests.utils.issuer import TokenIssuer
from tests.utils.live import LiveService, start_service


async def available(http: httpx.AsyncClient, product_id: str) -> int:
    return int((await http.get(f"/products/{product_id}")).json()["stock_available"])


def reservation(order_id: str, *lines: tuple[str, int], ttl: int = 600) -> dict:
    return {
        "order_id": order_id,
        "items": [{"product_id": p, "quantity": q} for p, q in lines],
        "ttl_seconds": ttl,
    }


async def test_reserve_commit_release_are_idempotent(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    product = await make_product(client, issuer, new_category(), stock=10)
    pid, order = product["id"], str(uuid.uuid4())
    auth = service_token(issuer)
    first = await client.post(
        "/internal/reservations", json=reservation(order, (pid, 3)), headers=auth
    )
    assert first.status_code == 201 and first.json()["status"] == "held"
    again = await client.post(
        "/internal/reservations", json=reservation(order, (pid, 3)), headers=auth
    )
    assert again.status_code == 200 and again.json() == first.json()
    assert await available(client, pid) == 7
    different = await client.post(
        "/internal/reservations", json=reservation(order, (pid, 4)), headers=auth
    )
    assert different.status_code == 409

    for _ in range(2):
        committed = await client.post(f"/internal/reservations/{order}/commit", headers=auth)
        assert committed.status_code == 200 and committed.json()["status"] == "committed"
    assert await available(client, pid) == 7  # stock 7, nothing held
    # Releasing a committed reservation restocks it (a cancelled order).
    for _ in range(2):
        released = await client.post(f"/internal/reservations/{order}/release", headers=auth)
        assert released.status_code == 200 and released.json()["status"] == "released"
    assert await available(client, pid) == 10
    assert (
        await client.post(f"/internal/reservations/{order}/commit", headers=auth)
    ).status_code == 409


async def test_release_frees_held_stock(client: httpx.AsyncClient, issuer: TokenIssuer) -> None:
    product = await make_product(client, issuer, new_category(), stock=4)
    order, auth = str(uuid.uuid4()), service_token(issuer)
    await client.post(
        "/internal/reservations", json=reservation(order, (product["id"], 4)), headers=auth
    )
    assert await available(client, product["id"]) == 0
    assert (
        await client.post(f"/internal/reservations/{order}/release", headers=auth)
    ).status_code == 200
    assert await available(client, product["id"]) == 4


async def test_short_stock_is_409_and_all_or_nothing(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    cat = new_category()
    plenty = await make_product(client, issuer, cat, stock=10)
    scarce = await make_product(client, issuer, cat, stock=1)
    response = await client.post(
        "/internal/reservations",
        json=reservation(str(uuid.uuid4()), (plenty["id"], 2), (scarce["id"], 2)),
        headers=service_token(issuer),
    )
    assert response.status_code == 409
    assert response.json()["short_items"] == [
        {"product_id": scarce["id"], "requested": 2, "available": 1}
    ]
    assert await available(client, plenty["id"]) == 10  # nothing was held


async def test_unknown_products_and_bad_bodies(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    auth = service_token(issuer)
    unknown = await client.post(
        "/internal/reservations",
        json=reservation(str(uuid.uuid4()), (str(uuid.uuid4()), 1)),
        headers=auth,
    )
    assert unknown.status_code == 422
    zero = await client.post(
        "/internal/reservations",
        json=reservation(str(uuid.uuid4()), (str(uuid.uuid4()), 0)),
        headers=auth,
    )
    assert zero.status_code == 422
    missing = await client.post(f"/internal/reservations/{uuid.uuid4()}/commit", headers=auth)
    assert missing.status_code == 404


async def test_internal_endpoints_need_the_scope(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    body = reservation(str(uuid.uuid4()), (str(uuid.uuid4()), 1))
    assert (await client.post("/internal/reservations", json=body)).status_code == 401
    assert (
        await client.post("/internal/reservations", json=body, headers=customer(issuer))
    ).status_code == 401
    wrong = service_token(issuer, scope="payments:charge")
    assert (
        await client.post("/internal/reservations", json=body, headers=wrong)
    ).status_code == 403


async def test_expired_reservation_restores_stock(
    client: httpx.AsyncClient, issuer: TokenIssuer, database_url: str
) -> None:
    product = await make_product(client, issuer, new_category(), stock=5)
    order, auth = str(uuid.uuid4()), service_token(issuer)
    held = await client.post(
        "/internal/reservations", json=reservation(order, (product["id"], 5), ttl=1), headers=auth
    )
    assert held.status_code == 201
    assert await available(client, product["id"]) == 0
    await asyncio.sleep(1.2)
    assert await available(client, product["id"]) == 5  # real time: expiry counts at once
    await asyncio.sleep(1.0)  # the sweeper marks it expired
    conn = await asyncpg.connect(database_url)
    try:
        status = await conn.fetchval(
            "SELECT status FROM reservations WHERE order_id = $1", uuid.UUID(order)
        )
    finally:
        await conn.close()
    assert status == "expired"
    assert (
        await client.post(f"/internal/reservations/{order}/commit", headers=auth)
    ).status_code == 409


async def test_prices(client: httpx.AsyncClient, issuer: TokenIssuer) -> None:
    cat = new_category()
    a = await make_product(client, issuer, cat, price_cents=1999)
    b = await make_product(client, issuer, cat, price_cents=500)
    response = await client.get(
        "/internal/products/prices",
        params={"ids": f"{a['id']},{b['id']}"},
        headers=service_token(issuer),
    )
    prices = {p["id"]: p["price_cents"] for p in response.json()["items"]}
    assert prices == {a["id"]: 1999, b["id"]: 500}
    bad = await client.get(
        "/internal/products/prices", params={"ids": "nope"}, headers=service_token(issuer)
    )
    assert bad.status_code == 400


@pytest.mark.slow
async def test_two_hundred_concurrent_reservations_never_oversell(
    client: httpx.AsyncClient,
    catalog: LiveService,
    issuer: TokenIssuer,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Two catalog processes compete for stock 10: exactly 10 reservations win."""
    second = start_service(
        "catalog-api-2",
        "catalog_api.app:create_app",
        catalog_env(database_url, issuer),
        tmp_path_factory.mktemp("catalog-2"),
    )
    try:
        product = await make_product(client, issuer, new_category(), stock=10)
        auth = service_token(issuer)
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            bases = [catalog.base_url, second.base_url]
            results = await asyncio.gather(
                *(
                    http.post(
                        f"{bases[i % 2]}/internal/reservations",
                        json=reservation(str(uuid.uuid4()), (product["id"], 1)),
                        headers=auth,
                    )
                    for i in range(200)
                )
            )
    finally:
        second.stop()
    statuses = [r.status_code for r in results]
    assert statuses.count(201) == 10 and statuses.count(409) == 190
    assert await available(client, product["id"]) == 0
    conn = await asyncpg.connect(database_url)
    try:
        held = await conn.fetchval(
            "SELECT sum(quantity) FROM reservation_items WHERE product_id = $1",
            uuid.UUID(product["id"]),
        )
    finally:
        await conn.close()
    assert held == 10


async def test_concurrent_repeats_of_one_order_return_the_one_reservation(
    client: httpx.AsyncClient, catalog: LiveService, issuer: TokenIssuer
) -> None:
    """Stock exactly covers the order: repeats must never see their own hold as a shortage."""
    product = await make_product(client, issuer, new_category(), stock=5)
    other = await make_product(client, issuer, new_category(), stock=3)
    order, auth = str(uuid.uuid4()), service_token(issuer)
    body = reservation(order, (product["id"], 5), (other["id"], 3))
    limits = httpx.Limits(max_connections=60)
    async with httpx.AsyncClient(base_url=catalog.base_url, timeout=60, limits=limits) as http:
        results = await asyncio.gather(
            *(http.post("/internal/reservations", json=body, headers=auth) for _ in range(50))
        )
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] * 49 + [201], f"false 409s: {statuses.count(409)} of 50"
    assert len({r.text for r in results}) == 1
    assert await available(client, product["id"]) == 0
    assert await available(client, other["id"]) == 0


async def test_stock_below_live_holds_is_409_naming_the_held_quantity(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    product = await make_product(client, issuer, new_category(), stock=5)
    order, auth = str(uuid.uuid4()), service_token(issuer)
    held = await client.post(
        "/internal/reservations", json=reservation(order, (product["id"], 5)), headers=auth
    )
    assert held.status_code == 201
    url = f"/products/{product['id']}"
    patch = await client.patch(url, json={"stock": 2}, headers=admin(issuer))
    assert patch.status_code == 409, patch.text
    problem = patch.json()
    assert problem["held"] == 5 and "5" in problem["detail"]
    assert [e["field"] for e in problem["errors"]] == ["stock"]
    assert await available(client, product["id"]) == 0  # never -3
    # Raising stock, or setting it to exactly what is held, is fine.
    assert (await client.patch(url, json={"stock": 5}, headers=admin(issuer))).status_code == 200
    raised = await client.patch(url, json={"stock": 8}, headers=admin(issuer))
    assert raised.status_code == 200 and raised.json()["stock_available"] == 3
    # Once the hold is released, the stock can go down again.
    await client.post(f"/internal/reservations/{order}/release", headers=auth)
    lowered = await client.patch(url, json={"stock": 2}, headers=admin(issuer))
    assert lowered.status_code == 200 and lowered.json()["stock_available"] == 2


async def test_concurrent_repeats_of_one_order_for_other_products_get_one_answer(
    client: httpx.AsyncClient, catalog: LiveService, issuer: TokenIssuer
) -> None:
    """Repeats that lock different products race to the insert: one holds, the rest 409."""
    products = [await make_product(client, issuer, new_category(), stock=5) for _ in range(4)]
    order, auth = str(uuid.uuid4()), service_token(issuer)
    bodies = [reservation(order, (p["id"], 1)) for p in products]
    limits = httpx.Limits(max_connections=60)
    async with httpx.AsyncClient(base_url=catalog.base_url, timeout=60, limits=limits) as http:
        results = await asyncio.gather(
            *(
                http.post("/internal/reservations", json=bodies[i % 4], headers=auth)
                for i in range(40)
            )
        )
    statuses = [r.status_code for r in results]
    assert statuses.count(201) == 1, statuses
    assert set(statuses) <= {200, 201, 409}, statuses
    winner = next(r.json() for r in results if r.status_code == 201)
    assert all(r.json() == winner for r in results if r.status_code == 200)
    assert all(
        r.headers["content-type"] == "application/problem+json"
        for r in results
        if r.status_code == 409
    )
    free = [await available(client, p["id"]) for p in products]
    assert sorted(free) == [4, 5, 5, 5]


async def test_concurrent_commits_across_shared_products_take_exact_stock(
    client: httpx.AsyncClient, catalog: LiveService, issuer: TokenIssuer, database_url: str
) -> None:
    """Orders holding the same products in both orders commit at once: no deadlock, exact stock."""
    a = await make_product(client, issuer, new_category(), stock=1000)
    b = await make_product(client, issuer, new_category(), stock=1000)
    auth = service_token(issuer)
    orders = [str(uuid.uuid4()) for _ in range(60)]
    limits = httpx.Limits(max_connections=60)
    async with httpx.AsyncClient(base_url=catalog.base_url, timeout=60, limits=limits) as http:
        for i, order in enumerate(orders):
            lines = (
                ((a["id"], 1 + i % 3), (b["id"], 2))
                if i % 2
                else ((b["id"], 2), (a["id"], 1 + i % 3))
            )
            held = await http.post(
                "/internal/reservations", json=reservation(order, *lines), headers=auth
            )
            assert held.status_code == 201, held.text
        # Half commit while the other half reserve more and release: every path locks
        # the same two rows.
        extra = [str(uuid.uuid4()) for _ in range(30)]
        results = await asyncio.gather(
            *(http.post(f"/internal/reservations/{o}/commit", headers=auth) for o in orders),
            *(
                http.post(
                    "/internal/reservations",
                    json=reservation(o, (b["id"], 1), (a["id"], 1)),
                    headers=auth,
                )
                for o in extra
            ),
            *(http.post(f"/internal/reservations/{o}/release", headers=auth) for o in extra[:10]),
        )
    statuses = [r.status_code for r in results]
    assert all(s == 200 for s in statuses[:60]), statuses[:60]
    assert all(s in (200, 201, 404) for s in statuses[60:]), statuses[60:]
    taken_a = sum(1 + i % 3 for i in range(60))
    conn = await asyncpg.connect(database_url)
    try:
        stock = dict(
            await conn.fetch(
                "SELECT id::text, stock FROM products WHERE id = ANY($1::uuid[])",
                [uuid.UUID(a["id"]), uuid.UUID(b["id"])],
            )
        )
        committed = await conn.fetchval(
            "SELECT count(*) FROM reservations WHERE order_id = ANY($1::uuid[]) AND status = 'committed'",
            [uuid.UUID(o) for o in orders],
        )
    finally:
        await conn.close()
    assert committed == 60
    assert stock == {a["id"]: 1000 - taken_a, b["id"]: 1000 - 120}


async def test_a_repeat_after_its_product_was_deleted_is_the_same_order_not_unknown(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    """A repeat is answered as the order's reservation first, before its products are checked."""
    product = await make_product(client, issuer, new_category(), stock=5)
    order, auth = str(uuid.uuid4()), service_token(issuer)
    body = reservation(order, (product["id"], 2))
    assert (await client.post("/internal/reservations", json=body, headers=auth)).status_code == 201
    commit = await client.post(f"/internal/reservations/{order}/commit", headers=auth)
    assert commit.status_code == 200
    deleted = await client.delete(f"/products/{product['id']}", headers=admin(issuer))
    assert deleted.status_code == 204, deleted.text
    again = await client.post("/internal/reservations", json=body, headers=auth)
    assert again.status_code == 409, again.text
    assert "different reservation" in again.json()["detail"]


async def test_a_commit_that_outwaits_the_expiry_behind_row_locks_is_refused(
    client: httpx.AsyncClient, issuer: TokenIssuer, database_url: str
) -> None:
    """The hold's expiry is checked once the commit holds the products' locks.

    A reservation holding the product's row lock across the hold's expiry sees
    the stock free and may take it; the commit that started before the expiry
    and waited for that lock must then find the hold expired, not take the
    stock a second time.
    """
    product = await make_product(client, issuer, new_category(), stock=5)
    order, auth = str(uuid.uuid4()), service_token(issuer)
    held = await client.post(
        "/internal/reservations", json=reservation(order, (product["id"], 5), ttl=2), headers=auth
    )
    assert held.status_code == 201
    blocker = await asyncpg.connect(database_url)
    # pg_stat_activity is read outside the blocker's transaction: inside one,
    # PostgreSQL answers every read with the transaction's first snapshot.
    observer = await asyncpg.connect(database_url)

    async def waiting() -> bool:
        return bool(
            await observer.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%SET status = ''committed''%'"
            )
        )

    try:
        locked = blocker.transaction()
        await locked.start()
        await blocker.execute(
            "SELECT id FROM products WHERE id = $1 FOR UPDATE", uuid.UUID(product["id"])
        )
        commit = asyncio.create_task(
            client.post(f"/internal/reservations/{order}/commit", headers=auth)
        )
        # The commit is under way (it waits for the lock) before the hold expires.
        for _ in range(500):
            if await waiting():
                break
            await asyncio.sleep(0.02)
        assert await waiting(), "the commit never waited for the product's lock"
        expires = await observer.fetchval(
            "SELECT expires_at FROM reservations WHERE order_id = $1", uuid.UUID(order)
        )
        while await observer.fetchval("SELECT clock_timestamp() <= $1", expires):
            await asyncio.sleep(0.05)
        await locked.commit()
        answer = await commit
    finally:
        await blocker.close()
        await observer.close()
    assert answer.status_code == 409, answer.text
    assert answer.json()["reservation"]["status"] == "expired"
    assert await available(client, product["id"]) == 5
    other = await client.post(
        "/internal/reservations",
        json=reservation(str(uuid.uuid4()), (product["id"], 5)),
        headers=auth,
    )
    assert other.status_code == 201, other.text


async def test_held_stock_is_read_from_the_live_holds_not_the_history(
    client: httpx.AsyncClient, issuer: TokenIssuer, database_url: str
) -> None:
    """With years of committed lines, stock reads start from the few live holds."""
    from catalog_api.service import HELD_FOR

    product = await make_product(client, issuer, new_category(), stock=10)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            """
            WITH r AS (
                INSERT INTO reservations (id, order_id, status, expires_at, created_at, updated_at)
                SELECT gen_random_uuid(), gen_random_uuid(), 'committed',
                       now() - interval '1 day', now(), now()
                FROM generate_series(1, 20000)
                RETURNING id
            )
            INSERT INTO reservation_items (reservation_id, product_id, quantity)
            SELECT r.id, $1::uuid, 1 FROM r
            """,
            uuid.UUID(product["id"]),
        )
        await conn.execute("ANALYZE reservations; ANALYZE reservation_items")
        plan = await conn.fetchval(
            f"EXPLAIN (FORMAT JSON) SELECT p.stock - {HELD_FOR} FROM products p WHERE p.id = $1",  # noqa: S608
            uuid.UUID(product["id"]),
        )
    finally:
        await conn.close()
    text = str(plan)
    assert "reservation_items_reservation_idx" in text, text
    assert "reservation_items_product_idx" not in text, text
    assert await available(client, product["id"]) == 10
