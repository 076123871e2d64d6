"""payment-api's use cases: charge a card, refund a payment, show a payment.

A charge runs inside its idempotency key's transaction (the kit's
``idempotent_response``), so the payment row and the stored answer commit
together. Charges for one order are serialised by a transaction-scoped advisory
lock on the order id, taken before the acquirer is called: a second charge for
an order that is already paid answers that payment and never reaches the
acquirer. The partial unique index of migration 0002 is the guarantee behind
the lock: at most one captured payment per order, whatever the code does.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from shopflow_kit import cards, db
from shopflow_kit.errors import Problem, problem_body
from shopflow_kit.outbox import publish
from shopflow_kit.security import Principal
from tortoise.transactions import in_transaction

from payment_api.acquirers import (
    Acquirer,
    AcquirerUnavailable,
    CardDetails,
    ChargeRequest,
    DeclineCode,
    Outcome,
)
from payment_api.models import Payment
from payment_api.schemas import ChargeIn, InternalPaymentOut, PaymentOut
from payment_api.states import PaymentStatus, can_transition, transition

log = logging.getLogger("payments")

_ORDER_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"
RETRY_AFTER_SECONDS = "5"
DECLINE_DETAILS = {
    DeclineCode.CARD_DECLINED: "the card was declined",
    DeclineCode.INSUFFICIENT_FUNDS: "the card has insufficient funds",
    DeclineCode.PROCESSING_ERROR: "the payment could not be processed; try again",
}


def _fields(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.id,
        "order_id": payment.order_id,
        "customer_id": payment.customer_id,
        "status": payment.status,
        "amount_cents": payment.amount_cents,
        "currency": payment.currency,
        "card": {"brand": payment.card_brand, "last4": payment.card_last4},
        "created_at": payment.created_at,
        "refunded_at": payment.refunded_at,
    }


def public_body(payment: Payment) -> dict[str, Any]:
    return PaymentOut.model_validate(_fields(payment)).model_dump(mode="json")


def internal_body(payment: Payment) -> dict[str, Any]:
    return InternalPaymentOut.model_validate(_fields(payment)).model_dump(mode="json")


def decline_body(payment: Payment, code: DeclineCode) -> dict[str, Any]:
    """402 problem+json with the machine-readable fields order-mgmt acts on."""
    return problem_body(
        402,
        DECLINE_DETAILS[code],
        title="Payment declined",
        extra={
            "decline_code": code.value,
            "retryable": code == DeclineCode.PROCESSING_ERROR,
            "payment_id": str(payment.id),
        },
    )


async def _lock_order(conn: Any, order_id: uuid.UUID) -> None:
    """The order's charge lock, held until the transaction ends."""
    await conn.execute_query(_ORDER_LOCK, [f"payment-api:order:{order_id}"])


def _parse_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Problem(404, "no such payment") from None


def _unavailable(exc: AcquirerUnavailable) -> Problem:
    log.warning("acquirer unavailable", extra={"error": str(exc)})
    return Problem(
        503,
        "the acquirer is unavailable; retry with the same Idempotency-Key",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


async def _authorize_and_capture(
    acquirer: Acquirer, request: ChargeRequest
) -> tuple[PaymentStatus, Outcome]:
    """Walk the lifecycle from a new payment to its outcome; returns the final status."""
    authorization = await acquirer.authorize(request)
    if not authorization.approved:
        failed = authorization.retryable
        status = PaymentStatus.FAILED if failed else PaymentStatus.DECLINED
        return transition(None, status), authorization
    status = transition(None, PaymentStatus.AUTHORIZED)
    assert authorization.acquirer_reference is not None
    captured = await acquirer.capture(
        authorization.acquirer_reference, request.amount_cents, request.currency
    )
    if not captured.approved:
        return transition(status, PaymentStatus.FAILED), captured
    return transition(status, PaymentStatus.CAPTURED), captured


async def charge(acquirer: Acquirer, fingerprint_key: bytes, body: ChargeIn) -> tuple[int, Any]:
    """Authorize and capture in one step; ``(status, body)`` for the idempotency store.

    201 the captured payment; 200 the order's existing captured payment; 402 a
    decline or a processing failure (the payment row is kept, its id answered).
    """
    # Joins the idempotency key's transaction (run_once): no SAVEPOINT round trips.
    async with db.transaction() as conn:
        await _lock_order(conn, body.order_id)
        paid = await Payment.filter(order_id=body.order_id, status=PaymentStatus.CAPTURED).first()
        if paid is not None:
            return 200, internal_body(paid)

        card = body.card
        payment = Payment(
            id=uuid.uuid4(),
            order_id=body.order_id,
            customer_id=body.customer_id,
            amount_cents=body.amount_cents,
            currency=body.currency,
            card_brand=card.brand.value,
            card_last4=card.number[-4:],
            card_exp_month=card.exp_month,
            card_exp_year=card.exp_year,
            card_fingerprint=cards.fingerprint(fingerprint_key, card.number),
            acquirer=acquirer.name,
        )
        request = ChargeRequest(
            reference=str(payment.id),
            amount_cents=body.amount_cents,
            currency=body.currency,
            card=CardDetails(card.number, card.exp_month, card.exp_year, card.cvc, card.brand),
        )
        try:
            payment.status, outcome = await _authorize_and_capture(acquirer, request)
        except AcquirerUnavailable as exc:
            raise _unavailable(exc) from None
        payment.acquirer_reference = outcome.acquirer_reference
        if payment.status != PaymentStatus.CAPTURED:
            code = outcome.decline_code or DeclineCode.PROCESSING_ERROR
            payment.decline_code = code.value
        await payment.save(force_create=True)

    log.info(
        "payment %s",
        payment.status.value,
        extra={
            "payment_id": str(payment.id),
            "order_id": str(payment.order_id),
            "brand": payment.card_brand,
            "last4": payment.card_last4,
            "decline_code": payment.decline_code,
        },
    )
    if payment.status == PaymentStatus.CAPTURED:
        return 201, internal_body(payment)
    return 402, decline_body(payment, DeclineCode(str(payment.decline_code)))


async def refund(acquirer: Acquirer, payment_id: str) -> dict[str, Any]:
    """Refund a captured payment in full; a refunded one is answered as it is (idempotent).

    The row lock serialises concurrent refunds: the first refunds, the others
    find it refunded. ``payment.refunded`` is written in the same transaction.
    """
    pid = _parse_id(payment_id)
    async with in_transaction():
        payment = await Payment.filter(id=pid).select_for_update().first()
        if payment is None:
            raise Problem(404, "no such payment")
        if payment.status == PaymentStatus.REFUNDED:
            return internal_body(payment)
        if not can_transition(payment.status, PaymentStatus.REFUNDED):
            raise Problem(
                409, f"only a captured payment can be refunded; this one is {payment.status.value}"
            )
        assert payment.acquirer_reference is not None
        try:
            await acquirer.refund(
                payment.acquirer_reference, payment.amount_cents, payment.currency
            )
        except AcquirerUnavailable as exc:
            raise _unavailable(exc) from None
        payment.status = transition(payment.status, PaymentStatus.REFUNDED)
        payment.refunded_at = datetime.now(UTC)
        await payment.save(update_fields=["status", "refunded_at", "updated_at"])
        await publish(
            "payment.refunded",
            {
                "payment_id": str(payment.id),
                "order_id": str(payment.order_id),
                "amount_cents": payment.amount_cents,
                "currency": payment.currency,
            },
            subject_user_id=payment.customer_id,
        )
    log.info("payment refunded", extra={"payment_id": str(payment.id)})
    return internal_body(payment)


async def payments_of_order(order_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every payment of an order, oldest first, once no charge of it is in flight.

    order-mgmt asks this when it lost a charge's answer (it crashed, or the call
    timed out) and cannot replay the charge: it never stores the card. Taking the
    order's charge lock first means a charge still running is waited for, so the
    answer is never "not charged" for a charge about to commit.
    """
    async with in_transaction() as conn:
        await _lock_order(conn, order_id)
        payments = await Payment.filter(order_id=order_id).order_by("created_at", "id")
    return [internal_body(p) for p in payments]


async def get_payment(principal: Principal, payment_id: str) -> dict[str, Any]:
    """The payment for its owner or an admin; 404 for anyone else, as for an unknown id."""
    payment = await Payment.get_or_none(id=_parse_id(payment_id))
    if payment is None or (
        principal.role != "admin" and str(payment.customer_id) != principal.subject
    ):
        raise Problem(404, "no such payment")
    return public_body(payment)
