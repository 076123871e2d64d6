"""order-mgmt's tables.

The CHECK constraints and the partial index the recovery loop scans live in
migration 0002 as SQL: Tortoise does not model them.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

from order_mgmt.checkout import FailureReason, Step


class Cart(Model):
    """One per shopper; its row is locked while a line is added, so currencies never mix."""

    id = fields.UUIDField(primary_key=True)
    customer_id = fields.UUIDField(unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "carts"


class CartItem(Model):
    """A product and a quantity. Name and currency are as last seen, for notes and checks;
    what the shopper is shown and charged always comes from catalog-api."""

    id = fields.BigIntField(primary_key=True)
    cart: fields.ForeignKeyRelation[Cart] = fields.ForeignKeyField(
        "order_mgmt.Cart", related_name="items", on_delete=fields.CASCADE
    )
    product_id = fields.UUIDField()
    name = fields.CharField(max_length=200)
    currency = fields.CharField(max_length=3)
    quantity = fields.IntField()
    added_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "cart_items"
        unique_together = (("cart", "product_id"),)


class Order(Model):
    """An order and the persisted state of its checkout saga (order_mgmt.checkout).

    Never holds a card: only the keyed fingerprint of the checkout request.
    """

    id = fields.UUIDField(primary_key=True)
    customer_id = fields.UUIDField()
    #: The checkout's Idempotency-Key: one order per key and shopper, whatever races.
    idempotency_key = fields.CharField(max_length=255)
    request_fingerprint = fields.CharField(max_length=64)
    step = fields.CharEnumField(Step, max_length=16)
    #: The price snapshot: ``[{product_id, name, unit_price_cents, quantity}]``.
    items: fields.Field[list[dict[str, Any]]] = fields.JSONField()
    total_cents = fields.BigIntField()
    currency = fields.CharField(max_length=3)
    shipping_address: fields.Field[dict[str, Any]] = fields.JSONField()
    payment_id = fields.UUIDField(null=True)
    charge_attempts = fields.IntField(default=0)
    reservation_expires_at = fields.DatetimeField(null=True)
    failure_reason = fields.CharEnumField(FailureReason, max_length=32, null=True)
    decline_code = fields.CharField(max_length=64, null=True)
    short_items: fields.Field[list[dict[str, Any]]] = fields.JSONField(null=True)
    #: The worker (a request or a recovery round) driving the saga, until ``lease_until``.
    #: NULL with a future ``lease_until``: parked after a 503, waiting for a retry.
    lease_owner = fields.UUIDField(null=True)
    lease_until = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "orders"
        unique_together = (("customer_id", "idempotency_key"),)
