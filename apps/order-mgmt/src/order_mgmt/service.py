"""order-mgmt's use cases: the cart, checkout, cancellation, reads and crash recovery.

The checkout saga's decisions are pure (order_mgmt.checkout); this module is its
I/O shell. :class:`SagaRunner` performs the planned step, then persists the new
step with a conditional UPDATE (same step, same lease owner) before it plans the
next one, so a worker that lost its claim can never overwrite another's progress.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shopflow_kit import idempotency
from shopflow_kit.errors import Problem, problem_body
from shopflow_kit.idempotency import StoredResponse
from shopflow_kit.money import MAX_AMOUNT_CENTS, SUPPORTED_CURRENCIES
from shopflow_kit.outbox import publish_with
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from order_mgmt.checkout import (
    CHECKOUT_DONE,
    CHECKOUT_PENDING,
    EVENT_ON_ENTRY,
    STATUS,
    UNFINISHED,
    Action,
    CancelRequested,
    ChargeStarted,
    Event,
    Interrupted,
    ReservationLapsed,
    Saga,
    Step,
    cancelled_event,
    charge_backoff,
    charge_key,
    checkout_result,
    confirmed_event,
    line_total,
    plan,
    transition,
)
from order_mgmt.clients import Card, Clients, DependencyUnavailable, LiveProduct
from order_mgmt.config import Settings
from order_mgmt.models import Cart, CartItem, Order
from order_mgmt.schemas import CartOut, CheckoutIn, OrderOut, OrderQuery

log = logging.getLogger("order_mgmt")

#: catalog-api prices at most 100 products per call.
MAX_CART_LINES = 100
#: Steps after which a checkout or a cancellation is over: no lease is kept.
SETTLED = frozenset({Step.CONFIRMED, Step.PAYMENT_FAILED, Step.REJECTED, Step.CANCELLED})
CALLS = {
    Action.RESERVE,
    Action.CHARGE,
    Action.FIND_CHARGE,
    Action.COMMIT,
    Action.RELEASE,
    Action.REFUND,
}


@dataclass(frozen=True)
class Deps:
    """What the use cases need besides the database."""

    settings: Settings
    clients: Clients


class LeaseLost(Exception):
    """Another worker now drives this order; this one stops without writing."""


class OrderBusy(Exception):
    """Another worker is driving this order right now."""


class CartBusy(Exception):
    """The shopper's cart is already being checked out, under another Idempotency-Key."""

    def __init__(self, order_id: uuid.UUID | None) -> None:
        super().__init__(str(order_id))
        self.order_id = order_id


#: The partial unique index of migration 0003: one checkout in progress per shopper.
ONE_CHECKOUT_INDEX = "orders_one_checkout_per_customer"


def utcnow() -> datetime:
    return datetime.now(UTC)


def customer_of(subject: str) -> uuid.UUID:
    """The shopper's id from a user token's ``sub``."""
    try:
        return uuid.UUID(subject)
    except ValueError:
        raise Problem(403, "the token's subject is not a shopper account") from None


def _uuid_or_404(value: str, detail: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Problem(404, detail) from None


def unavailable(exc: DependencyUnavailable, settings: Settings, retry: str) -> Problem:
    what = (
        "the order is taking longer than usual"
        if exc.service == settings.service_name
        else f"{exc.service} is unavailable right now"
    )
    return Problem(
        503, f"{what}; {retry}", headers={"Retry-After": str(settings.retry_after_seconds)}
    )


# --- the cart -------------------------------------------------------------------------


async def _lines(customer_id: uuid.UUID) -> list[CartItem]:
    """The shopper's cart lines, oldest first (one statement; no cart is no lines)."""
    return await CartItem.filter(cart__customer_id=customer_id).order_by("added_at", "id")


def _reconcile(
    lines: Sequence[CartItem], live: dict[uuid.UUID, LiveProduct]
) -> tuple[list[tuple[CartItem, LiveProduct]], list[tuple[CartItem, str]]]:
    """Lines to show (with live data) and lines to drop (with the reason why).

    The cart's currency is its oldest line's; a line whose product has since
    moved to another currency leaves the cart, as a deleted product does.
    """
    kept: list[tuple[CartItem, LiveProduct]] = []
    dropped: list[tuple[CartItem, str]] = []
    for line in lines:
        product = live.get(line.product_id)
        if product is None:
            dropped.append((line, "this product is no longer sold and was removed from the cart"))
        elif kept and product.currency != kept[0][1].currency:
            dropped.append(
                (
                    line,
                    f"this product is now priced in {product.currency}, not the cart's "
                    f"{kept[0][1].currency}, and was removed from the cart",
                )
            )
        else:
            kept.append((line, product))
    return kept, dropped


async def view_cart(deps: Deps, customer_id: uuid.UUID, request_id: str) -> dict[str, Any]:
    """The cart with live names and prices; lines whose product is gone drop out with a note."""
    return await _priced_cart(deps, await _lines(customer_id), request_id)


async def _live(
    deps: Deps, ids: Sequence[uuid.UUID], request_id: str
) -> dict[uuid.UUID, LiveProduct]:
    try:
        return await deps.clients.catalog.prices(ids, request_id)
    except DependencyUnavailable as exc:
        raise unavailable(exc, deps.settings, "retry shortly") from None


async def _priced_cart(
    deps: Deps,
    lines: Sequence[CartItem],
    request_id: str,
    live: dict[uuid.UUID, LiveProduct] | None = None,
) -> dict[str, Any]:
    """``lines`` as the shopper sees them: live names and prices, gone products dropped.

    ``live``: products already read from catalog-api in this request; only the
    others are asked for.
    """
    live = dict(live or {})
    missing = [line.product_id for line in lines if line.product_id not in live]
    if missing:
        live |= await _live(deps, missing, request_id)
    kept, dropped = _reconcile(lines, live)
    if dropped:
        await CartItem.filter(id__in=[line.id for line, _ in dropped]).delete()
    items = [
        {
            "product_id": str(line.product_id),
            "name": product.name,
            "unit_price_cents": product.price_cents,
            "quantity": line.quantity,
            "line_total_cents": product.price_cents * line.quantity,
        }
        for line, product in kept
    ]
    body = CartOut.model_validate(
        {
            "items": items,
            "total_cents": sum(i["line_total_cents"] for i in items),
            "currency": kept[0][1].currency if kept else None,
            "notes": [
                {"product_id": str(line.product_id), "name": line.name, "message": why}
                for line, why in dropped
            ],
        }
    )
    return body.model_dump(mode="json")


#: The shopper's cart, created if need be, and locked (ON CONFLICT DO UPDATE takes the
#: row lock) until the transaction ends: two lines in different currencies cannot slip
#: in together.
_LOCK_CART = (
    "INSERT INTO carts (id, customer_id, created_at, updated_at) VALUES ($1, $2, now(), now()) "
    "ON CONFLICT (customer_id) DO UPDATE SET updated_at = now() RETURNING id"
)


async def set_cart_line(
    deps: Deps, customer_id: uuid.UUID, product_ref: str, quantity: int, request_id: str
) -> dict[str, Any]:
    """Put ``quantity`` of a product in the cart (replacing any quantity there)."""
    product_id = _uuid_or_404(product_ref, "no such product")
    try:
        product = await deps.clients.catalog.product(product_id, request_id)
    except DependencyUnavailable as exc:
        raise unavailable(exc, deps.settings, "retry shortly") from None
    if product is None:
        raise Problem(404, "no such product")
    if quantity > product.stock_available:
        raise Problem(
            409,
            f"only {max(product.stock_available, 0)} of this product are available",
            extra={"available": max(product.stock_available, 0)},
        )
    # The cart's currency is its oldest line's live one (as GET /cart shows it): the
    # other lines are priced now, before the cart is locked (no call under a lock).
    before = await _lines(customer_id)
    asked = {line.product_id for line in before if line.product_id != product_id}
    live = {**await _live(deps, list(asked), request_id), product_id: product}
    async with in_transaction() as conn:
        cart_id = (await conn.execute_query_dict(_LOCK_CART, [uuid.uuid4(), customer_id]))[0]["id"]
        lines = None
        if _refusal(before, product, live, asked) is None:
            lines = await _set_if_unchanged(conn, cart_id, before, product, quantity)
        if lines is None:  # the cart changed since it was read: look again, under the lock
            lines = await CartItem.filter(cart_id=cart_id).order_by("added_at", "id")
            refused = _refusal(lines, product, live, asked)
            if refused is not None:
                raise refused
            line = next((line for line in lines if line.product_id == product_id), None)
            if line is None:
                lines.append(
                    await CartItem.create(
                        cart_id=cart_id,
                        product_id=product_id,
                        name=product.name,
                        currency=product.currency,
                        quantity=quantity,
                    )
                )
            else:
                line.update_from_dict(
                    {"name": product.name, "currency": product.currency, "quantity": quantity}
                )
                await line.save(update_fields=["name", "currency", "quantity"])
    # The cart as this write left it, priced: no second read of what was just written.
    return await _priced_cart(deps, lines, request_id, live)


def _refusal(
    lines: Sequence[CartItem],
    product: LiveProduct,
    live: dict[uuid.UUID, LiveProduct],
    asked: set[uuid.UUID],
) -> Problem | None:
    """Why ``product`` cannot go into a cart holding ``lines``, if it cannot."""
    currency = _cart_currency(lines, live, asked)
    if currency is not None and product.currency != currency:
        return Problem(
            409,
            f"the cart holds {currency} products; a cart has one currency, and this "
            f"product is priced in {product.currency}",
        )
    if sum(line.product_id != product.id for line in lines) >= MAX_CART_LINES:
        return Problem(409, f"a cart holds at most {MAX_CART_LINES} different products")
    return None


#: Puts a line in the cart (locked by _LOCK_CART, so this statement's snapshot is
#: taken under the lock) only if the cart holds exactly the lines read before the
#: lock, in their order: the common case, in one statement instead of a read and a write.
_SET_IF_UNCHANGED = (
    "WITH in_cart AS (SELECT coalesce(array_agg(product_id ORDER BY added_at, id), '{}') "
    "AS products, coalesce(array_agg(quantity ORDER BY added_at, id), '{}') AS quantities "
    "FROM cart_items WHERE cart_id = $1) "
    "INSERT INTO cart_items (cart_id, product_id, name, currency, quantity, added_at) "
    "SELECT $1::uuid, $2::uuid, $3::text, $4::text, $5::int, $6::timestamptz FROM in_cart "
    "WHERE products = $7::uuid[] AND quantities = $8::int[] "
    "ON CONFLICT (cart_id, product_id) DO UPDATE SET name = EXCLUDED.name, "
    "currency = EXCLUDED.currency, quantity = EXCLUDED.quantity RETURNING id, added_at"
)


async def _set_if_unchanged(
    conn: Any,
    cart_id: uuid.UUID,
    before: list[CartItem],
    product: LiveProduct,
    quantity: int,
) -> list[CartItem] | None:
    """``before`` with the product's line set, if the locked cart still holds ``before``."""
    rows = await conn.execute_query_dict(
        _SET_IF_UNCHANGED,
        [
            cart_id,
            product.id,
            product.name,
            product.currency,
            quantity,
            utcnow(),
            [line.product_id for line in before],
            [line.quantity for line in before],
        ],
    )
    if not rows:
        return None
    changes = {"name": product.name, "currency": product.currency, "quantity": quantity}
    line = next((line for line in before if line.product_id == product.id), None)
    if line is not None:
        line.update_from_dict(changes)
        return before
    added = CartItem(
        id=rows[0]["id"],
        cart_id=cart_id,
        product_id=product.id,
        added_at=rows[0]["added_at"],
        **changes,
    )
    added._saved_in_db = True
    return [*before, added]


def _cart_currency(
    lines: Sequence[CartItem], live: dict[uuid.UUID, LiveProduct], asked: set[uuid.UUID]
) -> str | None:
    """The oldest line's live currency, skipping products no longer sold.

    A line added by a concurrent request after ``live`` was read has its currency
    as that request saw it a moment ago.
    """
    for line in lines:
        product = live.get(line.product_id)
        if product is not None:
            return product.currency
        if line.product_id not in asked:
            return line.currency
    return None


async def remove_cart_line(
    deps: Deps, customer_id: uuid.UUID, product_ref: str, request_id: str
) -> dict[str, Any]:
    product_id = _uuid_or_404(product_ref, "this product is not in your cart")
    cart = await Cart.get_or_none(customer_id=customer_id)
    removed = 0
    if cart is not None:
        removed = await CartItem.filter(cart_id=cart.id, product_id=product_id).delete()
    if not removed:
        raise Problem(404, "this product is not in your cart")
    return await view_cart(deps, customer_id, request_id)


async def empty_cart(customer_id: uuid.UUID) -> None:
    cart = await Cart.get_or_none(customer_id=customer_id)
    if cart is not None:
        await CartItem.filter(cart_id=cart.id).delete()


# --- orders: reads --------------------------------------------------------------------


def order_body(order: Order) -> dict[str, Any]:
    """The public order: exactly API.md's fields."""
    out = OrderOut.model_validate(
        {
            "id": str(order.id),
            "status": STATUS[order.step].value,
            "items": order.items,
            "total_cents": order.total_cents,
            "currency": order.currency,
            "payment_id": str(order.payment_id) if order.payment_id else None,
            "shipping_address": order.shipping_address,
            "created_at": order.created_at,
            "updated_at": order.updated_at,
        }
    )
    return out.model_dump(mode="json")


async def _own_order(customer_id: uuid.UUID, order_ref: str) -> Order:
    order_id = _uuid_or_404(order_ref, "no such order")
    order = await Order.get_or_none(id=order_id, customer_id=customer_id)
    if order is None:  # another shopper's order is not found either
        raise Problem(404, "no such order")
    return order


async def get_order(customer_id: uuid.UUID, order_ref: str) -> dict[str, Any]:
    return order_body(await _own_order(customer_id, order_ref))


async def list_orders(
    customer_id: uuid.UUID, query: OrderQuery
) -> tuple[list[dict[str, Any]], int]:
    orders = Order.filter(customer_id=customer_id)
    total = await orders.count()
    page = await orders.order_by("-created_at", "-id").offset(query.offset).limit(query.page_size)
    return [order_body(o) for o in page], total


# --- the saga's I/O shell -------------------------------------------------------------


def saga_of(order: Order) -> Saga:
    return Saga(
        step=order.step,
        charge_attempts=order.charge_attempts,
        payment_id=str(order.payment_id) if order.payment_id else None,
        reservation_expires_at=order.reservation_expires_at,
        failure=order.failure_reason,
        decline_code=order.decline_code,
        short_items=tuple(order.short_items or ()),
    )


def _columns(saga: Saga) -> dict[str, Any]:
    return {
        "step": saga.step,
        "charge_attempts": saga.charge_attempts,
        "payment_id": uuid.UUID(saga.payment_id) if saga.payment_id else None,
        "reservation_expires_at": saga.reservation_expires_at,
        "failure_reason": saga.failure,
        "decline_code": saga.decline_code,
        "short_items": [dict(i) for i in saga.short_items] if saga.short_items else None,
    }


#: Every saga step is persisted by this one prepared statement (see SagaRunner._write).
_MOVE_ON_COLUMNS = (*_columns(Saga(Step.PLACED)), "updated_at", "lease_owner", "lease_until")
_MOVE_ON = (
    "UPDATE orders SET "  # noqa: S608 - our own column names
    + ", ".join(f"{column} = ${n}" for n, column in enumerate(_MOVE_ON_COLUMNS, start=4))
    + " WHERE id = $1 AND step = $2 AND lease_owner = $3"
)
#: The first parameter number after _MOVE_ON's.
_AFTER_MOVE_ON = 4 + len(_MOVE_ON_COLUMNS)


def _db_values(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (Order attributes) as the database takes them."""
    fields = Order._meta.fields_map
    return {name: fields[name].to_db_value(value, Order) for name, value in values.items()}


def crash_point(settings: Settings, step: Step, *, persisted: bool = True) -> None:
    """The test-only crashes: SIGKILL just before or just after ``step`` is persisted.

    Both settings are off by default and documented in order_mgmt.config.
    """
    wanted = settings.test_sigkill_after_step if persisted else settings.test_sigkill_before_step
    if wanted == step:
        log.warning("test crash point: killing this process", extra={"step": str(step)})
        os.kill(os.getpid(), signal.SIGKILL)


class SagaRunner:
    """Drives one order's saga while holding its lease.

    ``card`` is only at hand in the request that carried it; ``deadline`` (a
    ``time.monotonic()`` value) makes a request answer 503 rather than run long.
    """

    def __init__(
        self,
        deps: Deps,
        order: Order,
        owner: uuid.UUID,
        *,
        request_id: str,
        card: Card | None = None,
        deadline: float | None = None,
    ) -> None:
        self.deps = deps
        self.settings = deps.settings
        self.order = order
        self.owner = owner
        self.request_id = request_id
        self.card = card
        self.deadline = deadline
        #: The step the database holds, when this runner is a step ahead of it (see _advance).
        self._persisted: Step | None = None

    async def run(self) -> Order:
        """Step until nothing is left to do; on DependencyUnavailable the order is parked."""
        window = timedelta(seconds=self.settings.worst_case_charge_seconds)
        while True:
            saga = saga_of(self.order)
            action = plan(saga, has_card=self.card is not None, now=utcnow(), charge_window=window)
            if action is None:
                return self.order
            try:
                self._check_deadline(action, saga)
                event = await self._perform(action, saga)
            except asyncio.CancelledError:
                # The caller went away (Sanic cancels the handler): let a retry take over now.
                await asyncio.shield(self._park())
                raise
            except DependencyUnavailable as exc:
                log.warning(
                    "checkout step postponed",
                    extra={
                        "order_id": str(self.order.id),
                        "step": str(saga.step),
                        "reason": str(exc),
                        "request_id": self.request_id,
                    },
                )
                await self._park()
                raise
            await self._advance(saga, event, window)

    def _check_deadline(self, action: Action, saga: Saga) -> None:
        if self.deadline is None or action not in CALLS:
            return
        budget = self.settings.catalog_timeout_seconds
        if action in (Action.CHARGE, Action.FIND_CHARGE, Action.REFUND):
            budget = self.settings.payment_timeout_seconds
        if action == Action.CHARGE:
            budget += charge_backoff(saga.charge_attempts, self.settings.charge_backoff_seconds)
        if time.monotonic() + budget > self.deadline:
            raise DependencyUnavailable(self.settings.service_name, "out of time for this request")

    async def _perform(self, action: Action, saga: Saga) -> Event:
        order, catalog, payments = self.order, self.deps.clients.catalog, self.deps.clients.payments
        rid = self.request_id
        match action:
            case Action.RESERVE:
                lines = [(str(i["product_id"]), int(i["quantity"])) for i in order.items]
                return await catalog.reserve(
                    order.id, lines, self.settings.reservation_ttl_seconds, rid
                )
            case Action.BEGIN_CHARGE:
                return ChargeStarted()
            case Action.CHARGE:
                assert self.card is not None
                await asyncio.sleep(
                    charge_backoff(saga.charge_attempts, self.settings.charge_backoff_seconds)
                )
                return await payments.charge(
                    order_id=order.id,
                    customer_id=order.customer_id,
                    amount_cents=order.total_cents,
                    currency=order.currency,
                    card=self.card,
                    idempotency_key=charge_key(str(order.id), saga.charge_attempts),
                    request_id=rid,
                )
            case Action.FIND_CHARGE:
                return await payments.find_charge(order.id, rid)
            case Action.COMMIT:
                return await catalog.commit(order.id, rid)
            case Action.RELEASE:
                return await catalog.release(order.id, rid)
            case Action.REFUND:
                assert saga.payment_id is not None
                return await payments.refund(saga.payment_id, rid)
            case Action.ABANDON:
                return Interrupted()
            case Action.LET_LAPSE:
                return ReservationLapsed()
        raise AssertionError(f"unplanned action {action}")

    async def _advance(self, saga: Saga, event: Event, window: timedelta) -> None:
        new = transition(saga, event)
        passed = [new.step]
        if (
            self.card is not None
            and plan(new, has_card=True, now=utcnow(), charge_window=window) == Action.BEGIN_CHARGE
        ):
            # Deciding to charge needs no I/O: "reserved" is written together with
            # "charging", in one statement. A crash before it leaves the order
            # placed, and recovery releases the reservation as it would a reserved one.
            new = transition(new, ChargeStarted())
            passed.append(new.step)
        for step in passed:
            crash_point(self.settings, step, persisted=False)
        if self.card is not None and new.step == Step.CHARGED:
            # The capture is not written down on its own: the commit follows at once,
            # and "confirmed" (or "refunding") is written from "charging". payment-api
            # keeps the capture, so a crash before then is recovered as one just after
            # the charge call: the order is found charging, payment-api is asked
            # (find_charge), and the commit is made.
            self._persisted = self._persisted or saga.step
            self.order.update_from_dict(_columns(new))
            crash_point(self.settings, new.step)
            return
        now = utcnow()
        values = {**_columns(new), "updated_at": now}
        if new.step in SETTLED:
            values |= {"lease_owner": None, "lease_until": now}
        else:
            values |= {
                "lease_owner": self.owner,
                "lease_until": now + timedelta(seconds=self.settings.recovery_after_seconds),
            }
        written_from = self._persisted or saga.step  # _write resets _persisted
        await self._write(saga, values, new.step)
        self.order.update_from_dict(values)
        log.info(
            "order step",
            extra={
                "order_id": str(self.order.id),
                "from": str(written_from),
                "to": str(new.step),
                "request_id": self.request_id,
            },
        )
        for step in passed:
            crash_point(self.settings, step)

    async def _write(self, saga: Saga, values: dict[str, Any], step: Step) -> None:
        """Move the order on from the step it holds, if this runner still holds its lease.

        One statement, so its own transaction: entering a step of EVENT_ON_ENTRY
        writes its event (and for ``confirmed`` clears the bought lines) in it too.
        """
        row = _db_values(values)
        held = self._persisted or saga.step
        params = [self.order.id, held.value, self.owner, *(row[c] for c in _MOVE_ON_COLUMNS)]
        db = Order._meta.db
        if step in EVENT_ON_ENTRY:
            sql, more = _entering(self.order, step)
            changed = (await db.execute_query_dict(sql, params + more))[0]["moved"]
        else:
            changed, _ = await db.execute_query(_MOVE_ON, params)
        if not changed:
            raise LeaseLost(str(self.order.id))
        self._persisted = None

    async def _park(self) -> None:
        """Let go after a failed step: a retry may take over now, recovery after a while."""
        later = utcnow() + timedelta(seconds=self.settings.recovery_after_seconds)
        await Order.filter(id=self.order.id, lease_owner=self.owner).update(
            lease_owner=None, lease_until=later
        )


def _entering(order: Order, step: Step) -> tuple[str, list[Any]]:
    """_MOVE_ON with what entering ``step`` writes in the same transaction, as one statement.

    Its event goes to the outbox; entering ``confirmed`` also deletes the bought cart
    lines (a line changed during the checkout stays). The cart is locked before
    the order's row, in _place's order: the ``moved`` update needs ``cart`` before
    it can touch a row, so a checkout placing an order from this cart waits, then
    finds the lines gone. Returns the statement and its parameters after _MOVE_ON's.
    """
    n = _AFTER_MOVE_ON
    if step == Step.CONFIRMED:
        items = order.items
        sql = (
            "WITH cart AS MATERIALIZED "  # noqa: S608 - our own names
            f"(SELECT id FROM carts WHERE customer_id = ${n} FOR UPDATE), "
            f"moved AS ({_MOVE_ON} AND (SELECT count(*) FROM cart) >= 0 RETURNING id), "
            "cleared AS (DELETE FROM cart_items USING cart WHERE cart_items.cart_id = cart.id "
            "AND EXISTS (SELECT 1 FROM moved) AND (cart_items.product_id, cart_items.quantity) "
            f"IN (SELECT * FROM unnest(${n + 1}::uuid[], ${n + 2}::int[]))), "
        )
        params: list[Any] = [
            order.customer_id,
            [uuid.UUID(str(i["product_id"])) for i in items],
            [int(i["quantity"]) for i in items],
        ]
        data = confirmed_event(str(order.id), items, order.total_cents, order.currency)
    else:
        sql, params = f"WITH moved AS ({_MOVE_ON} RETURNING id), ", []
        data = cancelled_event(str(order.id), order.total_cents, order.currency)
    event, more = publish_with(
        "moved",
        EVENT_ON_ENTRY[step],
        data,
        subject_user_id=order.customer_id,
        first=n + len(params),
    )
    sql += f"event AS ({event}) SELECT count(*) AS moved FROM moved"  # noqa: S608 - ours
    return sql, params + more


async def _claim(order_id: uuid.UUID, owner: uuid.UUID, lease_seconds: float) -> Order | None:
    """Take an unfinished order whose lease is free (parked, or its holder vanished)."""
    now = utcnow()
    taken = await Order.filter(
        Q(lease_owner=None) | Q(lease_until__lt=now), id=order_id, step__in=list(UNFINISHED)
    ).update(lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds))
    return await Order.get(id=order_id) if taken else None


# --- checkout ---------------------------------------------------------------------------


def _snapshot(
    lines: Sequence[CartItem], live: dict[uuid.UUID, LiveProduct]
) -> list[dict[str, Any]] | dict[str, Any]:
    """The order's lines at catalog prices, or a 409 problem body if the cart is stale."""
    gone = [line for line in lines if line.product_id not in live]
    if gone:
        return problem_body(
            409,
            "some products in the cart are no longer sold; review the cart and check out again",
            title="Cart changed",
            extra={"removed": [str(line.product_id) for line in gone]},
        )
    if len({live[line.product_id].currency for line in lines}) > 1:
        return problem_body(
            409,
            "the cart's products are now priced in different currencies; review the cart",
            title="Cart changed",
        )
    snapshot = [
        {
            "product_id": str(line.product_id),
            "name": live[line.product_id].name,
            "unit_price_cents": live[line.product_id].price_cents,
            "quantity": line.quantity,
        }
        for line in lines
    ]
    # What payment-api would refuse is refused here, before any stock is held.
    currency = live[lines[0].product_id].currency
    if currency not in SUPPORTED_CURRENCIES:
        return problem_body(
            409,
            f"the cart is priced in {currency}, which cannot be charged; "
            f"the shop takes {', '.join(SUPPORTED_CURRENCIES)}",
            title="Cart cannot be charged",
        )
    total = sum(line_total(i) for i in snapshot)
    if not 1 <= total <= MAX_AMOUNT_CENTS:
        return problem_body(
            409,
            f"the cart's total ({total} cents) is outside what one checkout can charge "
            f"(1 to {MAX_AMOUNT_CENTS} cents); change the quantities",
            title="Cart cannot be charged",
        )
    return snapshot


_HOLD_CART = "SELECT id FROM carts WHERE customer_id = $1 FOR UPDATE"

#: What placing an order writes, with each column's type for _PLACE_IF_UNCHANGED.
_PLACE_COLUMNS = {
    "id": "uuid",
    "customer_id": "uuid",
    "idempotency_key": "text",
    "request_fingerprint": "text",
    "step": "text",
    "items": "jsonb",
    "total_cents": "bigint",
    "currency": "text",
    "shipping_address": "jsonb",
    "charge_attempts": "int",
    "lease_owner": "uuid",
    "lease_until": "timestamptz",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
}
#: The order, written only if the cart (locked by _HOLD_CART, so this statement's
#: snapshot is taken under the lock) holds exactly the lines it was priced from, in
#: their order: the common case, in one statement instead of a read and an insert.
_PLACED_VALUES = ", ".join(
    f"${n}::{kind}" for n, kind in enumerate(_PLACE_COLUMNS.values(), start=4)
)
_PLACE_IF_UNCHANGED = (
    "WITH in_cart AS (SELECT array_agg(product_id ORDER BY added_at, id) AS products, "  # noqa: S608 - our own names
    "array_agg(quantity ORDER BY added_at, id) AS quantities FROM cart_items WHERE cart_id = $1) "
    f"INSERT INTO orders ({', '.join(_PLACE_COLUMNS)}) SELECT {_PLACED_VALUES} FROM in_cart "
    "WHERE products = $2::uuid[] AND quantities = $3::int[] RETURNING id"
)


async def _place_if_unchanged(
    conn: Any, cart_id: uuid.UUID, lines: Sequence[CartItem], values: dict[str, Any]
) -> Order | None:
    """The order placed from ``values`` if the locked cart still holds ``lines``, else None."""
    row = _db_values(values)
    params = [
        cart_id,
        [line.product_id for line in lines],
        [line.quantity for line in lines],
        *(row[column] for column in _PLACE_COLUMNS),
    ]
    if not await conn.execute_query_dict(_PLACE_IF_UNCHANGED, params):
        return None
    order = Order(**values)
    order._saved_in_db = True
    return order


def _empty() -> tuple[int, dict[str, Any]]:
    return 409, problem_body(409, "the cart is empty; add products first", title="Cart empty")


async def _place(
    deps: Deps,
    customer_id: uuid.UUID,
    key: str,
    request_fingerprint: str,
    body: CheckoutIn,
    owner: uuid.UUID,
    request_id: str,
) -> Order | tuple[int, dict[str, Any]]:
    """Steps 1 and 2: the price snapshot, then the order as ``pending``.

    The cart is read again under its row lock, which confirming an order takes
    too before it clears the bought lines: a checkout that priced the cart just
    before another one bought it finds it empty, never buys it a second time.
    Under the lock, one statement writes the order if the cart still holds the
    lines that were priced (the common case); otherwise the lines are read again
    and checked one by one.
    """
    lines = await _lines(customer_id)
    if not lines:
        return _empty()
    asked = {line.product_id for line in lines}
    live = await deps.clients.catalog.prices(list(asked), request_id)
    now = utcnow()

    def values(snapshot: list[dict[str, Any]], currency: str) -> dict[str, Any]:
        return {
            "id": uuid.uuid4(),
            "customer_id": customer_id,
            "idempotency_key": key,
            "request_fingerprint": request_fingerprint,
            "step": Step.PLACED,
            "items": snapshot,
            "total_cents": sum(line_total(i) for i in snapshot),
            "currency": currency,
            "shipping_address": body.shipping_address.model_dump(),
            "charge_attempts": 0,
            "lease_owner": owner,
            "lease_until": now + timedelta(seconds=deps.settings.recovery_after_seconds),
            "created_at": now,
            "updated_at": now,
        }

    priced = _snapshot(lines, live)
    try:
        async with in_transaction() as conn:
            held = await conn.execute_query_dict(_HOLD_CART, [customer_id])
            order = None
            if held and isinstance(priced, list):
                currency = live[lines[0].product_id].currency
                order = await _place_if_unchanged(
                    conn, held[0]["id"], lines, values(priced, currency)
                )
            if order is None:  # the cart changed since it was priced: look again
                lines = await _lines(customer_id)
                if not lines:
                    return _empty()
                if any(line.product_id not in asked for line in lines):
                    return 409, problem_body(
                        409,
                        "a product was added to the cart during the checkout; review the cart "
                        "and check out again",
                        title="Cart changed",
                    )
                snapshot = _snapshot(lines, live)
                if isinstance(snapshot, dict):
                    return 409, snapshot
                currency = live[lines[0].product_id].currency
                order = await Order.create(**values(snapshot, currency))
    except IntegrityError as exc:
        if ONE_CHECKOUT_INDEX in str(exc):
            # Another key's checkout of this cart is under way: one cart, one charge.
            pending = await Order.filter(
                customer_id=customer_id, step__in=list(CHECKOUT_PENDING)
            ).first()
            raise CartBusy(pending.id if pending else None) from None
        # The same key got past its claim twice (a takeover after a lapsed lease).
        raise OrderBusy from None
    log.info("order placed", extra={"order_id": str(order.id), "request_id": request_id})
    crash_point(deps.settings, Step.PLACED)
    return order


async def _checkout(
    deps: Deps,
    customer_id: uuid.UUID,
    key: str,
    request_fingerprint: str,
    body: CheckoutIn,
    request_id: str,
) -> tuple[int, dict[str, Any]]:
    owner = uuid.uuid4()
    order = await Order.get_or_none(customer_id=customer_id, idempotency_key=key)
    if order is None:
        placed = await _place(deps, customer_id, key, request_fingerprint, body, owner, request_id)
        if isinstance(placed, tuple):
            return placed
        order = placed
    elif order.request_fingerprint != request_fingerprint:
        raise idempotency.mismatch()
    elif order.step not in CHECKOUT_DONE:
        # A retry after a 503 or a crash: take the order over and go on from its step.
        claimed = await _claim(order.id, owner, deps.settings.recovery_after_seconds)
        if claimed is None:
            raise OrderBusy
        order = claimed
    if order.step not in CHECKOUT_DONE:
        card = Card(
            number=body.payment.card_number.get_secret_value(),
            exp_month=body.payment.exp_month,
            exp_year=body.payment.exp_year,
            cvc=body.payment.cvc.get_secret_value(),
        )
        runner = SagaRunner(
            deps,
            order,
            owner,
            request_id=request_id,
            card=card,
            deadline=time.monotonic() + deps.settings.checkout_deadline_seconds,
        )
        try:
            order = await runner.run()
        except LeaseLost:
            raise OrderBusy from None
    return checkout_result(saga_of(order), order_body(order))


def key_scope(customer_id: uuid.UUID) -> str:
    """Idempotency-Keys belong to their shopper: two shoppers never share one."""
    return f"orders:{customer_id}"


def checkout_fingerprint(settings: Settings, raw_body: bytes) -> str:
    """The keyed fingerprint stored instead of the request (which holds the card)."""
    assert settings.fingerprint_key is not None
    key = settings.fingerprint_key.get_secret_value().encode()
    return idempotency.fingerprint("POST", "/orders", raw_body, key=key)


async def checkout(
    deps: Deps,
    customer_id: uuid.UUID,
    key: str,
    raw_body: bytes,
    body: CheckoutIn,
    request_id: str,
) -> StoredResponse:
    """``POST /orders``: run the checkout once per Idempotency-Key and shopper."""
    settings = deps.settings
    scope = key_scope(customer_id)
    request_fingerprint = checkout_fingerprint(settings, raw_body)
    lease = timedelta(seconds=settings.key_lease_seconds)
    stored = await idempotency.claim(scope, key, request_fingerprint, lease=lease)
    if stored is not None:
        return stored
    try:
        status, payload = await _checkout(
            deps, customer_id, key, request_fingerprint, body, request_id
        )
    except DependencyUnavailable as exc:
        await idempotency.release(scope, key)
        raise unavailable(
            exc, settings, "the order keeps its place; retry with the same Idempotency-Key"
        ) from None
    except OrderBusy:
        await idempotency.release(scope, key)
        raise Problem(
            409,
            "this order is being worked on; retry with the same Idempotency-Key",
            headers={"Retry-After": str(settings.retry_after_seconds)},
        ) from None
    except CartBusy as busy:
        await idempotency.release(scope, key)
        raise Problem(
            409,
            "another checkout of this cart is under way; nothing was charged for this one. "
            "Retry once it has finished (or retry that checkout with its own Idempotency-Key)",
            title="Checkout in progress",
            headers={"Retry-After": str(settings.retry_after_seconds)},
            extra={"order_id": str(busy.order_id)} if busy.order_id else None,
        ) from None
    except BaseException:
        await idempotency.release(scope, key)
        raise
    await idempotency.complete(scope, key, status, payload)
    return StoredResponse(status, payload, replayed=False)


# --- cancellation -----------------------------------------------------------------------


async def cancel_order(
    deps: Deps, customer_id: uuid.UUID, order_ref: str, request_id: str
) -> dict[str, Any]:
    """Refund, restock, then ``cancelled`` with ``order.cancelled`` in the outbox."""
    settings = deps.settings
    order = await _own_order(customer_id, order_ref)
    owner = uuid.uuid4()
    busy = Problem(
        409,
        "the order is already being cancelled; retry",
        headers={"Retry-After": str(settings.retry_after_seconds)},
    )
    if order.step == Step.CONFIRMED:
        new = transition(saga_of(order), CancelRequested())
        now = utcnow()
        lease_until = now + timedelta(seconds=settings.recovery_after_seconds)
        # Only one of several concurrent cancels moves the order on (and so refunds).
        changed = await Order.filter(id=order.id, step=Step.CONFIRMED).update(
            step=new.step, lease_owner=owner, lease_until=lease_until, updated_at=now
        )
        if changed:
            order.update_from_dict(
                {"step": new.step, "lease_owner": owner, "lease_until": lease_until}
            )
            order.updated_at = now
            crash_point(settings, new.step)
        else:
            order = await Order.get(id=order.id)
            if order.step in (Step.CANCELLING, Step.RESTOCKING):
                raise busy
    if order.lease_owner != owner:
        if order.step not in (Step.CANCELLING, Step.RESTOCKING):
            raise Problem(
                409,
                f"only a confirmed order can be cancelled; this one is {STATUS[order.step]}",
            )
        claimed = await _claim(order.id, owner, settings.recovery_after_seconds)
        if claimed is None:
            raise busy
        order = claimed
    runner = SagaRunner(
        deps,
        order,
        owner,
        request_id=request_id,
        deadline=time.monotonic() + settings.checkout_deadline_seconds,
    )
    try:
        order = await runner.run()
    except DependencyUnavailable as exc:
        raise unavailable(exc, settings, "the cancellation will be finished; retry") from None
    except LeaseLost:
        raise busy from None
    return order_body(order)


# --- recovery -----------------------------------------------------------------------------

# The unfinished steps are written into the statement, not passed as a
# parameter: statements are planned once (shopflow_kit.db), and only a literal
# list lets PostgreSQL prove that the partial index orders_unfinished_idx
# applies. With a parameter the sweep read every order ever placed.
_UNFINISHED_STEPS = ", ".join(f"'{step.value}'" for step in sorted(UNFINISHED))
_CLAIM_STUCK = f"""
    UPDATE orders SET lease_owner = $1, lease_until = $2
    WHERE id IN (
        SELECT id FROM orders
        WHERE step IN ({_UNFINISHED_STEPS}) AND lease_until < now()
        ORDER BY lease_until
        LIMIT $3
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id
"""  # noqa: S608 - our own enum values


async def recover_stuck_orders(deps: Deps) -> int:
    """Resume every order no worker has advanced for ``recovery_after_seconds``.

    Safe in every replica: ``SKIP LOCKED`` hands each stuck order to one replica,
    whose lease then keeps the others away. Returns how many orders were resumed.
    """
    settings = deps.settings
    owner = uuid.uuid4()
    lease_until = utcnow() + timedelta(seconds=settings.recovery_after_seconds)
    async with in_transaction() as conn:
        rows = await conn.execute_query_dict(
            _CLAIM_STUCK,
            [owner, lease_until, settings.recovery_batch_size],
        )
    if not rows:
        return 0
    orders = await Order.filter(id__in=[r["id"] for r in rows], lease_owner=owner)
    request_id = f"recovery-{owner.hex[:12]}"
    log.info("resuming stuck orders", extra={"count": len(orders), "request_id": request_id})
    results = await asyncio.gather(
        *(SagaRunner(deps, o, owner, request_id=request_id).run() for o in orders),
        return_exceptions=True,
    )
    for order, result in zip(orders, results, strict=True):
        if isinstance(result, DependencyUnavailable | LeaseLost):
            continue  # parked (or taken over): tried again later
        if isinstance(result, BaseException):
            log.error(
                "recovery failed",
                extra={"order_id": str(order.id), "error": f"{type(result).__name__}: {result}"},
            )
        elif result.step in CHECKOUT_DONE:
            # The shopper's retry with the same key now replays this at once.
            status, body = checkout_result(saga_of(result), order_body(result))
            await idempotency.complete(
                key_scope(result.customer_id), result.idempotency_key, status, body
            )
    return len(orders)
