"""The service-token client against a real client-credentials endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from authlib.integrations.base_client.errors import OAuthError
from shopctl.ports import free_port
from shopflow_kit.service_client import HttpClient, ServiceTokenClient

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


# --- HttpClient: the calls themselves, against a real aiohttp server on loopback -----


@pytest.fixture
async def echo() -> AsyncIterator[str]:
    async def handle(request: web.Request) -> web.Response:
        if request.path == "/slow":
            await asyncio.sleep(2)
        if request.path == "/moved":
            raise web.HTTPFound("/elsewhere")
        if request.path == "/gzipped":
            answer = web.json_response({"zipped": True})
            answer.enable_compression(web.ContentCoding.gzip)
            return answer
        return web.json_response(
            {
                "method": request.method,
                "query": dict(request.query),
                "type": request.content_type,
                "body": (await request.json()) if request.can_read_body else None,
                "request_id": request.headers.get("X-Request-Id"),
            },
            headers={"X-Answer": "yes"},
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_calls_answer_in_httpx_terms(echo: str) -> None:
    client = HttpClient(timeout=5)
    try:
        response = await client.post(
            f"{echo}/x",
            json={"ids": ["a", "b"], "n": 1},
            params={"ids": "a,b"},
            headers={"X-Request-Id": "r-1"},
        )
        assert isinstance(response, httpx.Response)
        assert response.status_code == 200 and response.headers["x-answer"] == "yes"
        assert response.json() == {
            "method": "POST",
            "query": {"ids": "a,b"},
            "type": "application/json",
            "body": {"ids": ["a", "b"], "n": 1},
            "request_id": "r-1",
        }
        moved = await client.get(f"{echo}/moved")
        assert moved.status_code == 302  # redirects are answers, never followed
        with pytest.raises(httpx.HTTPStatusError):
            moved.raise_for_status()  # the answer carries its request, as httpx's do
        zipped = await client.get(f"{echo}/gzipped")
        assert zipped.headers["content-encoding"] == "gzip"
        assert zipped.json() == {"zipped": True}  # decoded once
    finally:
        await client.aclose()


async def test_failures_are_httpx_errors(echo: str) -> None:
    client = HttpClient(timeout=0.3)
    try:
        with pytest.raises(httpx.TimeoutException):
            await client.get(f"{echo}/slow")
        with pytest.raises(httpx.ConnectError) as refused:
            await client.get(f"http://127.0.0.1:{free_port()}/nobody-listens")
        assert refused.value.request.url.path == "/nobody-listens"
        assert (await client.get(f"{echo}/after")).status_code == 200  # the pool goes on
    finally:
        await client.aclose()
