"""Card data never leaves a service in a log line or an error body.

Two nets, both applied by the kit's JSON log formatter and problem responses,
so every service inherits them:

- :func:`redact` replaces the value of every card field (``number``,
  ``card_number``, ``cvc``, ``exp_month``, ...) in any mapping, however deeply
  nested, before it is logged or answered;
- :func:`scrub_card_numbers` masks anything in free text (a message, an
  exception, a traceback) that looks like a card number: 12-19 digits, possibly
  grouped by single spaces or dashes, that pass the Luhn check. Luhn keeps
  ordinary numbers (amounts, counts, timestamps) readable: only one in ten
  random digit runs passes it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"
CARD_NUMBER_MASK = "[card number redacted]"

#: Keys whose values are card data wherever they appear (compared case-insensitively).
CARD_FIELDS = frozenset({"number", "card_number", "pan", "cvc", "cvv", "cvc2", "cvv2"})
CARD_FIELD_PREFIXES = ("exp_",)

# Not inside a longer word, number or dash-joined token (UUIDs, request ids).
_CANDIDATE = re.compile(r"(?<![\w-])\d(?:[ -]?\d){11,18}(?![\w-])")


def is_card_field(key: object) -> bool:
    if not isinstance(key, str):
        return False
    lowered = key.lower()
    return lowered in CARD_FIELDS or lowered.startswith(CARD_FIELD_PREFIXES)


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check over a string of decimal digits."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _mask(match: re.Match[str]) -> str:
    digits = match.group().replace(" ", "").replace("-", "")
    return CARD_NUMBER_MASK if luhn_valid(digits) else match.group()


def scrub_card_numbers(text: str) -> str:
    """``text`` with every Luhn-valid 12-19 digit run (spaces/dashes allowed) masked."""
    if _CANDIDATE.search(text) is None:  # the common case, and the cheap one
        return text
    return _CANDIDATE.sub(_mask, text)


def redact(value: Any) -> Any:
    """A copy of ``value`` with card fields' values replaced and card numbers masked."""
    if isinstance(value, Mapping):
        return {k: REDACTED if is_card_field(k) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return scrub_card_numbers(value)
    return value
