"""notify-hub's tables: the inbox, its copy of user addresses, and the notifications."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class InboxStatus(StrEnum):
    ACCEPTED = "accepted"
    IGNORED = "ignored"


class InboxEvent(Model):
    """Every event id ever received; its primary key is what makes redelivery a no-op."""

    id = fields.UUIDField(primary_key=True)
    type = fields.CharField(max_length=64)
    subject_user_id = fields.UUIDField(null=True)
    occurred_at = fields.DatetimeField()
    status = fields.CharEnumField(InboxStatus, max_length=16)
    received_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "inbox"


class Recipient(Model):
    """notify-hub's own copy of a user's address, fed by ``user.registered``."""

    user_id = fields.UUIDField(primary_key=True)
    email = fields.CharField(max_length=320)
    name = fields.CharField(max_length=200)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "recipients"


class NotificationStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


class Notification(Model):
    """One email, rendered when its event arrived, sent by the delivery worker."""

    id = fields.UUIDField(primary_key=True)
    #: The inbox event that created it: at most one notification per event.
    event_id = fields.UUIDField(unique=True)
    user_id = fields.UUIDField()
    type = fields.CharField(max_length=64)
    channel = fields.CharField(max_length=16, default="email")
    recipient_email = fields.CharField(max_length=320)
    recipient_name = fields.CharField(max_length=200)
    subject = fields.CharField(max_length=200)
    text_body = fields.TextField()
    html_body = fields.TextField()
    status = fields.CharEnumField(
        NotificationStatus, max_length=16, default=NotificationStatus.QUEUED
    )
    #: Sends tried so far; a claim increments it, and only that claim may record the outcome.
    attempts = fields.IntField(default=0)
    #: When the worker may claim it: now, after a backoff, or after a claim's lease.
    next_attempt_at = fields.DatetimeField()
    last_error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "notifications"
        indexes = (("user_id", "created_at"),)
