"""Checking real httpx exchanges against a service's served OpenAPI document (openapi-core)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import httpx
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict


class _Request:
    """openapi-core's request protocol over an ``httpx.Request``."""

    def __init__(self, request: httpx.Request) -> None:
        self._request = request
        url = urlsplit(str(request.url))
        self.host_url = f"{url.scheme}://{url.netloc}"
        self.path = url.path
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qs(url.query)),
            header=Headers(dict(request.headers)),
            cookie=ImmutableMultiDict(),
        )

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
    """openapi-core's response protocol over an ``httpx.Response``."""

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


class Contract:
    """A served OpenAPI document; :meth:`check` fails the test on any mismatch."""

    def __init__(self, document: dict) -> None:
        # RFC 9457 problems are JSON too; openapi-core only knows application/json by default.
        config = Config(extra_media_type_deserializers={"application/problem+json": json.loads})
        self.openapi = OpenAPI.from_dict(document, config=config)

    @classmethod
    async def fetch(cls, http: httpx.AsyncClient, path: str) -> Contract:
        response = await http.get(path)
        assert response.status_code == 200, response.text
        return cls(response.json())

    def check(self, response: httpx.Response) -> httpx.Response:
        """Validate the response (status, headers, body) against the document.

        A request the document forbids must not succeed: for a 2xx answer the
        request is validated too. Error answers to deliberately bad requests are
        checked as responses only.
        """
        request = _Request(response.request)
        if response.is_success:
            self.openapi.validate_request(request)
        self.openapi.validate_response(request, _Response(response))
        return response
