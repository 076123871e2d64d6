"""Tortoise set-up per service database, and the migration entry point."""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from tortoise import Tortoise, connections
from tortoise.backends.base.client import TransactionalDBClient
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.migrations.api import migrate as tortoise_migrate
from tortoise.transactions import in_transaction

from shopflow_kit.config import ServiceSettings

KIT_APP = {"models": ["shopflow_kit.models"], "migrations": "shopflow_kit.migrations"}


def tortoise_config(settings: ServiceSettings, models_module: str | None) -> dict[str, Any]:
    """One connection (the service's own database); the kit's tables plus the service's."""
    connection = expand_db_url(settings.resolved_database_url())
    connection["engine"] = "shopflow_kit.pg_engine"  # Tortoise's asyncpg backend, fixed
    # The ORM's connections, and as many again that ``reads()`` may borrow.
    connection["credentials"]["maxsize"] = 2 * settings.database_pool_max
    # Every statement is a prepared one (asyncpg caches them per connection).
    # PostgreSQL would still plan most of them again on every execution: its
    # "auto" mode keeps a custom plan whenever the generic one is estimated
    # dearer, which for a lookup by a list of ids (``unnest($1::uuid[])``) is
    # always. Planning was 150 us against 30 us of execution for catalog
    # search's page query, and PostgreSQL's CPU per search fell from about
    # 175 us to about 40 us with one plan per statement. The services' statements are
    # lookups by key and filters served by an index, for which one generic plan
    # is right.
    server_settings = connection["credentials"].setdefault("server_settings", {})
    server_settings["plan_cache_mode"] = "force_generic_plan"
    apps: dict[str, Any] = {"kit": dict(KIT_APP)}
    if models_module:
        package = models_module.rsplit(".", 1)[0]
        label = package.rsplit(".", 1)[-1]
        apps[label] = {"models": [models_module], "migrations": f"{package}.migrations"}
    return {
        "connections": {"default": connection},
        "apps": apps,
        "use_tz": True,
        "timezone": "UTC",
    }


async def init_db(settings: ServiceSettings, models_module: str | None) -> None:
    # Sanic runs before_server_start and the request handlers in different
    # contexts, so Tortoise's context-local state would be invisible to the
    # handlers; the global fallback is what Tortoise's own Sanic integration uses.
    await Tortoise.init(
        config=tortoise_config(settings, models_module), _enable_global_fallback=True
    )


def _usable(conn: asyncpg.Connection) -> bool:
    """Whether ``conn`` can run a query: open, and still ours (asyncpg takes back one that died)."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:  # "released back to the pool": its connection was lost
        return False


#: Argument types whose equality in Python means the same value for PostgreSQL
#: (exact types: ``True == 1``), and UUIDs (asyncpg returns its own subclass).
_SHAREABLE = frozenset({str, int, type(None)})


def _shareable(value: Any) -> bool:
    return type(value) in _SHAREABLE or isinstance(value, uuid.UUID)


def _share_key(sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The key of a shareable read, or None (a ``Decimal("1.0")`` equals ``1``, but not in SQL)."""
    key: list[Any] = [sql]
    for arg in args:
        if _shareable(arg):
            key.append(arg)
        elif type(arg) in (list, tuple) and all(_shareable(item) for item in arg):
            key.append((list, *arg))
        else:
            return None
    return tuple(key)


class ReadPool:
    """Connections held for a hot read, handed out without asyncpg's pool machinery.

    asyncpg's pool costs a queue, a shielded task and a reset with a timeout on
    every acquire and release: about 10% of a catalog search's CPU (py-spy),
    where Python 3.11's ``get_running_loop`` makes a ``getpid`` system call
    each time. This keeps up to ``size`` connections borrowed from that pool
    and hands them out last-in, first-out, so a request costs a list pop and
    an append. A connection whose query was cancelled or broke, or that died
    while idle (a PostgreSQL restart), goes back to asyncpg's pool, which
    cleans or replaces it (its release waits for a cancelled query and rolls
    back); one that PostgreSQL answered with an error is ready for the next
    query and stays.
    """

    def __init__(self, client: Any, size: int) -> None:
        # Looked up once: each ``get_running_loop()`` is a system call on 3.11.
        self.loop = asyncio.get_running_loop()
        self.client = client  # Tortoise's asyncpg client, whose pool lends the connections
        self.size = size
        self.idle: list[asyncpg.Connection] = []
        self.borrowed = 0
        self.waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self.closing = False
        self.background: set[asyncio.Task[None]] = set()  # returns and shared reads
        #: Statements in flight for ``fetch_shared``, and the reads waiting for their next run.
        self.flights: dict[tuple[Any, ...], list[asyncio.Future[list[asyncpg.Record]]]] = {}

    @property
    def source(self) -> asyncpg.Pool | None:
        return self.client._pool

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = self.idle.pop() if self.idle else await self._take()
        while not _usable(conn):  # died while idle
            self._return(conn)
            conn = self.idle.pop() if self.idle else await self._take()
        try:
            rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
        except BaseException as exc:
            if isinstance(exc, asyncpg.PostgresError) and _usable(conn):
                self._put(conn)  # the server refused the statement; the session is fine
            else:
                self._return(conn)  # cancelled or broken mid-query: asyncpg cleans it up
            raise
        self._put(conn)
        return rows

    async def fetch_shared(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """``fetch``, run once for identical reads that arrive while it is in flight.

        A read never joins a run that has already started: it waits for the
        next one, which starts as soon as the current one ends and serves every
        read that arrived meanwhile. Its rows are therefore read after it
        arrived, as fresh as from a statement of its own, while a burst of the
        same search costs one statement per round trip instead of one per
        request (request coalescing, as Varnish and nginx's ``proxy_cache_lock``
        do for a cache miss). Reads are identical when their statement and
        arguments are: strings, ints, UUIDs, None and lists of them; a read
        with any other argument runs on its own. The rows are shared: callers
        must not change them. A caller that goes away leaves the run to finish
        for the others.
        """
        key = _share_key(sql, args)
        if key is None:
            return await self.fetch(sql, *args)
        mine: asyncio.Future[list[asyncpg.Record]] = self.loop.create_future()
        waiting = self.flights.get(key)
        if waiting is None:
            self.flights[key] = [mine]
            task = self.loop.create_task(self._fly(key, sql, args))
            self.background.add(task)
            task.add_done_callback(self.background.discard)
        else:
            waiting.append(mine)
        return await mine

    async def _fly(self, key: tuple[Any, ...], sql: str, args: tuple[Any, ...]) -> None:
        """Run ``sql`` for the reads waiting on ``key`` until none arrived during a run."""
        waiting = self.flights[key]
        batch: list[asyncio.Future[list[asyncpg.Record]]] = []
        try:
            while waiting:
                batch = list(waiting)
                waiting.clear()
                try:
                    rows = await self.fetch(sql, *args)
                except Exception as exc:
                    for read in batch:
                        if not read.done():
                            read.set_exception(exc)
                else:
                    for read in batch:
                        if not read.done():
                            read.set_result(rows)
                batch = []
        finally:
            del self.flights[key]
            for read in [*batch, *waiting]:  # only when this task itself was cancelled
                if not read.done():
                    read.cancel()

    async def fetchval(self, sql: str, *args: Any) -> Any:
        rows = await self.fetch(sql, *args)
        return rows[0][0] if rows else None

    async def _take(self) -> asyncpg.Connection:
        while True:
            if self.closing:
                raise asyncpg.InterfaceError("the database is closing")
            if self.borrowed < self.size:
                self.borrowed += 1
                try:
                    if self.source is None:  # Tortoise opens its pool on first use
                        async with self.client.acquire_connection():
                            pass
                    source = self.source
                    if source is None:
                        raise RuntimeError("the database is not initialised (init_db)")
                    conn: asyncpg.Connection = await source.acquire()
                except BaseException:
                    self.borrowed -= 1
                    self._wake()
                    raise
                return conn
            waiter = self.loop.create_future()
            self.waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    # Handed a connection, or a turn to borrow one, as this read gave up.
                    if waiter.result() is not None:
                        self._put(waiter.result())
                    else:
                        self._wake()
                raise
            if handed is not None:
                return handed
            # None: a connection was given back to asyncpg; borrow a fresh one.

    def _put(self, conn: asyncpg.Connection) -> None:
        if self.closing or not _usable(conn):
            self._return(conn)
            return
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.idle.append(conn)

    def _return(self, conn: asyncpg.Connection) -> None:
        """Give ``conn`` back to asyncpg's pool, which resets or replaces it."""
        self.borrowed -= 1
        source = self.source
        if source is not None:  # asyncpg does nothing for one it already took back
            task = asyncio.ensure_future(source.release(conn))
            self.background.add(task)
            task.add_done_callback(self.background.discard)
        self._wake()

    def _wake(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Give every connection back; one in use goes back when its query ends."""
        self.closing = True
        while self.idle:
            self._return(self.idle.pop())
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        await asyncio.gather(*self.background, return_exceptions=True)


_reads: ReadPool | None = None


def reads() -> ReadPool:
    """The service's connections for hot reads that skip the ORM (catalog search).

    Borrowed from Tortoise's own asyncpg pool, as many as the ORM may use
    (``database_pool_max``), on first use; a service that never calls this
    holds none. Tortoise's ``connections.get()`` checks the event loop on
    every call, and its connection wrapper adds a layer around asyncpg's
    acquire and release (py-spy: 13% of a catalog search together).
    """
    global _reads
    if _reads is None or _reads.closing:
        client = connections.get("default")
        _reads = ReadPool(client, client.pool_maxsize // 2)
    return _reads


@asynccontextmanager
async def transaction() -> AsyncIterator[Any]:
    """A transaction on the default connection, or the caller's if one is open.

    Tortoise's ``in_transaction()`` inside another opens a SAVEPOINT (two more
    round trips); this joins the open transaction instead. An error still rolls
    back all of it, once it leaves the outer transaction: use this only where
    the caller does not catch the error and carry on.
    """
    current = connections.get("default")
    if isinstance(current, TransactionalDBClient):
        yield current
        return
    async with in_transaction() as conn:
        yield conn


async def close_db() -> None:
    global _reads
    if _reads is not None:
        await _reads.close()
        _reads = None
    await Tortoise.close_connections()


async def migrate(settings: ServiceSettings, models_module: str | None) -> None:
    """Apply every pending migration of the kit and of the service (Tortoise's own runner)."""
    try:
        await tortoise_migrate(config=tortoise_config(settings, models_module))
    finally:
        await Tortoise.close_connections()
