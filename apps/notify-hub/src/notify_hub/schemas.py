"""notify-hub's request and response bodies, and the ``data`` of each known event type."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, StrictInt

Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
# StrictInt: money is never a float, not even 19.0.
Cents = Annotated[StrictInt, Field(ge=0, le=100_000_000_000)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class EventIn(BaseModel):
    """The envelope the kit's outbox relay sends (``OutboxEvent.envelope()``)."""

    id: UUID
    # Liberal on purpose: an unknown type from a newer producer is acknowledged, not refused.
    type: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
    occurred_at: AwareDatetime
    subject_user_id: UUID | None
    data: dict[str, Any]


class EventAccepted(BaseModel):
    id: UUID
    status: Literal["accepted", "ignored"]


# --- the data of each known event type (extra fields are a newer producer's, and ignored) ---


class EventData(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class UserRegistered(EventData):
    email: EmailStr = Field(max_length=320)
    name: Name


class OrderLine(EventData):
    product_id: UUID
    name: Name
    quantity: Annotated[StrictInt, Field(ge=1, le=10_000)]
    unit_price_cents: Cents
    line_total_cents: Cents


class OrderConfirmed(EventData):
    order_id: UUID
    items: list[OrderLine] = Field(min_length=1, max_length=200)
    total_cents: Cents
    currency: Currency


class OrderCancelled(EventData):
    order_id: UUID
    total_cents: Cents
    currency: Currency


class PaymentRefunded(EventData):
    payment_id: UUID
    order_id: UUID
    amount_cents: Cents
    currency: Currency


#: Every event type notify-hub turns into an email; anything else is acknowledged and ignored.
EVENT_DATA: dict[str, type[EventData]] = {
    "user.registered": UserRegistered,
    "order.confirmed": OrderConfirmed,
    "order.cancelled": OrderCancelled,
    "payment.refunded": PaymentRefunded,
}


class NotificationOut(BaseModel):
    id: UUID
    type: str
    channel: Literal["email"]
    subject: str
    status: Literal["queued", "sent", "failed"]
    created_at: datetime
    sent_at: datetime | None


class UserOut(BaseModel):
    """user-auth's ``GET /internal/users/{id}``."""

    id: UUID
    email: EmailStr
    name: str
    role: str
