"""Transactional outbox: events are written with the state change and relayed later.

``publish`` is called inside the transaction that changes state, so an event
exists if and only if the change committed. ``OutboxRelay`` delivers pending
events at least once; receivers de-duplicate on the event id.

An event its receiver refuses as malformed (:class:`EventRejected`) cannot be
helped by retrying: it is parked (``next_attempt_at`` = :data:`PARKED`, the
answer in ``last_error``) and logged as an error, instead of being retried for
ever. Setting ``next_attempt_at`` back to ``now()`` re-drives it once fixed.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.transactions import in_transaction

from shopflow_kit.config import ServiceSettings
from shopflow_kit.models import OutboxEvent
from shopflow_kit.service_client import ServiceTokenClient
from shopflow_kit.worker import PollingWorker

log = logging.getLogger("shopflow.outbox")

Deliver = Callable[[OutboxEvent], Awaitable[None]]

#: ``next_attempt_at`` of a parked event: never due again by itself.
PARKED = datetime(9999, 1, 1, tzinfo=UTC)
#: Answers that say the event itself is wrong. 401, 403 and 404 are left to retry:
#: they mean a token, a scope or a URL to fix, after which the event goes through.
REJECTING_STATUSES = frozenset({400, 413, 415, 422})


class EventRejected(Exception):
    """The receiver refused the event itself; the same event would be refused again."""


def utcnow() -> datetime:
    return datetime.now(UTC)


async def publish(
    type_: str,
    data: dict[str, Any],
    *,
    subject_user_id: uuid.UUID | str | None = None,
) -> OutboxEvent:
    """Record an event; call it inside the state-changing transaction."""
    now = utcnow()
    return await OutboxEvent.create(
        id=uuid.uuid4(),
        type=type_,
        subject_user_id=subject_user_id,
        data=data,
        occurred_at=now,
        next_attempt_at=now,
    )


def publish_with(
    source: str,
    type_: str,
    data: dict[str, Any],
    *,
    subject_user_id: uuid.UUID | str | None = None,
    first: int,
) -> tuple[str, list[Any]]:
    """``publish`` as an ``INSERT ... SELECT ... FROM source``, and its parameters.

    For a data-modifying CTE in the statement that makes the change itself:
    ``source`` names that change's CTE, and the event is recorded only if it
    yields a row. Parameters are numbered from ``$first``. The row is the one
    ``publish`` writes, so the relay cannot tell the two apart.
    """
    now = utcnow()
    encode = OutboxEvent._meta.fields_map["data"].to_db_value
    n = first
    sql = (
        "INSERT INTO outbox (id, type, subject_user_id, data, occurred_at, attempts, "  # noqa: S608 - our own names
        f"next_attempt_at) SELECT ${n}::uuid, ${n + 1}::text, ${n + 2}::uuid, ${n + 3}::jsonb, "
        f"${n + 4}::timestamptz, 0, ${n + 4}::timestamptz FROM {source}"
    )
    subject = uuid.UUID(str(subject_user_id)) if subject_user_id is not None else None
    return sql, [uuid.uuid4(), type_, subject, encode(data, OutboxEvent), now]


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter (AWS architecture blog's recommendation)."""
    return random.uniform(0, min(cap, base * 2 ** max(attempt - 1, 0)))


#: clock_timestamp(), not now(): the round's transaction began before these deliveries.
_MARK_DELIVERED = "UPDATE outbox SET delivered_at = clock_timestamp() WHERE id = ANY($1::uuid[])"


class OutboxRelay(PollingWorker):
    """Delivers pending events; safe to run in every replica (rows are locked, skipped)."""

    failure_message = "outbox relay round failed"

    def __init__(
        self,
        deliver: Deliver,
        *,
        batch_size: int = 50,
        poll_interval: float = 1.0,
        base_delay: float = 0.5,
        max_delay: float = 60.0,
    ) -> None:
        super().__init__(batch_size=batch_size, poll_interval=poll_interval, log=log)
        self.deliver = deliver
        self.base_delay = base_delay
        self.max_delay = max_delay

    async def run_once(self) -> int:
        """Deliver one batch of due events; return how many were delivered.

        The batch is one transaction, so the delivered ones are marked together
        at its end: no event is marked before the round commits either way.
        """
        delivered: list[uuid.UUID] = []
        async with in_transaction() as conn:
            events = (
                await OutboxEvent.filter(delivered_at=None, next_attempt_at__lte=utcnow())
                .order_by("occurred_at")
                .limit(self.batch_size)
                .select_for_update(skip_locked=True)
            )
            for event in events:
                try:
                    await self.deliver(event)
                except EventRejected as exc:  # kept, but not retried: see the module doc
                    event.attempts += 1
                    event.next_attempt_at = PARKED
                    event.last_error = f"rejected: {exc}"[:500]
                    log.error(
                        "outbox event rejected by its receiver and parked",
                        extra={"event_id": str(event.id), "type": event.type, "error": str(exc)},
                    )
                    await event.save(update_fields=["attempts", "next_attempt_at", "last_error"])
                except Exception as exc:  # a failed delivery is retried, never lost
                    event.attempts += 1
                    delay = backoff_delay(event.attempts, self.base_delay, self.max_delay)
                    event.next_attempt_at = utcnow() + timedelta(seconds=delay)
                    event.last_error = f"{type(exc).__name__}: {exc}"[:500]
                    log.warning(
                        "outbox delivery failed",
                        extra={"event_id": str(event.id), "attempts": event.attempts},
                    )
                    await event.save(update_fields=["attempts", "next_attempt_at", "last_error"])
                else:
                    delivered.append(event.id)
            if delivered:
                await conn.execute_query(_MARK_DELIVERED, [delivered])
        return len(delivered)


class HttpEventSink:
    """Delivers an event to notify-hub's ``POST /internal/events`` with a service token."""

    def __init__(self, client: ServiceTokenClient, url: str) -> None:
        self.client = client
        self.url = url

    async def __call__(self, event: OutboxEvent) -> None:
        response = await self.client.post(self.url, json=event.envelope())
        if response.status_code in REJECTING_STATUSES:
            raise EventRejected(
                f"{self.url} answered {response.status_code}: {response.text[:300]}"
            )
        if response.status_code >= 300:
            raise RuntimeError(f"{self.url} answered {response.status_code}")


def relay_task(settings: ServiceSettings, **options: float) -> Callable[[Any], Awaitable[None]]:
    """A ``create_app(background=...)`` task relaying this service's outbox to notify-hub."""

    async def run(_app: Any) -> None:
        if not settings.oauth_client_id or settings.oauth_client_secret is None:
            log.warning("outbox relay disabled: no OAuth client configured")
            return
        client = ServiceTokenClient(
            settings.oauth_token_url,
            settings.oauth_client_id,
            settings.oauth_client_secret.get_secret_value(),
            ["notifications:publish"],
            resolve=settings.resolve_url,
        )
        sink = HttpEventSink(client, f"{settings.notify_hub_url.rstrip('/')}/internal/events")
        relay = OutboxRelay(sink, **options)  # type: ignore[arg-type]
        try:
            await relay.run()
        finally:
            await client.aclose()

    return run
