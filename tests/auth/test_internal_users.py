"""GET /internal/users/{id}: notify-hub's recipient look-up, for the users:read scope only.

user-auth runs here with the service registry's own client scopes (no override),
so the test also proves that only notify-hub's client can obtain ``users:read``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from auth_service.config import MODELS, Settings
from shopflow_kit.db import migrate
from shopflow_kit.registry import client_scopes

from tests.utils.auth import auth_env
from tests.utils.factories import register_and_login
from tests.utils.live import LiveService, start_service
from tests.utils.services import bearer

CLIENTS = {"notify-hub": "notify-secret", "order-mgmt": "order-secret"}


@pytest_asyncio.fixture(scope="module")
async def registry_auth(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveService]:
    await migrate(Settings(database_url=database_url), MODELS)
    env = auth_env(database_url)
    env["SHOPFLOW_AUTH_SERVICE_OAUTH_CLIENTS"] = json.dumps(CLIENTS)
    del env["SHOPFLOW_AUTH_SERVICE_OAUTH_CLIENT_SCOPES"]  # the registry's scopes apply
    service = start_service(
        "user-auth", "auth_service.app:create_app", env, tmp_path_factory.mktemp("auth-logs")
    )
    yield service
    service.stop()


@pytest_asyncio.fixture
async def client(registry_auth: LiveService) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=registry_auth.base_url, timeout=20) as http:
        yield http


async def service_token(http: httpx.AsyncClient, client_id: str, scope: str) -> httpx.Response:
    return await http.post(
        "/auth/oauth/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(client_id, CLIENTS[client_id]),
    )


def test_only_notify_hub_may_request_users_read() -> None:
    assert [name for name, scopes in client_scopes().items() if "users:read" in scopes] == [
        "notify-hub"
    ]


async def test_notify_hub_reads_a_user(client: httpx.AsyncClient) -> None:
    shopper = await register_and_login(client)
    token = (await service_token(client, "notify-hub", "users:read")).json()["access_token"]
    response = await client.get(f"/internal/users/{shopper.id}", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {
        "id": shopper.id,
        "email": shopper.email,
        "name": "Test Shopper",
        "role": "customer",
    }
    for missing in (str(uuid.uuid4()), "not-a-uuid"):
        unknown = await client.get(f"/internal/users/{missing}", headers=bearer(token))
        assert unknown.status_code == 404
        assert unknown.headers["content-type"] == "application/problem+json"


async def test_nobody_else_reads_users(client: httpx.AsyncClient) -> None:
    shopper = await register_and_login(client)
    path = f"/internal/users/{shopper.id}"
    refused = await service_token(client, "order-mgmt", "users:read")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"
    order_token = (await service_token(client, "order-mgmt", "notifications:publish")).json()
    assert (await client.get(path, headers=bearer(order_token["access_token"]))).status_code == 403
    # A shopper's own access token is for the public API, not for internal endpoints.
    assert (await client.get(path, headers=shopper.auth)).status_code == 401
    assert (await client.get(path)).status_code == 401


async def test_the_internal_endpoint_is_not_in_the_public_document(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/auth/openapi.json")).json()["paths"]
    assert not [p for p in paths if p.startswith("/internal")]
