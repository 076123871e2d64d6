"""Reading the database a service under test writes to, over its own connection."""

from __future__ import annotations

from typing import Any

import asyncpg


async def fetchval(database_url: str, query: str, *args: object) -> Any:
    """One value from one query, on a fresh connection (so it sees only committed data)."""
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()
