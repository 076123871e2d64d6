"""Bodies over 1 MiB get a 413 the client can read, however the body is framed (real server).

A server that answers early and then closes a socket with unread input makes
the kernel send a reset, which can destroy the answer before the client reads
it. The kit answers with ``Connection: close`` and drains the rest of the body
(up to a bound) before closing, as nginx's lingering close does.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import httpx

from tests.utils.live import LiveService

MIB = 1024 * 1024
SIZES_MIB = (2, 8, 32)
ROUNDS = 50


async def chunked(payload: bytes, piece: int = 256 * 1024) -> AsyncIterator[bytes]:
    """A body without Content-Length: httpx sends it with Transfer-Encoding: chunked."""
    for start in range(0, len(payload), piece):
        yield payload[start : start + piece]


async def test_bodies_over_one_mebibyte_get_a_readable_413_every_time(
    sample: LiveService,
) -> None:
    outcomes: Counter[str] = Counter()
    async with httpx.AsyncClient(base_url=sample.base_url, timeout=120) as http:
        for size in SIZES_MIB:
            payload = b"[" + b" " * (size * MIB) + b"]"
            for framing in ("content-length", "chunked"):
                for _ in range(ROUNDS):
                    content = payload if framing == "content-length" else chunked(payload)
                    try:
                        response = await http.post(
                            "/widgets",
                            content=content,
                            headers={"content-type": "application/json"},
                        )
                    except httpx.TransportError as exc:
                        outcomes[f"{size} MiB {framing}: {type(exc).__name__}"] += 1
                        continue
                    clean = (
                        response.status_code == 413
                        and response.headers["content-type"] == "application/problem+json"
                        and response.headers["connection"] == "close"
                        and response.json()["status"] == 413
                    )
                    outcomes["clean 413" if clean else f"{size} MiB {framing}: {response}"] += 1
    total = len(SIZES_MIB) * 2 * ROUNDS
    assert outcomes["clean 413"] == total, f"clean 413s {outcomes['clean 413']}/{total}: {outcomes}"


async def test_the_connection_is_usable_up_to_the_limit(client: httpx.AsyncClient) -> None:
    """Exactly 1 MiB is accepted and parsed; one byte more is refused."""
    opening = b'{"name": "gear", "count": 1'
    limit = opening + b" " * (MIB - len(opening) - 1) + b"}"
    assert len(limit) == MIB
    response = await client.post(
        "/widgets", content=limit, headers={"content-type": "application/json"}
    )
    assert response.status_code == 201, response.text
    over = limit[:-1] + b" }"
    response = await client.post(
        "/widgets", content=over, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


async def test_an_announced_oversized_body_is_refused_before_100_continue(
    sample: LiveService,
) -> None:
    """A client that waits for 100 Continue is told 413 at once and never sends the body."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", int(sample.base_url.rsplit(":", 1)[1])
    )
    try:
        writer.write(
            b"POST /widgets HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"expect: 100-continue\r\ncontent-length: %d\r\n\r\n" % (8 * MIB)
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=30)
    finally:
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 413"), status_line


async def test_headers_up_to_16_kib_pass_and_larger_ones_get_431(sample: LiveService) -> None:
    """The gateway passes headers up to 16 KiB; a service takes them too, and says 431 above."""
    async with httpx.AsyncClient(base_url=sample.base_url, timeout=30) as http:
        fine = await http.get("/health", headers={"X-Pad": "a" * 12_000})
        assert fine.status_code == 200, fine.text
        over = await http.get("/health", headers={"X-Pad": "a" * 17_000})
        assert over.status_code == 431, over.text
        assert over.headers["content-type"].startswith("application/problem+json")
        assert "header" in over.json()["detail"]
