"""order-mgmt's request and response bodies (the orders section of API.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictInt,
    ValidationInfo,
    field_validator,
)
from shopflow_kit import cards
from shopflow_kit.http import PageQuery
from shopflow_kit.redaction import luhn_valid


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CartLineIn(Strict):
    quantity: Annotated[StrictInt, Field(ge=1, le=99)]


#: Cards are issued for about 10 years; payment-api refuses more than 20 ahead, and so
#: does checkout, before any stock is reserved.
MAX_YEARS_AHEAD = 20


class PaymentIn(Strict):
    # SecretStr: a card number or CVC never shows up in a repr, a log line or an error.
    card_number: SecretStr
    exp_month: Annotated[StrictInt, Field(ge=1, le=12)]
    exp_year: Annotated[StrictInt, Field(ge=2000, le=2100)]
    cvc: SecretStr

    @field_validator("card_number")
    @classmethod
    def valid_number(cls, value: SecretStr) -> SecretStr:
        number = value.get_secret_value()
        if not (number.isascii() and number.isdigit() and 12 <= len(number) <= 19):
            raise ValueError("card_number must be 12-19 digits")
        if not luhn_valid(number):
            raise ValueError("card_number is not a valid card number (Luhn check)")
        return value

    @field_validator("cvc")
    @classmethod
    def valid_cvc(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        # payment-api's own rule (4 digits for Amex, else 3), checked before any stock
        # is held, so a card payment-api would refuse is never reported as declined.
        number = info.data.get("card_number")
        brand = cards.detect_brand(number.get_secret_value()) if number is not None else None
        cards.check_cvc(value.get_secret_value(), brand)
        return value

    @field_validator("exp_year")
    @classmethod
    def not_expired(cls, year: int, info: ValidationInfo) -> int:
        month = info.data.get("exp_month")
        now = datetime.now(UTC)
        if year < now.year or (year == now.year and month is not None and month < now.month):
            raise ValueError("the card has expired")
        if year > now.year + MAX_YEARS_AHEAD:
            raise ValueError(f"the expiry year is more than {MAX_YEARS_AHEAD} years ahead")
        return year


Text = Annotated[str, Field(min_length=1, max_length=200)]


class ShippingAddress(Strict):
    name: Text
    line1: Text
    city: Annotated[str, Field(min_length=1, max_length=100)]
    postal_code: Annotated[str, Field(min_length=1, max_length=20)]
    #: ISO 3166-1 alpha-2.
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]

    @field_validator("name", "line1", "city", "postal_code")
    @classmethod
    def not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class CheckoutIn(Strict):
    payment: PaymentIn
    shipping_address: ShippingAddress


class CartLineOut(BaseModel):
    product_id: str
    name: str
    unit_price_cents: int
    quantity: int
    line_total_cents: int


class CartNote(BaseModel):
    """Why a line left the cart (its product was deleted from the catalog, say)."""

    product_id: str
    name: str
    message: str


class CartOut(BaseModel):
    items: list[CartLineOut]
    total_cents: int
    #: The cart's one currency; null while the cart is empty.
    currency: str | None
    notes: list[CartNote]


class OrderLineOut(BaseModel):
    product_id: str
    name: str
    unit_price_cents: int
    quantity: int


class ShippingAddressOut(BaseModel):
    name: str
    line1: str
    city: str
    postal_code: str
    country: str


class OrderOut(BaseModel):
    id: str
    status: Literal["pending", "confirmed", "payment_failed", "rejected", "cancelled"]
    items: list[OrderLineOut]
    total_cents: int
    currency: str
    payment_id: str | None
    shipping_address: ShippingAddressOut
    created_at: datetime
    updated_at: datetime


class OrderQuery(PageQuery):
    pass
