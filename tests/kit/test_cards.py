"""Card checks and the payment lifecycle as pure functions: no database, no HTTP."""

from __future__ import annotations

import itertools
from datetime import date

import pytest
from payment_api.states import (
    INITIAL,
    TRANSITIONS,
    InvalidTransition,
    PaymentStatus,
    can_transition,
    transition,
)
from shopflow_kit import cards
from shopflow_kit.cards import CardBrand, CardError

from tests.utils.payment_api import CARD_NUMBERS


@pytest.mark.parametrize("number", CARD_NUMBERS)
def test_test_card_numbers_pass_luhn(number: str) -> None:
    assert cards.normalize_number(number) == number


def test_spaces_and_dashes_are_dropped() -> None:
    assert cards.normalize_number("4242 4242-4242 4242") == "4242424242424242"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("4242424242424241", "Luhn"),
        ("424242424241", "Luhn"),  # 12 digits, wrong check digit
        ("42424242420", "12 to 19 digits"),
        ("4" * 20, "12 to 19 digits"),
        ("", "12 to 19 digits"),
        ("4242.4242.4242.4242", "only digits"),
        ("\uff14\uff12" * 7, "only digits"),  # full-width digits are not ASCII digits
    ],
)
def test_bad_numbers_are_refused_without_echoing_them(raw: str, message: str) -> None:
    with pytest.raises(CardError) as raised:
        cards.normalize_number(raw)
    assert message in str(raised.value)
    if raw:
        assert raw not in str(raised.value)


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        ("4242424242424242", CardBrand.VISA),
        ("4222222222222", CardBrand.VISA),
        ("5105105105105100", CardBrand.MASTERCARD),
        ("5555555555554444", CardBrand.MASTERCARD),
        ("2221000000000009", CardBrand.MASTERCARD),
        ("2720990000000007", CardBrand.MASTERCARD),
        ("2721000000000004", CardBrand.UNKNOWN),
        ("378282246310005", CardBrand.AMEX),
        ("371449635398431", CardBrand.AMEX),
        ("6011111111111117", CardBrand.DISCOVER),
        ("6445644564456445", CardBrand.DISCOVER),
        ("6500000000000002", CardBrand.DISCOVER),
        ("6221260000000000", CardBrand.DISCOVER),
        ("6229250000000009", CardBrand.DISCOVER),
        ("6229260000000008", CardBrand.UNKNOWN),
        ("3530111333300000", CardBrand.UNKNOWN),  # JCB: not a brand the platform names
        ("9000000000000001", CardBrand.UNKNOWN),
    ],
)
def test_brand_detection(number: str, brand: CardBrand) -> None:
    assert cards.detect_brand(number) == brand


ON = date(2030, 6, 15)


def test_expiry_is_in_utc_month_terms() -> None:
    assert cards.check_expiry(6, 2030, ON) == 6  # valid to the end of its month
    assert cards.check_expiry(1, 2031, ON) == 1
    with pytest.raises(CardError, match="expired"):
        cards.check_expiry(5, 2030, ON)
    assert cards.check_expiry_year(2030, ON) == 2030
    with pytest.raises(CardError, match="expired"):
        cards.check_expiry_year(2029, ON)
    assert cards.check_expiry_year(2050, ON) == 2050
    with pytest.raises(CardError, match="years ahead"):
        cards.check_expiry_year(2051, ON)


@pytest.mark.parametrize(
    ("cvc", "brand", "ok"),
    [
        ("123", CardBrand.VISA, True),
        ("012", CardBrand.MASTERCARD, True),
        ("1234", CardBrand.VISA, False),
        ("1234", CardBrand.AMEX, True),
        ("123", CardBrand.AMEX, False),
        ("123", CardBrand.UNKNOWN, True),
        ("1234", None, True),  # the number was invalid: only its own error is reported
        ("12", None, False),
        ("12a", CardBrand.VISA, False),
        ("", CardBrand.VISA, False),
    ],
)
def test_cvc_length_depends_on_the_brand(cvc: str, brand: CardBrand | None, ok: bool) -> None:
    if ok:
        assert cards.check_cvc(cvc, brand) == cvc
    else:
        with pytest.raises(CardError, match="CVC"):
            cards.check_cvc(cvc, brand)


def test_fingerprint_is_keyed_and_stable() -> None:
    a = cards.fingerprint(b"k" * 32, "4242424242424242")
    assert a == cards.fingerprint(b"k" * 32, "4242424242424242")
    assert a != cards.fingerprint(b"j" * 32, "4242424242424242")
    assert a != cards.fingerprint(b"k" * 32, "4000000000000002")
    assert len(a) == 64 and "4242" not in a


# --- the lifecycle -----------------------------------------------------------------

ALLOWED = {
    (None, PaymentStatus.AUTHORIZED),
    (None, PaymentStatus.DECLINED),
    (None, PaymentStatus.FAILED),
    (PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURED),
    (PaymentStatus.AUTHORIZED, PaymentStatus.FAILED),
    (PaymentStatus.CAPTURED, PaymentStatus.REFUNDED),
}


@pytest.mark.parametrize(
    ("current", "target"), list(itertools.product([None, *PaymentStatus], PaymentStatus))
)
def test_only_the_allowed_transitions(current: PaymentStatus | None, target: PaymentStatus) -> None:
    allowed = (current, target) in ALLOWED
    assert can_transition(current, target) is allowed
    if allowed:
        assert transition(current, target) is target
    else:
        with pytest.raises(InvalidTransition):
            transition(current, target)


def test_terminal_statuses_go_nowhere() -> None:
    assert set(TRANSITIONS) == set(PaymentStatus)
    assert {s for c, s in ALLOWED if c is None} == INITIAL
    for status in (PaymentStatus.DECLINED, PaymentStatus.REFUNDED, PaymentStatus.FAILED):
        assert TRANSITIONS[status] == frozenset()
    with pytest.raises(InvalidTransition, match="from refunded to captured"):
        transition(PaymentStatus.REFUNDED, PaymentStatus.CAPTURED)
