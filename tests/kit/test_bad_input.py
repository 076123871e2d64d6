"""Hostile and careless input never gets a 5xx: the kit answers a precise 4xx (real server)."""

from __future__ import annotations

import gzip
import json
import uuid

import httpx
import pytest

from tests.kit.test_http import assert_problem
from tests.utils.issuer import TokenIssuer
from tests.utils.live import LiveService, log_once
from tests.utils.rawhttp import raw_request

JSON = {"content-type": "application/json"}


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# --- JSON bodies ---------------------------------------------------------------


async def test_deeply_nested_json_is_400_naming_the_limit(client: httpx.AsyncClient) -> None:
    for depth in (100_000, 1_000, 40):
        body = assert_problem(
            await client.post("/widgets", content=nested(depth), headers=JSON), 400
        )
        assert "nest" in body["detail"], body
    inner = b'{"name": "gear", "count": 1, "extra": ' + nested(60) + b"}"
    assert_problem(await client.post("/widgets", content=inner, headers=JSON), 400)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
async def test_nan_and_infinity_are_not_json_400(client: httpx.AsyncClient, constant: str) -> None:
    payload = f'{{"name": "gear", "count": {constant}}}'.encode()
    body = assert_problem(await client.post("/widgets", content=payload, headers=JSON), 400)
    assert "not valid JSON" in body["detail"], body


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ('{"name": "ge\\u0000ar", "count": 1}', "name"),
        ('{"name": "gear\\ud800", "count": 1}', "name"),
        ('{"name": "gear", "count": 1, "tags": {"a\\u0000": 1}}', "tags"),
    ],
)
async def test_nul_and_lone_surrogates_are_422_naming_the_field(
    client: httpx.AsyncClient, payload: str, field: str
) -> None:
    response = await client.post("/widgets", content=payload.encode(), headers=JSON)
    body = assert_problem(response, 422)
    assert [e["field"] for e in body["errors"]] == [field], body
    assert "\x00" not in response.text and "\\u0000" not in response.text


async def test_integers_beyond_range_in_a_body_are_422(client: httpx.AsyncClient) -> None:
    huge = "9" * 1000
    response = await client.post(
        "/widgets", content=f'{{"name": "gear", "count": {huge}}}'.encode(), headers=JSON
    )
    body = assert_problem(response, 422)
    assert [e["field"] for e in body["errors"]] == ["count"]


# --- content type (a cross-site form cannot post JSON) ------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "text/json",
    ],
)
async def test_json_endpoints_accept_only_application_json(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post(
        "/widgets", content=b'{"name": "gear", "count": 1}', headers=headers
    )
    body = assert_problem(response, 415)
    assert "application/json" in body["detail"]


async def test_application_json_with_a_charset_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/widgets",
        content=b'{"name": "gear", "count": 1}',
        headers={"content-type": "Application/JSON; charset=utf-8"},
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("coding", ["gzip", "br", "identity, gzip", "x-unknown"])
async def test_a_compressed_body_is_415_naming_what_is_accepted(
    client: httpx.AsyncClient, coding: str
) -> None:
    body = gzip.compress(b'{"name": "gear", "count": 1}')
    response = await client.post(
        "/widgets", content=body, headers={**JSON, "content-encoding": coding}
    )
    problem = assert_problem(response, 415)
    assert "Content-Encoding" in problem["detail"]
    assert response.headers["accept-encoding"] == "identity"


async def test_an_identity_content_encoding_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/widgets",
        content=b'{"name": "gear", "count": 1}',
        headers={**JSON, "content-encoding": "identity"},
    )
    assert response.status_code == 201, response.text


# --- query parameters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ("page=100000000000000000000", "page"),
        pytest.param("page=" + "1" * 1000, "page", id="1000-digits"),
        ("page=2147483648", "page"),
        ("page_size=100000000000000000000", "page_size"),
        ("q=a%00b", "q"),
        ("page=1%00", "page"),
    ],
)
async def test_out_of_range_and_nul_query_parameters_are_400(
    client: httpx.AsyncClient, params: str, name: str
) -> None:
    body = assert_problem(await client.get(f"/widgets?{params}"), 400)
    assert name in body["detail"]
    assert [e["field"] for e in body["errors"]] == [name]


# --- odd header values --------------------------------------------------------------------


ODD_VALUES = [b"", b" ", b"x   ", b"\xff\xfe\xc3", "caf\u00e9".encode(), b"Bearer ", b"Bearer \xff"]


@pytest.mark.parametrize("value", ODD_VALUES)
@pytest.mark.parametrize(
    "header",
    [
        b"authorization",
        b"content-type",
        b"x-request-id",
        b"x-forwarded-for",
        b"if-none-match",
        b"idempotency-key",
        b"accept",
    ],
)
async def test_odd_header_values_never_get_a_5xx(
    sample: LiveService, issuer: TokenIssuer, header: bytes, value: bytes
) -> None:
    token = f"Bearer {issuer.token()}".encode()
    endpoints = [
        ("GET", "/me", b"", header != b"authorization"),
        ("GET", "/widgets", b"", False),
        ("POST", "/widgets", b'{"name": "gear", "count": 1}', False),
    ]
    if header in (b"idempotency-key", b"authorization"):
        endpoints.append(("POST", "/widgets/idempotent", b"", header != b"authorization"))
    for method, path, body, auth in endpoints:
        headers = [(header, value)]
        if auth:
            headers.append((b"authorization", token))
        if header != b"content-type" and body:
            headers.append((b"content-type", b"application/json"))
        response = await raw_request(sample.base_url, method, path, headers, body)
        assert response.status < 500, (method, path, header, value, response.body)
        assert response.headers["content-type"].startswith(
            ("application/json", "application/problem+json")
        )


async def test_empty_or_spaced_bearer_is_401(sample: LiveService, issuer: TokenIssuer) -> None:
    for value in (
        b"Bearer ",
        b"Bearer    ",
        b"Bearer",
        b"bearer \xff\xfe",
        b"Bearer a.b.c\xc3\xa9",
    ):
        response = await raw_request(sample.base_url, "GET", "/me", [(b"authorization", value)])
        assert response.status == 401, (value, response.body)
    # A valid token with trailing spaces is still that token.
    padded = f"Bearer {issuer.token()}   ".encode()
    response = await raw_request(sample.base_url, "GET", "/me", [(b"authorization", padded)])
    assert response.status == 200


# --- logs -----------------------------------------------------------------------------------


async def test_logs_are_json_lines_with_the_request_id(
    client: httpx.AsyncClient, sample: LiveService
) -> None:
    marker = f"crash-{uuid.uuid4().hex[:8]}"
    assert (await client.get("/boom", headers={"x-request-id": marker})).status_code == 500
    await client.post("/widgets", content=nested(100_000), headers={**JSON, "x-request-id": marker})
    log = await log_once(
        sample.child.log_path, lambda text: text.count(marker) >= 3
    )  # the crash, its access line, and the nested body's access line
    lines = log.splitlines()
    assert lines
    entries = []
    for line in lines:
        entries.append(json.loads(line))  # every line is one JSON object
    crash = [e for e in entries if e.get("request_id") == marker and e.get("level") == "error"]
    assert crash, "the unhandled error is logged with its request id"
    assert "Traceback" in crash[0]["exc"] and "secret internal detail" in crash[0]["exc"]
    mine = [e for e in entries if e.get("request_id") == marker]
    assert {e["logger"] for e in mine} >= {"shopflow.errors", "shopflow.access"}
