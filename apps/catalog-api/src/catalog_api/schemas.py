"""catalog-api's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictInt
from shopflow_kit.http import PageQuery
from shopflow_kit.money import MAX_AMOUNT_CENTS, Currency
from shopflow_kit.validation import Int4

Slug = Annotated[str, Field(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=64)]
Sku = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
# A product is priced in a currency the platform can charge, at least 1 cent and at
# most the largest charge (shopflow_kit.money): every product can be bought.
# StrictInt: money and stock are never floats, not even 19.0. Both are stored
# in `integer` columns; the domain bounds sit well inside that type.
Cents = Annotated[StrictInt, Field(ge=1, le=MAX_AMOUNT_CENTS)]
Stock = Annotated[StrictInt, Field(ge=0, le=10_000_000)]
#: A price filter: compared with an `integer` column, so bounded by its type.
PriceFilter = Annotated[Int4, Field(ge=0)]
Sort = Literal["relevance", "price_asc", "price_desc", "name", "newest"]


class ProductQuery(PageQuery):
    q: str | None = Field(None, min_length=1, max_length=200)
    category: Slug | None = None
    min_price_cents: PriceFilter | None = None
    max_price_cents: PriceFilter | None = None
    in_stock: bool | None = None
    sort: Sort | None = None


class ProductIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku: Sku
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=5000)
    category: Slug
    price_cents: Cents
    currency: Currency
    stock: Stock


class ProductPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku: Sku | None = None
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=5000)
    category: Slug | None = None
    price_cents: Cents | None = None
    currency: Currency | None = None
    stock: Stock | None = None


class ProductOut(BaseModel):
    id: UUID
    sku: str
    name: str
    description: str
    category: str
    price_cents: int
    currency: str
    stock_available: int
    created_at: datetime


class CategoryOut(BaseModel):
    slug: str
    name: str
    product_count: int


class CategoryList(BaseModel):
    items: list[CategoryOut]


class ReservationLine(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product_id: UUID
    quantity: Annotated[StrictInt, Field(ge=1, le=1000)]


class ReservationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: UUID
    items: list[ReservationLine] = Field(min_length=1, max_length=100)
    ttl_seconds: Annotated[StrictInt, Field(ge=1, le=3600)] = 900


class ReservationOut(BaseModel):
    order_id: UUID
    status: str
    expires_at: datetime
    items: list[ReservationLine]
