"""Service-to-service calls with OAuth2 client-credentials tokens (Authlib + httpx).

Both speak httpx's API over aiohttp's connection pool (httpx-aiohttp's
transport). httpcore's pool polls every idle connection for readability each
time a request joins or leaves it; under 32 concurrent checkouts that cost
order-mgmt 0.75 ms of CPU per call, against 0.17 ms on aiohttp's pool
(docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from typing import Any

import httpx

with warnings.catch_warnings():
    # Authlib nudges towards the httpx2 fork; the stack standardises on httpx.
    # Its deprecate module installs an "always" filter on import, so it is
    # imported first and then overridden.
    import authlib.deprecate  # noqa: F401

    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import AsyncOAuth2Client

from httpx_aiohttp import AiohttpTransport

#: Idle keep-alive connections are closed after this long, well before a
#: service's own keep-alive timeout (Sanic's 120 s), so a request never races a
#: server closing the connection it was given.
KEEPALIVE_EXPIRY_SECONDS = 5.0


def transport() -> httpx.AsyncBaseTransport:
    """The transport of every service-to-service client: httpx over aiohttp's pool."""
    return AiohttpTransport(
        limits=httpx.Limits(max_connections=100, keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS)
    )


def async_client(*, timeout: float) -> httpx.AsyncClient:
    """A plain (token-less) httpx client on :func:`transport`, for hot public calls."""
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout), transport=transport())


class ServiceTokenClient:
    """An httpx client that fetches, caches and refreshes a service token.

    Authlib refreshes a client-credentials token once it is within ``leeway``
    seconds of expiry; the first token is fetched lazily on the first call.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scopes: list[str],
        *,
        timeout: float = 5.0,
        leeway: int = 30,
        resolve: Callable[[str], str] | None = None,
    ) -> None:
        #: Maps cluster names to where this process reaches them
        #: (``ServiceSettings.resolve_url``); identity by default.
        self.resolve = resolve or (lambda url: url)
        token_url = self.resolve(token_url)
        self.token_url = token_url
        self._client = AsyncOAuth2Client(
            client_id=client_id,
            client_secret=client_secret,
            scope=" ".join(scopes),
            token_endpoint=token_url,
            grant_type="client_credentials",
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 (a method name)
            timeout=httpx.Timeout(timeout),
            transport=transport(),
            leeway=leeway,
            update_token=self._refreshed,
        )
        self._first_token = asyncio.Lock()
        self.tokens_fetched = 0

    async def _refreshed(self, token: dict[str, Any], **_: Any) -> None:
        """Authlib's callback after it replaced an expiring token by itself."""
        self.tokens_fetched += 1

    async def _ensure_token(self) -> None:
        if self._client.token:
            return
        async with self._first_token:
            if not self._client.token:
                await self.fetch_token()

    async def fetch_token(self) -> dict[str, Any]:
        token: dict[str, Any] = await self._client.fetch_token(
            self.token_url, grant_type="client_credentials"
        )
        self.tokens_fetched += 1
        return token

    @property
    def access_token(self) -> str | None:
        token = self._client.token
        return None if not token else str(token["access_token"])

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        url = self.resolve(url)
        await self._ensure_token()
        response: httpx.Response = await self._client.request(method, url, **kwargs)
        if response.status_code == 401:
            # The token may have been signed by a retired key: fetch a fresh one once.
            await self.fetch_token()
            response = await self._client.request(method, url, **kwargs)
        return response

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def aclose(self) -> None:
        await self._client.aclose()
