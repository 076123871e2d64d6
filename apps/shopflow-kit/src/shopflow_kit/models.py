"""Tables the kit adds to every service database (Tortoise app label ``kit``)."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class OutboxEvent(Model):
    """A domain event written in the same transaction as the change it records."""

    id = fields.UUIDField(primary_key=True)
    type = fields.CharField(max_length=64)
    subject_user_id = fields.UUIDField(null=True)
    data: fields.Field[dict[str, object]] = fields.JSONField()
    occurred_at = fields.DatetimeField()
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(db_index=True)
    delivered_at = fields.DatetimeField(null=True, db_index=True)
    last_error = fields.TextField(null=True)

    class Meta:
        table = "outbox"

    def envelope(self) -> dict[str, object]:
        """The wire format notify-hub's ``POST /internal/events`` accepts."""
        return {
            "id": str(self.id),
            "type": self.type,
            "occurred_at": self.occurred_at.isoformat(),
            "subject_user_id": str(self.subject_user_id) if self.subject_user_id else None,
            "data": self.data,
        }


class IdempotencyRecord(Model):
    """The first response to a request carrying an ``Idempotency-Key``."""

    id = fields.BigIntField(primary_key=True)
    scope = fields.CharField(max_length=200)
    key = fields.CharField(max_length=255)
    fingerprint = fields.CharField(max_length=64)
    status_code = fields.IntField(null=True)
    response: fields.Field[object] = fields.JSONField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "idempotency_keys"
        unique_together = (("scope", "key"),)
