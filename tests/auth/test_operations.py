"""Service tokens against a kit endpoint, key rotation and the admin CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from joserfc.jws import extract_compact
from shopctl.pg import create_database, drop_database
from shopflow_kit.service_client import ServiceTokenClient

from tests.utils.auth import ISSUER, KEK
from tests.utils.factories import PASSWORD, register_and_login, unique_email
from tests.utils.kit import migrate_sample
from tests.utils.live import LiveService, start_service

ROOT = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture(scope="module")
async def sample(
    auth: LiveService, pg_server: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveService]:
    """The kit's sample service, trusting this user-auth."""
    name = f"t_sample_{uuid.uuid4().hex[:6]}"
    url = await create_database(pg_server, name)
    await migrate_sample(url)
    service = start_service(
        "kit-sample",
        "tests.kit_sample.app:create_app",
        {
            "SHOPFLOW_KIT_SAMPLE_DATABASE_URL": url,
            "SHOPFLOW_KIT_SAMPLE_USER_AUTH_URL": auth.base_url,
            "SHOPFLOW_KIT_SAMPLE_JWT_ISSUER": ISSUER,
        },
        tmp_path_factory.mktemp("sample-logs"),
    )
    yield service
    service.stop()
    await drop_database(pg_server, name)


async def test_service_token_is_accepted_by_require_scope(
    auth: LiveService, sample: LiveService
) -> None:
    caller = ServiceTokenClient(
        f"{auth.base_url}/auth/oauth/token", "kit-caller", "kit-secret", ["widgets:read"]
    )
    try:
        response = await caller.get(f"{sample.base_url}/internal/ping")
    finally:
        await caller.aclose()
    assert response.status_code == 200
    assert response.json() == {"caller": "kit-caller"}


async def test_user_tokens_from_user_auth_work_on_other_services(
    client: httpx.AsyncClient, sample: LiveService
) -> None:
    account = await register_and_login(client)
    async with httpx.AsyncClient(base_url=sample.base_url) as http:
        me = await http.get("/me", headers=account.auth)
        assert me.json() == {"sub": account.id, "role": "customer"}
        assert (await http.get("/internal/ping", headers=account.auth)).status_code == 401


def shopctl(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHOPFLOW_AUTH_SERVICE_KEY_ENCRYPTION_KEY": KEK}
    return subprocess.run(
        [sys.executable, "-m", "shopctl", *args, "--database-url", database_url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )


def kid_of(token: str) -> str:
    return str(extract_compact(token.encode()).protected["kid"])


async def test_key_rotation_publishes_first_then_signs(
    client: httpx.AsyncClient, database_url: str
) -> None:
    account = await register_and_login(client)
    old_kid = kid_of(account.access_token)
    result = shopctl("auth", "rotate-keys", "--activate-in", "3", database_url=database_url)
    assert result.returncode == 0, result.stderr
    new_kid = result.stdout.split("added signing key ")[1].split(";")[0]
    published = {k["kid"] for k in (await client.get("/auth/.well-known/jwks.json")).json()["keys"]}
    assert {old_kid, new_kid} <= published
    # Not yet active: still signing with the old key.
    early = (
        await client.post("/auth/login", json={"email": account.email, "password": PASSWORD})
    ).json()
    assert kid_of(early["access_token"]) == old_kid
    await asyncio.sleep(3.5)
    late = (
        await client.post("/auth/login", json={"email": account.email, "password": PASSWORD})
    ).json()
    assert kid_of(late["access_token"]) == new_kid
    # The old key stays published while its tokens live, so they still verify.
    published = {k["kid"] for k in (await client.get("/auth/.well-known/jwks.json")).json()["keys"]}
    assert old_kid in published
    assert (await client.get("/auth/me", headers=account.auth)).status_code == 200


async def test_admin_create_cli(client: httpx.AsyncClient, database_url: str) -> None:
    email = unique_email("admin")
    created = shopctl(
        "admin", "create", "--email", email, "--password", PASSWORD, database_url=database_url
    )
    assert created.returncode == 0, created.stderr
    login = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    me = await client.get(
        "/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
    )
    assert me.json()["role"] == "admin"

    again = shopctl(
        "admin",
        "create",
        "--email",
        email.upper(),
        "--password",
        PASSWORD,
        database_url=database_url,
    )
    assert again.returncode == 1 and "already exists" in again.stderr
    weak = shopctl(
        "admin",
        "create",
        "--email",
        unique_email(),
        "--password",
        "password123",
        database_url=database_url,
    )
    assert weak.returncode == 1 and "too common" in weak.stderr
    # An address registration would refuse (notify-hub could never mail it) is refused too.
    reserved = shopctl(
        "admin",
        "create",
        "--email",
        "root@shopflow.local",
        "--password",
        PASSWORD,
        database_url=database_url,
    )
    assert reserved.returncode == 1 and "email" in reserved.stderr, reserved.stderr
