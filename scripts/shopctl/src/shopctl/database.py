"""Which database a CLI command talks to: `--database-url`, or the local platform's."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

from shopctl import pg
from shopctl.repo import local_state
from shopctl.services import POSTGRES_PORT, Service, local_port


@contextlib.contextmanager
def service_database(root: Path, service: Service, database_url: str | None) -> Iterator[str]:
    """Yield the URL of ``service``'s database, starting the local PostgreSQL if needed.

    A server this command started is stopped again afterwards; one that
    `shopctl up` is running is left alone.
    """
    if database_url:
        yield database_url
        return
    server = pg.LocalPostgres(local_state(root) / "pg", port=local_port("postgres", POSTGRES_PORT))
    already_running = server.running_port() is not None
    base = server.start()
    try:
        yield asyncio.run(pg.create_database(base, service.database))
    finally:
        if not already_running:
            server.stop()
