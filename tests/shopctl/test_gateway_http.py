"""The gateway's edge behaviour, over raw sockets: limits, timeouts, odd bytes, passthrough."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import yaml
from shopctl.ports import free_port
from shopctl.procs import Child, wait_http

from tests.utils.live import ROOT, LoopbackHTTPServer, log_once

MiB = 1024 * 1024
TIMEOUT = 1  # the gateway's idle, header and body timeouts in these tests, seconds


def echo(req: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, str], bytes]:
    if req.path.startswith("/status/405"):
        return 405, {"allow": "GET, HEAD", "content-type": "text/plain"}, b"use GET"
    if req.path.startswith("/status/500"):
        return 500, {"content-type": "application/json", "x-detail": "kept"}, b'{"boom":true}'
    headers = {k.lower(): v for k, v in req.headers.items()}
    raw = {k.lower(): v.encode("latin-1").hex() for k, v in req.headers.items()}
    answer = {"path": req.path, "headers": headers, "raw": raw, "body_len": len(body)}
    return 200, {"content-type": "application/json"}, json.dumps(answer).encode()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    upstream = LoopbackHTTPServer(echo).start()
    folder = tmp_path_factory.mktemp("gateway-http")
    vs = {
        "kind": "VirtualService",
        "metadata": {"name": "edge"},
        "spec": {
            "http": [
                {
                    "name": "all",
                    "match": [{"uri": {"prefix": "/"}}],
                    "route": [{"destination": {"host": "echo", "port": {"number": 4000}}}],
                    "timeout": "10s",
                }
            ]
        },
    }
    (folder / "vs.yaml").write_text(yaml.safe_dump(vs))
    port = free_port()
    log = folder / "gateway.log"
    args = [sys.executable, "-m", "shopctl", "gateway", "--port", str(port)]
    args += ["--virtual-service", str(folder / "vs.yaml"), "--upstream", f"echo={upstream.url}"]
    args += ["--idle-timeout", str(TIMEOUT), "--header-timeout", str(TIMEOUT)]
    args += ["--body-timeout", str(TIMEOUT)]
    child = Child("gateway", args, {}, log, cwd=ROOT).start()
    wait_http(f"http://127.0.0.1:{port}/ready-check", child)
    yield port, log
    child.stop()
    upstream.stop()


async def exchange(port: int, request: bytes, body: bytes | None = None) -> bytes:
    """Send everything first (as httpx does), then read until the gateway closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        if body is not None:
            writer.write(body)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def problem_of(raw: bytes) -> dict[str, object]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower()
    problem: dict[str, object] = json.loads(body)
    assert {"type", "title", "status", "detail"} <= problem.keys()
    return problem


def chunked(size: int, piece: int = 64 * 1024) -> bytes:
    chunk = b"%x\r\n%s\r\n" % (piece, b"x" * piece)
    return chunk * (size // piece) + b"0\r\n\r\n"


@pytest.mark.slow
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("mib", [2, 8, 32])
async def test_every_oversized_body_gets_a_readable_413(
    gateway: tuple[int, Path], mib: int, framing: str
) -> None:
    port, _ = gateway
    size = mib * MiB
    if framing == "content-length":
        head = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size
        body = b"x" * size
    else:
        head = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        body = chunked(size)
    statuses = []
    for _ in range(50):
        raw = await exchange(port, head, body)
        statuses.append(status_of(raw))
        assert b"\r\nconnection: close\r\n" in raw.lower()
        assert problem_of(raw)["status"] == 413
    assert statuses == [413] * 50


async def test_a_body_of_exactly_the_limit_is_forwarded(gateway: tuple[int, Path]) -> None:
    port, _ = gateway
    head = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    raw = await exchange(port, head, chunked(MiB))
    assert status_of(raw) == 200
    assert json.loads(raw.partition(b"\r\n\r\n")[2])["body_len"] == MiB


async def test_expect_continue_over_the_limit_gets_413_and_no_continue(
    gateway: tuple[int, Path],
) -> None:
    port, _ = gateway
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
        b"Expect: 100-continue\r\n\r\n" % (8 * MiB)
    )
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)  # the body is never sent
    writer.close()
    assert raw.startswith(b"HTTP/1.1 413")
    assert b"100 Continue" not in raw


async def test_expect_continue_within_the_limit_continues(gateway: tuple[int, Path]) -> None:
    port, _ = gateway
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert interim.startswith(b"HTTP/1.1 100 Continue")
    writer.write(b"hello")
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert status_of(raw) == 200
    assert json.loads(raw.partition(b"\r\n\r\n")[2])["body_len"] == 5


async def test_expect_continue_behind_a_pipelined_request_waits_its_turn(
    gateway: tuple[int, Path],
) -> None:
    """RFC 9112 9.3.2: answers go out in request order, interim ones included.

    The 100 for the second request came before the first one's answer; and
    when the first was still queued it never came (the client gave up after the
    30 s body timeout).
    """
    port, _ = gateway
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /second HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        received = b""
        while b"100 Continue" not in received:
            chunk = await asyncio.wait_for(reader.read(65536), 10)
            assert chunk, received
            received += chunk
        first, _, interim = received.partition(b"HTTP/1.1 100 Continue")
        assert first.startswith(b"HTTP/1.1 200") and b'"/first"' in first
        writer.write(b"{}")
        await writer.drain()
        rest = interim + await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    assert b"HTTP/1.1 200" in rest and b'"/second"' in rest


@pytest.mark.parametrize(
    ("request_line_and_headers", "status"),
    [
        (b"GET /h HTTP/1.1\r\n", 400),  # RFC 9112 3.2: HTTP/1.1 needs a Host header
        (b"GET /h HTTP/2.0\r\nHost: x\r\n", 505),  # not HTTP/1.x: not served as if it were
        (b"GET /h HTTP/1.0\r\n", 200),  # HTTP/1.0 has no Host requirement
    ],
)
async def test_a_request_without_host_or_in_another_version_is_refused(
    gateway: tuple[int, Path], request_line_and_headers: bytes, status: int
) -> None:
    port, _ = gateway
    raw = await exchange(port, request_line_and_headers + b"Connection: close\r\n\r\n")
    assert status_of(raw) == status, raw[:200]
    if status != 200:
        assert problem_of(raw)["status"] == status


async def test_a_long_request_line_is_414(gateway: tuple[int, Path]) -> None:
    port, _ = gateway
    raw = await exchange(port, b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % (b"a" * 20_000))
    assert status_of(raw) == 414
    assert problem_of(raw)["status"] == 414


@pytest.mark.parametrize(
    "headers",
    [b"X-Big: " + b"b" * 20_000 + b"\r\n", b"".join(b"X-H%d: v\r\n" % i for i in range(150))],
    ids=["one-huge-header", "too-many-headers"],
)
async def test_too_much_header_is_431(gateway: tuple[int, Path], headers: bytes) -> None:
    port, _ = gateway
    raw = await exchange(port, b"GET /h HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert status_of(raw) == 431
    assert problem_of(raw)["status"] == 431


@pytest.mark.parametrize(
    ("value", "forwarded"),
    [
        (b"trailing   ", b"trailing"),
        (b"  leading", b"leading"),
        (b"caf\xc3\xa9", b"caf\xc3\xa9"),  # UTF-8 bytes, obs-text to HTTP
        (b"caf\xe9", b"caf\xe9"),  # a Latin-1 byte
        (b"", b""),
        (b"tab\tinside", b"tab\tinside"),
        (b"Bearer ", b"Bearer"),
    ],
)
async def test_odd_header_values_are_forwarded_as_bytes(
    gateway: tuple[int, Path], value: bytes, forwarded: bytes
) -> None:
    port, _ = gateway
    raw = await exchange(
        port, b"GET /h HTTP/1.1\r\nHost: x\r\nX-Odd: " + value + b"\r\nConnection: close\r\n\r\n"
    )
    assert status_of(raw) == 200, raw[:200]
    echoed = json.loads(raw.partition(b"\r\n\r\n")[2])["raw"]
    assert bytes.fromhex(echoed["x-odd"]) == forwarded


@pytest.mark.parametrize(
    ("request_head", "body", "length"),
    [
        (b"GET /h HTTP/1.1\r\nHost: x\r\n", b"", None),  # no body, no framing: none added
        (b"DELETE /h HTTP/1.1\r\nHost: x\r\n", b"", None),
        (b"POST /h HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n", b"", "0"),
        (b"POST /h HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n", b"abc", "3"),
        (b"PUT /h HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n", "0"),
    ],
)
async def test_a_body_is_framed_upstream_only_when_the_client_framed_one(
    gateway: tuple[int, Path], request_head: bytes, body: bytes, length: str | None
) -> None:
    """Like Envoy: "Content-Length: 0" on a GET makes Sanic log an error per request."""
    port, _ = gateway
    raw = await exchange(port, request_head + b"Connection: close\r\n\r\n" + body)
    assert status_of(raw) == 200, raw[:200]
    echoed = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert echoed["headers"].get("content-length") == length
    assert "transfer-encoding" not in echoed["headers"]


@pytest.mark.parametrize(
    "header",
    [b"X-Odd: a\x01b", b"X-Odd: a\x00b", b"Bad Name: v", b"X-Odd: a\rb", b": novalue"],
)
async def test_unparseable_header_bytes_are_400_never_5xx(
    gateway: tuple[int, Path], header: bytes
) -> None:
    port, _ = gateway
    raw = await exchange(port, b"GET /h HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n")
    assert status_of(raw) == 400
    assert problem_of(raw)["status"] == 400


async def test_an_idle_connection_is_closed(gateway: tuple[int, Path]) -> None:
    port, _ = gateway
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /h HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200")
    length = int(
        next(
            line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        ).split(b":")[1]
    )
    await reader.readexactly(length)
    # kept alive after the answer, then closed once idle for longer than the timeout
    assert await asyncio.wait_for(reader.read(), TIMEOUT + 5) == b""
    writer.close()


async def test_a_silent_connection_is_closed(gateway: tuple[int, Path]) -> None:
    port, _ = gateway
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await asyncio.wait_for(reader.read(), TIMEOUT + 5) == b""
    writer.close()


async def test_slow_headers_get_408_and_a_close(gateway: tuple[int, Path]) -> None:
    port, _ = gateway
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /h HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), TIMEOUT + 5)
    writer.close()
    assert status_of(raw) == 408
    assert b"connection: close" in raw.lower()


async def test_a_stalled_body_gets_408(gateway: tuple[int, Path]) -> None:
    port, _ = gateway
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /h HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-part")
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), TIMEOUT + 5)
    writer.close()
    assert status_of(raw) == 408


@pytest.mark.parametrize(
    ("path", "status", "header", "body"),
    [
        ("/status/405", 405, b"allow: GET, HEAD", b"use GET"),
        ("/status/500", 500, b"x-detail: kept", b'{"boom":true}'),
    ],
)
async def test_upstream_errors_pass_through_unchanged(
    gateway: tuple[int, Path], path: str, status: int, header: bytes, body: bytes
) -> None:
    port, _ = gateway
    raw = await exchange(
        port, b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode()
    )
    head, _, got = raw.partition(b"\r\n\r\n")
    assert status_of(raw) == status
    assert header.lower() in head.lower()
    assert got == body


async def test_log_lines_are_json_with_the_request_id(gateway: tuple[int, Path]) -> None:
    port, log = gateway
    marker = f"edge-{uuid.uuid4().hex[:8]}"
    raw = await exchange(
        port,
        f"GET /h HTTP/1.1\r\nHost: x\r\nX-Request-Id: {marker}\r\nConnection: close\r\n\r\n".encode(),
    )
    assert status_of(raw) == 200
    rejected = await exchange(port, b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % (b"a" * 20_000))
    assert status_of(rejected) == 414
    # Access lines are written at the end of the event loop's turn: wait for them.
    text = await log_once(log, lambda text: marker in text and '"status":414' in text)
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    mine = [entry for entry in lines if entry.get("request_id") == marker]
    assert mine and mine[0]["status"] == 200 and mine[0]["service"] == "gateway"
    assert any(entry.get("status") == 414 and entry.get("request_id") for entry in lines)


async def test_a_card_number_as_request_id_is_replaced(gateway: tuple[int, Path]) -> None:
    """The id is forwarded, echoed and logged, so one that holds a card number is not kept."""
    port, log = gateway
    card = "4242424242424242"
    for request_id in (card, f"order-{card}", f"{card}_retry"):
        raw = await exchange(
            port,
            f"GET /h HTTP/1.1\r\nHost: x\r\nX-Request-Id: {request_id}\r\n"
            "Connection: close\r\n\r\n".encode(),
        )
        assert status_of(raw) == 200
        forwarded: str = json.loads(raw.partition(b"\r\n\r\n")[2])["headers"]["x-request-id"]
        assert card not in forwarded
        assert card.encode() not in raw

        def logged(text: str, wanted: str = forwarded) -> bool:
            return wanted in text

        text = await log_once(log, logged)
        assert forwarded in text and card not in text


async def _one_answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    return head.lower(), await asyncio.wait_for(reader.readexactly(length), 10)


async def test_an_http_10_client_asking_for_keep_alive_is_told_it_was_granted(
    gateway: tuple[int, Path],
) -> None:
    """RFC 9112 9.3: an HTTP/1.0 client keeps the connection only if the answer says so."""
    port, _ = gateway
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for request, status in (
            (b"GET /one HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", b" 200 "),
            (b"GET /../up HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", b" 400 "),  # a problem
            (b"GET /two HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", b" 200 "),
        ):
            writer.write(request)
            head, _ = await _one_answer(reader)
            assert status in head.split(b"\r\n")[0] and b"\r\nconnection: keep-alive" in head
        writer.write(b"GET /last HTTP/1.0\r\n\r\n")  # no keep-alive: answered, then closed
        head, body = await _one_answer(reader)
        assert b"\r\nconnection: close" in head and b'"/last"' in body
        assert await asyncio.wait_for(reader.read(), 10) == b""
    finally:
        writer.close()
