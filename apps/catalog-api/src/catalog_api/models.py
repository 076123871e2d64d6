"""catalog-api's tables.

The full-text ``search`` column (a generated tsvector with its GIN index) and
the CHECK constraints live in migration 0002 as SQL: Tortoise does not model
them, and the database, not the application, must guarantee them.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class Category(Model):
    id = fields.UUIDField(primary_key=True)
    slug = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=120)

    class Meta:
        table = "categories"


class Product(Model):
    id = fields.UUIDField(primary_key=True)
    sku = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    category: fields.ForeignKeyRelation[Category] = fields.ForeignKeyField(
        "catalog_api.Category", related_name="products", on_delete=fields.RESTRICT
    )
    price_cents = fields.IntField()
    currency = fields.CharField(max_length=3)
    #: Physical stock. What shoppers see is stock minus live reservations.
    stock = fields.IntField()
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "products"


class ReservationStatus(StrEnum):
    HELD = "held"
    COMMITTED = "committed"
    RELEASED = "released"
    EXPIRED = "expired"


class Reservation(Model):
    """Stock held for one order; keyed (and idempotent) by the order id."""

    id = fields.UUIDField(primary_key=True)
    order_id = fields.UUIDField(unique=True)
    status = fields.CharEnumField(ReservationStatus, max_length=16, default=ReservationStatus.HELD)
    expires_at = fields.DatetimeField(db_index=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "reservations"


class ReservationItem(Model):
    id = fields.BigIntField(primary_key=True)
    reservation: fields.ForeignKeyRelation[Reservation] = fields.ForeignKeyField(
        "catalog_api.Reservation", related_name="items", on_delete=fields.CASCADE
    )
    product: fields.ForeignKeyRelation[Product] = fields.ForeignKeyField(
        "catalog_api.Product", related_name="reservation_items", on_delete=fields.CASCADE
    )
    quantity = fields.IntField()

    class Meta:
        table = "reservation_items"
