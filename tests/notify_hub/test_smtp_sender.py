"""notify-hub's SMTP connections, against a real aiosmtpd server on loopback."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiosmtplib
import pytest
from notify_hub.config import Settings
from notify_hub.delivery import SmtpSender
from notify_hub.emails import Envelope, build_message

from tests.utils.notify_hub import SmtpServer, unique_address


def envelope(recipient: str) -> Envelope:
    return build_message(
        event_id=uuid.uuid4(),
        mail_from="ShopFlow <shop@example.com>",
        domain="example.com",
        recipient_email=recipient,
        recipient_name="Ann",
        subject="Hello",
        text="Hello.",
        html="<p>Hello.</p>",
        created_at=datetime.now(UTC),
    )


@pytest.fixture
async def sender(smtp: SmtpServer) -> AsyncIterator[SmtpSender]:
    sender = SmtpSender(Settings(smtp_port=smtp.port))
    yield sender
    await sender.aclose()


def peers(smtp: SmtpServer, *addresses: str) -> list[object]:
    return [received.peer for a in addresses for received in smtp.handler.to(a)]


async def test_messages_in_turn_share_one_connection(smtp: SmtpServer, sender: SmtpSender) -> None:
    addresses = [unique_address("kept") for _ in range(3)]
    for address in addresses:
        await sender(envelope(address))
    sent = peers(smtp, *addresses)
    assert len(sent) == 3
    assert len(set(sent)) == 1


async def test_a_connection_the_server_closed_is_replaced_without_losing_the_message(
    smtp: SmtpServer, sender: SmtpSender
) -> None:
    first, second = unique_address("before"), unique_address("after")
    await sender(envelope(first))
    smtp.stop()  # closes the kept connection, as an idle timeout or a restart would
    smtp.start()
    await sender(envelope(second))
    assert len(smtp.handler.to(second)) == 1
    assert peers(smtp, first) != peers(smtp, second)


async def test_a_connection_that_failed_is_never_reused(
    smtp: SmtpServer, sender: SmtpSender
) -> None:
    before, refused, after = (unique_address(p) for p in ("ok", "refused", "next"))
    smtp.handler.reject(refused)
    await sender(envelope(before))
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await sender(envelope(refused))
    await sender(envelope(after))
    assert peers(smtp, before) != peers(smtp, after)


async def test_a_421_on_a_kept_connection_sends_the_message_on_a_new_one(
    smtp: SmtpServer, sender: SmtpSender
) -> None:
    first, second = unique_address("one-per"), unique_address("connection")
    smtp.handler.limit_per_connection(1)
    try:
        await sender(envelope(first))
        await sender(envelope(second))  # the kept connection answers 421 at MAIL FROM
    finally:
        smtp.handler.limit_per_connection(None)
    assert len(smtp.handler.to(second)) == 1
    assert peers(smtp, first) != peers(smtp, second)


async def test_a_closed_sender_keeps_no_connection(smtp: SmtpServer) -> None:
    sender = SmtpSender(Settings(smtp_port=smtp.port))
    await sender.aclose()
    await sender(envelope(unique_address("after-close")))  # still sends...
    assert sender._idle == []  # ...and closes the connection it opened


async def test_an_idle_connection_is_not_kept_past_its_time(smtp: SmtpServer) -> None:
    sender = SmtpSender(Settings(smtp_port=smtp.port), idle_seconds=0)
    try:
        first, second = unique_address("one"), unique_address("two")
        await sender(envelope(first))
        await sender(envelope(second))
        assert peers(smtp, first) != peers(smtp, second)
    finally:
        await sender.aclose()
