"""The checkout state machine, pure: every transition and plan, no I/O."""

from __future__ import annotations

import importlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from order_mgmt.checkout import (
    CHECKOUT_DONE,
    CHECKOUT_PENDING,
    MAX_CHARGE_ATTEMPTS,
    STATUS,
    UNFINISHED,
    Action,
    CancelRequested,
    Captured,
    ChargeStarted,
    Committed,
    Declined,
    Event,
    FailureReason,
    IllegalTransition,
    Interrupted,
    NotCharged,
    OrderStatus,
    OutOfStock,
    Refunded,
    Released,
    ReservationLapsed,
    Reserved,
    Saga,
    Step,
    charge_backoff,
    charge_key,
    checkout_result,
    confirmed_event,
    plan,
    transition,
    worst_case_charge_seconds,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)
WINDOW = timedelta(seconds=45)
LATER = NOW + timedelta(minutes=15)
ORDER = {"id": "0b6f7a3e-0000-4000-8000-000000000001", "status": "confirmed"}


def run(saga: Saga, *events: Event) -> Saga:
    for event in events:
        saga = transition(saga, event)
    return saga


def test_the_happy_path() -> None:
    saga = Saga(Step.PLACED)
    assert plan(saga, has_card=True, now=NOW, charge_window=WINDOW) == Action.RESERVE
    saga = transition(saga, Reserved(LATER))
    assert saga.step == Step.RESERVED and saga.reservation_expires_at == LATER
    assert plan(saga, has_card=True, now=NOW, charge_window=WINDOW) == Action.BEGIN_CHARGE
    saga = transition(saga, ChargeStarted())
    assert (saga.step, saga.charge_attempts) == (Step.CHARGING, 1)
    assert plan(saga, has_card=True, now=NOW, charge_window=WINDOW) == Action.CHARGE
    saga = transition(saga, Captured("pay-1"))
    assert (saga.step, saga.payment_id) == (Step.CHARGED, "pay-1")
    assert plan(saga, has_card=False, now=NOW, charge_window=WINDOW) == Action.COMMIT
    saga = transition(saga, Committed())
    assert saga.step == Step.CONFIRMED and saga.status == OrderStatus.CONFIRMED
    assert plan(saga, has_card=True, now=NOW, charge_window=WINDOW) is None
    assert checkout_result(saga, ORDER) == (201, ORDER)


def test_short_stock_rejects_with_the_short_items() -> None:
    short = ({"product_id": "p", "requested": 2, "available": 1},)
    saga = run(Saga(Step.PLACED), OutOfStock(short))
    assert saga.step == Step.REJECTED and saga.failure == FailureReason.OUT_OF_STOCK
    status, body = checkout_result(saga, ORDER)
    assert status == 409 and body["short_items"] == [dict(short[0])]
    assert body["order_id"] == ORDER["id"]


def test_a_decline_releases_then_fails() -> None:
    saga = run(Saga(Step.PLACED), Reserved(LATER), ChargeStarted())
    saga = transition(saga, Declined("insufficient_funds", retryable=False, payment_id="pay-9"))
    assert saga.step == Step.RELEASING and saga.decline_code == "insufficient_funds"
    assert plan(saga, has_card=True, now=NOW, charge_window=WINDOW) == Action.RELEASE
    saga = transition(saga, Released())
    assert saga.step == Step.PAYMENT_FAILED and saga.payment_id == "pay-9"
    status, body = checkout_result(saga, ORDER)
    assert status == 402 and body["decline_code"] == "insufficient_funds"
    assert body["status"] == 402 and {"type", "title", "detail"} <= set(body)


def test_processing_errors_are_retried_three_times() -> None:
    saga = run(Saga(Step.PLACED), Reserved(LATER), ChargeStarted())
    error = Declined("processing_error", retryable=True, payment_id=None)
    for attempt in range(2, MAX_CHARGE_ATTEMPTS + 1):
        saga = transition(saga, error)
        assert (saga.step, saga.charge_attempts) == (Step.CHARGING, attempt)
        assert plan(saga, has_card=True, now=NOW, charge_window=WINDOW) == Action.CHARGE
    assert MAX_CHARGE_ATTEMPTS == 4  # the first attempt and 3 retries
    saga = transition(saga, error)
    assert saga.step == Step.RELEASING and saga.decline_code == "processing_error"
    # A retry that succeeds ends the retries.
    retried = run(Saga(Step.PLACED), Reserved(LATER), ChargeStarted(), error, Captured("p"))
    assert retried.step == Step.CHARGED and retried.charge_attempts == 2


def test_each_attempt_has_its_own_key_and_a_growing_backoff() -> None:
    keys = {charge_key("o-1", attempt) for attempt in range(1, 5)}
    assert len(keys) == 4 and all("o-1" in k for k in keys)
    assert [charge_backoff(a, 0.5) for a in range(1, 5)] == [0.0, 0.5, 1.0, 2.0]
    assert worst_case_charge_seconds(10, 0.5) == 4 * 10 + 3.5


def test_a_lapsed_reservation_after_the_charge_refunds_then_rejects() -> None:
    saga = run(
        Saga(Step.PLACED), Reserved(LATER), ChargeStarted(), Captured("pay-1"), ReservationLapsed()
    )
    assert saga.step == Step.REFUNDING
    assert plan(saga, has_card=False, now=NOW, charge_window=WINDOW) == Action.REFUND
    saga = transition(saga, Refunded())
    assert saga.step == Step.REJECTED and saga.failure == FailureReason.RESERVATION_EXPIRED
    status, body = checkout_result(saga, ORDER)
    assert status == 409 and "refunded" in body["detail"]


def test_a_reservation_about_to_lapse_is_not_charged_against() -> None:
    saga = run(Saga(Step.PLACED), Reserved(NOW + WINDOW))
    assert plan(saga, has_card=True, now=NOW, charge_window=WINDOW) == Action.LET_LAPSE
    saga = run(saga, ReservationLapsed(), Released())
    assert saga.step == Step.REJECTED


def test_without_the_card_nothing_is_charged() -> None:
    # The recovery loop never has the card: before a charge it gives the stock back.
    placed = Saga(Step.PLACED)
    assert plan(placed, has_card=False, now=NOW, charge_window=WINDOW) == Action.ABANDON
    reserved = transition(placed, Reserved(LATER))
    assert plan(reserved, has_card=False, now=NOW, charge_window=WINDOW) == Action.ABANDON
    for start in (placed, reserved):
        saga = transition(start, Interrupted())
        assert saga.step == Step.RELEASING
        saga = transition(saga, Released())
        assert saga.step == Step.PAYMENT_FAILED
        assert checkout_result(saga, ORDER)[0] == 402
    # During a charge it asks payment-api what happened instead of charging again.
    charging = transition(reserved, ChargeStarted())
    assert plan(charging, has_card=False, now=NOW, charge_window=WINDOW) == Action.FIND_CHARGE
    assert transition(charging, Captured("pay-2")).step == Step.CHARGED
    assert transition(charging, NotCharged()).step == Step.RELEASING


def test_cancelling_refunds_then_restocks() -> None:
    confirmed = Saga(Step.CONFIRMED, payment_id="pay-1")
    saga = transition(confirmed, CancelRequested())
    assert saga.step == Step.CANCELLING and saga.status == OrderStatus.CONFIRMED
    assert plan(saga, has_card=False, now=NOW, charge_window=WINDOW) == Action.REFUND
    saga = transition(saga, Refunded())
    assert plan(saga, has_card=False, now=NOW, charge_window=WINDOW) == Action.RELEASE
    saga = transition(saga, Released())
    assert saga.step == Step.CANCELLED and saga.status == OrderStatus.CANCELLED


@pytest.mark.parametrize(
    ("step", "event"),
    [
        (Step.PLACED, Captured("p")),
        (Step.RESERVED, Committed()),
        (Step.CHARGED, Declined("card_declined", False, None)),
        (Step.CONFIRMED, Refunded()),
        (Step.PAYMENT_FAILED, CancelRequested()),
        (Step.REJECTED, CancelRequested()),
        (Step.CANCELLED, CancelRequested()),
        (Step.CANCELLING, CancelRequested()),
    ],
)
def test_illegal_transitions_are_refused(step: Step, event: Event) -> None:
    with pytest.raises(IllegalTransition):
        transition(Saga(step), event)


def test_every_step_has_a_status_and_a_plan_or_an_end() -> None:
    assert set(STATUS) == set(Step)
    for step in Step:
        has_plan = plan(Saga(step), has_card=False, now=NOW, charge_window=WINDOW) is not None
        assert has_plan == (step in UNFINISHED), step
    assert UNFINISHED.isdisjoint({Step.CONFIRMED, Step.PAYMENT_FAILED, Step.REJECTED})
    assert {Step.CONFIRMED, Step.PAYMENT_FAILED, Step.REJECTED} <= CHECKOUT_DONE
    with pytest.raises(ValueError, match="not done"):
        checkout_result(Saga(Step.CHARGED), ORDER)


def test_the_confirmation_event_carries_line_totals() -> None:
    items = [{"product_id": "p1", "name": "Mug", "unit_price_cents": 1250, "quantity": 2}]
    assert confirmed_event("o-1", items, 2500, "USD") == {
        "order_id": "o-1",
        "items": [
            {
                "product_id": "p1",
                "name": "Mug",
                "quantity": 2,
                "unit_price_cents": 1250,
                "line_total_cents": 2500,
            }
        ],
        "total_cents": 2500,
        "currency": "USD",
    }


def test_the_one_checkout_index_covers_exactly_the_pending_steps() -> None:
    """Migration 0003's partial unique index and CHECKOUT_PENDING name the same steps."""
    module = importlib.import_module("order_mgmt.migrations.0003_one_checkout_per_customer")
    [operation] = module.Migration.operations
    [sql] = operation.sql
    steps = set(re.findall(r"'([a-z_]+)'", sql.split("WHERE", 1)[1]))
    assert steps == {str(step) for step in CHECKOUT_PENDING}
    assert CHECKOUT_PENDING < UNFINISHED and not CHECKOUT_PENDING & CHECKOUT_DONE
