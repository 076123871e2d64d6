"""notify-hub on real PostgreSQL, with a real user-auth and a real SMTP server on loopback.

The SMTP server is aiosmtpd (the same server `shopctl up` runs) with a handler a
test can steer per recipient: answer ``421`` for the first N messages, or refuse
the recipient with ``550``. Everything it accepts is parsed with the stdlib
``email`` package and kept for the test to read.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from shopctl.pg import create_database, drop_database
from shopctl.ports import free_port

from tests.utils.factories import Account, register_and_login
from tests.utils.live import LiveService
from tests.utils.services import bearer, start

KEK = "notify-test-key-encryption-key-0123456789"
ISSUER = "http://auth.test/auth"
#: OAuth clients user-auth knows; their scopes come from the service registry.
CLIENTS = {
    "user-auth": "user-auth-secret",
    "notify-hub": "notify-hub-secret",
    "order-mgmt": "order-mgmt-secret",
    "payment-api": "payment-api-secret",
    "catalog-api": "catalog-api-secret",
}
#: Fast retries so that a test waits seconds, not minutes (production: 2 s up to 10 min).
NOTIFY_SETTINGS = {
    "delivery_poll_seconds": "0.2",
    "retry_base_seconds": "0.2",
    "retry_max_seconds": "1",
    "smtp_timeout_seconds": "5",
    "delivery_lease_seconds": "60",
    "max_attempts": "8",
    "database_pool_max": "10",
}


# --- the SMTP server --------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    peer: Any = None  #: the client's (host, port): one per SMTP connection


@dataclass
class _Rule:
    reply: str
    remaining: int  # -1: always


class SmtpHandler:
    """aiosmtpd handler: accepts mail, unless a rule for the recipient says otherwise."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.refusals: list[tuple[str, str]] = []
        self._defer: dict[str, _Rule] = {}
        self._reject: dict[str, str] = {}
        self.per_connection: int | None = None

    def defer(self, address: str, times: int, reply: str = "421 4.7.0 Try again later") -> None:
        """Answer DATA for ``address`` with ``reply`` (a 4xx) the next ``times`` times."""
        with self.lock:
            self._defer[address.lower()] = _Rule(reply, times)

    def limit_per_connection(self, messages: int | None) -> None:
        """Answer ``MAIL FROM`` with 421 once a connection has carried ``messages``."""
        with self.lock:
            self.per_connection = messages

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        with self.lock:
            sent = getattr(session, "shopflow_messages", 0)
            if self.per_connection is not None and sent >= self.per_connection:
                return "421 4.7.0 Too many messages on one connection, closing"
            session.shopflow_messages = sent + 1
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    def reject(self, address: str, reply: str = "550 5.1.1 Mailbox unavailable") -> None:
        """Refuse ``address`` at RCPT TO with ``reply`` (a 5xx), always."""
        with self.lock:
            self._reject[address.lower()] = reply

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self.lock:
            reply = self._reject.get(address.lower())
            if reply:
                self.refusals.append((address, reply))
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            for address in envelope.rcpt_tos:
                rule = self._defer.get(address.lower())
                if rule and rule.remaining != 0:
                    rule.remaining -= 1
                    self.refusals.append((address, rule.reply))
                    return rule.reply
            raw = bytes(envelope.original_content or envelope.content)
            message = message_from_bytes(raw, policy=policy.default)
            assert isinstance(message, EmailMessage)
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), message, raw, session.peer)
            )
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if address.lower() in map(str.lower, r.rcpt_tos)]

    def refused(self, address: str) -> list[str]:
        with self.lock:
            return [reply for a, reply in self.refusals if a.lower() == address.lower()]


class SmtpServer:
    """A real aiosmtpd server on a loopback port, stoppable and restartable on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.handler = SmtpHandler()
        self._controller: Controller | None = None

    def start(self) -> SmtpServer:
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


# --- user-auth and notify-hub ------------------------------------------------------------


def auth_settings(port: int, *, relay_to: str | None) -> dict[str, str]:
    """user-auth's settings; with ``relay_to`` its outbox relay delivers to that notify-hub."""
    settings = {
        # Its relay fetches its token from itself, as every service does: by URL.
        "user_auth_url": f"http://127.0.0.1:{port}",
        "key_encryption_key": KEK,
        "jwt_issuer": ISSUER,
        "oauth_clients": json.dumps(CLIENTS),
    }
    if relay_to:
        settings |= {
            "oauth_client_id": "user-auth",
            "oauth_client_secret": CLIENTS["user-auth"],
            "notify_hub_url": relay_to,
        }
    return settings


@dataclass
class Stack:
    """A user-auth and notify-hub pair, each with its own database, and the SMTP server."""

    pg_server: str
    logs: Path
    smtp: SmtpServer
    auth_db: str = ""
    notify_db: str = ""
    notify_port: int = field(default_factory=free_port)
    auth: LiveService | None = None
    notify: LiveService | None = None
    replicas: list[LiveService] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)

    @property
    def notify_url(self) -> str:
        return f"http://127.0.0.1:{self.notify_port}"

    async def open(self, *, relay: bool) -> None:
        suffix = uuid.uuid4().hex[:6]
        for name in (f"t_notify_auth_{suffix}", f"t_notify_hub_{suffix}"):
            self.databases.append(name)
        self.auth_db = await create_database(self.pg_server, self.databases[0])
        self.notify_db = await create_database(self.pg_server, self.databases[1])
        port = free_port()
        self.auth = start(
            "user-auth",
            self.auth_db,
            self.logs,
            port=port,
            extra=auth_settings(port, relay_to=self.notify_url if relay else None),
        )

    def notify_settings(self, **overrides: str) -> dict[str, str]:
        assert self.auth is not None
        return {
            **NOTIFY_SETTINGS,
            "user_auth_url": self.auth.base_url,
            "jwt_issuer": ISSUER,
            "oauth_client_id": "notify-hub",
            "oauth_client_secret": CLIENTS["notify-hub"],
            "smtp_host": "127.0.0.1",
            "smtp_port": str(self.smtp.port),
            **overrides,
        }

    def start_notify(self, **overrides: str) -> LiveService:
        """notify-hub on its reserved port (the relay's target), migrated by its own CLI."""
        self.notify = start(
            "notify-hub",
            self.notify_db,
            self.logs,
            port=self.notify_port,
            extra=self.notify_settings(**overrides),
        )
        return self.notify

    def start_replica(self) -> LiveService:
        """Another notify-hub process on the same database, as a second pod would be."""
        replica = start(
            "notify-hub", self.notify_db, self.logs, migrate=False, extra=self.notify_settings()
        )
        self.replicas.append(replica)
        return replica

    async def close(self) -> None:
        for service in [*self.replicas, self.notify, self.auth]:
            if service is not None:
                service.stop()
        for name in self.databases:
            await drop_database(self.pg_server, name)

    # --- talking to the services ---------------------------------------------------------

    async def service_token(self, client: str, scope: str) -> str:
        assert self.auth is not None
        async with httpx.AsyncClient(base_url=self.auth.base_url, timeout=20) as http:
            form = {"grant_type": "client_credentials"} | ({"scope": scope} if scope else {})
            response = await http.post(
                "/auth/oauth/token", data=form, auth=(client, CLIENTS[client])
            )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    async def notify_rows(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await _rows(self.notify_db, sql, *args)

    async def auth_rows(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await _rows(self.auth_db, sql, *args)

    async def register(self) -> Account:
        """A shopper registered and logged in at user-auth."""
        assert self.auth is not None
        async with httpx.AsyncClient(base_url=self.auth.base_url, timeout=20) as http:
            return await register_and_login(http)

    async def notification(self, event_id: str) -> asyncpg.Record | None:
        rows = await self.notify_rows(
            "SELECT * FROM notifications WHERE event_id = $1", uuid.UUID(event_id)
        )
        return rows[0] if rows else None

    def notify_log(self) -> str:
        return (self.logs / "notify-hub.log").read_text(errors="replace")


async def _rows(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


@pytest_asyncio.fixture(scope="module")
async def stack_factory(
    pg_server: str, smtp: SmtpServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Callable[[], Stack]]:
    """Makes stacks for the module and closes them all at its end."""
    made: list[Stack] = []

    def make() -> Stack:
        stack = Stack(pg_server, tmp_path_factory.mktemp("notify-logs"), smtp)
        made.append(stack)
        return stack

    yield make
    for stack in made:
        await stack.close()


@pytest_asyncio.fixture(scope="module")
async def stack(stack_factory: Callable[[], Stack]) -> Stack:
    """A running pair whose user-auth does not relay: only the tests' events reach notify-hub."""
    stack = stack_factory()
    await stack.open(relay=False)
    stack.start_notify()
    return stack


@pytest_asyncio.fixture(scope="module")
async def producer(stack: Stack) -> str:
    """order-mgmt's service token: the registry grants it notifications:publish."""
    return await stack.service_token("order-mgmt", "notifications:publish")


@pytest_asyncio.fixture
async def notify(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    assert stack.notify is not None
    limits = httpx.Limits(max_connections=40)
    async with httpx.AsyncClient(base_url=stack.notify.base_url, timeout=30, limits=limits) as http:
        yield http


# --- events and waiting ------------------------------------------------------------------


def envelope(type_: str, data: dict[str, Any], subject_user_id: str | None) -> dict[str, Any]:
    """An event exactly as the kit's ``OutboxEvent.envelope()`` sends it."""
    return {
        "id": str(uuid.uuid4()),
        "type": type_,
        "occurred_at": "2026-03-01T12:00:00.123456+00:00",
        "subject_user_id": subject_user_id,
        "data": data,
    }


async def post_event(http: httpx.AsyncClient, token: str, event: dict[str, Any]) -> httpx.Response:
    return await http.post("/internal/events", json=event, headers=bearer(token))


def unique_address(prefix: str = "shopper") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


async def wait_until(
    predicate: Callable[[], Awaitable[bool]],
    timeout: float = 60.0,
    what: str = "condition",
    diagnose: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Poll ``predicate`` until it holds; the timeout only bounds a hung test.

    ``diagnose`` describes the state when the wait fails (last errors, say).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    state = f": {await diagnose()}" if diagnose else ""
    raise AssertionError(f"{what} not reached within {timeout:.0f}s{state}")
