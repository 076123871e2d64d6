"""Every route semantic of the local gateway, against real upstream servers on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml
from shopctl.ports import free_port
from shopctl.procs import Child, wait_http
from shopctl.virtualservice import GatewayConfigError, RoutingTable, normalize_path

from tests.utils.live import LoopbackHTTPServer

ROOT = Path(__file__).resolve().parents[2]


class Upstream:
    """An echo server that can also be slow, flaky, or large on demand."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.server = LoopbackHTTPServer(self.handle)

    def handle(self, req: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, str], bytes]:
        url = urlsplit(req.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        with self.lock:
            self.hits[url.path] += 1
            hits = self.hits[url.path]
        if url.path.startswith("/slow"):
            time.sleep(int(query.get("ms", "1000")) / 1000)
        if url.path.startswith("/flaky") and hits <= int(query.get("fail", "2")):
            return 503, {"content-type": "text/plain"}, b"try again"
        if url.path.endswith("/big"):
            return 200, {"content-type": "application/octet-stream"}, b"z" * (3 * 1024 * 1024)
        echo = {
            "upstream": self.name,
            "method": req.command,
            "path": url.path,
            "query": url.query,
            "headers": {k.lower(): v for k, v in req.headers.items()},
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "body_len": len(body),
        }
        return (
            200,
            {"content-type": "application/json", "x-upstream": self.name},
            json.dumps(echo).encode(),
        )


def route(name: str, match: list | None, host: str, **extra: object) -> dict:
    entry: dict = {
        "name": name,
        "route": [{"destination": {"host": host, "port": {"number": 4000}}}],
    }
    if match is not None:
        entry["match"] = match
    entry.update(extra)
    return entry


def prefix(p: str, **more: object) -> list:
    return [{"uri": {"prefix": p}, **more}]


VIRTUAL_SERVICE = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "gateway-test"},
    "spec": {
        "hosts": ["*"],
        "gateways": ["istio-system/shopflow-gateway"],
        "http": [
            route(
                "exact", [{"uri": {"exact": "/exact"}}], "echo", rewrite={"uri": "/rewritten-exact"}
            ),
            route("regex", [{"uri": {"regex": "/items/[0-9]+"}}], "echo"),
            route("header", prefix("/hdr", headers={"x-canary": {"exact": "yes"}}), "green"),
            route("method", prefix("/hdr", method={"exact": "POST"}), "blue"),
            route("fallback", prefix("/hdr"), "echo"),
            route("rewrite", prefix("/api/v1/"), "echo", rewrite={"uri": "/"}),
            {
                "name": "split",
                "match": prefix("/split"),
                "route": [
                    {"destination": {"host": "blue", "port": {"number": 4000}}, "weight": 80},
                    {
                        "destination": {
                            "host": "green.shopflow-dev.svc.cluster.local",
                            "port": {"number": 4000},
                        },
                        "weight": 20,
                    },
                ],
            },
            route("timeout", prefix("/slow"), "echo", timeout="300ms"),
            route(
                "retries",
                prefix("/flaky"),
                "echo",
                retries={"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx,connect-failure"},
            ),
            route(
                "retry-timeout",
                prefix("/retry-slow"),
                "echo",
                rewrite={"uri": "/slow"},
                retries={"attempts": 2, "perTryTimeout": "200ms", "retryOn": "5xx"},
            ),
            route("no-retries", prefix("/noretry"), "echo", rewrite={"uri": "/flaky-noretry"}),
            route(
                "down",
                prefix("/down"),
                "nowhere",
                retries={"attempts": 2, "retryOn": "connect-failure"},
            ),
            route(
                "abort",
                prefix("/abort"),
                "echo",
                fault={"abort": {"httpStatus": 418, "percentage": {"value": 100}}},
            ),
            route(
                "half",
                prefix("/half"),
                "echo",
                fault={"abort": {"httpStatus": 503, "percentage": {"value": 50}}},
            ),
            route(
                "delay",
                prefix("/delayed"),
                "echo",
                fault={"delay": {"fixedDelay": "300ms", "percentage": {"value": 100}}},
            ),
            route("stream", prefix("/stream"), "echo"),
            route("hangup", prefix("/hangup"), "hangup"),
        ],
    },
}


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, Upstream]]:
    servers = {name: Upstream(name) for name in ("echo", "blue", "green")}
    for server in servers.values():
        server.server.start()
    yield servers
    for server in servers.values():
        server.server.stop()


@pytest.fixture(scope="module")
def hangup() -> Iterator[int]:
    """An upstream that reads a request, then closes the connection without answering."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    listener.close()


@pytest.fixture(scope="module")
def gateway(
    upstreams: dict[str, Upstream], hangup: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("gateway")
    vs_file = folder / "vs.yaml"
    vs_file.write_text(yaml.safe_dump(VIRTUAL_SERVICE))
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "shopctl",
        "gateway",
        "--port",
        str(port),
        "--virtual-service",
        str(vs_file),
    ]
    for name, server in upstreams.items():
        args += ["--upstream", f"{name}={server.server.url}"]
    args += ["--upstream", f"nowhere=http://127.0.0.1:{free_port()}"]
    args += ["--upstream", f"hangup=http://127.0.0.1:{hangup}"]
    child = Child("gateway", args, {}, folder / "gateway.log", cwd=ROOT).start()
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/exact", child, accept=(200, 404, 503))
    yield base
    child.stop()


@pytest.fixture
async def http(gateway: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway, timeout=15) as client:
        yield client


async def test_unmatched_path_is_404_problem(http: httpx.AsyncClient) -> None:
    response = await http.get("/nothing/here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "no route for GET /nothing/here"
    assert response.headers["x-request-id"]


async def test_exact_match_and_exact_rewrite(http: httpx.AsyncClient) -> None:
    response = await http.get("/exact")
    assert response.json()["path"] == "/rewritten-exact"
    assert (await http.get("/exact/more")).status_code == 404


async def test_regex_match_is_anchored(http: httpx.AsyncClient) -> None:
    assert (await http.get("/items/42")).json()["path"] == "/items/42"
    assert (await http.get("/items/42x")).status_code == 404
    assert (await http.get("/x/items/42")).status_code == 404


async def test_first_match_wins_with_header_and_method_matches(http: httpx.AsyncClient) -> None:
    assert (await http.post("/hdr", headers={"x-canary": "yes"})).json()["upstream"] == "green"
    assert (await http.post("/hdr")).json()["upstream"] == "blue"
    assert (await http.get("/hdr", headers={"x-canary": "no"})).json()["upstream"] == "echo"


async def test_prefix_rewrite_keeps_the_rest_and_the_query(http: httpx.AsyncClient) -> None:
    echo = (await http.get("/api/v1/things/7", params={"q": "a b"})).json()
    assert echo["path"] == "/things/7"
    assert parse_qs(echo["query"]) == {"q": ["a b"]}


async def test_weighted_destinations_split_traffic(http: httpx.AsyncClient) -> None:
    seen: Counter[str] = Counter()
    for _ in range(20):
        batch = await asyncio.gather(*(http.get("/split") for _ in range(25)))
        seen.update(r.json()["upstream"] for r in batch)
    assert set(seen) == {"blue", "green"}
    assert 330 <= seen["blue"] <= 470  # 80% of 500, far outside chance failure


async def test_timeout_gives_504(http: httpx.AsyncClient) -> None:
    started = time.monotonic()
    response = await http.get("/slow", params={"ms": "2000"})
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    assert time.monotonic() - started < 1.5


async def test_retries_on_5xx_until_success(
    http: httpx.AsyncClient, upstreams: dict[str, Upstream]
) -> None:
    response = await http.post("/flaky/a", params={"fail": "2"}, json={"n": 1})
    assert response.status_code == 200
    assert upstreams["echo"].hits["/flaky/a"] == 3  # two 503s, then success
    assert response.json()["body_len"] == len(b'{"n":1}')  # the body was replayed intact


async def test_retries_give_up_after_attempts(
    http: httpx.AsyncClient, upstreams: dict[str, Upstream]
) -> None:
    response = await http.get("/flaky/b", params={"fail": "10"})
    assert response.status_code == 503
    assert upstreams["echo"].hits["/flaky/b"] == 4  # 1 try + 3 retries


async def test_per_try_timeout_then_504(
    http: httpx.AsyncClient, upstreams: dict[str, Upstream]
) -> None:
    started = time.monotonic()
    response = await http.get("/retry-slow", params={"ms": "600"})
    assert response.status_code == 504
    assert time.monotonic() - started < 1.5
    assert upstreams["echo"].hits["/slow"] >= 3


async def test_no_retries_unless_configured(
    http: httpx.AsyncClient, upstreams: dict[str, Upstream]
) -> None:
    response = await http.get("/noretry", params={"fail": "1"})
    assert response.status_code == 503
    assert upstreams["echo"].hits["/flaky-noretry"] == 1


async def test_unreachable_upstream_is_503(http: httpx.AsyncClient) -> None:
    response = await http.get("/down")
    assert response.status_code == 503
    assert "unreachable" in response.json()["detail"]
    assert response.headers["retry-after"] == "1"  # API.md: every 503 says when to retry


async def test_an_upstream_that_hangs_up_is_503_with_retry_after(http: httpx.AsyncClient) -> None:
    """As Envoy's "disconnect/reset before headers": a 503 to retry, never a 502."""
    for method in ("GET", "POST"):
        response = await http.request(method, "/hangup", json={} if method == "POST" else None)
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.headers["content-type"] == "application/problem+json"
        assert "closed the connection" in response.json()["detail"]


async def test_fault_abort_and_delay(http: httpx.AsyncClient) -> None:
    assert (await http.get("/abort")).status_code == 418
    started = time.monotonic()
    assert (await http.get("/delayed")).status_code == 200
    assert time.monotonic() - started >= 0.3


async def test_fault_percentage(http: httpx.AsyncClient) -> None:
    statuses: Counter[int] = Counter()
    for _ in range(8):
        batch = await asyncio.gather(*(http.get("/half") for _ in range(25)))
        statuses.update(r.status_code for r in batch)
    assert 60 <= statuses[503] <= 140 and statuses[503] + statuses[200] == 200


async def test_headers_are_forwarded_with_request_id_and_forwarded_for(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get(
        "/stream/h",
        headers={"x-request-id": "abc-123", "x-custom": "kept", "x-forwarded-for": "10.1.1.1"},
    )
    echo = response.json()["headers"]
    assert echo["x-request-id"] == "abc-123" and response.headers["x-request-id"] == "abc-123"
    assert echo["x-custom"] == "kept"
    assert echo["x-forwarded-for"] == "10.1.1.1, 127.0.0.1"
    assert response.headers["x-upstream"] == "echo"
    generated = (await http.get("/stream/h")).json()["headers"]["x-request-id"]
    assert uuid.UUID(generated) and len(generated) == 36  # UUID form, as Envoy generates


async def test_request_and_response_bodies_pass_intact(http: httpx.AsyncClient) -> None:
    chunk = b"0123456789abcdef" * 4096  # 64 KiB

    async def body() -> AsyncIterator[bytes]:
        for _ in range(16):  # exactly 1 MiB, the largest body allowed, sent chunked
            yield chunk

    response = await http.post("/stream/upload", content=body())
    echo = response.json()
    assert echo["body_len"] == 16 * len(chunk)
    assert echo["body_sha256"] == hashlib.sha256(chunk * 16).hexdigest()
    assert echo["headers"]["content-length"] == str(16 * len(chunk))
    big = await http.get("/stream/big")
    assert len(big.content) == 3 * 1024 * 1024


async def test_declared_body_over_the_limit_is_413(gateway: str) -> None:
    # Answered from the headers alone, before any of the body is read.
    reader, writer = await asyncio.open_connection("127.0.0.1", int(gateway.rsplit(":", 1)[1]))
    writer.write(b"POST /stream/too-big HTTP/1.1\r\nHost: x\r\nContent-Length: 9437184\r\n\r\n")
    await writer.drain()
    raw = await reader.read(4096)
    writer.close()
    assert raw.startswith(b"HTTP/1.1 413")
    assert b"application/problem+json" in raw


async def test_dot_segments_cannot_reach_unrouted_paths(gateway: str) -> None:
    # httpx would normalise the path itself; send it raw.
    reader, writer = await asyncio.open_connection("127.0.0.1", int(gateway.rsplit(":", 1)[1]))
    writer.write(b"GET /hdr/../internal/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    raw = await reader.read()
    writer.close()
    assert raw.startswith(b"HTTP/1.1 404")
    assert b"no route for GET /internal/events" in raw


@pytest.mark.parametrize("coding", [b"gzip, chunked", b"deflate,chunked", b"x-custom, chunked"])
async def test_a_transfer_coding_other_than_chunked_is_501(
    gateway: str, upstreams: dict[str, Upstream], coding: bytes
) -> None:
    before = upstreams["echo"].hits["/stream/te"]
    reader, writer = await asyncio.open_connection("127.0.0.1", int(gateway.rsplit(":", 1)[1]))
    writer.write(
        b"POST /stream/te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: %s\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
        % coding
    )
    await writer.drain()
    raw = await reader.read()
    writer.close()
    assert raw.startswith(b"HTTP/1.1 501"), raw[:200]
    assert b"application/problem+json" in raw and b"only chunked" in raw
    assert upstreams["echo"].hits["/stream/te"] == before  # nothing reached the service


def test_normalize_path() -> None:
    assert normalize_path("/a/./b/../c") == "/a/c"
    assert normalize_path("/a/b/..") == "/a/"
    assert normalize_path("/../etc") is None
    assert normalize_path("/") == "/"


@pytest.mark.parametrize(
    ("patch", "named"),
    [
        ({"mirror": {"host": "x"}}, "spec.http[0].mirror"),
        ({"corsPolicy": {}}, "spec.http[0].corsPolicy"),
        ({"retries": {"attempts": 1, "retryOn": "reset"}}, "spec.http[0].retries.retryOn: reset"),
        (
            {"match": [{"uri": {"prefix": "/a"}, "queryParams": {}}]},
            "spec.http[0].match[0].queryParams",
        ),
        ({"timeout": "soon"}, "spec.http[0].timeout"),
    ],
)
def test_unimplemented_fields_stop_start_up(patch: dict, named: str) -> None:
    vs = {"metadata": {"name": "v"}, "spec": {"http": [{**route("r", None, "echo"), **patch}]}}
    with pytest.raises(GatewayConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
        RoutingTable.from_virtual_service(vs)


def test_cli_refuses_an_unimplemented_field(tmp_path: Path) -> None:
    vs = {
        "kind": "VirtualService",
        "metadata": {"name": "v"},
        "spec": {"http": [{**route("r", None, "echo"), "mirror": {"host": "x"}}]},
    }
    (tmp_path / "vs.yaml").write_text(yaml.safe_dump(vs))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "shopctl",
            "gateway",
            "--virtual-service",
            str(tmp_path / "vs.yaml"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "spec.http[0].mirror is not implemented" in result.stderr
