"""Card checks, brand detection and the keyed fingerprint: pure functions, no I/O.

The one set of card rules: order-mgmt checks a checkout's card with them before
any stock is held, and payment-api checks the charge with them again, so a card
that passes the first never fails the second.

The messages of :class:`CardError` name the problem and never contain the
number, so they can be answered and logged as they are.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, date, datetime
from enum import StrEnum

from shopflow_kit.redaction import luhn_valid

MIN_DIGITS, MAX_DIGITS = 12, 19
#: Issuers print expiries up to about 10 years ahead; 20 leaves room and stops typos.
MAX_YEARS_AHEAD = 20


class CardError(ValueError):
    """A card field is invalid; the message never echoes the card number."""


class CardBrand(StrEnum):
    VISA = "visa"
    MASTERCARD = "mastercard"
    AMEX = "amex"
    DISCOVER = "discover"
    UNKNOWN = "unknown"


def today() -> date:
    return datetime.now(UTC).date()


def normalize_number(raw: str) -> str:
    """The digits of ``raw`` (spaces and dashes dropped), if they can be a card number."""
    digits = re.sub(r"[ -]", "", raw)
    if not re.fullmatch(r"[0-9]*", digits):
        raise CardError("the card number may contain only digits, spaces and dashes")
    if not MIN_DIGITS <= len(digits) <= MAX_DIGITS:
        raise CardError(f"the card number must have {MIN_DIGITS} to {MAX_DIGITS} digits")
    if not luhn_valid(digits):
        raise CardError("the card number is not valid (Luhn check failed)")
    return digits


def _prefix_in(digits: str, length: int, low: int, high: int) -> bool:
    return low <= int(digits[:length]) <= high


def detect_brand(digits: str) -> CardBrand:
    """The brand from the issuer prefix (the IIN ranges the networks publish)."""
    if digits[:2] in ("34", "37"):
        return CardBrand.AMEX
    if digits.startswith("4"):
        return CardBrand.VISA
    if _prefix_in(digits, 2, 51, 55) or _prefix_in(digits, 4, 2221, 2720):
        return CardBrand.MASTERCARD
    if (
        digits.startswith(("6011", "65"))
        or _prefix_in(digits, 3, 644, 649)
        or _prefix_in(digits, 6, 622126, 622925)
    ):
        return CardBrand.DISCOVER
    return CardBrand.UNKNOWN


def check_expiry_year(year: int, on: date | None = None) -> int:
    on = on or today()
    if year < on.year:
        raise CardError("the card has expired")
    if year > on.year + MAX_YEARS_AHEAD:
        raise CardError(f"the expiry year is more than {MAX_YEARS_AHEAD} years ahead")
    return year


def check_expiry(month: int, year: int, on: date | None = None) -> int:
    """A card is valid up to the end of its expiry month, in UTC."""
    on = on or today()
    if (year, month) < (on.year, on.month):
        raise CardError("the card has expired")
    return month


def check_cvc(cvc: str, brand: CardBrand | None) -> str:
    """3 digits, or 4 for Amex; with the brand unknown (a bad number) either is accepted."""
    if not re.fullmatch(r"[0-9]{3,4}", cvc):
        raise CardError("the CVC must be 3 or 4 digits")
    if brand is None:
        return cvc
    wanted = 4 if brand == CardBrand.AMEX else 3
    if len(cvc) != wanted:
        raise CardError(f"the CVC must be {wanted} digits for this card")
    return cvc


def fingerprint(key: bytes, digits: str) -> str:
    """HMAC-SHA256 of the number under a secret key: the same card, the same value.

    Keyed because card numbers have too few unknown digits for a plain hash to
    hide them: without the key the value cannot be brute-forced back to a number.
    """
    return hmac.new(key, digits.encode(), hashlib.sha256).hexdigest()
