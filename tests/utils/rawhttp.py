"""HTTP/1.1 over a plain socket, for requests that well-behaved clients refuse to send.

httpx (h11) will not send a header value with trailing spaces or raw non-ASCII
bytes; attackers and broken clients do. This client writes exactly the bytes
it is given and reads one response.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


async def _read_response(reader: asyncio.StreamReader) -> RawResponse:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return RawResponse(int(status_line.split(" ")[1]), headers, body)


async def raw_request(
    base_url: str,
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
) -> RawResponse:
    """Send one request with these exact header bytes; ``Content-Length`` is added for a body."""
    url = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        lines = [f"{method} {path} HTTP/1.1".encode(), f"host: {url.netloc}".encode()]
        lines += [name + b": " + value for name, value in headers]
        if body:
            lines.append(f"content-length: {len(body)}".encode())
        lines.append(b"connection: close")
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await writer.drain()
        return await _read_response(reader)
    finally:
        writer.close()
