"""Service-to-service calls with OAuth2 client-credentials tokens.

Calls go over aiohttp's connection pool and answer with an ``httpx.Response``,
so callers keep httpx's API and its exceptions (``httpx.HTTPError``). Authlib
fetches the tokens; the client keeps the current one and fetches the next
within ``leeway`` seconds of its expiry.

Why not httpx's own client: under 32 concurrent checkouts httpcore's pool cost
order-mgmt 0.75 ms of CPU per call (it polls every idle connection each time a
request joins or leaves it), and on aiohttp's pool httpx's request and URL
models, its auth and redirect flow and Authlib's wrapper still took about half
of each call's CPU (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import httpx
import orjson

with warnings.catch_warnings():
    # Authlib nudges towards the httpx2 fork; the stack standardises on httpx.
    # Its deprecate module installs an "always" filter on import, so it is
    # imported first and then overridden.
    import authlib.deprecate  # noqa: F401

    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import AsyncOAuth2Client

#: Idle keep-alive connections are closed after this long, well before a
#: service's own keep-alive timeout (Sanic's 120 s), so a request never races a
#: server closing the connection it was given.
KEEPALIVE_EXPIRY_SECONDS = 5.0
MAX_CONNECTIONS = 100


class HttpClient:
    """Keep-alive HTTP calls on aiohttp's pool, answered as ``httpx.Response``.

    Failures are httpx's: a refused connection is ``httpx.ConnectError``, running
    out of ``timeout`` (the whole call) ``httpx.TimeoutException``, anything else
    on the wire ``httpx.TransportError``. Redirects are not followed.
    """

    def __init__(self, *, timeout: float) -> None:
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _pool(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Made on first use, inside the event loop that will use it.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_EXPIRY_SECONDS
                ),
                # The body is handed to httpx as it came, Content-Encoding and all:
                # httpx decodes it (decoding it here too would decode it twice).
                auto_decompress=False,
                trust_env=False,
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpx's signature, kept for callers
    ) -> httpx.Response:
        # httpx's own answer carries its request (raise_for_status, .url, errors' .request).
        request = httpx.Request(method, url, params=params)
        sent = dict(headers or {})
        body = None
        if json is not None:
            body = orjson.dumps(json)
            sent["Content-Type"] = "application/json"
        try:
            async with self._pool().request(
                method,
                url,
                headers=sent,
                params=params,
                data=body,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout or self.timeout),
            ) as answer:
                content = await answer.read()
        except TimeoutError:
            raise httpx.TimeoutException(
                f"{method} {url}: no answer in time", request=request
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(f"{method} {url}: {exc}", request=request) from None
        except aiohttp.ClientError as exc:
            raise httpx.TransportError(
                f"{method} {url}: {type(exc).__name__}", request=request
            ) from None
        return httpx.Response(
            answer.status, headers=answer.raw_headers, content=content, request=request
        )

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def async_client(*, timeout: float) -> HttpClient:
    """A plain (token-less) client for hot public calls."""
    return HttpClient(timeout=timeout)


class ServiceTokenClient:
    """An :class:`HttpClient` that sends a client-credentials token with each call.

    The first token is fetched on the first call; the next once the current one
    is within ``leeway`` seconds of expiry, by one caller while the others wait.
    A 401 fetches a new token and tries once more.
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
        self.leeway = leeway
        self.http = HttpClient(timeout=timeout)
        # Authlib only fetches tokens; calls go through self.http.
        self._client = AsyncOAuth2Client(
            client_id=client_id,
            client_secret=client_secret,
            scope=" ".join(scopes),
            token_endpoint=token_url,
            grant_type="client_credentials",
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 (a method name)
            timeout=httpx.Timeout(timeout),
            leeway=leeway,
        )
        self._fetching = asyncio.Lock()
        self.tokens_fetched = 0

    def _current(self) -> str | None:
        token = self._client.token
        if not token or token.is_expired(leeway=self.leeway):
            return None
        return str(token["access_token"])

    async def _bearer(self) -> str:
        """The current token; one caller fetches a new one when it is missing or expiring."""
        current = self._current()
        if current is None:
            async with self._fetching:
                current = self._current()
                if current is None:
                    await self.fetch_token()
                    current = str(self._client.token["access_token"])
        return current

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

    async def request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        url = self.resolve(url)
        bearer = await self._bearer()
        response = await self.http.request(
            method, url, headers={**(headers or {}), "Authorization": f"Bearer {bearer}"}, **kwargs
        )
        if response.status_code == 401:
            # The token may have been signed by a retired key: fetch a fresh one once.
            await self.fetch_token()
            bearer = str(self._client.token["access_token"])
            response = await self.http.request(
                method,
                url,
                headers={**(headers or {}), "Authorization": f"Bearer {bearer}"},
                **kwargs,
            )
        return response

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def aclose(self) -> None:
        await self.http.aclose()
        await self._client.aclose()
