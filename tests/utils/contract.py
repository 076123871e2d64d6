"""Every response a test receives is checked against the service's own OpenAPI document.

openapi-core does the validation (status documented, content type documented,
body conformant to the schema); this module only adapts httpx's request and
response to its protocols and hooks the check into an ``httpx.AsyncClient``.
Paths and methods the public document does not describe (``/internal/...``,
``/health``, a 405 probe) are not part of the contract and are skipped.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import httpx
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import PathError
from werkzeug.datastructures import Headers, ImmutableMultiDict

PROBLEM_JSON = "application/problem+json"


class _Request:
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
        return self._request.headers.get("content-type", "").lower()


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


class ContractViolation(AssertionError):
    pass


class Contract:
    """One service's public OpenAPI document, as openapi-core reads it."""

    def __init__(self, document: dict[str, Any]) -> None:
        # The document is served by a loopback test server: match any host.
        # RFC 9457 bodies are JSON under their own media type.
        config = Config(extra_media_type_deserializers={PROBLEM_JSON: json.loads})
        self.openapi = OpenAPI.from_dict({**document, "servers": [{"url": "/"}]}, config=config)
        self.checked = 0

    @classmethod
    async def fetch(cls, http: httpx.AsyncClient, path: str) -> Contract:
        response = await http.get(path)
        assert response.status_code == 200, response.text
        return cls(response.json())

    def check(self, response: httpx.Response) -> httpx.Response:
        """Validate ``response`` (status, headers, body) against the document.

        A request the document forbids must not succeed: for a 2xx answer the
        request is validated too. Error answers to deliberately bad requests are
        checked as responses only.
        """
        if response.request.url.path.endswith("/openapi.json"):
            return response  # the document itself
        request = _Request(response.request)
        try:
            if response.is_success:
                self.openapi.validate_request(request)
            self.openapi.validate_response(request, _Response(response))
        except PathError:
            return response  # not a public operation: not part of this contract
        except Exception as exc:
            detail = getattr(exc, "__cause__", None) or exc
            raise ContractViolation(
                f"{response.request.method} {response.request.url.path} -> "
                f"{response.status_code} breaks the OpenAPI document: {exc}: {detail}\n"
                f"body: {response.text[:500]}"
            ) from exc
        self.checked += 1
        return response

    async def hook(self, response: httpx.Response) -> None:
        """An httpx response event hook: checks every response as it arrives."""
        await response.aread()
        self.check(response)


async def contract_client(base_url: str, document_path: str, **options: Any) -> httpx.AsyncClient:
    """An AsyncClient that checks every response against ``base_url + document_path``."""
    async with httpx.AsyncClient(base_url=base_url) as plain:
        document = (await plain.get(document_path)).raise_for_status().json()
    contract = Contract(document)
    client = httpx.AsyncClient(
        base_url=base_url, event_hooks={"response": [contract.hook]}, **options
    )
    client.contract = contract  # type: ignore[attr-defined]
    return client


def contract_hooks(base_url: str, document_path: str) -> dict[str, list[Any]]:
    """``event_hooks`` for an httpx client built elsewhere (with its own limits, say)."""
    document = httpx.get(f"{base_url}{document_path}", timeout=30).raise_for_status().json()
    return {"response": [Contract(document).hook]}
