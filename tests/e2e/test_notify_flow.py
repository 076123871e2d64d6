"""Registering through `shopctl up`'s gateway sends a welcome email to its SMTP sink."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from shopctl.smtp import read_messages

from tests.utils.e2e import Platform
from tests.utils.factories import PASSWORD, unique_email


@pytest.fixture
def gw(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.gateway, timeout=20) as client:
        yield client


def test_registration_sends_one_welcome_email(platform: Platform, gw: httpx.Client) -> None:
    email = unique_email("welcome")
    created = gw.post("/auth/register", json={"email": email, "password": PASSWORD, "name": "Wes"})
    assert created.status_code == 201
    token = gw.post("/auth/login", json={"email": email, "password": PASSWORD}).json()
    auth = {"Authorization": f"Bearer {token['access_token']}"}

    # user-auth's outbox relay -> notify-hub -> the sink in .shopflow/mail; bounded wait.
    deadline = time.monotonic() + 60
    listed: dict = {}
    while time.monotonic() < deadline:
        listed = gw.get("/notifications", headers=auth).json()
        if listed.get("items") and listed["items"][0]["status"] == "sent":
            break
        time.sleep(0.2)
    assert listed["total"] == 1 and listed["items"][0]["status"] == "sent", listed
    assert listed["items"][0]["type"] == "user.registered"
    mail = [m for m in read_messages(platform.state / "mail") if m["To"] and email in m["To"]]
    assert len(mail) == 1 and mail[0]["Subject"] == "Welcome to ShopFlow, Wes"
    # The internal endpoint is never routed by the gateway.
    assert gw.post("/internal/events", json={}).status_code == 404
