"""The acquirer: who actually moves the money, behind one small interface.

The service layer only sees :class:`Acquirer`; which one runs is configuration
(``SHOPFLOW_PAYMENT_API_ACQUIRER``, see :data:`ACQUIRERS`). A real payment
service provider is one more class here with the same three methods, receiving
the payment id as its idempotency reference, and one more name in the
``AcquirerName`` setting.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from shopflow_kit.cards import CardBrand

from payment_api.config import AcquirerName, Settings


class DeclineCode(StrEnum):
    CARD_DECLINED = "card_declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    #: The acquirer could not process the charge; trying again may succeed.
    PROCESSING_ERROR = "processing_error"


@dataclass(frozen=True)
class CardDetails:
    """The card as the acquirer needs it; lives in memory for one request only."""

    number: str = field(repr=False)
    exp_month: int
    exp_year: int
    cvc: str = field(repr=False)
    brand: CardBrand


@dataclass(frozen=True)
class ChargeRequest:
    #: Our payment id: the acquirer's idempotency reference for this attempt.
    reference: str
    amount_cents: int
    currency: str
    card: CardDetails


@dataclass(frozen=True)
class Outcome:
    approved: bool
    #: The acquirer's id for the authorization or capture (what a refund points at).
    acquirer_reference: str | None = None
    decline_code: DeclineCode | None = None

    @property
    def retryable(self) -> bool:
        return self.decline_code == DeclineCode.PROCESSING_ERROR


class AcquirerUnavailable(RuntimeError):
    """The acquirer could not be reached or did not answer; nothing was done."""


class Acquirer(Protocol):
    name: str

    async def authorize(self, request: ChargeRequest) -> Outcome:
        """Reserve the amount on the card: approved, or declined with a code."""
        ...

    async def capture(self, authorization: str, amount_cents: int, currency: str) -> Outcome:
        """Take the authorized amount."""
        ...

    async def refund(self, capture: str, amount_cents: int, currency: str) -> None:
        """Give a captured amount back in full; raises AcquirerUnavailable on failure."""
        ...


#: The well-known test cards (ARCHITECTURE.md, "Payments"); any other valid number is approved.
TEST_CARDS: dict[str, DeclineCode] = {
    "4000000000000002": DeclineCode.CARD_DECLINED,
    "4000000000009995": DeclineCode.INSUFFICIENT_FUNDS,
    "4000000000000119": DeclineCode.PROCESSING_ERROR,
}


class SandboxAcquirer:
    """An in-process acquirer that answers by the test-card table, like a PSP's test mode."""

    name = "sandbox"

    async def authorize(self, request: ChargeRequest) -> Outcome:
        code = TEST_CARDS.get(request.card.number)
        if code is not None:
            return Outcome(approved=False, decline_code=code)
        return Outcome(approved=True, acquirer_reference=f"sbx_auth_{uuid.uuid4().hex}")

    async def capture(self, authorization: str, amount_cents: int, currency: str) -> Outcome:
        return Outcome(approved=True, acquirer_reference=f"sbx_cap_{uuid.uuid4().hex}")

    async def refund(self, capture: str, amount_cents: int, currency: str) -> None:
        return None


ACQUIRERS: dict[AcquirerName, Callable[[Settings], Acquirer]] = {
    "sandbox": lambda settings: SandboxAcquirer(),
}


def acquirer_for(settings: Settings) -> Acquirer:
    return ACQUIRERS[settings.acquirer](settings)
