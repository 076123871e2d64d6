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

_UUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
# A UUID is skipped whole (an id, never a card number). Anything else that is a
# run of 12 or more digits, grouped by single spaces or dashes and not part of a
# longer digit run, is a candidate whatever letters or punctuation touch it:
# "order-4242424242424242" and "x_4242424242424242" hide a card number too.
_CANDIDATE = re.compile(rf"(?P<uuid>{_UUID})|(?<!\d)\d(?:[ -]?\d){{11,}}(?!\d)")
_GROUP = re.compile(r"\d+")


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


def _holds_card_number(run: str) -> bool:
    """Whether whole groups of ``run`` (digits split by spaces or dashes) form a
    Luhn-valid 12-19 digit number: "4242424242424242 12" still holds one."""
    groups = _GROUP.findall(run)
    for first in range(len(groups)):
        digits = ""
        for group in groups[first:]:
            digits += group
            if len(digits) > 19:
                break
            if len(digits) >= 12 and luhn_valid(digits):
                return True
    return False


def _mask(match: re.Match[str]) -> str:
    if match.group("uuid"):
        return match.group()
    return CARD_NUMBER_MASK if _holds_card_number(match.group()) else match.group()


def scrub_card_numbers(text: str) -> str:
    """``text`` with every Luhn-valid 12-19 digit number (spaces/dashes allowed) masked."""
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
