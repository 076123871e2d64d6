"""Fixtures for the kit's tests: a test issuer and the sample service as a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
from shopflow_kit.db import migrate

from tests.kit_sample.app import MODELS, Settings
from tests.utils.issuer import ISSUER, TokenIssuer
from tests.utils.live import LiveService, start_service

CLIENTS = {
    "order-mgmt": ("order-secret", ["widgets:read", "notifications:publish"]),
    "reader": ("reader-secret", ["other:scope"]),
}


@pytest.fixture(scope="module")
def issuer() -> Iterator[TokenIssuer]:
    server = TokenIssuer(CLIENTS).start()
    yield server
    server.stop()


def sample_env(database_url: str, issuer: TokenIssuer, **extra: str) -> dict[str, str]:
    env = {
        "SHOPFLOW_KIT_SAMPLE_DATABASE_URL": database_url,
        "SHOPFLOW_KIT_SAMPLE_USER_AUTH_URL": issuer.url,
        "SHOPFLOW_KIT_SAMPLE_JWT_ISSUER": ISSUER,
        "SHOPFLOW_KIT_SAMPLE_OAUTH_CLIENT_ID": "order-mgmt",
        "SHOPFLOW_KIT_SAMPLE_OAUTH_CLIENT_SECRET": "order-secret",
        "SHOPFLOW_KIT_SAMPLE_JWKS_REFETCH_INTERVAL": "0.5",
    }
    env.update({f"SHOPFLOW_KIT_SAMPLE_{k.upper()}": v for k, v in extra.items()})
    return env


async def migrate_sample(database_url: str) -> None:
    await migrate(Settings(database_url=database_url), MODELS)


@pytest_asyncio.fixture(scope="module")
async def sample(
    database_url: str, issuer: TokenIssuer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveService]:
    await migrate_sample(database_url)
    service = start_service(
        "kit-sample",
        "tests.kit_sample.app:create_app",
        sample_env(database_url, issuer),
        tmp_path_factory.mktemp("logs"),
    )
    yield service
    service.stop()


@pytest_asyncio.fixture
async def client(sample: LiveService) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sample.base_url, timeout=10) as http:
        yield http
