"""Card data never leaves a service in a log line or a problem body (the kit's redaction)."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from shopflow_kit.errors import problem_body
from shopflow_kit.observability import JsonFormatter
from shopflow_kit.redaction import (
    CARD_NUMBER_MASK,
    REDACTED,
    luhn_valid,
    redact,
    scrub_card_numbers,
)

VISA = "4242424242424242"


@pytest.mark.parametrize(
    "text",
    [
        VISA,
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        "378282246310005",
        "card=4000000000000002;",
        "/payments/4242424242424242?x=1",
        # Joined to other text: still a card number (an adversarial pass logged these).
        "req-4242424242424242",
        "order_4242424242424242",
        "a4242424242424242",
        "4000000000000002-retry",
        # Grouped with other digits: the card number's own groups still count.
        "4242424242424242 12 2030",
        "12 4242 4242 4242 4242",
    ],
)
def test_card_numbers_in_text_are_masked(text: str) -> None:
    scrubbed = scrub_card_numbers(text)
    assert CARD_NUMBER_MASK in scrubbed
    assert "4242" not in scrubbed and "0000000000" not in scrubbed


@pytest.mark.parametrize(
    "text",
    [
        "4242424242424241",  # fails Luhn: an ordinary number
        "amount 1999 cents, 42 items",
        "0c7f2a4e-1234-5678-9012-345678901234",  # a UUID with digit-only groups
        "42424242-4242-4242-4242-424242424242",  # UUID form: an id, skipped whole
        "12345678901",  # 11 digits
        "2026-11-25T09:37:22.095+00:00",
    ],
)
def test_other_numbers_are_left_alone(text: str) -> None:
    assert scrub_card_numbers(text) == text


def test_luhn() -> None:
    assert luhn_valid(VISA) and luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


def test_card_fields_are_redacted_at_any_depth() -> None:
    body = {
        "order_id": "o-1",
        "card": {"number": VISA, "cvc": "123", "exp_month": 12, "exp_year": 2030, "brand": "visa"},
        "payment": {"card_number": "x", "CVV": "999"},
        "lines": [{"note": f"paid with {VISA}"}],
    }
    assert redact(body) == {
        "order_id": "o-1",
        "card": {
            "number": REDACTED,
            "cvc": REDACTED,
            "exp_month": REDACTED,
            "exp_year": REDACTED,
            "brand": "visa",
        },
        "payment": {"card_number": REDACTED, "CVV": REDACTED},
        "lines": [{"note": f"paid with {CARD_NUMBER_MASK}"}],
    }
    assert body["card"]["number"] == VISA  # type: ignore[index]  # a copy: the caller's data is untouched


def _format(record: logging.LogRecord) -> dict[str, object]:
    line = JsonFormatter("test").format(record)
    assert VISA not in line and "4242 4242" not in line
    return dict(json.loads(line))


def test_log_lines_never_carry_card_data() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "paid with %s", (VISA,), None)
    record.body = {"card": {"number": VISA, "cvc": "123"}, "amount_cents": 100}
    record.raw = f"card_number={VISA}"
    entry = _format(record)
    assert entry["msg"] == f"paid with {CARD_NUMBER_MASK}"
    assert entry["body"] == {"card": {"number": REDACTED, "cvc": REDACTED}, "amount_cents": 100}
    assert entry["raw"] == f"card_number={CARD_NUMBER_MASK}"


def test_tracebacks_never_carry_card_numbers() -> None:
    try:
        raise ValueError(f"could not charge 4242 4242 4242 4242 for {VISA}")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = _format(record)
    last = str(entry["exc"]).splitlines()[-1]
    assert last == f"ValueError: could not charge {CARD_NUMBER_MASK} for {CARD_NUMBER_MASK}"


def test_problem_bodies_never_carry_card_data() -> None:
    body = problem_body(
        422,
        f"card {VISA} is invalid",
        errors=[{"field": "card.number", "message": f"bad {VISA}"}],
        extra={"card": {"number": VISA}},
    )
    assert VISA not in json.dumps(body)
    assert body["errors"] == [{"field": "card.number", "message": f"bad {CARD_NUMBER_MASK}"}]
    assert body["card"] == {"number": REDACTED}
