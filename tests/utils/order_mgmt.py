"""order-mgmt with real catalog-api and payment-api processes on a real PostgreSQL.

Each test module gets its own databases and processes. A module tunes
order-mgmt with ``ORDER_SETTINGS`` (short timeouts and recovery thresholds) and
says whether it needs payment-api with ``NEEDS_PAYMENTS``. Every response of the
public API is validated against the served ``/orders/openapi.json`` (openapi-core).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from shopctl.pg import create_database, drop_database

from tests.utils.contract import Contract
from tests.utils.issuer import ISSUER, TokenIssuer
from tests.utils.live import LiveService, LoopbackHTTPServer
from tests.utils.proxy import HoldingProxy
from tests.utils.services import bearer, start

ORDER_SECRET = "order-mgmt-test-secret"
PAYMENT_SECRET = "payment-api-test-secret"
CLIENTS = {
    "order-mgmt": (
        ORDER_SECRET,
        ["inventory:reserve", "payments:charge", "payments:refund", "notifications:publish"],
    ),
    "payment-api": (PAYMENT_SECRET, ["notifications:publish"]),
}
#: Defaults for order-mgmt under test: generous timeouts (two cores shared with
#: other suites), short backoffs; modules override what they exercise.
BASE_ORDER_SETTINGS = {
    "catalog_timeout_seconds": "10",
    "payment_timeout_seconds": "10",
    "charge_backoff_seconds": "0.05",
    "checkout_deadline_seconds": "25",
    "recovery_after_seconds": "30",
    "recovery_interval_seconds": "0.5",
    "database_pool_max": "10",
}
NEXT_YEAR = datetime.now(UTC).year + 1
APPROVED = "4242424242424242"
DECLINED = "4000000000000002"
INSUFFICIENT_FUNDS = "4000000000009995"
PROCESSING_ERROR = "4000000000000119"
ADDRESS = {
    "name": "Ada Shopper",
    "line1": "1 Main Street",
    "city": "Springfield",
    "postal_code": "12345",
    "country": "US",
}


def checkout_body(card: str = APPROVED) -> dict[str, Any]:
    return {
        "payment": {"card_number": card, "exp_month": 12, "exp_year": NEXT_YEAR, "cvc": "123"},
        "shipping_address": dict(ADDRESS),
    }


# --- an event receiver standing in for notify-hub (the relay's far end) ---------------


class EventReceiver:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.server = LoopbackHTTPServer(self._handle)

    def _handle(
        self, req: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if req.command != "POST" or req.path != "/internal/events":
            return 404, {}, b""
        if not (req.headers.get("authorization") or "").startswith("Bearer "):
            return 401, {}, b""
        event = json.loads(body)
        self.events.append(event)
        answer = json.dumps({"id": event["id"], "status": "accepted"}).encode()
        return 202, {"content-type": "application/json"}, answer

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_]


# --- the processes ---------------------------------------------------------------------


class Shopper(dict[str, str]):
    """A customer's ``Authorization`` header (use it as ``headers=``), knowing its id."""

    def __init__(self, customer_id: str, issuer: TokenIssuer) -> None:
        super().__init__(bearer(issuer.token(sub=customer_id, role="customer")))
        self.id = customer_id


@dataclass
class Shop:
    """The services under test and helpers that act on them as a test would."""

    issuer: TokenIssuer
    receiver: EventReceiver
    log_dir: Path
    databases: dict[str, str]
    catalog: LiveService
    payments: LiveService | None
    #: order-mgmt reaches payment-api through this relay, so a test can hang the line.
    payment_line: HoldingProxy | None = None
    orders: LiveService | None = None
    order_settings: dict[str, str] = field(default_factory=dict)

    def order_env(self, **overrides: str) -> dict[str, str]:
        return {
            "user_auth_url": self.issuer.url,
            "jwt_issuer": ISSUER,
            "catalog_api_url": self.catalog.base_url,
            "payment_api_url": self.payment_line.url if self.payment_line else "http://127.0.0.1:9",
            "notify_hub_url": self.receiver.server.url,
            "oauth_client_id": "order-mgmt",
            "oauth_client_secret": ORDER_SECRET,
            "fingerprint_key": "order-mgmt-test-fingerprint-key-0123456789",
            **BASE_ORDER_SETTINGS,
            **self.order_settings,
            **overrides,
        }

    def start_orders(self, *, migrate: bool = True, **overrides: str) -> LiveService:
        """(Re)start order-mgmt on its database and port; ``overrides`` apply to this run only."""
        port = None
        if self.orders is not None:
            self.orders.stop()  # no-op if it already died
            port = int(self.orders.base_url.rsplit(":", 1)[1])
        self.orders = start(
            "order-mgmt",
            self.databases["orders"],
            self.log_dir,
            migrate=migrate,
            port=port,
            extra=self.order_env(**overrides),
        )
        return self.orders

    def restart_catalog(self) -> None:
        port = int(self.catalog.base_url.rsplit(":", 1)[1])
        self.catalog = start_catalog(self, port=port, migrate=False)

    def restart_payments(self) -> None:
        assert self.payments is not None
        port = int(self.payments.base_url.rsplit(":", 1)[1])
        self.payments = start_payments(self, port=port, migrate=False)

    # --- acting as shoppers and admins ---

    def shopper(self) -> Shopper:
        return Shopper(str(uuid.uuid4()), self.issuer)

    def admin(self) -> dict[str, str]:
        return bearer(self.issuer.token(sub=str(uuid.uuid4()), role="admin"))

    async def product(
        self, *, stock: int = 10, price_cents: int = 1000, currency: str = "USD", name: str = ""
    ) -> dict[str, Any]:
        body = {
            "sku": f"SKU-{uuid.uuid4().hex[:10]}",
            "name": name or f"Widget {uuid.uuid4().hex[:6]}",
            "description": "",
            "category": "order-tests",
            "price_cents": price_cents,
            "currency": currency,
            "stock": stock,
        }
        async with httpx.AsyncClient(base_url=self.catalog.base_url, timeout=30) as http:
            response = await http.post("/products", json=body, headers=self.admin())
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def catalog_call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.catalog.base_url, timeout=30) as http:
            return await http.request(method, path, **kwargs)

    async def available(self, product_id: str) -> int:
        response = await self.catalog_call("GET", f"/products/{product_id}")
        return int(response.json()["stock_available"])

    async def query(self, database: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.databases[database])
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def payments_for(self, order_id: str) -> list[asyncpg.Record]:
        """payment-api's own rows for an order (every attempt, whatever its status)."""
        return await self.query(
            "payments",
            "SELECT id, status, amount_cents, refunded_at FROM payments WHERE order_id = $1",
            uuid.UUID(order_id),
        )

    async def captured_orders(self) -> set[str]:
        """Orders payment-api holds money for: captured and not refunded."""
        rows = await self.query(
            "payments", "SELECT order_id FROM payments WHERE status = 'captured'"
        )
        return {str(r["order_id"]) for r in rows}

    async def outbox(self, type_: str) -> list[dict[str, Any]]:
        rows = await self.query(
            "orders",
            "SELECT type, subject_user_id, data FROM outbox WHERE type = $1 ORDER BY occurred_at",
            type_,
        )
        return [
            {"subject_user_id": str(r["subject_user_id"]), "data": json.loads(r["data"])}
            for r in rows
        ]

    async def orders_of(self, customer: Shopper) -> list[asyncpg.Record]:
        return await self.query(
            "orders",
            "SELECT id, step FROM orders WHERE customer_id = $1 ORDER BY created_at",
            uuid.UUID(customer.id),
        )

    async def physical_stock(self, product_id: str) -> int:
        rows = await self.query(
            "catalog", "SELECT stock FROM products WHERE id = $1", uuid.UUID(product_id)
        )
        return int(rows[0]["stock"])


@dataclass
class CartHold:
    """A shopper's cart row, locked by a test's own transaction (see :func:`cart_held`)."""

    #: The locking transaction's connection: what it changes lands when the hold ends.
    conn: asyncpg.Connection
    observer: asyncpg.Connection

    async def waited_on_by(self, query_start: str) -> None:
        """Return once a statement starting with ``query_start`` waits for a lock."""

        async def waiting() -> bool:
            # Read outside the holder's transaction, which answers from its first snapshot.
            return bool(
                await self.observer.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND query LIKE $1",
                    query_start + "%",
                )
            )

        await eventually(waiting)


@asynccontextmanager
async def cart_held(shop: Shop, customer_id: str) -> AsyncIterator[CartHold]:
    """Lock the shopper's cart row until the block ends, then commit what the test changed."""
    conn = await asyncpg.connect(shop.databases["orders"])
    observer = await asyncpg.connect(shop.databases["orders"])
    try:
        locked = conn.transaction()
        await locked.start()
        await conn.execute(
            "SELECT 1 FROM carts WHERE customer_id = $1 FOR UPDATE", uuid.UUID(customer_id)
        )
        yield CartHold(conn, observer)
        await locked.commit()
    finally:
        await conn.close()
        await observer.close()


async def eventually(check: Any, *, within: float = 60.0, every: float = 0.2) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy; fail after ``within``."""
    import asyncio
    import time

    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"still not true after {within:g} s: {check}")
        await asyncio.sleep(every)


async def checkout(
    api: httpx.AsyncClient,
    who: dict[str, str],
    key: str | None = None,
    card: str = APPROVED,
) -> httpx.Response:
    headers = {**who, "Idempotency-Key": key or f"k-{uuid.uuid4()}"}
    return await api.post("/orders", json=checkout_body(card), headers=headers)


async def fill_cart(
    api: httpx.AsyncClient, who: dict[str, str], *lines: tuple[dict[str, Any], int]
) -> None:
    for product, quantity in lines:
        response = await api.put(
            f"/cart/items/{product['id']}", json={"quantity": quantity}, headers=who
        )
        assert response.status_code == 200, response.text


def start_catalog(shop: Shop, *, port: int | None = None, migrate: bool = True) -> LiveService:
    return start(
        "catalog-api",
        shop.databases["catalog"],
        shop.log_dir,
        migrate=migrate,
        port=port,
        user_auth_url=shop.issuer.url,
        jwt_issuer=ISSUER,
        sweep_interval_seconds="0.5",
        database_pool_max="10",
    )


def start_payments(shop: Shop, *, port: int | None = None, migrate: bool = True) -> LiveService:
    return start(
        "payment-api",
        shop.databases["payments"],
        shop.log_dir,
        migrate=migrate,
        port=port,
        user_auth_url=shop.issuer.url,
        jwt_issuer=ISSUER,
        notify_hub_url=shop.receiver.server.url,
        oauth_client_id="payment-api",
        oauth_client_secret=PAYMENT_SECRET,
        card_fingerprint_key="payment-api-test-card-fingerprint-key-0123456789",
        database_pool_max="10",
    )


@pytest.fixture(scope="module")
def issuer() -> Iterator[TokenIssuer]:
    server = TokenIssuer(CLIENTS).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[EventReceiver]:
    server = EventReceiver()
    server.server.start()
    yield server
    server.server.stop()


@pytest_asyncio.fixture(scope="module")
async def shop(
    pg_server: str,
    database_url: str,
    issuer: TokenIssuer,
    receiver: EventReceiver,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Shop]:
    """catalog-api, payment-api (if the module needs it) and order-mgmt, each on its own database."""
    suffix = uuid.uuid4().hex[:8]
    extra = {"catalog": f"t_om_catalog_{suffix}", "payments": f"t_om_payments_{suffix}"}
    databases = {"orders": database_url}
    for role, name in extra.items():
        databases[role] = await create_database(pg_server, name)
    log_dir = tmp_path_factory.mktemp("order-logs")
    shop = Shop(issuer, receiver, log_dir, databases, catalog=None, payments=None)  # type: ignore[arg-type]
    shop.order_settings = dict(getattr(request.module, "ORDER_SETTINGS", {}))
    try:
        shop.catalog = start_catalog(shop)
        if getattr(request.module, "NEEDS_PAYMENTS", True):
            shop.payments = start_payments(shop)
            port = int(shop.payments.base_url.rsplit(":", 1)[1])
            shop.payment_line = await HoldingProxy(port).start()
        shop.start_orders()
        yield shop
    finally:
        if shop.payment_line is not None:
            await shop.payment_line.stop()
        for service in (shop.orders, shop.payments, shop.catalog):
            if service is not None:
                service.stop()
        for name in extra.values():
            await drop_database(pg_server, name)


@pytest_asyncio.fixture(scope="module")
async def spec(shop: Shop) -> dict[str, Any]:
    assert shop.orders is not None
    async with httpx.AsyncClient(base_url=shop.orders.base_url, timeout=30) as http:
        response = await http.get("/orders/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


@pytest_asyncio.fixture
async def api(shop: Shop, spec: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    """A client of order-mgmt's public API whose every response is checked against the spec."""
    assert shop.orders is not None
    contract = Contract(spec)
    async with httpx.AsyncClient(
        base_url=shop.orders.base_url, timeout=60, event_hooks={"response": [contract.hook]}
    ) as http:
        yield http
