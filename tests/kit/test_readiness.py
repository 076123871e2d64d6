"""/ready reflects the database; /health never touches it."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
from shopctl.pg import drop_database

from tests.utils.live import LiveService


async def test_ready_is_503_when_the_database_is_gone(
    sample: LiveService, pg_server: str, database_url: str
) -> None:
    async with httpx.AsyncClient(base_url=sample.base_url) as http:
        assert (await http.get("/ready")).status_code == 200
        await drop_database(pg_server, urlsplit(database_url).path.lstrip("/"))
        response = await http.get("/ready")
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "database unavailable" in response.json()["detail"]
        # Liveness does no I/O, so a database outage never restarts the pod.
        assert (await http.get("/health")).status_code == 200
