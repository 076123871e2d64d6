"""Login throttling under real concurrency, across replicas, and behind the trusted proxy."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from tests.utils.auth import IP_LIMIT, auth_env
from tests.utils.contract import contract_hooks
from tests.utils.factories import PASSWORD, register_and_login
from tests.utils.live import LiveService, start_service
from tests.utils.sql import fetchval

ACCOUNT_LIMIT = 5
BURST = 100


def pool(base_url: str) -> httpx.AsyncClient:
    """One real connection per concurrent request."""
    limits = httpx.Limits(max_connections=BURST + 10, max_keepalive_connections=BURST + 10)
    hooks = contract_hooks(base_url, "/auth/openapi.json")
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120, event_hooks=hooks)


def address(i: int) -> dict[str, str]:
    # A different client address per guess: only the per-account limit applies.
    return {"x-forwarded-for": f"198.51.100.{i % 250 + 1}, 10.{i // 250}.{i % 250}.9"}


async def failures_recorded(database_url: str, email: str) -> int:
    query = "SELECT count(*) FROM login_failures WHERE bucket = $1"
    return int(await fetchval(database_url, query, f"account:{email.lower()}"))


@pytest_asyncio.fixture(scope="module")
async def replica(
    auth: LiveService, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveService]:
    """A second user-auth process on the same database, as a second pod would be."""
    service = start_service(
        "user-auth-replica",
        "auth_service.app:create_app",
        auth_env(database_url),
        tmp_path_factory.mktemp("replica-logs"),
    )
    yield service
    service.stop()


async def test_concurrent_wrong_passwords_evaluate_at_most_the_limit(
    client: httpx.AsyncClient, auth: LiveService, database_url: str
) -> None:
    account = await register_and_login(client)
    wrong = {"email": account.email, "password": "wrong-password-x"}
    async with pool(auth.base_url) as http:
        responses = await asyncio.gather(
            *(http.post("/auth/login", json=wrong, headers=address(i)) for i in range(BURST))
        )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {401: ACCOUNT_LIMIT, 429: BURST - ACCOUNT_LIMIT}, (
        f"guesses evaluated: {statuses[401]} of {BURST}; {dict(statuses)}"
    )
    assert all(1 <= int(r.headers["retry-after"]) <= 900 for r in responses if r.status_code == 429)
    assert await failures_recorded(database_url, account.email) == ACCOUNT_LIMIT


async def test_a_correct_password_in_the_burst_neither_succeeds_nor_wipes_history(
    client: httpx.AsyncClient, auth: LiveService, database_url: str
) -> None:
    account = await register_and_login(client)
    wrong = {"email": account.email, "password": "wrong-password-x"}
    right = {"email": account.email, "password": PASSWORD}
    async with pool(auth.base_url) as http:
        requests = [http.post("/auth/login", json=wrong, headers=address(i)) for i in range(BURST)]
        # The owner logs in while the burst is under way: sent last, with the burst.
        requests.append(http.post("/auth/login", json=right, headers=address(BURST)))
        responses = await asyncio.gather(*requests)
    owner = responses[-1]
    statuses = Counter(r.status_code for r in responses[:-1])
    assert owner.status_code == 429 and int(owner.headers["retry-after"]) >= 1, owner.text
    assert statuses[401] == ACCOUNT_LIMIT, dict(statuses)
    # History intact: the account stays locked, even for the right password.
    assert await failures_recorded(database_url, account.email) == ACCOUNT_LIMIT
    again = await client.post("/auth/login", json=right, headers=address(7))
    assert again.status_code == 429 and "retry-after" in again.headers


async def test_replicas_share_one_atomic_limit(
    client: httpx.AsyncClient, auth: LiveService, replica: LiveService, database_url: str
) -> None:
    account = await register_and_login(client)
    wrong = {"email": account.email, "password": "wrong-password-x"}
    async with pool(auth.base_url) as first, pool(replica.base_url) as second:
        responses = await asyncio.gather(
            *(
                (first if i % 2 else second).post("/auth/login", json=wrong, headers=address(i))
                for i in range(BURST)
            )
        )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {401: ACCOUNT_LIMIT, 429: BURST - ACCOUNT_LIMIT}, dict(statuses)


async def test_success_releases_only_its_own_claim(client: httpx.AsyncClient) -> None:
    """A success does not count as a failure, and does not erase earlier failures."""
    account = await register_and_login(client)
    headers = {"x-forwarded-for": "10.0.0.4"}
    bad = {"email": account.email, "password": "wrong-password-x"}
    good = {"email": account.email, "password": PASSWORD}
    for _ in range(ACCOUNT_LIMIT - 1):
        assert (await client.post("/auth/login", json=bad, headers=headers)).status_code == 401
    for _ in range(3):
        assert (await client.post("/auth/login", json=good, headers=headers)).status_code == 200
    assert (await client.post("/auth/login", json=bad, headers=headers)).status_code == 401
    locked = await client.post("/auth/login", json=good, headers=headers)
    assert locked.status_code == 429 and "retry-after" in locked.headers


# --- the client address --------------------------------------------------------------


async def test_only_the_trusted_proxys_entry_counts(client: httpx.AsyncClient) -> None:
    """One trusted hop: the entry the proxy appended (the last) is the address.

    Whatever the caller wrote before it is ignored, so rotating a forged
    X-Forwarded-For does not escape the per-address limit.
    """
    for i in range(IP_LIMIT):
        forged = {"x-forwarded-for": f"192.0.2.{i}, 203.0.113.99"}
        response = await client.post(
            "/auth/login",
            json={"email": f"nobody-{i}@example.com", "password": "guess-guess-1"},
            headers=forged,
        )
        assert response.status_code == 401
    blocked = await client.post(
        "/auth/login",
        json={"email": "nobody-x@example.com", "password": "guess-guess-1"},
        headers={"x-forwarded-for": "192.0.2.250, 203.0.113.99"},
    )
    assert blocked.status_code == 429


async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A caller that reaches the service directly cannot pick its own address."""
    env = {
        **auth_env(database_url),
        "SHOPFLOW_AUTH_SERVICE_TRUSTED_PROXIES": '["192.0.2.1/32"]',
        "SHOPFLOW_AUTH_SERVICE_IP_FAILURE_LIMIT": "3",
    }
    direct = start_service(
        "user-auth-untrusting", "auth_service.app:create_app", env, tmp_path_factory.mktemp("ut")
    )
    try:
        hooks = contract_hooks(direct.base_url, "/auth/openapi.json")
        async with httpx.AsyncClient(
            base_url=direct.base_url, timeout=30, event_hooks=hooks
        ) as http:
            statuses = [
                (
                    await http.post(
                        "/auth/login",
                        json={"email": f"nobody-{i}@example.com", "password": "guess-guess-1"},
                        headers={"x-forwarded-for": f"203.0.113.{i}"},
                    )
                ).status_code
                for i in range(5)
            ]
    finally:
        direct.stop()
    assert statuses == [401, 401, 401, 429, 429]
