"""Catalog search throughput against a bare Sanic JSON endpoint, side by side.

Both run as one Sanic worker on loopback; the same load generator drives each
for the same time. Prints requests/s of both and their ratio.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from catalog_api.config import MODELS, Settings
from shopctl.pg import LocalPostgres, create_database
from shopflow_kit.db import migrate

from tests.load.loadgen import measure
from tests.utils.live import start_service

SEARCH = "/products?q=coffee&category=kitchen"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalPostgres(Path(tmp) / "pg", durable=False)
        server.start()
        try:
            url = asyncio.run(create_database(server.url, "bench_catalog"))
            env = {"SHOPFLOW_CATALOG_API_DATABASE_URL": url}
            os.environ.update(env)  # the seed reads its settings from the environment
            asyncio.run(migrate(Settings(), MODELS))
            subprocess.run(
                [sys.executable, "-m", "catalog_api", "seed"], check=True, env={**os.environ, **env}
            )
            catalog = start_service("catalog-api", "catalog_api.app:create_app", env, Path(tmp))
            bare = start_service("bare", "tests.load.bare_app:create_app", {}, Path(tmp))
            try:
                asyncio.run(measure(f"{catalog.base_url}{SEARCH}", seconds=1))  # warm-up
                asyncio.run(measure(f"{bare.base_url}/products", seconds=1))
                catalog_rps, catalog_errors = asyncio.run(measure(f"{catalog.base_url}{SEARCH}"))
                bare_rps, _ = asyncio.run(measure(f"{bare.base_url}/products"))
            finally:
                catalog.stop()
                bare.stop()
        finally:
            server.stop()
    print(f"GET {SEARCH:38} {catalog_rps:8.0f} req/s  (non-200: {catalog_errors})")
    print(f"GET /products (bare Sanic JSON)            {bare_rps:8.0f} req/s")
    print(
        f"catalog search / bare Sanic = {catalog_rps / bare_rps:.3f}  (one worker each, 32 connections, 5 s)"
    )


if __name__ == "__main__":
    main()
