"""The kit's Tortoise engine: Tortoise's asyncpg backend with two fixes.

Tortoise loads a backend from the ``engine`` module named in its config, so
the services use this one (``shopflow_kit.db.tortoise_config``) and every
``in_transaction()``, theirs and Tortoise's own, gets both fixes.

**A cancelled BEGIN leaks its connection.** Tortoise's pooled transaction takes
a connection from the pool, then sends ``BEGIN``; when the task is cancelled
during that round trip (Sanic cancels a handler whose caller hung up), the
context manager's exit never runs and the connection never goes back. After
``pool size`` such hang-ups every request waits for a connection for ever:
order-mgmt's recovery found payment-api wedged exactly so in a loaded test
run. :class:`CancelSafeTransaction` gives the connection back (asyncpg rolls
back whatever the BEGIN started) before the cancellation goes on.

**Releasing a connection costs a round trip.** See :class:`KitConnection`.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper
from tortoise.backends.base.client import TransactionContext, TransactionContextPooled
from tortoise.connection import get_connections


class KitConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection released without asyncpg's reset query.

    asyncpg resets a connection on every release back to the pool with
    ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``: a
    round trip after every query outside a transaction, the largest single cost
    of order-mgmt's checkout (py-spy). The services keep no session state to
    reset: their advisory locks are transaction-scoped, and nothing SETs,
    LISTENs or keeps a cursor outside a transaction. A transaction left open is
    still rolled back by asyncpg, whatever this query says.
    """

    def get_reset_query(self) -> str:
        return ""


class CancelSafeTransaction(TransactionContextPooled):
    """Tortoise's pooled transaction, which gives its connection back when BEGIN fails."""

    async def __aenter__(self) -> Any:
        await self.ensure_connection()
        pool = self.client._parent._pool
        self.client._connection = await pool.acquire()
        self.token = get_connections().set(self.connection_name, self.client)
        try:
            await self.client.begin()
        except BaseException:
            get_connections().reset(self.token)
            await pool.release(self.client._connection)  # shielded by asyncpg
            raise
        return self.client


class KitAsyncpgClient(AsyncpgDBClient):
    connection_class = KitConnection

    def _in_transaction(self) -> TransactionContext:
        return CancelSafeTransaction(TransactionWrapper(self), self._pool_init_lock)


client_class = KitAsyncpgClient
