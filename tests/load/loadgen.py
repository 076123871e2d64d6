"""A small keep-alive HTTP/1.1 load generator on asyncio, for loopback benchmarks.

httpx spends more CPU per request than a Sanic handler, so it would measure
itself; this client only writes a request and reads one Content-Length body.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit


async def _worker(host: str, port: int, request: bytes, deadline: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            counts[0 if status == 200 else 1] += 1
    finally:
        writer.close()


async def measure(url: str, seconds: float = 5.0, connections: int = 32) -> tuple[float, int]:
    """Requests per second of status 200 over ``seconds``; and the count of other statuses."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    request = f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
    counts = [0, 0]
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(
            _worker(parts.hostname or "127.0.0.1", parts.port or 80, request, deadline, counts)
            for _ in range(connections)
        )
    )
    return counts[0] / (time.perf_counter() - started), counts[1]
