"""The checkout saga as pure data and functions: no I/O, no clock, no database.

An order's saga state (:class:`Saga`) moves by :func:`transition` when an
:class:`Event` (the outcome of one step) arrives; :func:`plan` says which step
comes next. The service layer is the I/O shell around these: it performs the
planned step (a call to catalog-api or payment-api), persists the new state,
and only then plans the next step. Every step is idempotent, so a crash at any
point is repaired by planning again from the persisted state.

The happy path is placed -> reserved -> charging -> charged -> confirmed.
Short stock ends a placed order as rejected; a decline (or a checkout whose card
is gone) goes through releasing to payment_failed; a reservation that lapsed
after the charge goes through refunding to rejected. Cancelling a confirmed
order goes cancelling (refund) -> restocking (release) -> cancelled.
docs/services/order-mgmt.md draws the whole diagram.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shopflow_kit.errors import problem_body

#: A retryable processing error from payment-api is retried up to this many times.
CHARGE_RETRIES = 3
MAX_CHARGE_ATTEMPTS = CHARGE_RETRIES + 1


class Step(StrEnum):
    """Where an order's saga stands; persisted after every step."""

    PLACED = "placed"  # written with its price snapshot; nothing held yet
    RESERVED = "reserved"  # stock held at catalog-api
    CHARGING = "charging"  # a charge attempt is about to be (or was) sent
    CHARGED = "charged"  # payment captured
    RELEASING = "releasing"  # giving held stock back before the order fails
    REFUNDING = "refunding"  # charged, but the reservation lapsed: refund, then reject
    CONFIRMED = "confirmed"
    CANCELLING = "cancelling"  # a confirmed order being refunded
    RESTOCKING = "restocking"  # refunded; its committed stock being released
    PAYMENT_FAILED = "payment_failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class OrderStatus(StrEnum):
    """The public status of API.md."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    PAYMENT_FAILED = "payment_failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


STATUS: Mapping[Step, OrderStatus] = {
    Step.PLACED: OrderStatus.PENDING,
    Step.RESERVED: OrderStatus.PENDING,
    Step.CHARGING: OrderStatus.PENDING,
    Step.CHARGED: OrderStatus.PENDING,
    Step.RELEASING: OrderStatus.PENDING,
    Step.REFUNDING: OrderStatus.PENDING,
    Step.CONFIRMED: OrderStatus.CONFIRMED,
    # Until the refund and the restock are both done, the order is still confirmed.
    Step.CANCELLING: OrderStatus.CONFIRMED,
    Step.RESTOCKING: OrderStatus.CONFIRMED,
    Step.PAYMENT_FAILED: OrderStatus.PAYMENT_FAILED,
    Step.REJECTED: OrderStatus.REJECTED,
    Step.CANCELLED: OrderStatus.CANCELLED,
}

#: Steps with work left to do: the recovery loop resumes orders stuck in one of these.
UNFINISHED: frozenset[Step] = frozenset(
    {
        Step.PLACED,
        Step.RESERVED,
        Step.CHARGING,
        Step.CHARGED,
        Step.RELEASING,
        Step.REFUNDING,
        Step.CANCELLING,
        Step.RESTOCKING,
    }
)
#: Steps of a checkout still under way. A shopper has at most one order in them
#: (migration 0003's partial unique index), so one cart is never bought twice.
CHECKOUT_PENDING: frozenset[Step] = UNFINISHED - {Step.CANCELLING, Step.RESTOCKING}
#: Steps at which a checkout (POST /orders) has its final answer.
CHECKOUT_DONE: frozenset[Step] = frozenset(
    {
        Step.CONFIRMED,
        Step.PAYMENT_FAILED,
        Step.REJECTED,
        Step.CANCELLING,
        Step.RESTOCKING,
        Step.CANCELLED,
    }
)


class FailureReason(StrEnum):
    OUT_OF_STOCK = "out_of_stock"
    DECLINED = "declined"
    #: The process that held the card died (or the client went away) before the
    #: charge was known; the card is never stored, so nobody can finish the charge.
    CHECKOUT_INTERRUPTED = "checkout_interrupted"
    RESERVATION_EXPIRED = "reservation_expired"


# --- events: the outcome of one step ------------------------------------------------


@dataclass(frozen=True)
class Reserved:
    expires_at: datetime


@dataclass(frozen=True)
class OutOfStock:
    #: ``[{product_id, requested, available}]`` as catalog-api reports it.
    short_items: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class ReservationLapsed:
    """The reservation expired or was released before it could be committed."""


@dataclass(frozen=True)
class ChargeStarted:
    """The next charge attempt is about to be sent; persisted first."""


@dataclass(frozen=True)
class Captured:
    payment_id: str


@dataclass(frozen=True)
class Declined:
    decline_code: str
    retryable: bool
    payment_id: str | None


@dataclass(frozen=True)
class NotCharged:
    """payment-api holds no captured payment for the order."""


@dataclass(frozen=True)
class Interrupted:
    """No card to go on with: the request that carried it is gone."""


@dataclass(frozen=True)
class Committed:
    pass


@dataclass(frozen=True)
class Released:
    pass


@dataclass(frozen=True)
class Refunded:
    pass


@dataclass(frozen=True)
class CancelRequested:
    pass


Event = (
    Reserved
    | OutOfStock
    | ReservationLapsed
    | ChargeStarted
    | Captured
    | Declined
    | NotCharged
    | Interrupted
    | Committed
    | Released
    | Refunded
    | CancelRequested
)


class Action(StrEnum):
    """The next step. The first group calls another service; the rest decide on their own."""

    RESERVE = "reserve"
    CHARGE = "charge"
    FIND_CHARGE = "find_charge"
    COMMIT = "commit"
    RELEASE = "release"
    REFUND = "refund"
    BEGIN_CHARGE = "begin_charge"  # -> ChargeStarted
    ABANDON = "abandon"  # -> Interrupted
    LET_LAPSE = "let_lapse"  # -> ReservationLapsed


@dataclass(frozen=True)
class Saga:
    """The persisted saga state of one order."""

    step: Step
    charge_attempts: int = 0
    payment_id: str | None = None
    reservation_expires_at: datetime | None = None
    failure: FailureReason | None = None
    decline_code: str | None = None
    short_items: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)

    @property
    def status(self) -> OrderStatus:
        return STATUS[self.step]


class IllegalTransition(Exception):
    def __init__(self, step: Step, event: Event) -> None:
        super().__init__(f"{type(event).__name__} cannot happen at step {step}")
        self.step = step
        self.event = event


def _failed(saga: Saga, reason: FailureReason, **changes: Any) -> Saga:
    return replace(saga, step=Step.RELEASING, failure=reason, **changes)


def transition(saga: Saga, event: Event) -> Saga:
    """The state after ``event``; raises :class:`IllegalTransition` for any other pair."""
    step = saga.step
    match step, event:
        case Step.PLACED, Reserved(expires_at=expires_at):
            return replace(saga, step=Step.RESERVED, reservation_expires_at=expires_at)
        case Step.PLACED, OutOfStock(short_items=short):
            return replace(
                saga, step=Step.REJECTED, failure=FailureReason.OUT_OF_STOCK, short_items=short
            )
        case Step.PLACED, ReservationLapsed():
            # A reservation from before a crash ran out already: nothing is held.
            return replace(saga, step=Step.REJECTED, failure=FailureReason.RESERVATION_EXPIRED)
        case Step.PLACED, Interrupted():
            # The catalog may have reserved before the crash; releasing is harmless if not.
            return _failed(saga, FailureReason.CHECKOUT_INTERRUPTED)
        case Step.RESERVED, ChargeStarted():
            return replace(saga, step=Step.CHARGING, charge_attempts=saga.charge_attempts + 1)
        case Step.RESERVED, Interrupted():
            return _failed(saga, FailureReason.CHECKOUT_INTERRUPTED)
        case Step.RESERVED, ReservationLapsed():
            return _failed(saga, FailureReason.RESERVATION_EXPIRED)
        case Step.CHARGING, Captured(payment_id=payment_id):
            return replace(saga, step=Step.CHARGED, payment_id=payment_id)
        case Step.CHARGING, Declined(decline_code=code, retryable=retryable, payment_id=pid):
            if retryable and saga.charge_attempts < MAX_CHARGE_ATTEMPTS:
                return replace(saga, charge_attempts=saga.charge_attempts + 1, payment_id=pid)
            return _failed(saga, FailureReason.DECLINED, decline_code=code, payment_id=pid)
        case Step.CHARGING, NotCharged():
            return _failed(saga, FailureReason.CHECKOUT_INTERRUPTED)
        case Step.CHARGED, Committed():
            return replace(saga, step=Step.CONFIRMED)
        case Step.CHARGED, ReservationLapsed():
            return replace(saga, step=Step.REFUNDING, failure=FailureReason.RESERVATION_EXPIRED)
        case Step.REFUNDING, Refunded():
            return replace(saga, step=Step.REJECTED)
        case Step.RELEASING, Released():
            return replace(saga, step=final_step_of(saga.failure))
        case Step.CONFIRMED, CancelRequested():
            return replace(saga, step=Step.CANCELLING)
        case Step.CANCELLING, Refunded():
            return replace(saga, step=Step.RESTOCKING)
        case Step.RESTOCKING, Released():
            return replace(saga, step=Step.CANCELLED)
    raise IllegalTransition(step, event)


def final_step_of(failure: FailureReason | None) -> Step:
    """Where a failed checkout ends once its stock is given back."""
    if failure in (FailureReason.OUT_OF_STOCK, FailureReason.RESERVATION_EXPIRED):
        return Step.REJECTED
    return Step.PAYMENT_FAILED


def plan(saga: Saga, *, has_card: bool, now: datetime, charge_window: timedelta) -> Action | None:
    """The next step of ``saga``, or None when nothing is left to do.

    ``has_card``: whether the card is at hand (only the request that carried it
    has it; the recovery loop never does). ``charge_window``: the worst-case
    time a charge takes; a reservation that lapses sooner is not charged against.
    """
    match saga.step:
        case Step.PLACED:
            return Action.RESERVE if has_card else Action.ABANDON
        case Step.RESERVED:
            if not has_card:
                return Action.ABANDON
            expires = saga.reservation_expires_at
            if expires is not None and expires - now <= charge_window:
                return Action.LET_LAPSE
            return Action.BEGIN_CHARGE
        case Step.CHARGING:
            # Without the card the same attempt cannot be replayed; ask payment-api
            # whether the order was charged instead.
            return Action.CHARGE if has_card else Action.FIND_CHARGE
        case Step.CHARGED:
            return Action.COMMIT
        case Step.RELEASING | Step.RESTOCKING:
            return Action.RELEASE
        case Step.REFUNDING | Step.CANCELLING:
            return Action.REFUND
    return None


def charge_key(order_id: str, attempt: int) -> str:
    """payment-api's Idempotency-Key for one charge attempt of one order.

    A resumed attempt reuses its key, so payment-api replays what it did; only a
    retryable processing error moves on to the next attempt's key. payment-api
    also never captures twice for one order, whatever the key.
    """
    return f"order-{order_id}-charge-{attempt}"


def charge_backoff(attempt: int, base_seconds: float) -> float:
    """Seconds to wait before charge ``attempt``: none before the first, then doubling."""
    return 0.0 if attempt <= 1 else base_seconds * 2 ** (attempt - 2)


def worst_case_charge_seconds(timeout_seconds: float, backoff_seconds: float) -> float:
    """Every attempt timing out, with every backoff in between."""
    waits = sum(charge_backoff(a, backoff_seconds) for a in range(1, MAX_CHARGE_ATTEMPTS + 1))
    return MAX_CHARGE_ATTEMPTS * timeout_seconds + waits


# --- what the outside world sees -------------------------------------------------------


def line_total(item: Mapping[str, Any]) -> int:
    return int(item["unit_price_cents"]) * int(item["quantity"])


def checkout_result(saga: Saga, order: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """The final answer to ``POST /orders`` for an order whose checkout is done.

    ``order`` is the public order body. Rebuilt from the order, so a retry after
    a crash or a 503 gets the same answer the first request would have had.
    """
    order_id = str(order["id"])
    if saga.step == Step.PAYMENT_FAILED:
        if saga.failure == FailureReason.DECLINED:
            title, detail = "Payment declined", f"the payment was declined ({saga.decline_code})"
        else:
            title = "Payment not completed"
            detail = (
                "the checkout was interrupted before the payment completed; nothing was charged"
            )
        extra = {"order_id": order_id, "reason": str(saga.failure)}
        return 402, problem_body(
            402, detail, title=title, extra={**extra, "decline_code": saga.decline_code}
        )
    if saga.step == Step.REJECTED:
        if saga.failure == FailureReason.OUT_OF_STOCK:
            return 409, problem_body(
                409,
                "not enough stock for some items; nothing was charged",
                title="Out of stock",
                extra={
                    "order_id": order_id,
                    "reason": str(saga.failure),
                    "short_items": [dict(i) for i in saga.short_items],
                },
            )
        return 409, problem_body(
            409,
            "the stock reservation lapsed before the order was confirmed; any payment was refunded",
            title="Reservation expired",
            extra={"order_id": order_id, "reason": str(saga.failure)},
        )
    if saga.step in CHECKOUT_DONE:
        return 201, dict(order)
    raise ValueError(f"the checkout of order {order_id} is not done (step {saga.step})")


def confirmed_event(
    order_id: str, items: Sequence[Mapping[str, Any]], total_cents: int, currency: str
) -> dict[str, Any]:
    """``order.confirmed`` data, as notify-hub expects it (CONTRACTS.md)."""
    return {
        "order_id": order_id,
        "items": [
            {
                "product_id": str(i["product_id"]),
                "name": i["name"],
                "quantity": i["quantity"],
                "unit_price_cents": i["unit_price_cents"],
                "line_total_cents": line_total(i),
            }
            for i in items
        ],
        "total_cents": total_cents,
        "currency": currency,
    }


def cancelled_event(order_id: str, total_cents: int, currency: str) -> dict[str, Any]:
    return {"order_id": order_id, "total_cents": total_cents, "currency": currency}


#: The outbox event written in the same transaction as entering a step.
EVENT_ON_ENTRY: Mapping[Step, str] = {
    Step.CONFIRMED: "order.confirmed",
    Step.CANCELLED: "order.cancelled",
}
