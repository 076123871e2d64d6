"""payment-api's request and response bodies.

Card fields are validated here so that every failure is a 422 naming its field
(``card.number``, ``card.exp_month``, ...). Messages come from
:mod:`shopflow_kit.cards` and never contain the number; ``repr=False`` keeps the
number and CVC out of any repr that might end up in a log.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError
from shopflow_kit import cards

# The platform's limits: catalog-api prices and order-mgmt checks carts with them too.
from shopflow_kit.money import MAX_AMOUNT_CENTS, Currency

from payment_api.states import PaymentStatus

T = TypeVar("T")


def _checked(check: Callable[..., T], *args: Any) -> T:
    """Run a card check; its CardError becomes this field's validation error."""
    try:
        return check(*args)
    except cards.CardError as exc:
        raise PydanticCustomError("card_invalid", str(exc)) from None


class CardIn(BaseModel):
    # Fields validate in this order: the CVC check needs the number's brand, and the
    # month check needs the year.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    number: StrictStr = Field(
        max_length=40, repr=False, description="12-19 digits; spaces and dashes are ignored"
    )
    exp_year: StrictInt = Field(ge=2000, le=9999)
    exp_month: StrictInt = Field(ge=1, le=12)
    cvc: StrictStr = Field(max_length=4, repr=False, description="3 digits, 4 for Amex")

    @field_validator("number")
    @classmethod
    def _number(cls, value: str) -> str:
        return _checked(cards.normalize_number, value)

    @field_validator("exp_year")
    @classmethod
    def _year(cls, value: int) -> int:
        return _checked(cards.check_expiry_year, value)

    @field_validator("exp_month")
    @classmethod
    def _month(cls, value: int, info: ValidationInfo) -> int:
        year = info.data.get("exp_year")
        return value if year is None else _checked(cards.check_expiry, value, year)

    @field_validator("cvc")
    @classmethod
    def _cvc(cls, value: str, info: ValidationInfo) -> str:
        number = info.data.get("number")
        return _checked(cards.check_cvc, value, cards.detect_brand(number) if number else None)

    @property
    def brand(self) -> cards.CardBrand:
        return cards.detect_brand(self.number)


class ChargeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    order_id: UUID
    customer_id: UUID
    amount_cents: Annotated[StrictInt, Field(ge=1, le=MAX_AMOUNT_CENTS)]
    currency: Currency
    card: CardIn


class CardOut(BaseModel):
    brand: cards.CardBrand
    last4: str


class PaymentOut(BaseModel):
    """A payment as its owner (or an admin) sees it: never more of the card than this."""

    id: UUID
    order_id: UUID
    status: PaymentStatus
    amount_cents: int
    currency: str
    card: CardOut
    created_at: datetime


class InternalPaymentOut(PaymentOut):
    """The internal shape order-mgmt gets: the public one plus the customer and refund time."""

    customer_id: UUID
    refunded_at: datetime | None


class OrderPaymentsQuery(BaseModel):
    """``GET /internal/payments?order_id=``: the payments of one order."""

    model_config = ConfigDict(extra="forbid")
    order_id: UUID
