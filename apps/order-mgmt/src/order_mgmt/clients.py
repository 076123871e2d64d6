"""order-mgmt's calls to catalog-api and payment-api, translated into checkout events.

Every call has an explicit total timeout, carries the request id and goes to the
URL from the settings (the service registry's cluster DNS by default, the local
ports under ``shopctl up``). Service calls use the kit's client-credentials
client, whose token is cached until shortly before it expires. Anything that
means "try again later" (a refused connection, a timeout, a 5xx, a key still in
flight) becomes :class:`DependencyUnavailable`; the saga then stays in its step.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError
from shopflow_kit.observability import REQUEST_ID
from shopflow_kit.service_client import HttpClient, ServiceTokenClient, async_client

from order_mgmt.checkout import (
    Captured,
    Committed,
    Declined,
    NotCharged,
    OutOfStock,
    Refunded,
    Released,
    ReservationLapsed,
    Reserved,
)
from order_mgmt.config import CALL_SCOPES, Settings

log = logging.getLogger("order_mgmt.clients")

_UNKNOWN_PRODUCT = re.compile(r"unknown product ([0-9a-fA-F-]{36})")


class DependencyUnavailable(Exception):
    """A service order-mgmt needs is down, slow or failing; retry later."""

    def __init__(self, service: str, detail: str) -> None:
        super().__init__(f"{service}: {detail}")
        self.service = service
        self.detail = detail


@dataclass(frozen=True)
class LiveProduct:
    """A product as catalog-api shows it now."""

    id: uuid.UUID
    name: str
    price_cents: int
    currency: str
    stock_available: int


@dataclass(frozen=True)
class Card:
    """Held in memory for one request only; never stored, logged or echoed."""

    number: str
    exp_month: int
    exp_year: int
    cvc: str

    def __repr__(self) -> str:
        return "Card(****)"

    def as_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "exp_month": self.exp_month,
            "exp_year": self.exp_year,
            "cvc": self.cvc,
        }


def _product(body: dict[str, Any]) -> LiveProduct:
    return LiveProduct(
        id=uuid.UUID(str(body["id"])),
        name=str(body["name"]),
        price_cents=int(body["price_cents"]),
        currency=str(body["currency"]),
        stock_available=int(body["stock_available"]),
    )


class _Service:
    """One service's base URL, total timeout and error mapping."""

    name = ""

    def __init__(self, http: HttpClient | ServiceTokenClient, base_url: str, timeout: float):
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    async def send(self, method: str, path: str, request_id: str, **kwargs: Any) -> httpx.Response:
        headers = {REQUEST_ID: request_id, **kwargs.pop("headers", {})}
        try:
            # The total bound covers a token fetch too; httpx's own timeout is per read.
            async with asyncio.timeout(self.timeout):
                response = await self.http.request(
                    method,
                    f"{self.base_url}{path}",
                    headers=headers,
                    timeout=self.timeout,
                    **kwargs,
                )
        except (httpx.HTTPError, TimeoutError, AuthlibBaseError, ValueError) as exc:
            raise DependencyUnavailable(
                self.name, f"{method} {path}: {type(exc).__name__}"
            ) from None
        if response.status_code >= 500:
            raise DependencyUnavailable(
                self.name, f"{method} {path} answered {response.status_code}"
            )
        if response.status_code in (401, 403):
            # A token or scope problem on our side; an operator has to fix it.
            log.error(
                "a service call was refused",
                extra={"service": self.name, "path": path, "status": response.status_code},
            )
            raise DependencyUnavailable(self.name, f"{method} {path} refused our token")
        return response

    def unexpected(self, response: httpx.Response, what: str) -> DependencyUnavailable:
        log.error(
            "unexpected answer",
            extra={"service": self.name, "call": what, "status": response.status_code},
        )
        return DependencyUnavailable(self.name, f"{what}: unexpected {response.status_code}")


class CatalogClient(_Service):
    name = "catalog-api"

    def __init__(
        self,
        service: ServiceTokenClient,
        public: HttpClient,
        base_url: str,
        timeout: float,
    ) -> None:
        super().__init__(service, base_url, timeout)
        self.public = _Service(public, base_url, timeout)
        self.public.name = self.name

    async def product(self, product_id: uuid.UUID, request_id: str) -> LiveProduct | None:
        """The public product with its live stock; None if the catalog has no such product."""
        response = await self.public.send("GET", f"/products/{product_id}", request_id)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self.unexpected(response, "get product")
        return _product(response.json())

    async def prices(
        self, ids: Sequence[uuid.UUID], request_id: str
    ) -> dict[uuid.UUID, LiveProduct]:
        """Live names, prices, currencies and stock; deleted products are simply absent."""
        if not ids:
            return {}
        joined = ",".join(str(i) for i in ids)
        response = await self.send(
            "GET", "/internal/products/prices", request_id, params={"ids": joined}
        )
        if response.status_code != 200:
            raise self.unexpected(response, "prices")
        products = [_product(item) for item in response.json()["items"]]
        return {p.id: p for p in products}

    async def reserve(
        self,
        order_id: uuid.UUID,
        lines: Sequence[tuple[str, int]],
        ttl_seconds: int,
        request_id: str,
    ) -> Reserved | OutOfStock | ReservationLapsed:
        body = {
            "order_id": str(order_id),
            "items": [{"product_id": p, "quantity": q} for p, q in lines],
            "ttl_seconds": ttl_seconds,
        }
        response = await self.send("POST", "/internal/reservations", request_id, json=body)
        payload = response.json()
        if response.status_code in (200, 201):
            if payload["status"] == "held":
                return Reserved(datetime.fromisoformat(payload["expires_at"]))
            if payload["status"] in ("expired", "released"):
                return ReservationLapsed()
            raise self.unexpected(response, f"reserve (status {payload['status']})")
        if response.status_code == 409 and "short_items" in payload:
            return OutOfStock(tuple(payload["short_items"]))
        if response.status_code == 422:
            # Products deleted since the price snapshot: nothing of them is left.
            quantities = dict(lines)
            gone = [
                m.group(1)
                for e in payload.get("errors", [])
                if (m := _UNKNOWN_PRODUCT.search(e.get("message", "")))
            ]
            if gone:
                return OutOfStock(
                    tuple(
                        {"product_id": p, "requested": quantities.get(p, 0), "available": 0}
                        for p in gone
                    )
                )
        raise self.unexpected(response, "reserve")

    async def commit(self, order_id: uuid.UUID, request_id: str) -> Committed | ReservationLapsed:
        response = await self.send("POST", f"/internal/reservations/{order_id}/commit", request_id)
        if response.status_code == 200:
            return Committed()
        if response.status_code in (404, 409):  # expired or released: the stock is not ours
            return ReservationLapsed()
        raise self.unexpected(response, "commit")

    async def release(self, order_id: uuid.UUID, request_id: str) -> Released:
        response = await self.send("POST", f"/internal/reservations/{order_id}/release", request_id)
        if response.status_code in (200, 404):  # 404: nothing was ever reserved
            return Released()
        raise self.unexpected(response, "release")


class PaymentClient(_Service):
    name = "payment-api"

    async def charge(
        self,
        *,
        order_id: uuid.UUID,
        customer_id: uuid.UUID,
        amount_cents: int,
        currency: str,
        card: Card,
        idempotency_key: str,
        request_id: str,
    ) -> Captured | Declined:
        body = {
            "order_id": str(order_id),
            "customer_id": str(customer_id),
            "amount_cents": amount_cents,
            "currency": currency,
            "card": card.as_json(),
        }
        response = await self.send(
            "POST",
            "/internal/payments",
            request_id,
            json=body,
            headers={"Idempotency-Key": idempotency_key},
        )
        payload = response.json()
        if response.status_code in (200, 201) and payload.get("status") == "captured":
            return Captured(str(payload["id"]))
        if response.status_code == 402:
            return Declined(
                str(payload.get("decline_code") or "card_declined"),
                bool(payload.get("retryable")),
                str(payload["payment_id"]) if payload.get("payment_id") else None,
            )
        if response.status_code == 409:  # the same attempt is still in flight there
            raise DependencyUnavailable(self.name, "the charge is still in progress")
        if response.status_code == 422:
            # payment-api refuses the card or the currency: a decline the shopper can fix.
            return Declined("invalid_payment_details", False, None)
        raise self.unexpected(response, "charge")

    async def find_charge(self, order_id: uuid.UUID, request_id: str) -> Captured | NotCharged:
        """Whether payment-api holds a captured payment for the order."""
        response = await self.send(
            "GET", "/internal/payments", request_id, params={"order_id": str(order_id)}
        )
        if response.status_code == 200:
            captured = [p for p in response.json()["items"] if p["status"] == "captured"]
            return Captured(str(captured[0]["id"])) if captured else NotCharged()
        raise self.unexpected(response, "find charge")

    async def refund(self, payment_id: str, request_id: str) -> Refunded:
        response = await self.send("POST", f"/internal/payments/{payment_id}/refund", request_id)
        if response.status_code == 200:
            return Refunded()
        raise self.unexpected(response, "refund")


@dataclass
class Clients:
    catalog: CatalogClient
    payments: PaymentClient
    _service: ServiceTokenClient
    _public: HttpClient

    async def aclose(self) -> None:
        await self._service.aclose()
        await self._public.aclose()


def connect(settings: Settings) -> Clients:
    """Clients for every service order-mgmt calls, from the settings' URLs and secrets."""
    secret = settings.oauth_client_secret
    service = ServiceTokenClient(
        settings.oauth_token_url,
        settings.oauth_client_id or settings.service_name,
        secret.get_secret_value() if secret is not None else "",
        list(CALL_SCOPES),
        timeout=settings.catalog_timeout_seconds,
    )
    public = async_client(timeout=settings.catalog_timeout_seconds)
    return Clients(
        catalog=CatalogClient(
            service, public, settings.catalog_api_url, settings.catalog_timeout_seconds
        ),
        payments=PaymentClient(service, settings.payment_api_url, settings.payment_timeout_seconds),
        _service=service,
        _public=public,
    )
