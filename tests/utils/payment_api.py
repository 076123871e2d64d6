"""payment-api as a real process on a real PostgreSQL, trusting a loopback token issuer.

Every module gets its own database and service. When a module's service stops,
its whole log and a ``pg_dump`` of its database are scanned for the card
numbers the tests used (:func:`assert_no_card_data`): no test module can leak a
card number unnoticed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from shopctl.pg import POSTGRES_BIN_PATH

from tests.utils.contract import Contract
from tests.utils.issuer import ISSUER, TokenIssuer
from tests.utils.live import LiveService, LoopbackHTTPServer
from tests.utils.services import start

CLIENT_SECRET = "payment-api-test-secret"
FINGERPRINT_KEY = "test-card-fingerprint-key-0123456789abcdef"

APPROVED = "4242424242424242"
DECLINED = "4000000000000002"
INSUFFICIENT_FUNDS = "4000000000009995"
PROCESSING_ERROR = "4000000000000119"
MASTERCARD = "5555555555554444"
AMEX = "378282246310005"
DISCOVER = "6011111111111117"
#: Every full card number any test sends; none may show up in a log or the database.
CARD_NUMBERS = (
    APPROVED,
    DECLINED,
    INSUFFICIENT_FUNDS,
    PROCESSING_ERROR,
    MASTERCARD,
    AMEX,
    DISCOVER,
    "4111111111111111",
    "4012888888881881",
    "5105105105105100",
    "371449635398431",
    "6011000990139424",
    "9000000000000001",
)


def next_year() -> int:
    return datetime.now(UTC).year + 1


def card(number: str = APPROVED, **overrides: Any) -> dict[str, Any]:
    cvc = "1234" if number.replace(" ", "")[:2] in ("34", "37") else "123"
    return {"number": number, "exp_month": 12, "exp_year": next_year(), "cvc": cvc, **overrides}


def charge_body(number: str = APPROVED, **overrides: Any) -> dict[str, Any]:
    return {
        "order_id": str(uuid.uuid4()),
        "customer_id": str(uuid.uuid4()),
        "amount_cents": 4999,
        "currency": "USD",
        "card": card(number),
        **overrides,
    }


def service_auth(
    issuer: TokenIssuer, scope: str = "payments:charge payments:refund", sub: str = "order-mgmt"
) -> dict[str, str]:
    token = issuer.token(sub=sub, aud="shopflow-internal", scope=scope)
    return {"Authorization": f"Bearer {token}"}


def user_auth(issuer: TokenIssuer, sub: str, role: str = "customer") -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.token(sub=sub, role=role)}"}


async def charge(
    http: httpx.AsyncClient,
    issuer: TokenIssuer,
    body: dict[str, Any],
    key: str | None = None,
    **headers: str,
) -> httpx.Response:
    """``POST /internal/payments`` as order-mgmt, with a fresh key unless one is given."""
    return await http.post(
        "/internal/payments",
        json=body,
        headers={**service_auth(issuer), "Idempotency-Key": key or str(uuid.uuid4()), **headers},
    )


@dataclass
class EventSink:
    """Stands in for notify-hub's ``POST /internal/events``: records what the relay sends."""

    server: LoopbackHTTPServer = field(init=False)
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.server = LoopbackHTTPServer(self._handle)

    def _handle(
        self, req: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if req.path != "/internal/events" or req.command != "POST":
            return 404, {}, b""
        envelope = json.loads(body)
        self.envelopes.append(envelope)
        self.tokens.append((req.headers.get("authorization") or "").removeprefix("Bearer "))
        answer = {"id": envelope["id"], "status": "accepted"}
        return 202, {"content-type": "application/json"}, json.dumps(answer).encode()

    async def wait_for(self, type_: str, **data: Any) -> list[dict[str, Any]]:
        """Envelopes of ``type_`` whose data has ``data``, once one has arrived (the relay polls)."""
        for _ in range(300):
            found = [
                e
                for e in self.envelopes
                if e["type"] == type_ and data.items() <= e["data"].items()
            ]
            if found:
                return found
            await asyncio.sleep(0.1)
        raise AssertionError(f"no {type_} {data} reached the sink; got {self.envelopes}")


def pg_dump(database_url: str) -> str:
    """A plain-SQL dump of the database, with the pg_dump that ships with the server."""
    result = subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_dump"), "--no-owner", "--dbname", database_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def card_data_found(text: str) -> list[str]:
    """Which test card numbers (or their unkeyed SHA-256) occur in ``text``."""
    found = []
    for number in CARD_NUMBERS:
        forms = {
            number,
            " ".join(number[i : i + 4] for i in range(0, len(number), 4)),
            "-".join(number[i : i + 4] for i in range(0, len(number), 4)),
            hashlib.sha256(number.encode()).hexdigest(),
        }
        found += [form for form in forms if form in text]
    return found


def assert_no_card_data(database_url: str, log: Path) -> tuple[int, int]:
    """Scan a database dump and a service log; returns (dump bytes, log lines) scanned."""
    dump = pg_dump(database_url)
    assert "CREATE TABLE public.payments" in dump
    assert card_data_found(dump) == [], "card numbers in the payments database"
    lines = log.read_text().splitlines()
    leaking = [line for line in lines if card_data_found(line)]
    assert leaking == [], f"card numbers in the log: {leaking[:3]}"
    return len(dump), len(lines)


@pytest.fixture(scope="module")
def issuer() -> Iterator[TokenIssuer]:
    server = TokenIssuer({"payment-api": (CLIENT_SECRET, ["notifications:publish"])}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sink() -> Iterator[EventSink]:
    events = EventSink()
    events.server.start()
    yield events
    events.server.stop()


@dataclass
class Payments:
    service: LiveService
    database_url: str
    log: Path

    @property
    def base_url(self) -> str:
        return self.service.base_url


def start_payments(
    database_url: str, issuer: TokenIssuer, sink: EventSink, log_dir: Path, **settings: str
) -> Payments:
    service = start(
        "payment-api",
        database_url,
        log_dir,
        user_auth_url=issuer.url,
        notify_hub_url=sink.server.url,
        jwt_issuer=ISSUER,
        card_fingerprint_key=FINGERPRINT_KEY,
        oauth_client_id="payment-api",
        oauth_client_secret=CLIENT_SECRET,
        outbox_poll_seconds="0.2",
        database_pool_max="10",
        extra=settings,
    )
    return Payments(service, database_url, log_dir / "payment-api.log")


@pytest.fixture(scope="module")
def payment_settings() -> dict[str, str]:
    """Extra settings for this module's payment-api; a module may override it."""
    return {}


@pytest_asyncio.fixture(scope="module")
async def payments(
    database_url: str,
    issuer: TokenIssuer,
    sink: EventSink,
    payment_settings: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Payments]:
    log_dir = tmp_path_factory.mktemp("payment-logs")
    running = start_payments(database_url, issuer, sink, log_dir, **payment_settings)
    yield running
    running.service.stop()
    assert_no_card_data(database_url, running.log)


@pytest_asyncio.fixture(scope="module")
async def checker(payments: Payments) -> Contract:
    async with httpx.AsyncClient(base_url=payments.base_url) as http:
        document = (await http.get("/payments/openapi.json")).json()
    return Contract(document)


@pytest_asyncio.fixture
async def client(payments: Payments, checker: Contract) -> AsyncIterator[httpx.AsyncClient]:
    """Every response of the public API is checked against /payments/openapi.json."""
    async with httpx.AsyncClient(
        base_url=payments.base_url, timeout=60, event_hooks={"response": [checker.hook]}
    ) as http:
        yield http


async def db_fetch(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()
