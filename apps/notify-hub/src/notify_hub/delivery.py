"""The delivery worker: claims queued notifications and sends them over kept-open SMTP connections.

Every replica runs one. A claim is a single statement: it picks due rows with
``FOR UPDATE SKIP LOCKED`` (replicas never wait for, nor take, each other's
rows), counts the attempt and moves ``next_attempt_at`` a lease ahead, then
commits. The SMTP conversation happens with no transaction open; the outcome is
recorded afterwards, only by the claim that made the attempt (``attempts``
matches). A replica that dies mid-send leaves the row to be claimed again when
the lease runs out; the resent copy has the same Message-ID.

Outcomes: sent (``sent_at``); a transient failure (connection refused, a
timeout, a 4xx reply) is retried after exponential backoff with full jitter
(the kit's :func:`~shopflow_kit.outbox.backoff_delay`), until ``max_attempts``;
a permanent failure (a 5xx reply about the message) marks it failed with the
server's reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiosmtplib
from prometheus_client import Counter
from shopflow_kit.outbox import backoff_delay
from shopflow_kit.worker import PollingWorker
from tortoise import connections

from notify_hub.config import Settings
from notify_hub.emails import Envelope, build_message

log = logging.getLogger("notify.delivery")

Send = Callable[[Envelope], Awaitable[None]]

_CLAIM = """
    WITH due AS (
        SELECT id FROM notifications
        WHERE status = 'queued' AND next_attempt_at <= now()
        ORDER BY next_attempt_at, id
        LIMIT $1
        FOR UPDATE SKIP LOCKED
    )
    UPDATE notifications AS n
    SET attempts = n.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
    FROM due WHERE n.id = due.id
    RETURNING n.id, n.event_id, n.type, n.recipient_email, n.recipient_name, n.subject,
              n.text_body, n.html_body, n.created_at, n.attempts
"""
# Only the claim that made the attempt records its outcome (attempts and status still match).
_SENT = """
    UPDATE notifications SET status = 'sent', sent_at = now(), last_error = NULL
    WHERE id = $1 AND attempts = $2 AND status = 'queued'
"""
_RETRY = """
    UPDATE notifications SET next_attempt_at = now() + make_interval(secs => $3), last_error = $4
    WHERE id = $1 AND attempts = $2 AND status = 'queued'
"""
_FAIL = """
    UPDATE notifications SET status = 'failed', last_error = $3
    WHERE id = $1 AND attempts = $2 AND status = 'queued'
"""


@dataclass(frozen=True)
class Failure:
    permanent: bool
    reason: str


def classify(exc: BaseException) -> Failure:
    """Whether a failed send may succeed later, and why it failed (pure; tested on its own)."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refusals = exc.recipients
        reason = "; ".join(f"{r.code} {r.message}" for r in refusals) or "recipients refused"
        permanent = bool(refusals) and all(r.code >= 500 for r in refusals)
        return Failure(permanent, reason)
    if isinstance(
        exc,
        aiosmtplib.SMTPAuthenticationError
        | aiosmtplib.SMTPHeloError
        | aiosmtplib.SMTPConnectResponseError,
    ):
        # About the relay or our credentials, not this message: never fail mail for it.
        return Failure(False, f"{exc.code} {exc.message}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return Failure(exc.code >= 500, f"{exc.code} {exc.message}")
    return Failure(False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


class SmtpSender:
    """Sends each message over a kept-open SMTP connection, one message at a time on each.

    A connection is opened (EHLO, STARTTLS and login as configured) when none is
    idle, and kept for the next message for up to ``idle_seconds``; at most
    ``keep`` idle ones are kept. A connection that failed in any way is closed,
    never reused. A kept connection the server has closed meanwhile (its idle
    timeout, a restart), or answers 421 (closing: too many messages on one
    connection, an idle timeout), is noticed at the next message's ``MAIL
    FROM``; that message is sent again at once over a new connection.
    """

    def __init__(self, settings: Settings, *, keep: int = 4, idle_seconds: float = 30.0) -> None:
        self.settings = settings
        self.keep = keep
        self.idle_seconds = idle_seconds
        self.password = (
            settings.smtp_password.get_secret_value() if settings.smtp_password else None
        )
        # The EHLO name, looked up once: aiosmtplib would call getfqdn() in a thread for
        # every connection.
        self.local_hostname = socket.getfqdn()
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self._closed = False

    async def __call__(self, envelope: Envelope) -> None:
        kept = self._take()
        if kept is not None:
            try:
                await self._send_on(kept, envelope)
                return
            except aiosmtplib.SMTPServerDisconnected:
                pass  # closed while idle: try once more on a fresh connection
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code != 421:
                    raise
                # "421 closing": the server ends this connection, not this message.
        await self._send_on(await self._connect(), envelope)

    async def aclose(self) -> None:
        """Say goodbye on every idle connection; a send still under way closes its own."""
        self._closed = True
        idle, self._idle = self._idle, []
        for smtp, _ in idle:
            with contextlib.suppress(Exception):
                await smtp.quit(timeout=self.settings.smtp_timeout_seconds)
            smtp.close()

    def _take(self) -> aiosmtplib.SMTP | None:
        now = time.monotonic()
        while self._idle:
            smtp, since = self._idle.pop()
            if smtp.is_connected and now - since < self.idle_seconds:
                return smtp
            smtp.close()
        return None

    async def _connect(self) -> aiosmtplib.SMTP:
        smtp = aiosmtplib.SMTP(
            hostname=self.settings.smtp_host,
            port=self.settings.smtp_port,
            use_tls=False,
            start_tls=self.settings.smtp_starttls,
            username=self.settings.smtp_username,
            password=self.password,
            timeout=self.settings.smtp_timeout_seconds,
            local_hostname=self.local_hostname,
        )
        await smtp.connect()
        return smtp

    async def _send_on(self, smtp: aiosmtplib.SMTP, envelope: Envelope) -> None:
        try:
            await smtp.send_message(
                envelope.message,
                sender=envelope.sender,
                # The envelope names the one recipient; no header can add another.
                recipients=[envelope.recipient],
            )
        except BaseException:
            smtp.close()
            raise
        if not self._closed and len(self._idle) < self.keep:
            self._idle.append((smtp, time.monotonic()))
        else:
            smtp.close()


class DeliveryWorker(PollingWorker):
    """Sends queued notifications until cancelled; safe to run in every replica."""

    failure_message = "delivery round failed"

    def __init__(
        self, settings: Settings, send: Send | None = None, outcomes: Counter | None = None
    ) -> None:
        super().__init__(
            batch_size=settings.delivery_batch_size,
            poll_interval=settings.delivery_poll_seconds,
            log=log,
        )
        self.settings = settings
        self.send = send or SmtpSender(settings)
        self.outcomes = outcomes

    async def aclose(self) -> None:
        """Close the sender's kept connections, if it keeps any."""
        close = getattr(self.send, "aclose", None)
        if close is not None:
            await close()

    async def run_once(self) -> int:
        """Claim one batch of due notifications and send them; returns how many were claimed."""
        claimed = await connections.get("default").execute_query_dict(
            _CLAIM, [self.batch_size, self.settings.delivery_lease_seconds]
        )
        outcomes = await asyncio.gather(
            *(self._deliver(row) for row in claimed), return_exceptions=True
        )
        for row, outcome in zip(claimed, outcomes, strict=True):
            if isinstance(outcome, Exception):
                # Recording failed (the database, say): the lease hands it out again.
                log.error("delivery not recorded", exc_info=outcome, extra=self._log_fields(row))
        return len(claimed)

    async def _deliver(self, row: dict[str, Any]) -> None:
        try:
            envelope = build_message(
                event_id=row["event_id"],
                mail_from=self.settings.mail_from,
                domain=self.settings.message_id_domain,
                recipient_email=row["recipient_email"],
                recipient_name=row["recipient_name"],
                subject=row["subject"],
                text=row["text_body"],
                html=row["html_body"],
                created_at=row["created_at"],
            )
        except Exception as exc:
            # A message the email package refuses to build never will be: fail it now,
            # rather than claiming it again after every lease.
            await self._failed(row, Failure(True, f"cannot build the message: {exc}"))
            return
        try:
            # Never outlive the lease: past it, another replica may claim the row.
            async with asyncio.timeout(self.settings.delivery_lease_seconds / 2):
                await self.send(envelope)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._failed(row, classify(exc))
        else:
            await self._record(_SENT, row["id"], row["attempts"])
            self._count(row, "sent")
            log.info("email sent", extra=self._log_fields(row))

    async def _failed(self, row: dict[str, Any], failure: Failure) -> None:
        attempts: int = row["attempts"]
        fields = {**self._log_fields(row), "reason": failure.reason}
        if failure.permanent or attempts >= self.settings.max_attempts:
            reason = (
                failure.reason
                if failure.permanent
                else (f"gave up after {attempts} attempts: {failure.reason}")
            )
            await self._record(_FAIL, row["id"], attempts, reason[:1000])
            self._count(row, "failed")
            log.warning("email failed", extra=fields)
            return
        delay = backoff_delay(
            attempts, self.settings.retry_base_seconds, self.settings.retry_max_seconds
        )
        await self._record(_RETRY, row["id"], attempts, delay, failure.reason[:1000])
        self._count(row, "retried")
        log.info("email send will be retried", extra={**fields, "retry_in_s": round(delay, 2)})

    async def _record(self, sql: str, notification_id: uuid.UUID, *params: Any) -> None:
        await connections.get("default").execute_query(sql, [notification_id, *params])

    def _count(self, row: dict[str, Any], outcome: str) -> None:
        if self.outcomes is not None:
            self.outcomes.labels(row["type"], outcome).inc()

    @staticmethod
    def _log_fields(row: dict[str, Any]) -> dict[str, Any]:
        # The address is personal data: logs carry ids and counts, never the recipient.
        return {
            "notification_id": str(row["id"]),
            "event_id": str(row["event_id"]),
            "attempt": row["attempts"],
        }
