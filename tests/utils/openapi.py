"""Checking real HTTP responses against a service's own OpenAPI document (openapi-core)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import httpx
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict


class _Request:
    """An httpx request as openapi-core's Request protocol."""

    def __init__(self, request: httpx.Request) -> None:
        self._request = request
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qs(request.url.query.decode())),
            header=Headers(dict(request.headers)),
            cookie=ImmutableMultiDict(),
        )

    @property
    def host_url(self) -> str:
        return f"{self._request.url.scheme}://{self._request.url.netloc.decode()}"

    @property
    def path(self) -> str:
        return self._request.url.path

    @property
    def method(self) -> str:
        return self._request.method.lower()

    @property
    def body(self) -> bytes | None:
        return self._request.content or None

    @property
    def content_type(self) -> str:
        return self._request.headers.get("content-type", "")


class _Response:
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def data(self) -> bytes:
        return self._response.content

    @property
    def status_code(self) -> int:
        return self._response.status_code

    @property
    def content_type(self) -> str:
        return self._response.headers.get("content-type", "")

    @property
    def headers(self) -> Headers:
        return Headers(dict(self._response.headers))


class ResponseChecker:
    """Validates responses to documented paths; every check is counted."""

    def __init__(self, document: dict[str, Any], prefixes: tuple[str, ...]) -> None:
        # Problem bodies are JSON too; openapi-core only knows application/json by name.
        config = Config(extra_media_type_deserializers={"application/problem+json": json.loads})
        self.openapi = OpenAPI.from_dict(document, config=config)
        self.prefixes = prefixes
        self.checked = 0

    def covers(self, path: str) -> bool:
        return any(path == p or path.startswith(f"{p}/") for p in self.prefixes)

    def check(self, response: httpx.Response) -> None:
        """Raise openapi-core's error if ``response`` breaks the document."""
        self.openapi.validate_response(_Request(response.request), _Response(response))
        self.checked += 1

    async def hook(self, response: httpx.Response) -> None:
        """An httpx response event hook: checks every response to a documented prefix."""
        if self.covers(response.request.url.path) and not response.request.url.path.endswith(
            "/openapi.json"
        ):
            await response.aread()
            self.check(response)
