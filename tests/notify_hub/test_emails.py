"""The pure core: money, safe headers, templates, MIME, failure classification and settings."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from email import message_from_bytes, policy
from typing import Any

import aiosmtplib
import jinja2
import pytest
from notify_hub import emails
from notify_hub.config import Settings
from notify_hub.delivery import classify
from notify_hub.emails import Envelope, Templates, build_message, format_money, header_text
from notify_hub.schemas import EVENT_DATA
from pydantic import ValidationError

SAMPLES: dict[str, dict[str, Any]] = {
    "user.registered": {"email": "ann@example.com", "name": "Ann"},
    "order.confirmed": {
        "order_id": str(uuid.uuid4()),
        "items": [
            {
                "product_id": str(uuid.uuid4()),
                "name": "Lamp <b>",
                "quantity": 2,
                "unit_price_cents": 1000,
                "line_total_cents": 2000,
            }
        ],
        "total_cents": 2000,
        "currency": "USD",
    },
    "order.cancelled": {"order_id": str(uuid.uuid4()), "total_cents": 2000, "currency": "USD"},
    "payment.refunded": {
        "payment_id": str(uuid.uuid4()),
        "order_id": str(uuid.uuid4()),
        "amount_cents": 2000,
        "currency": "USD",
    },
}


@pytest.mark.parametrize(
    ("cents", "currency", "expected"),
    [
        (1999, "USD", "$19.99"),
        (5, "USD", "$0.05"),
        (0, "USD", "$0.00"),
        (123456789, "EUR", "€1,234,567.89"),
        (1099, "GBP", "£10.99"),
        (1500, "JPY", "¥1,500"),  # no minor units
        (1234, "BHD", "BHD1.234"),  # three minor units
    ],
)
def test_money_from_integer_minor_units(cents: int, currency: str, expected: str) -> None:
    assert format_money(cents, currency) == expected


def test_header_text_is_one_line_and_bounded() -> None:
    assert header_text("a\r\nBcc: x@y\n\tz\x00\u2028w") == "a Bcc: x@y z w"
    long = header_text("x" * 500)
    assert len(long) == 200 and long.endswith("…")


def context(type_: str) -> dict[str, Any]:
    return {
        "event": {"id": str(uuid.uuid4()), "occurred_at": datetime.now(UTC)},
        "recipient": {"email": "ann@example.com", "name": "Ann <i>"},
        "data": EVENT_DATA[type_].model_validate(SAMPLES[type_]).model_dump(),
    }


@pytest.mark.parametrize("type_", sorted(EVENT_DATA))
def test_every_type_renders_text_and_escaped_html(type_: str) -> None:
    email = Templates(EVENT_DATA).render(type_, context(type_))
    assert email.subject and "\n" not in email.subject
    assert "<html" in email.html and "<html" not in email.text
    if type_ != "user.registered":
        assert "Ann &lt;i&gt;" in email.html and "Ann <i>" in email.text
        assert "$20.00" in email.text and "$20.00" in email.html
    if type_ == "order.confirmed":
        assert "Lamp &lt;b&gt;" in email.html and "Lamp <b>" in email.text


def test_a_missing_variable_fails_the_render() -> None:
    values = context("order.cancelled")
    del values["data"]["total_cents"]
    with pytest.raises(jinja2.UndefinedError):
        Templates(EVENT_DATA).render("order.cancelled", values)


def test_a_type_without_templates_fails_at_load() -> None:
    with pytest.raises(jinja2.TemplateNotFound):
        Templates(["order.shipped"])


def _envelope(**given: Any) -> Envelope:
    """A message from the local sender to ann@example.com; ``given`` overrides any field."""
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "mail_from": "ShopFlow <no-reply@shopflow.example>",
        "domain": "notify.shopflow.example",
        "recipient_email": "ann@example.com",
        "recipient_name": "Ann",
        "subject": "Hi",
        "text": "plain",
        "html": "<p>html</p>",
        "created_at": datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
    }
    return build_message(**(fields | given))


def test_message_headers_cannot_be_injected() -> None:
    event_id = uuid.uuid4()
    envelope = _envelope(
        event_id=event_id,
        recipient_name='Ann\r\nBcc: thief@evil.test, "Ö"',
        subject="Hi\nX-Injected: 1 — ünïcode",
    )
    assert (envelope.sender, envelope.recipient) == ("no-reply@shopflow.example", "ann@example.com")
    raw = envelope.message.as_bytes(policy=policy.SMTP)
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Bcc"] is None and parsed["X-Injected"] is None
    assert [a.addr_spec for a in parsed["To"].addresses] == ["ann@example.com"]
    assert parsed["To"].addresses[0].display_name == 'Ann Bcc: thief@evil.test, "Ö"'
    assert parsed["Subject"] == "Hi X-Injected: 1 — ünïcode"
    assert parsed["Message-ID"] == f"<{event_id}@notify.shopflow.example>"
    assert parsed["Date"] == "Sun, 01 Mar 2026 12:00:00 +0000"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]


def _flattened(**names: str) -> bytes:
    random.seed(16)  # the MIME boundary is random
    envelope = _envelope(
        event_id=uuid.UUID(int=16), text="Thanks — 12,00 €", html="<p>— 12,00 €</p>", **names
    )
    return aiosmtplib.email.flatten_message(envelope.message)


@pytest.mark.parametrize(
    "names",
    [
        {"recipient_name": "Ann", "subject": "Your order is confirmed"},
        {"recipient_name": "Zoë “Z”, Jr.", "subject": "Bestellung bestätigt — 12,00 €"},
        {"recipient_name": "a" * 150, "subject": "fold " * 40},
    ],
)
def test_the_cached_header_classes_write_what_the_stdlib_policy_writes(
    names: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = _flattened(**names)
    monkeypatch.setattr(emails, "POLICY", policy.default)
    assert ours == _flattened(**names)


def test_each_header_class_is_made_once() -> None:
    made = emails.HEADERS
    assert emails.POLICY.header_factory is made
    assert made["Subject"] is made["subject"]
    assert made["To"] is made["Cc"]  # both address lists
    assert made["X-Anything"] is made["X-Other"]  # the default class
    assert made["Subject"] is not made["To"]
    assert type(_envelope().message["Subject"]) is made["Subject"]


@pytest.mark.parametrize(
    ("error", "permanent", "reason"),
    [
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(550, "5.1.1 No such user", "a@b.c")]
            ),
            True,
            "550 5.1.1 No such user",
        ),
        (
            aiosmtplib.SMTPRecipientsRefused(
                [aiosmtplib.SMTPRecipientRefused(450, "4.2.1 Mailbox busy", "a@b.c")]
            ),
            False,
            "450 4.2.1 Mailbox busy",
        ),
        (
            aiosmtplib.SMTPDataError(421, "4.7.0 Try again later"),
            False,
            "421 4.7.0 Try again later",
        ),
        (aiosmtplib.SMTPDataError(554, "5.7.1 Spam"), True, "554 5.7.1 Spam"),
        (
            aiosmtplib.SMTPSenderRefused(553, "5.7.1 Sender refused", "x@y"),
            True,
            "553 5.7.1 Sender refused",
        ),
        # The relay or our credentials, not this message: retried, never failed outright.
        (
            aiosmtplib.SMTPAuthenticationError(535, "5.7.8 Bad credentials"),
            False,
            "535 5.7.8 Bad credentials",
        ),
        (aiosmtplib.SMTPConnectResponseError(554, "No service"), False, "554 No service"),
        (
            aiosmtplib.SMTPConnectError("Error connecting"),
            False,
            "SMTPConnectError: Error connecting",
        ),
        (aiosmtplib.SMTPReadTimeoutError("Timed out"), False, "SMTPReadTimeoutError: Timed out"),
        (
            ConnectionRefusedError(111, "Connection refused"),
            False,
            "ConnectionRefusedError: [Errno 111] Connection refused",
        ),
        (TimeoutError(), False, "TimeoutError"),
    ],
)
def test_failures_are_classified(error: Exception, permanent: bool, reason: str) -> None:
    failure = classify(error)
    assert (failure.permanent, failure.reason) == (permanent, reason)


def test_settings_defaults_are_the_local_sink() -> None:
    settings = Settings()
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_starttls) == (
        "127.0.0.1",
        1025,
        False,
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"smtp_username": "u", "smtp_password": "p"}, "only sent over STARTTLS"),
        ({"smtp_starttls": True, "smtp_username": "u"}, "go together"),
        ({"smtp_timeout_seconds": 30, "delivery_lease_seconds": 60}, "at least 10 x"),
        ({"mail_from": "nobody"}, "must be an address"),
        ({"smtp_port": 0}, "smtp_port"),
    ],
)
def test_unsafe_settings_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**values)
