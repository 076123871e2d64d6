"""`make bench`: one table of ratios, measured side by side in one run on this machine.

Every process runs as in `shopctl up` (one Sanic worker per service, the
gateway on uvloop) on loopback and a throwaway embedded PostgreSQL. HTTP load
comes from wrk (Debian's package): one thread, 32 connections, 5 s per run.
Each pair of a ratio is measured back to back, and the whole set is repeated
(``--rounds``, default 3): the table shows the median of each figure, because
the machine's two cores are shared and one run can be unlucky.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from shopctl.pg import LocalPostgres, create_database
from shopctl.ports import free_port
from shopctl.procs import Child, wait_http

from tests.load import checkout
from tests.utils.live import ROOT, LiveService, start_service
from tests.utils.services import run_operation, service_env

SEED_SEARCH = "/products?q=coffee&category=kitchen"
#: A common word of the synthetic vocabulary: about a quarter of all products match it.
COMMON_WORD = "steel"
SYNTHETIC_PRODUCTS = 100_000
PASSWORD = "a-long-and-unusual-passphrase"


@dataclass
class Run:
    rps: float
    p50: float  # milliseconds
    p99: float
    failed: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def ensure_wrk() -> str:
    """wrk from PATH; installs Debian's package when missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit(
            "make bench needs wrk (Debian's `wrk` package): run `sudo apt-get install wrk`, "
            "or run make bench as root to have it installed"
        )
    print("wrk is missing: installing Debian's wrk package", file=sys.stderr)
    apt = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(apt, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, check=False)
        subprocess.run(apt, capture_output=True, check=True)
    found = shutil.which("wrk")
    if not found:
        sys.exit("installing Debian's wrk package did not put wrk on PATH")
    return found


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(url: str, *, connections: int = 32, seconds: float = 5, script: Path | None = None) -> Run:
    args = [ensure_wrk(), "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
    if script is not None:
        args[1:1] = ["-s", str(script)]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = int(non2xx.group(1)) if non2xx else 0
    failed += sum(int(n) for n in errors.groups()) if errors else 0
    return Run(rps, p50, p99, failed)


def median_run(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.rps for r in runs),
        statistics.median(r.p50 for r in runs),
        statistics.median(r.p99 for r in runs),
        sum(r.failed for r in runs),
    )


@dataclass
class Row:
    name: str
    target: str
    check: Callable[[Run, Run | None], bool]
    measure: Callable[[], tuple[Run, Run | None]]
    ratio_of: str = "rps"  # rps: a/b; p50: b/a (latency: lower is better); none
    runs: list[tuple[Run, Run | None]] | None = None


@contextmanager
def platform(tmp: Path) -> Iterator[dict[str, str]]:
    """Bare Sanic, catalog-api (seed and 100k), user-auth and the gateway, on loopback."""
    from tests.utils.auth import auth_env

    server = LocalPostgres(tmp / "pg", durable=False)
    server.start()
    started: list[LiveService | Child] = []
    try:
        seed_url = asyncio.run(create_database(server.url, "bench_catalog"))
        big_url = asyncio.run(create_database(server.url, "bench_catalog_100k"))
        auth_url = asyncio.run(create_database(server.url, "bench_auth"))
        # Each service's own operations, as shopctl and the cluster run them.
        for url in (seed_url, big_url):
            run_operation("catalog-api", ["migrate"], service_env("catalog-api", url))
            run_operation("catalog-api", ["seed"], service_env("catalog-api", url))
        print(f"generating {SYNTHETIC_PRODUCTS} synthetic products...", file=sys.stderr)
        synthetic = ["seed", "--synthetic", str(SYNTHETIC_PRODUCTS)]
        run_operation("catalog-api", synthetic, service_env("catalog-api", big_url))
        run_operation("user-auth", ["migrate"], service_env("user-auth", auth_url))

        def service(name: str, factory: str, env: dict[str, str]) -> str:
            live = start_service(name, factory, env, tmp)
            started.append(live)
            return live.base_url

        urls = {
            "bare": service("bare", "tests.load.bare_app:create_app", {}),
            "catalog": service(
                "catalog-api",
                "catalog_api.app:create_app",
                {"SHOPFLOW_CATALOG_API_DATABASE_URL": seed_url},
            ),
            "catalog_100k": service(
                "catalog-api-100k",
                "catalog_api.app:create_app",
                {"SHOPFLOW_CATALOG_API_DATABASE_URL": big_url},
            ),
            "auth": service("user-auth", "auth_service.app:create_app", auth_env(auth_url)),
            "big_db": big_url,
        }
        port = free_port()
        gateway = Child(
            "gateway",
            [
                sys.executable,
                "-m",
                "shopctl",
                "gateway",
                "--port",
                str(port),
                "--upstream",
                f"catalog-api={urls['catalog']}",
                "--upstream",
                f"user-auth={urls['auth']}",
            ],
            {},
            tmp / "gateway.log",
            cwd=ROOT,
        ).start()
        started.append(gateway)
        urls["gateway"] = f"http://127.0.0.1:{port}"
        wait_http(f"{urls['gateway']}/products/health", gateway)
        yield urls
    finally:
        for item in reversed(started):
            item.stop()
        server.stop()


def login_script(tmp: Path, auth_url: str) -> Path:
    email = "bench@example.com"
    httpx.post(
        f"{auth_url}/auth/register",
        json={"email": email, "password": PASSWORD, "name": "Bench"},
        timeout=30,
    )
    script = tmp / "login.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.body = \'{{"email": "{email}", "password": "{PASSWORD}"}}\'\n'
    )
    return script


def distinct_searches_script(tmp: Path, catalog: str, count: int = 64) -> Path:
    """A wrk script that asks ``count`` different full-text searches in turn.

    Words of the seed's product names, one to three results a page, kept only
    when their page holds a set of products no other search in the list
    returns. With 32 connections no two requests in flight then read the same
    rows, so none shares another's statement (``ReadPool.fetch_shared``): the
    cost of a search of its own.
    """
    items = httpx.get(f"{catalog}/products?page_size=100", timeout=30).json()["items"]
    words = sorted({w.lower() for item in items for w in re.findall(r"[A-Za-z]{4,}", item["name"])})
    paths: list[str] = []
    seen: set[tuple[str, ...]] = set()
    for word in words:
        for size in (1, 2, 3):
            path = f"/products?q={word}&page_size={size}"
            page = httpx.get(f"{catalog}{path}", timeout=30).json()["items"]
            ids = tuple(item["id"] for item in page)
            if ids and ids not in seen:
                seen.add(ids)
                paths.append(path)
    if len(paths) < count:
        raise RuntimeError(f"the seed catalog gives only {len(paths)} different searches")
    script = tmp / "searches.lua"
    script.write_text(
        "local paths = {" + ", ".join(f'"{p}"' for p in paths[:count]) + "}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #paths + 1\n"
        '  return wrk.format("GET", paths[i])\n'
        "end\n"
    )
    return script


def argon2_verify_ms(rounds: int = 30) -> float:
    from auth_service.passwords import HASHER

    hashed = HASHER.hash(PASSWORD)
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        HASHER.verify(hashed, PASSWORD)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def explain_uses_gin(database_url: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "EXPLAIN SELECT p.id FROM products p "
            "WHERE p.search @@ websearch_to_tsquery('english', $1)",
            COMMON_WORD,
        )
        text = "\n".join(r[0] for r in rows)
    finally:
        await conn.close()
    return "products_search_idx" in text


async def count_matches(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        total: int = await conn.fetchval(
            "SELECT count(*) FROM products WHERE search @@ websearch_to_tsquery('english', $1)",
            COMMON_WORD,
        )
        return total
    finally:
        await conn.close()


def rows_for(urls: dict[str, str], tmp: Path, seconds: float) -> list[Row]:
    bare, catalog, big, gw = urls["bare"], urls["catalog"], urls["catalog_100k"], urls["gateway"]
    script = login_script(tmp, urls["auth"])
    searches = distinct_searches_script(tmp, catalog)
    common = f"/products?q={COMMON_WORD}"

    def pair(a: str, b: str, connections: int = 32) -> Callable[[], tuple[Run, Run | None]]:
        return lambda: (
            wrk(a, connections=connections, seconds=seconds),
            wrk(b, connections=connections, seconds=seconds),
        )

    def single(a: str) -> Callable[[], tuple[Run, Run | None]]:
        return lambda: (wrk(a, seconds=seconds), None)

    def login() -> tuple[Run, Run | None]:
        run = wrk(f"{urls['auth']}/auth/login", connections=1, seconds=seconds, script=script)
        verify = argon2_verify_ms()
        return run, Run(0.0, verify, verify, 0)

    return [
        Row(
            "catalog GET /health / bare Sanic",
            ">= 0.80",
            lambda a, b: b is not None and a.rps >= 0.8 * b.rps,
            pair(f"{catalog}/health", f"{bare}/health"),
        ),
        Row(
            f"catalog search ({SEED_SEARCH}) / bare Sanic",
            ">= 0.35, p99 < 50 ms",
            lambda a, b: b is not None and a.rps >= 0.35 * b.rps and a.p99 < 50,
            pair(f"{catalog}{SEED_SEARCH}", f"{bare}/products"),
        ),
        Row(
            "catalog search, 64 different searches in turn / bare Sanic",
            "report",
            lambda a, b: b is not None and a.failed == 0,
            lambda: (
                wrk(f"{catalog}{SEED_SEARCH}", seconds=seconds, script=searches),
                wrk(f"{bare}/products", seconds=seconds),
            ),
        ),
        Row(
            "gateway / direct: catalog search",
            ">= 0.80",
            lambda a, b: b is not None and a.rps >= 0.8 * b.rps,
            pair(f"{gw}{SEED_SEARCH}", f"{catalog}{SEED_SEARCH}"),
        ),
        Row(
            "gateway / direct: GET /products/health",
            ">= 0.80",
            lambda a, b: b is not None and a.rps >= 0.8 * b.rps,
            pair(f"{gw}/products/health", f"{catalog}/products/health"),
        ),
        Row(
            "gateway - direct p50 at 1 connection: search",
            "<= +1 ms",
            lambda a, b: b is not None and a.p50 - b.p50 <= 1.0,
            pair(f"{gw}{SEED_SEARCH}", f"{catalog}{SEED_SEARCH}", connections=1),
            ratio_of="delta",
        ),
        Row(
            "gateway - direct p50 at 1 connection: /products/health",
            "<= +1 ms",
            lambda a, b: b is not None and a.p50 - b.p50 <= 1.0,
            pair(f"{gw}/products/health", f"{catalog}/products/health", connections=1),
            ratio_of="delta",
        ),
        Row(
            f"100k products: ?q={COMMON_WORD} / bare Sanic",
            "p99 < 50 ms",
            lambda a, b: a.p99 < 50,
            pair(f"{big}{common}", f"{bare}/products"),
        ),
        Row(
            f"100k products: ?q={COMMON_WORD}&page=50",
            "p99 < 50 ms",
            lambda a, b: a.p99 < 50,
            single(f"{big}{common}&page=50"),
            ratio_of="none",
        ),
        Row(
            "100k products: ?category=kitchen&sort=name&page=50",
            "p99 < 50 ms",
            lambda a, b: a.p99 < 50,
            single(f"{big}/products?category=kitchen&sort=name&page=50"),
            ratio_of="none",
        ),
        Row(
            "login p50 / argon2id verify p50 (1 connection)",
            "report",
            lambda a, b: a.failed == 0,
            login,
            ratio_of="latency",
        ),
    ]


def fmt(run: Run | None) -> str:
    if run is None:
        return "—"
    rps = f"{run.rps:,.0f} req/s, " if run.rps else ""
    return f"{rps}p50 {run.p50:.2f} ms, p99 {run.p99:.2f} ms"


def ratio(row: Row, a: Run, b: Run | None) -> str:
    if b is None or row.ratio_of == "none":
        return "—"
    if row.ratio_of == "delta":
        return f"{a.p50 - b.p50:+.2f} ms"
    if row.ratio_of == "latency":
        return f"{a.p50 / b.p50:.2f}"
    return f"{a.rps / b.rps:.2f}"


def reference_loop_ms() -> float:
    """CPU time of a fixed pure-Python loop: the machine's speed, to compare runs by.

    This machine's two cores are shared, and their speed moves by up to half
    within an hour: the same loop has taken from about 200 to 400 ms.
    """
    started = time.process_time()
    table: dict[int, str] = {}
    for i in range(3_000_000):
        table[i & 1023] = str(i)
    return (time.process_time() - started) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.load.bench")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--checkout-seconds", type=float, default=10)
    parser.add_argument("--checkout-users", type=int, default=32)
    parser.add_argument("--checkout-paced-users", type=int, default=64)
    args = parser.parse_args(argv)
    ensure_wrk()
    speed = [reference_loop_ms()]
    with tempfile.TemporaryDirectory() as folder, platform(Path(folder)) as urls:
        tmp = Path(folder)
        rows = rows_for(urls, tmp, args.seconds)
        # warm every path once: statement caches, pools, rankings
        for url in (urls["catalog"], urls["gateway"], urls["catalog_100k"]):
            wrk(f"{url}{SEED_SEARCH}", seconds=1)
        wrk(f"{urls['catalog_100k']}/products?q={COMMON_WORD}", seconds=1)
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}/{args.rounds}...", file=sys.stderr)
            for row in rows:
                row.runs = [*(row.runs or []), row.measure()]
        gin = asyncio.run(explain_uses_gin(urls["big_db"]))
        matches = asyncio.run(count_matches(urls["big_db"]))
    print("checkout under load: the whole platform (shopctl up)...", file=sys.stderr)
    speed.append(reference_loop_ms())
    bought = checkout.measure(args.checkout_seconds, args.checkout_users, args.checkout_paced_users)
    speed.append(reference_loop_ms())
    load = os.getloadavg()
    print(
        f"\nShopFlow bench: wrk, 1 thread, 32 connections (unless noted), {args.seconds:g} s "
        f"per run, median of {args.rounds} rounds; load average {load[0]:.2f} at the end"
    )
    print(
        "Machine speed: a fixed pure-Python loop took "
        + ", ".join(f"{ms:.0f}" for ms in speed)
        + " ms of CPU (start, before the checkout runs, end; lower is faster)\n"
    )
    print("| Ratio | measured | baseline | ratio | target | ok |")
    print("|---|---|---|---|---|---|")
    failures = 0
    for row in rows:
        assert row.runs
        a = median_run([r[0] for r in row.runs])
        bs = [r[1] for r in row.runs if r[1] is not None]
        b = median_run(bs) if bs else None
        ok = row.check(a, b) and a.failed == 0
        failures += not ok
        print(
            f"| {row.name} | {fmt(a)} | {fmt(b)} | {ratio(row, a, b)} | {row.target} | "
            f"{'yes' if ok else 'NO'} |"
        )
    capacity, paced = bought.capacity, bought.paced
    print(
        f"| checkout capacity through the gateway ({capacity.users} shoppers, no pause, "
        f"{capacity.seconds:g} s) | {capacity.orders_per_second:,.1f} confirmed orders/s, "
        f"p50 {capacity.p50_ms:.0f} ms, p99 {capacity.p99_ms:.0f} ms, {capacity.failed} errors "
        f"of {capacity.requests} | — | — | report (0 errors) | "
        f"{'yes' if capacity.failed == 0 else 'NO'} |"
    )
    failures += not bought.ok
    print(
        f"| checkout through the gateway at {paced.offered:g} orders/s offered "
        f"({paced.users} shoppers, {paced.seconds:g} s) | "
        f"{paced.orders_per_second:,.1f} confirmed orders/s, p50 {paced.p50_ms:.0f} ms, "
        f"p99 {paced.p99_ms:.0f} ms, {paced.failed} errors of {paced.requests} | — | — | "
        f">= {checkout.TARGET_ORDERS_PER_SECOND} orders/s, p99 < {checkout.TARGET_P99_MS} ms, "
        f"0 errors, books balanced | {'yes' if bought.ok else 'NO'} |"
    )
    books = "; ".join(bought.problems) or (
        "stock = initial - confirmed quantities, captured payments = confirmed orders "
        f"({bought.confirmed}), each confirmation email sent once"
    )
    print(
        f"\nCheckout books after both runs: "
        f"{'balanced' if not bought.problems else 'NOT balanced'}: {books}"
    )
    print(
        f"\n100k catalog: `{COMMON_WORD}` matches {matches:,} products; "
        f"EXPLAIN uses the GIN index products_search_idx: {'yes' if gin else 'NO'}"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
