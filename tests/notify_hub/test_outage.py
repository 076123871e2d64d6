"""notify-hub down while users register at a real user-auth: every welcome arrives exactly once.

user-auth's own outbox relay (the kit's ``relay_task``, a service token with
``notifications:publish`` from user-auth itself) delivers to notify-hub's real
``POST /internal/events``. notify-hub is not running at all for the outage
(``NOTIFY_OUTAGE_SECONDS``, 60 by default as the issue asks); users keep
registering throughout. After notify-hub starts, the relay's backoff (capped at
60 s) brings every event over, and each user gets one welcome email.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.utils.factories import PASSWORD
from tests.utils.notify_hub import Stack, unique_address, wait_until

OUTAGE_SECONDS = float(os.environ.get("NOTIFY_OUTAGE_SECONDS", "60"))
USERS = 12


@pytest.mark.slow
@pytest.mark.timeout(OUTAGE_SECONDS + 240)
async def test_welcome_emails_survive_a_notify_hub_outage(stack_factory: Any) -> None:
    stack: Stack = stack_factory()
    await stack.open(relay=True)  # notify-hub is not started: the outage begins now
    assert stack.auth is not None
    outage_started = time.monotonic()
    users: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=stack.auth.base_url, timeout=20) as auth:
        for index in range(USERS):
            email = unique_address(f"outage{index}")
            response = await auth.post(
                "/auth/register",
                json={"email": email, "password": PASSWORD, "name": f"User {index}"},
            )
            assert response.status_code == 201, response.text
            users[response.json()["id"]] = email
            # Registrations are spread over the whole outage.
            await asyncio.sleep(OUTAGE_SECONDS / USERS)

    async def every_event_failed_at_least_once() -> bool:
        rows = await stack.auth_rows("SELECT attempts, delivered_at FROM outbox")
        return len(rows) == USERS and all(
            r["attempts"] >= 1 and r["delivered_at"] is None for r in rows
        )

    # The relay really tried, and failed, while notify-hub was down.
    await wait_until(every_event_failed_at_least_once, what="failed deliveries")
    assert time.monotonic() - outage_started >= OUTAGE_SECONDS
    assert stack.smtp.handler.to(next(iter(users.values()))) == []

    stack.start_notify()

    async def state() -> object:
        outbox = await stack.auth_rows("SELECT attempts, delivered_at, last_error FROM outbox")
        notifications = await stack.notify_rows("SELECT status, last_error FROM notifications")
        return {
            "outbox": [dict(r) for r in outbox],
            "notifications": [dict(r) for r in notifications],
        }

    async def all_delivered_and_sent() -> bool:
        outbox = await stack.auth_rows("SELECT delivered_at FROM outbox")
        sent = await stack.notify_rows(
            "SELECT count(*) AS n FROM notifications WHERE status = 'sent'"
        )
        return all(r["delivered_at"] is not None for r in outbox) and sent[0]["n"] == USERS

    # The relay's next attempt is at most its 60 s backoff cap away.
    await wait_until(all_delivered_and_sent, timeout=180, what="every welcome sent", diagnose=state)

    # Nothing is pending any more on either side, so these counts are final.
    outbox = await stack.auth_rows("SELECT id, subject_user_id FROM outbox")
    event_of = {str(r["subject_user_id"]): str(r["id"]) for r in outbox}
    assert set(event_of) == set(users)
    for user_id, email in users.items():
        emails = stack.smtp.handler.to(email)
        assert len(emails) == 1, (email, len(emails))
        message = emails[0].message
        assert message["Message-ID"] == f"<{event_of[user_id]}@notify.shopflow.example>"
        assert "Welcome to ShopFlow" in message["Subject"]
    inbox = await stack.notify_rows("SELECT id FROM inbox")
    assert Counter(str(r["id"]) for r in inbox) == Counter(event_of.values())
    notifications = await stack.notify_rows("SELECT user_id FROM notifications")
    assert sorted(str(r["user_id"]) for r in notifications) == sorted(users)
