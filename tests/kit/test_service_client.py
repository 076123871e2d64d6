"""The service-token client against a real client-credentials endpoint."""

from __future__ import annotations

import asyncio

import pytest
from authlib.integrations.base_client.errors import OAuthError
from shopflow_kit.service_client import ServiceTokenClient

from tests.utils.issuer import TokenIssuer


def token_client(
    issuer: TokenIssuer, secret: str = "order-secret", leeway: int = 30
) -> ServiceTokenClient:
    return ServiceTokenClient(
        f"{issuer.url}/auth/oauth/token", "order-mgmt", secret, ["widgets:read"], leeway=leeway
    )


async def test_token_is_cached(issuer: TokenIssuer) -> None:
    client = token_client(issuer)
    try:
        for _ in range(3):
            await client.get(f"{issuer.url}/auth/.well-known/jwks.json")
        assert client.tokens_fetched == 1
    finally:
        await client.aclose()


async def test_token_is_refreshed_before_expiry(issuer: TokenIssuer) -> None:
    # Tokens live 60 s; a 59 s leeway makes the client treat them as stale after 1 s.
    client = token_client(issuer, leeway=59)
    try:
        await client.get(f"{issuer.url}/auth/.well-known/jwks.json")
        first = client.access_token
        await asyncio.sleep(1.5)
        await client.get(f"{issuer.url}/auth/.well-known/jwks.json")
        assert client.tokens_fetched == 2
        assert client.access_token != first
    finally:
        await client.aclose()


async def test_concurrent_first_calls_fetch_one_token(issuer: TokenIssuer) -> None:
    client = token_client(issuer)
    try:
        await asyncio.gather(
            *(client.get(f"{issuer.url}/auth/.well-known/jwks.json") for _ in range(10))
        )
        assert client.tokens_fetched == 1
    finally:
        await client.aclose()


async def test_wrong_secret_fails_clearly(issuer: TokenIssuer) -> None:
    client = token_client(issuer, secret="wrong")
    try:
        with pytest.raises(OAuthError, match="invalid_client"):
            await client.get(f"{issuer.url}/auth/.well-known/jwks.json")
    finally:
        await client.aclose()


async def test_cluster_names_are_resolved_by_the_client(issuer: TokenIssuer) -> None:
    """Code may name a service as in the cluster; ``resolve`` maps it to where it is here."""

    def resolve(url: str) -> str:
        return url.replace("http://user-auth:4000", issuer.url)

    client = ServiceTokenClient(
        "http://user-auth:4000/auth/oauth/token",
        "order-mgmt",
        "order-secret",
        ["widgets:read"],
        resolve=resolve,
    )
    try:
        response = await client.get("http://user-auth:4000/auth/.well-known/jwks.json")
        assert response.status_code == 200 and response.json()["keys"]
        assert client.token_url == f"{issuer.url}/auth/oauth/token"
    finally:
        await client.aclose()
