"""Login latency: the argon2id verify alone, and a full POST /auth/login, side by side.

Run with `make bench`. Prints p50/p95 of each and their ratio (how much of a
login is the deliberate cost of hashing).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from auth_service.config import MODELS, Settings
from auth_service.passwords import HASHER
from shopctl.pg import LocalPostgres, create_database
from shopflow_kit.db import migrate

from tests.auth.conftest import auth_env
from tests.utils.live import start_service

ROUNDS = 60
PASSWORD = "a-long-and-unusual-passphrase"


def percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100)[int(q) - 1]


def bench_verify() -> list[float]:
    hashed = HASHER.hash(PASSWORD)
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        HASHER.verify(hashed, PASSWORD)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def bench_login(base_url: str) -> list[float]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        email = "bench@example.com"
        await http.post("/auth/register", json={"email": email, "password": PASSWORD, "name": "B"})
        samples = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            response = await http.post("/auth/login", json={"email": email, "password": PASSWORD})
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
        return samples


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalPostgres(Path(tmp) / "pg", durable=False)
        server.start()
        try:
            url = asyncio.run(create_database(server.url, "bench_auth"))
            asyncio.run(migrate(Settings(database_url=url), MODELS))
            service = start_service(
                "user-auth", "auth_service.app:create_app", auth_env(url), Path(tmp)
            )
            try:
                verify = bench_verify()
                login = asyncio.run(bench_login(service.base_url))
            finally:
                service.stop()
        finally:
            server.stop()
    for name, samples in (("argon2id verify", verify), ("POST /auth/login", login)):
        print(
            f"{name:18} p50 {statistics.median(samples):7.1f} ms   p95 {percentile(samples, 95):7.1f} ms"
        )
    ratio = statistics.median(login) / statistics.median(verify)
    print(f"login p50 / verify p50 = {ratio:.2f}  ({ROUNDS} rounds each, same run)")


if __name__ == "__main__":
    main()
