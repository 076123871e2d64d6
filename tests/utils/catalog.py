"""catalog-api as real servers on a real PostgreSQL, trusting a loopback token issuer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from catalog_api.config import MODELS, Settings
from shopflow_kit.db import migrate

from tests.utils.contract import contract_client
from tests.utils.issuer import ISSUER, TokenIssuer
from tests.utils.live import LiveService, start_service


@pytest.fixture(scope="module")
def issuer() -> Iterator[TokenIssuer]:
    server = TokenIssuer().start()
    yield server
    server.stop()


def catalog_env(database_url: str, issuer: TokenIssuer) -> dict[str, str]:
    return {
        "SHOPFLOW_CATALOG_API_DATABASE_URL": database_url,
        "SHOPFLOW_CATALOG_API_USER_AUTH_URL": issuer.url,
        "SHOPFLOW_CATALOG_API_JWT_ISSUER": ISSUER,
        "SHOPFLOW_CATALOG_API_SWEEP_INTERVAL_SECONDS": "0.5",
        "SHOPFLOW_CATALOG_API_DATABASE_POOL_MAX": "10",
    }


@pytest_asyncio.fixture(scope="module")
async def catalog(
    database_url: str, issuer: TokenIssuer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveService]:
    await migrate(Settings(database_url=database_url), MODELS)
    service = start_service(
        "catalog-api",
        "catalog_api.app:create_app",
        catalog_env(database_url, issuer),
        tmp_path_factory.mktemp("catalog-logs"),
    )
    yield service
    service.stop()


@pytest_asyncio.fixture
async def client(catalog: LiveService) -> AsyncIterator[httpx.AsyncClient]:
    async with await contract_client(
        catalog.base_url, "/products/openapi.json", timeout=30
    ) as http:
        yield http


def admin(issuer: TokenIssuer) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.token(role='admin')}"}


def customer(issuer: TokenIssuer) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.token(role='customer')}"}


def service_token(issuer: TokenIssuer, scope: str = "inventory:reserve") -> dict[str, str]:
    token = issuer.token(sub="order-mgmt", aud="shopflow-internal", scope=scope)
    return {"Authorization": f"Bearer {token}"}


def new_category() -> str:
    return f"cat-{uuid.uuid4().hex[:8]}"


async def make_product(
    http: httpx.AsyncClient, issuer: TokenIssuer, category: str, **fields: Any
) -> dict[str, Any]:
    body = {
        "sku": f"SKU-{uuid.uuid4().hex[:10]}",
        "name": "Plain Widget",
        "description": "",
        "category": category,
        "price_cents": 1000,
        "currency": "USD",
        "stock": 5,
        **fields,
    }
    response = await http.post("/products", json=body, headers=admin(issuer))
    assert response.status_code == 201, response.text
    return dict(response.json())
