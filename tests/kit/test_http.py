"""The kit's HTTP behaviour, on the sample service running as a real server."""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import httpx

from tests.utils.live import LiveService, log_once

PROBLEM = "application/problem+json"
UUID_FORM = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    return body


async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok", "service": "kit-sample"}
    assert (await client.get("/ready")).status_code == 200
    assert (await client.get("/widgets/health")).status_code == 200
    assert (await client.get("/widgets/ready")).status_code == 200


async def test_openapi_documents_the_body_schema(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/widgets/openapi.json")).json()
    body = spec["paths"]["/widgets"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/WidgetIn"}
    assert spec["components"]["schemas"]["WidgetIn"]["additionalProperties"] is False


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/widgets", content=b"{bad", headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 400)
    assert "not valid JSON" in body["detail"]


async def test_missing_body_is_400(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post("/widgets"), 400)


async def test_invalid_body_is_422_with_field_errors(client: httpx.AsyncClient) -> None:
    response = await client.post("/widgets", json={"name": "", "count": -1, "colour": "red"})
    body = assert_problem(response, 422)
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"name", "count", "colour"}
    assert all(set(e) == {"field", "message"} for e in body["errors"])


async def test_valid_body_is_created(client: httpx.AsyncClient) -> None:
    response = await client.post("/widgets", json={"name": "gear", "count": 3})
    assert response.status_code == 201
    widget_id = response.json()["id"]
    assert (await client.get(f"/widgets/{widget_id}")).json()["name"] == "gear"


async def test_body_over_one_mebibyte_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/widgets", content=b"x" * (2 * 1024 * 1024))
    assert_problem(response, 413)


async def test_unknown_route_and_method_are_problems(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/no/such/route"), 404)
    listing = await client.delete("/widgets")
    assert_problem(listing, 405)
    assert {"GET", "POST"} <= set(listing.headers["allow"].replace(" ", "").split(","))
    # A route with a path parameter names its methods too (RFC 9110, section 15.5.6).
    one = await client.request("TRACE", f"/widgets/{uuid.uuid4()}")
    assert_problem(one, 405)
    assert "GET" in one.headers["allow"].split(", ") and "DELETE" not in one.headers["allow"]


async def test_missing_row_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"/widgets/{uuid.uuid4()}"), 404)


async def test_crash_is_500_without_internals(client: httpx.AsyncClient) -> None:
    response = await client.get("/boom")
    body = assert_problem(response, 500)
    text = response.text
    assert "secret internal detail" not in text
    assert "Traceback" not in text and "RuntimeError" not in text
    assert body["detail"].startswith("an internal error occurred")


async def test_bad_query_parameters_are_400_naming_them(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/widgets", params={"page": "abc"}), 400)
    assert [e["field"] for e in body["errors"]] == ["page"]
    body = assert_problem(await client.get("/widgets", params={"page_size": "101"}), 400)
    assert "page_size" in body["detail"]
    body = assert_problem(await client.get("/widgets", params={"colour": "red"}), 400)
    assert "colour" in body["detail"]
    assert (await client.get("/widgets", params={"page": "2"})).json()["page"] == 2


async def test_request_id_generated_propagated_and_sanitised(client: httpx.AsyncClient) -> None:
    generated = (await client.get("/health")).headers["x-request-id"]
    assert re.fullmatch(UUID_FORM, generated)
    given = "req-123.abc"
    assert (await client.get("/health", headers={"x-request-id": given})).headers[
        "x-request-id"
    ] == given
    forged = (await client.get("/health", headers={"x-request-id": "bad id; <script>"})).headers[
        "x-request-id"
    ]
    assert forged != "bad id; <script>" and re.fullmatch(UUID_FORM, forged)
    # Errors carry it too.
    assert (await client.get("/nope", headers={"x-request-id": given})).headers[
        "x-request-id"
    ] == given


async def test_access_log_is_json_with_request_id(
    client: httpx.AsyncClient, sample: LiveService
) -> None:
    marker = f"log-{uuid.uuid4().hex[:8]}"
    await client.get("/health", headers={"x-request-id": marker})
    log = await log_once(sample.child.log_path, lambda text: marker in text)
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    mine = [e for e in entries if e.get("request_id") == marker]
    assert mine and mine[-1]["status"] == 200 and mine[-1]["route"] == "/health"
    assert mine[-1]["service"] == "kit-sample"


async def test_an_empty_body_on_a_get_is_not_an_error(sample: LiveService) -> None:
    """Some clients send "Content-Length: 0" on a GET; Sanic logged "body not consumed" for it
    (as an error, on every request the gateway forwarded, until the gateway stopped adding it)."""
    marker = f"empty-{uuid.uuid4().hex[:8]}"
    port = int(sample.base_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # Two requests on one connection: the service finishes the first, log lines
    # included, before it reads the second.
    writer.write(
        b"GET /widgets HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        b"GET /health HTTP/1.1\r\nHost: x\r\nx-request-id: " + marker.encode() + b"\r\n"
        b"Connection: close\r\n\r\n"
    )
    answers = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answers.count(b"HTTP/1.1 200 OK") == 2
    log = await log_once(sample.child.log_path, lambda text: marker in text)
    assert "body not consumed" not in log


async def test_concurrent_requests_each_get_one_whole_access_line(
    client: httpx.AsyncClient, sample: LiveService
) -> None:
    """Access lines written together at the end of a loop turn: none lost, none split or doubled."""
    markers = [f"many-{uuid.uuid4().hex[:12]}" for _ in range(60)]
    answers = await asyncio.gather(
        *(client.get("/health", headers={"x-request-id": marker}) for marker in markers)
    )
    assert {answer.status_code for answer in answers} == {200}
    log = await log_once(
        sample.child.log_path, lambda text: all(marker in text for marker in markers)
    )
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    found = [e["request_id"] for e in entries if e.get("request_id") in set(markers)]
    assert sorted(found) == sorted(markers)


async def test_access_log_never_carries_a_card_number(
    client: httpx.AsyncClient, sample: LiveService
) -> None:
    """In the path (masked) or as a request id (replaced: the id is echoed and logged)."""
    card = "4242424242424242"
    marker = f"card-{uuid.uuid4().hex[:8]}"
    await client.get(f"/widgets/{card}", headers={"x-request-id": marker})
    joined = f"{marker}-joined"
    await client.get(f"/widgets/x_{card}", headers={"x-request-id": joined})
    replaced = []
    for request_id in (card, f"order-{card}", f"{card}_retry"):
        answer = await client.get("/health", headers={"x-request-id": request_id})
        assert re.fullmatch(UUID_FORM, answer.headers["x-request-id"])
        replaced.append(answer.headers["x-request-id"])
    log = await log_once(
        sample.child.log_path,
        lambda text: joined in text and all(r in text for r in replaced),
    )
    assert card not in log
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    paths = {e["request_id"]: e.get("path") for e in entries if e.get("path")}
    assert paths[marker] == "/widgets/[card number redacted]"
    assert paths[joined] == "/widgets/x_[card number redacted]"


async def test_metrics_are_labelled_by_route_template(client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    await client.get(f"/widgets/{missing}")
    text = (await client.get("/metrics")).text
    assert 'route="/widgets/<widget_id:uuid>"' in text
    assert str(missing) not in text
    assert "shopflow_http_request_duration_seconds_bucket" in text


def test_a_read_response_strips_what_sanic_strips_from_headers() -> None:
    from sanic import HTTPResponse
    from shopflow_kit.http import ReadResponse

    samples = ["", '"3eaa87fb"', "public, max-age=5", "a\r\nSet-Cookie: x=1", "\0b\rc\nd", "é €"]
    for value in samples:
        assert ReadResponse._sanitize_header_value(value) == (
            HTTPResponse._sanitize_header_value(value)
        )
    response = ReadResponse(b"{}", headers={"X-Injected": "a\r\nSet-Cookie: x=1"})
    assert dict(response.processed_headers)[b"X-Injected"] == b"aSet-Cookie: x=1"
