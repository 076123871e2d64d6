"""The delivery worker against a real SMTP server that defers, refuses, or is not there at all."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from tests.utils.notify_hub import Stack, envelope, post_event, unique_address, wait_until


async def welcome(
    http: httpx.AsyncClient, token: str, address: str, user_id: str | None = None
) -> str:
    event = envelope(
        "user.registered", {"email": address, "name": "Dana Delivery"}, user_id or str(uuid.uuid4())
    )
    response = await post_event(http, token, event)
    assert response.status_code == 202, response.text
    return str(event["id"])


async def settled(stack: Stack, event_id: str) -> dict[str, Any]:
    """The notification once it is sent or failed (nothing can change it afterwards)."""
    found: dict[str, Any] = {}

    async def done() -> bool:
        row = await stack.notification(event_id)
        if row is not None and row["status"] != "queued":
            found.update(row)
            return True
        return False

    async def state() -> object:
        return await stack.notification(event_id)

    await wait_until(done, what="sent or failed", diagnose=state)
    return found


async def test_421_for_a_while_is_retried_then_sent_once(
    notify: httpx.AsyncClient, producer: str, stack: Stack
) -> None:
    address = unique_address("deferred")
    stack.smtp.handler.defer(address, times=3)
    event_id = await welcome(notify, producer, address)
    row = await settled(stack, event_id)
    assert row["status"] == "sent" and row["sent_at"] is not None
    assert row["attempts"] == 4 and row["last_error"] is None
    assert stack.smtp.handler.refused(address) == ["421 4.7.0 Try again later"] * 3
    (received,) = stack.smtp.handler.to(address)
    assert received.message["Message-ID"] == f"<{event_id}@notify.shopflow.example>"


async def test_a_550_marks_the_notification_failed_with_the_reason(
    notify: httpx.AsyncClient, producer: str, stack: Stack
) -> None:
    shopper = await stack.register()
    stack.smtp.handler.reject(shopper.email)
    event_id = await welcome(notify, producer, shopper.email, shopper.id)
    row = await settled(stack, event_id)
    assert row["status"] == "failed" and row["sent_at"] is None
    assert row["attempts"] == 1  # permanent: never retried
    assert row["last_error"] == "550 5.1.1 Mailbox unavailable"
    assert stack.smtp.handler.to(shopper.email) == []
    # The shopper sees it as failed.
    listed = (await notify.get("/notifications", headers=shopper.auth)).json()
    assert [(n["status"], n["sent_at"]) for n in listed["items"]] == [("failed", None)]


async def test_transient_failures_give_up_after_max_attempts(
    notify: httpx.AsyncClient, producer: str, stack: Stack
) -> None:
    address = unique_address("forever")
    stack.smtp.handler.defer(address, times=-1, reply="451 4.3.0 Temporary local problem")
    event_id = await welcome(notify, producer, address)
    row = await settled(stack, event_id)
    assert row["status"] == "failed" and row["attempts"] == 8  # NOTIFY_SETTINGS max_attempts
    assert row["last_error"] == "gave up after 8 attempts: 451 4.3.0 Temporary local problem"
    assert len(stack.smtp.handler.refused(address)) == 8
    assert stack.smtp.handler.to(address) == []


async def test_connection_refused_is_retried_until_the_server_is_back(
    notify: httpx.AsyncClient, producer: str, stack: Stack
) -> None:
    address = unique_address("refused")
    stack.smtp.stop()
    try:
        event_id = await welcome(notify, producer, address)

        async def tried_twice() -> bool:
            row = await stack.notification(event_id)
            return row is not None and row["attempts"] >= 2

        await wait_until(tried_twice, what="two failed attempts")
        row = await stack.notification(event_id)
        assert row is not None and row["status"] == "queued"
        assert "connect" in row["last_error"].lower(), row["last_error"]
    finally:
        stack.smtp.start()
    row = dict(await settled(stack, event_id))
    assert row["status"] == "sent"
    assert len(stack.smtp.handler.to(address)) == 1


async def test_two_replicas_send_every_email_once(producer: str, stack: Stack) -> None:
    assert stack.notify is not None
    replica = stack.start_replica()
    addresses = [unique_address(f"replica{i}") for i in range(30)]
    async with (
        httpx.AsyncClient(base_url=stack.notify.base_url, timeout=30) as first,
        httpx.AsyncClient(base_url=replica.base_url, timeout=30) as second,
    ):
        # Half the events reach each replica; both workers claim from the same table.
        event_ids = await asyncio.gather(
            *(
                welcome(first if i % 2 else second, producer, address)
                for i, address in enumerate(addresses)
            )
        )
    for event_id in event_ids:
        assert (await settled(stack, event_id))["status"] == "sent"
    for address in addresses:
        assert len(stack.smtp.handler.to(address)) == 1, address


async def test_a_message_that_cannot_be_built_fails_once_and_for_all(stack: Stack) -> None:
    # Only a corrupted row can hold such an address (the API validates every address),
    # so the row is written directly: the worker must fail it, not claim it forever.
    event_id, user_id = uuid.uuid4(), uuid.uuid4()
    await stack.notify_rows(
        "WITH e AS (INSERT INTO inbox (id, type, subject_user_id, occurred_at, status, received_at)"
        " VALUES ($1, 'user.registered', $2, now(), 'accepted', now()) RETURNING id)"
        " INSERT INTO notifications (id, event_id, user_id, type, channel, recipient_email,"
        " recipient_name, subject, text_body, html_body, status, attempts, next_attempt_at,"
        " created_at) SELECT $3, e.id, $2, 'user.registered', 'email', 'a@b@c', 'X', 'Hi',"
        " 'text', '<p>html</p>', 'queued', 0, now(), now() FROM e",
        event_id,
        user_id,
        uuid.uuid4(),
    )
    row = await settled(stack, str(event_id))
    assert row["status"] == "failed" and row["attempts"] == 1
    assert row["last_error"].startswith("cannot build the message:")
