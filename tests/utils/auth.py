"""user-auth as a real server on a real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from auth_service.config import MODELS, Settings
from shopflow_kit.db import migrate

from tests.utils.contract import contract_client
from tests.utils.live import LiveService, start_service

KEK = "test-key-encryption-key-0123456789abcdef"
ISSUER = "http://auth.test/auth"
CLIENTS = {"order-mgmt": "order-secret", "kit-caller": "kit-secret"}
SCOPES = {"order-mgmt": ["inventory:reserve", "payments:charge"], "kit-caller": ["widgets:read"]}
IP_LIMIT = 8


def auth_env(database_url: str) -> dict[str, str]:
    return {
        "SHOPFLOW_AUTH_SERVICE_DATABASE_URL": database_url,
        "SHOPFLOW_AUTH_SERVICE_KEY_ENCRYPTION_KEY": KEK,
        "SHOPFLOW_AUTH_SERVICE_JWT_ISSUER": ISSUER,
        "SHOPFLOW_AUTH_SERVICE_OAUTH_CLIENTS": json.dumps(CLIENTS),
        "SHOPFLOW_AUTH_SERVICE_OAUTH_CLIENT_SCOPES": json.dumps(SCOPES),
        "SHOPFLOW_AUTH_SERVICE_IP_FAILURE_LIMIT": str(IP_LIMIT),
    }


@pytest_asyncio.fixture(scope="module")
async def auth(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveService]:
    await migrate(Settings(database_url=database_url), MODELS)
    service = start_service(
        "user-auth",
        "auth_service.app:create_app",
        auth_env(database_url),
        tmp_path_factory.mktemp("auth-logs"),
    )
    yield service
    service.stop()


@pytest_asyncio.fixture
async def client(auth: LiveService) -> AsyncIterator[httpx.AsyncClient]:
    async with await contract_client(auth.base_url, "/auth/openapi.json", timeout=20) as http:
        yield http
