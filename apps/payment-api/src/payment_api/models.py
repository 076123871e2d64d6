"""payment-api's one table.

Only the brand, the last 4 digits, the expiry and a keyed fingerprint of a card
are stored. The partial unique index (at most one captured payment per order)
and the CHECK constraints live in migration 0002 as SQL: Tortoise does not
model them, and the database, not the application, must guarantee them.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from payment_api.states import PaymentStatus


class Payment(Model):
    """One attempt to charge a card for an order, and what became of it."""

    id = fields.UUIDField(primary_key=True)
    order_id = fields.UUIDField(db_index=True)
    customer_id = fields.UUIDField(db_index=True)
    status = fields.CharEnumField(PaymentStatus, max_length=16)
    amount_cents = fields.IntField()
    currency = fields.CharField(max_length=3)
    card_brand = fields.CharField(max_length=16)
    card_last4 = fields.CharField(max_length=4)
    card_exp_month = fields.SmallIntField()
    card_exp_year = fields.SmallIntField()
    #: HMAC-SHA256 of the number under the configured key: recognises a card, reveals nothing.
    card_fingerprint = fields.CharField(max_length=64, db_index=True)
    acquirer = fields.CharField(max_length=32)
    acquirer_reference = fields.CharField(max_length=128, null=True)
    decline_code = fields.CharField(max_length=32, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    refunded_at = fields.DatetimeField(null=True)

    class Meta:
        table = "payments"
