"""notify-hub's use cases: receiving events exactly once, and listing a user's notifications.

Events arrive at least once (the producers' outbox relays retry until they get
a 2xx). The inbox turns that into exactly once: the event's row in ``inbox``
and the notification it creates are written by one statement, and the row is
inserted with ``ON CONFLICT (id) DO NOTHING``. A concurrent redelivery waits on
the primary key until the first statement commits, then finds the row and
answers what the first delivery answered; no read-then-write race is possible.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError
from pydantic import ValidationError
from shopflow_kit.errors import Problem, validation_errors
from shopflow_kit.http import PageQuery
from shopflow_kit.service_client import ServiceTokenClient

from notify_hub.config import Settings
from notify_hub.emails import Templates
from notify_hub.models import InboxEvent, InboxStatus, Notification, Recipient
from notify_hub.schemas import EVENT_DATA, EventData, EventIn, UserOut, UserRegistered

log = logging.getLogger("notify.events")

USERS_READ = "users:read"


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- recipients -----------------------------------------------------------------------


@dataclass(frozen=True)
class Contact:
    email: str
    name: str


class RecipientUnavailable(Exception):
    """user-auth could not be asked right now; the event is to be delivered again later."""


class UserDirectory:
    """user-auth's ``GET /internal/users/{id}``, called with a cached ``users:read`` token."""

    def __init__(self, settings: Settings) -> None:
        self.base_url = settings.user_auth_url.rstrip("/")
        self.client: ServiceTokenClient | None = None
        if settings.oauth_client_id and settings.oauth_client_secret is not None:
            self.client = ServiceTokenClient(
                settings.oauth_token_url,
                settings.oauth_client_id,
                settings.oauth_client_secret.get_secret_value(),
                [USERS_READ],
            )

    async def find(self, user_id: uuid.UUID) -> Contact | None:
        """The user's address, or None when user-auth knows no such user."""
        if self.client is None:
            raise RecipientUnavailable("no OAuth client is configured for user look-ups")
        try:
            response = await self.client.get(f"{self.base_url}/internal/users/{user_id}")
        except (httpx.HTTPError, AuthlibBaseError, ValueError) as exc:
            raise RecipientUnavailable(f"user-auth is unreachable: {type(exc).__name__}") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RecipientUnavailable(f"user-auth answered {response.status_code}")
        try:
            user = UserOut.model_validate_json(response.content)
        except ValidationError as exc:
            raise RecipientUnavailable("user-auth answered an unexpected body") from exc
        return Contact(str(user.email), user.name)

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()


async def _recipient(
    user_id: uuid.UUID, data: EventData, directory: UserDirectory
) -> tuple[Contact | None, bool]:
    """Who to mail, and whether to keep (or refresh) notify-hub's copy of the address."""
    if isinstance(data, UserRegistered):
        return Contact(str(data.email), data.name), True
    copy = await Recipient.get_or_none(user_id=user_id)
    if copy is not None:
        return Contact(copy.email, copy.name), False
    try:
        found = await directory.find(user_id)
    except RecipientUnavailable as exc:
        log.warning("recipient look-up failed", extra={"user_id": str(user_id), "error": str(exc)})
        raise Problem(
            503,
            "the recipient's address cannot be looked up right now; deliver the event again",
            headers={"Retry-After": "5"},
        ) from None
    return found, found is not None


# --- receiving events ------------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    """The answer to one delivery of an event."""

    event_id: uuid.UUID
    status: InboxStatus
    first: bool  #: False: a redelivery, answered with the first delivery's answer
    queued: bool  #: a notification was queued by this delivery

    def body(self) -> dict[str, str]:
        return {"id": str(self.event_id), "status": str(self.status)}


@dataclass(frozen=True)
class _Outcome:
    status: InboxStatus
    notification: dict[str, Any] | None = None
    contact: Contact | None = None
    keep_copy: bool = False
    replace_copy: bool = False


def _parse_data(event: EventIn) -> EventData:
    model = EVENT_DATA[event.type]
    try:
        return model.model_validate(event.data)
    except ValidationError as exc:
        errors = [{**e, "field": f"data.{e['field']}"} for e in validation_errors(exc)]
        raise Problem(422, f"invalid data for {event.type}", errors=errors) from None


async def _decide(event: EventIn, directory: UserDirectory, templates: Templates) -> _Outcome:
    """What this event means, worked out before any row is written (it may call user-auth)."""
    if event.type not in EVENT_DATA:
        log.warning(
            "ignoring an event of an unknown type",
            extra={"event_id": str(event.id), "event_type": event.type},
        )
        return _Outcome(InboxStatus.IGNORED)
    data = _parse_data(event)
    if event.subject_user_id is None:
        raise Problem(
            422,
            f"{event.type} needs the user it is about",
            errors=[{"field": "subject_user_id", "message": "required for this event type"}],
        )
    contact, keep = await _recipient(event.subject_user_id, data, directory)
    if contact is None:
        log.warning(
            "ignoring an event about a user user-auth does not know",
            extra={"event_id": str(event.id), "user_id": str(event.subject_user_id)},
        )
        return _Outcome(InboxStatus.IGNORED)
    email = templates.render(
        event.type,
        {
            "event": {"id": str(event.id), "occurred_at": event.occurred_at},
            "recipient": {"email": contact.email, "name": contact.name},
            "data": data.model_dump(),
        },
    )
    notification = {
        "id": uuid.uuid4(),
        "event_id": event.id,
        "user_id": event.subject_user_id,
        "type": event.type,
        "recipient_email": contact.email,
        "recipient_name": contact.name,
        "subject": email.subject,
        "text_body": email.text,
        "html_body": email.html,
        "next_attempt_at": utcnow(),
    }
    replace = isinstance(data, UserRegistered)
    return _Outcome(InboxStatus.ACCEPTED, notification, contact, keep, replace)


_INBOX_INSERT = (
    "INSERT INTO inbox (id, type, subject_user_id, occurred_at, status, received_at) "
    "VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT (id) DO NOTHING RETURNING id"
)
#: With the inbox row, in the same statement: the notification, and notify-hub's
#: copy of the address. Each part only happens if the inbox row was inserted (the
#: first delivery), and one statement commits or fails as a whole.
_QUEUE = """
    , queued AS (
        INSERT INTO notifications (id, event_id, user_id, type, channel, recipient_email,
            recipient_name, subject, text_body, html_body, status, attempts,
            next_attempt_at, created_at)
        SELECT $6, id, $3, $2, 'email', $7, $8, $9, $10, $11, 'queued', 0, $12, now()
        FROM first
    )"""
_KEEP = """
    , kept AS (
        INSERT INTO recipients (user_id, email, name, updated_at)
        SELECT $3, ${email}, ${name}, now() FROM first
        ON CONFLICT (user_id) DO {action}
    )"""
# user.registered carries the truth and replaces a copy; a looked-up copy never
# overwrites one that a user.registered wrote meanwhile.
_REPLACE_COPY = "UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name, updated_at = now()"


def _intake(outcome: _Outcome) -> tuple[str, list[Any]]:
    """The one statement that records a first delivery, and its parameters after $5."""
    if outcome.notification is None and not outcome.keep_copy:
        return _INBOX_INSERT, []
    sql, params = f"WITH first AS ({_INBOX_INSERT})", []
    if (n := outcome.notification) is not None:
        sql += _QUEUE
        params += [n["id"], n["recipient_email"], n["recipient_name"], n["subject"]]
        params += [n["text_body"], n["html_body"], n["next_attempt_at"]]
    if outcome.keep_copy:
        assert outcome.contact is not None
        email = 6 + len(params)
        action = _REPLACE_COPY if outcome.replace_copy else "NOTHING"
        sql += _KEEP.format(email=email, name=email + 1, action=action)
        params += [outcome.contact.email, outcome.contact.name]
    return sql + " SELECT id FROM first", params  # noqa: S608 - our own fragments


async def _replay(event: EventIn) -> Receipt | None:
    first = await InboxEvent.get_or_none(id=event.id)
    if first is None:
        return None
    if first.type != event.type:
        log.warning(
            "an event id was reused for another type; the first delivery stands",
            extra={"event_id": str(event.id), "first": first.type, "now": event.type},
        )
    return Receipt(first.id, first.status, first=False, queued=False)


async def receive_event(event: EventIn, directory: UserDirectory, templates: Templates) -> Receipt:
    """Record ``event`` once and queue its email; a redelivery gets the first answer.

    The inbox insert decides which delivery is first. Nothing is read before it:
    first deliveries are the common case, and a redelivery only costs a render.
    A redelivery that could not be decided now (user-auth down, an id reused with
    another payload) still gets the first delivery's answer.
    """
    try:
        outcome = await _decide(event, directory, templates)
    except Problem:
        replayed = await _replay(event)
        if replayed is None:
            raise
        return replayed
    sql, more = _intake(outcome)
    inserted = await Notification._meta.db.execute_query_dict(
        sql,
        [
            event.id,
            event.type,
            event.subject_user_id,
            event.occurred_at,
            outcome.status.value,
            *more,
        ],
    )
    if inserted:
        queued = outcome.notification is not None
        return Receipt(event.id, outcome.status, first=True, queued=queued)
    # A delivery of the same event committed first (or we waited on its key).
    replayed = await _replay(event)
    assert replayed is not None, "the conflicting inbox row is committed"
    return replayed


# --- the public API ----------------------------------------------------------------------


def _public(notification: Notification) -> dict[str, Any]:
    return {
        "id": str(notification.id),
        "type": notification.type,
        "channel": notification.channel,
        "subject": notification.subject,
        "status": str(notification.status),
        "created_at": rfc3339(notification.created_at),
        "sent_at": rfc3339(notification.sent_at),
    }


async def list_notifications(subject: str, query: PageQuery) -> tuple[list[dict[str, Any]], int]:
    """The caller's own notifications, newest first."""
    try:
        user_id = uuid.UUID(subject)
    except ValueError:
        return [], 0  # a token whose subject is no user id owns no notifications
    mine = Notification.filter(user_id=user_id)
    total = await mine.count()
    rows = (
        await mine.order_by("-created_at", "-id").offset(query.offset).limit(query.page_size)
        if total > query.offset
        else []
    )
    return [_public(n) for n in rows], total
