"""POST /internal/events and GET /notifications on a real notify-hub, user-auth and SMTP server.

user-auth's own relay is off in this module, so the only events notify-hub sees
are the ones a test posts (with a real service token from user-auth), and users
registered at user-auth are unknown to notify-hub until it looks them up.
"""

from __future__ import annotations

import asyncio
import uuid
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from tests.utils.contract import Contract
from tests.utils.notify_hub import (
    SmtpServer,
    Stack,
    envelope,
    post_event,
    unique_address,
    wait_until,
)
from tests.utils.services import bearer

PROBLEM = "application/problem+json"


async def registered(http: httpx.AsyncClient, token: str, name: str = "Ann Shopper") -> str:
    """A user notify-hub knows from user.registered; returns the user id (its address is the id)."""
    user_id = str(uuid.uuid4())
    event = envelope("user.registered", {"email": f"{user_id}@example.com", "name": name}, user_id)
    response = await post_event(http, token, event)
    assert response.status_code == 202, response.text
    return user_id


async def one_email_to(smtp: SmtpServer, address: str) -> EmailMessage:
    async def arrived() -> bool:
        return len(smtp.handler.to(address)) >= 1

    await wait_until(arrived, what=f"an email to {address}")
    (received,) = smtp.handler.to(address)
    return received.message


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    # Lines end in CRLF on the wire; compare text with plain newlines.
    return tuple(p.get_content().replace("\r\n", "\n") for p in (text, html))  # type: ignore[return-value,attr-defined]


class Table(HTMLParser):
    """The text of each ``<tr class="item">``'s cells and of the ``total`` cell."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.total = ""
        self._in_row = False
        self._cell: list[str] | None = None
        self._total = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = dict(attrs).get("class") or ""
        if tag == "tr" and "item" in classes.split():
            self._in_row = True
            self.rows.append([])
        elif tag in ("td", "th") and (self._in_row or "total" in classes.split()):
            self._cell = []
            self._total = "total" in classes.split()

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell).strip()
            if self._total:
                self.total = text
            else:
                self.rows[-1].append(text)
            self._cell = None
        elif tag == "tr":
            self._in_row = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


# --- each email's content -------------------------------------------------------------------


async def test_welcome_email(notify: httpx.AsyncClient, producer: str, stack: Stack) -> None:
    user_id, address = str(uuid.uuid4()), unique_address("welcome")
    event = envelope("user.registered", {"email": address, "name": "Ann Example"}, user_id)
    response = await post_event(notify, producer, event)
    assert response.status_code == 202
    assert response.json() == {"id": event["id"], "status": "accepted"}

    message = await one_email_to(stack.smtp, address)
    assert message["Subject"] == "Welcome to ShopFlow, Ann Example"
    assert message["To"].addresses[0].addr_spec == address
    assert message["To"].addresses[0].display_name == "Ann Example"
    assert message["From"].addresses[0].addr_spec == "no-reply@shopflow.example"
    assert message["Message-ID"] == f"<{event['id']}@notify.shopflow.example>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    text, html = parts(message)
    assert "Hello Ann Example," in text and address in text
    assert "Welcome to ShopFlow, Ann Example" in html and address in html

    async def sent() -> bool:
        row = await stack.notification(event["id"])
        return row is not None and row["status"] == "sent"

    await wait_until(sent, what="status sent")
    row = await stack.notification(event["id"])
    assert row is not None and row["sent_at"] is not None and row["attempts"] == 1
    copy = await stack.notify_rows(
        "SELECT email, name FROM recipients WHERE user_id = $1", uuid.UUID(user_id)
    )
    assert [tuple(r) for r in copy] == [(address, "Ann Example")]


async def test_order_confirmation_lists_every_item_and_the_total(
    notify: httpx.AsyncClient, producer: str, stack: Stack
) -> None:
    user_id = await registered(notify, producer, name="Olga Buyer")
    address = f"{user_id}@example.com"
    items = [
        ("Trail Runner Shoes", 2, 1250),
        ("Espresso Machine Deluxe", 1, 99999),
        ("Wool Socks (3-pack)", 3, 1999),
    ]
    data: dict[str, Any] = {
        "order_id": str(uuid.uuid4()),
        "items": [
            {
                "product_id": str(uuid.uuid4()),
                "name": name,
                "quantity": quantity,
                "unit_price_cents": unit,
                "line_total_cents": quantity * unit,
            }
            for name, quantity, unit in items
        ],
        "total_cents": sum(q * u for _, q, u in items),
        "currency": "EUR",
    }
    assert data["total_cents"] == 108496
    event = envelope("order.confirmed", data, user_id)
    assert (await post_event(notify, producer, event)).status_code == 202

    # Two welcome-free checks: the user's earlier welcome went out too, but this is the one.
    message = next(
        r.message
        for r in await _emails(stack.smtp, address, 2)
        if r.message["Message-ID"] == f"<{event['id']}@notify.shopflow.example>"
    )
    assert message["Subject"] == "Your ShopFlow order is confirmed: €1,084.96"
    text, html = parts(message)
    # The figures are written out here, not computed with the code under test.
    expected = [
        ["Trail Runner Shoes", "2", "€12.50", "€25.00"],
        ["Espresso Machine Deluxe", "1", "€999.99", "€999.99"],
        ["Wool Socks (3-pack)", "3", "€19.99", "€59.97"],
    ]
    table = Table()
    table.feed(html)
    assert table.rows == expected
    assert table.total == "€1,084.96"
    for name, quantity, unit, line in expected:
        assert f"- {name}\n  {quantity} x {unit} = {line}\n" in text
    assert "Total: €1,084.96 (EUR)" in text
    assert data["order_id"] in text and data["order_id"] in html
    assert "Hello Olga Buyer," in text


async def _emails(smtp: SmtpServer, address: str, count: int) -> list[Any]:
    async def arrived() -> bool:
        return len(smtp.handler.to(address)) >= count

    await wait_until(arrived, what=f"{count} emails to {address}")
    return smtp.handler.to(address)


@pytest.mark.parametrize(
    ("type_", "data", "subject", "amount"),
    [
        (
            "order.cancelled",
            {"total_cents": 4250, "currency": "USD"},
            "Your ShopFlow order has been cancelled",
            "$42.50",
        ),
        (
            "payment.refunded",
            {"payment_id": str(uuid.uuid4()), "amount_cents": 1099, "currency": "GBP"},
            "Your refund of £10.99 is on its way",
            "£10.99",
        ),
        (
            "payment.refunded",
            {"payment_id": str(uuid.uuid4()), "amount_cents": 1500, "currency": "JPY"},
            "Your refund of ¥1,500 is on its way",
            "¥1,500",
        ),
    ],
)
async def test_cancellation_and_refund_emails(
    notify: httpx.AsyncClient,
    producer: str,
    stack: Stack,
    type_: str,
    data: dict[str, Any],
    subject: str,
    amount: str,
) -> None:
    user_id = await registered(notify, producer, name="Carl Canceller")
    data = {**data, "order_id": str(uuid.uuid4())}
    event = envelope(type_, data, user_id)
    assert (await post_event(notify, producer, event)).status_code == 202
    emails = await _emails(stack.smtp, f"{user_id}@example.com", 2)
    message = next(r.message for r in emails if r.message["Subject"] == subject)
    text, html = parts(message)
    for part in (text, html):
        assert amount in part and data["order_id"] in part
        assert data["currency"] in part
    if type_ == "payment.refunded":
        assert data["payment_id"] in text and data["payment_id"] in html


# --- hostile input -------------------------------------------------------------------------

HOSTILE = (
    '<script>alert("x")</script><img src=x onerror=alert(1)>\r\n'
    "Bcc: thief@evil.test\r\n\r\n<b>bold</b>"
)


async def test_hostile_names_are_escaped_and_inject_no_header(
    notify: httpx.AsyncClient, producer: str, stack: Stack
) -> None:
    user_id = str(uuid.uuid4())
    address = unique_address("hostile")
    name = "Eve\r\nBcc: thief@evil.test\nX-Injected: yes"
    welcome = envelope("user.registered", {"email": address, "name": name}, user_id)
    assert (await post_event(notify, producer, welcome)).status_code == 202
    order = envelope(
        "order.confirmed",
        {
            "order_id": str(uuid.uuid4()),
            "items": [
                {
                    "product_id": str(uuid.uuid4()),
                    "name": HOSTILE,
                    "quantity": 1,
                    "unit_price_cents": 500,
                    "line_total_cents": 500,
                }
            ],
            "total_cents": 500,
            "currency": "USD",
        },
        user_id,
    )
    assert (await post_event(notify, producer, order)).status_code == 202
    received = await _emails(stack.smtp, address, 2)

    for r in received:
        # The envelope had one recipient, and no header names another or was added.
        assert r.rcpt_tos == [address]
        assert "bcc" not in header_names(r.raw) and "x-injected" not in header_names(r.raw)
        assert r.message["Bcc"] is None and r.message["X-Injected"] is None
        assert [a.addr_spec for a in r.message["To"].addresses] == [address]
    assert stack.smtp.handler.to("thief@evil.test") == []

    welcome_message = next(r.message for r in received if "Welcome" in r.message["Subject"])
    # The name is folded onto one line: still there, but only as text.
    assert welcome_message["Subject"] == (
        "Welcome to ShopFlow, Eve Bcc: thief@evil.test X-Injected: yes"
    )
    order_message = next(r.message for r in received if "order" in r.message["Subject"])
    text, html = parts(order_message)
    assert "<script>" not in html and "<img" not in html and "<b>bold" not in html
    assert (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    )
    table = Table()
    table.feed(html)
    assert table.rows[0][0] == (
        '<script>alert("x")</script><img src=x onerror=alert(1)> Bcc: thief@evil.test <b>bold</b>'
    )
    # In the plain-text part the name is plain text, on one line of its own.
    assert (
        '- <script>alert("x")</script><img src=x onerror=alert(1)> Bcc: thief@evil.test '
        "<b>bold</b>\n" in text
    )


def header_names(raw: bytes) -> set[str]:
    """The names of the message's header fields, read from the bytes on the wire."""
    head = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode()
    return {
        line.split(":", 1)[0].strip().lower()
        for line in head.split("\n")
        if line and not line[0].isspace()
    }


# --- exactly once -----------------------------------------------------------------------------


async def test_twenty_redeliveries_send_one_email(
    notify: httpx.AsyncClient, producer: str, stack: Stack
) -> None:
    user_id, address = str(uuid.uuid4()), unique_address("again")
    event = envelope("user.registered", {"email": address, "name": "Rita Repeat"}, user_id)
    answers = [await post_event(notify, producer, event) for _ in range(20)]
    assert [a.status_code for a in answers] == [202] + [200] * 19
    assert all(a.json() == {"id": event["id"], "status": "accepted"} for a in answers)
    await _exactly_one_email(stack, event["id"], address)


async def test_twenty_concurrent_redeliveries_send_one_email(
    notify: httpx.AsyncClient, producer: str, stack: Stack
) -> None:
    user_id, address = str(uuid.uuid4()), unique_address("race")
    event = envelope("user.registered", {"email": address, "name": "Rosa Race"}, user_id)
    answers = await asyncio.gather(*(post_event(notify, producer, event) for _ in range(20)))
    assert sorted(a.status_code for a in answers) == [200] * 19 + [202]
    assert all(a.json() == {"id": event["id"], "status": "accepted"} for a in answers)
    await _exactly_one_email(stack, event["id"], address)


async def test_a_redelivery_gets_the_first_answer_even_if_it_could_not_be_decided_now(
    notify: httpx.AsyncClient, producer: str, stack: Stack
) -> None:
    user_id, address = str(uuid.uuid4()), unique_address("first")
    event = envelope("user.registered", {"email": address, "name": "Fay First"}, user_id)
    assert (await post_event(notify, producer, event)).status_code == 202
    # The same id again, with data its type refuses: the first delivery stands.
    reused = {**event, "data": {"email": "not an address"}}
    again = await post_event(notify, producer, reused)
    assert again.status_code == 200, again.text
    assert again.json() == {"id": event["id"], "status": "accepted"}
    await _exactly_one_email(stack, event["id"], address)


async def _exactly_one_email(stack: Stack, event_id: str, address: str) -> None:
    async def sent() -> bool:
        row = await stack.notification(event_id)
        return row is not None and row["status"] == "sent"

    # Once sent, nothing is left that could send it again: the count below is final.
    await wait_until(sent, what="status sent")
    emails = stack.smtp.handler.to(address)
    assert len(emails) == 1
    assert emails[0].message["Message-ID"] == f"<{event_id}@notify.shopflow.example>"
    (count,) = await stack.notify_rows(
        "SELECT (SELECT count(*) FROM inbox WHERE id = $1) AS inbox, "
        "(SELECT count(*) FROM notifications WHERE event_id = $1) AS notifications",
        uuid.UUID(event_id),
    )
    assert (count["inbox"], count["notifications"]) == (1, 1)


# --- unknown, malformed, unauthorised -----------------------------------------------------


async def test_unknown_type_is_acknowledged_recorded_and_logged(
    notify: httpx.AsyncClient, producer: str, stack: Stack
) -> None:
    event = envelope("order.shipped", {"carrier": "ACME"}, str(uuid.uuid4()))
    first = await post_event(notify, producer, event)
    assert first.status_code == 202
    assert first.json() == {"id": event["id"], "status": "ignored"}
    again = await post_event(notify, producer, event)
    assert again.status_code == 200 and again.json() == first.json()
    rows = await stack.notify_rows(
        "SELECT type, status FROM inbox WHERE id = $1", uuid.UUID(event["id"])
    )
    assert [tuple(r) for r in rows] == [("order.shipped", "ignored")]
    assert await stack.notification(event["id"]) is None

    async def logged() -> bool:
        return any(
            "unknown type" in line and event["id"] in line
            for line in stack.notify_log().splitlines()
        )

    await wait_until(logged, what="the log line")


async def test_malformed_envelopes_get_422_and_write_nothing(
    notify: httpx.AsyncClient, producer: str, stack: Stack
) -> None:
    user_id = str(uuid.uuid4())
    good = envelope(
        "order.cancelled",
        {"order_id": str(uuid.uuid4()), "total_cents": 1, "currency": "USD"},
        user_id,
    )
    line = {
        "product_id": str(uuid.uuid4()),
        "name": "x",
        "quantity": 1,
        "unit_price_cents": 100,
        "line_total_cents": 100,
    }
    cases: list[tuple[dict[str, Any], str]] = [
        ({k: v for k, v in good.items() if k != "id"}, "id"),
        ({**good, "id": "not-a-uuid"}, "id"),
        ({**good, "occurred_at": "2026-03-01T12:00:00"}, "occurred_at"),
        ({**good, "occurred_at": "yesterday"}, "occurred_at"),
        ({**good, "type": ""}, "type"),
        ({**good, "type": "order\nconfirmed"}, "type"),
        ({**good, "data": ["not", "an", "object"]}, "data"),
        ({k: v for k, v in good.items() if k != "subject_user_id"}, "subject_user_id"),
        ({**good, "subject_user_id": None}, "subject_user_id"),
        (
            {
                **good,
                "data": {"order_id": str(uuid.uuid4()), "total_cents": 19.99, "currency": "USD"},
            },
            "data.total_cents",
        ),
        (
            {
                **good,
                "data": {"order_id": str(uuid.uuid4()), "total_cents": 100, "currency": "usd"},
            },
            "data.currency",
        ),
        (
            {
                **good,
                "type": "order.confirmed",
                "data": {
                    "order_id": str(uuid.uuid4()),
                    "total_cents": 1,
                    "currency": "USD",
                    "items": [],
                },
            },
            "data.items",
        ),
        (
            {
                **good,
                "type": "order.confirmed",
                "data": {
                    "order_id": str(uuid.uuid4()),
                    "total_cents": 1,
                    "currency": "USD",
                    "items": [{**line, "quantity": 0}],
                },
            },
            "data.items.0.quantity",
        ),
        (
            {**good, "type": "user.registered", "data": {"email": "not an address", "name": "x"}},
            "data.email",
        ),
    ]
    for body, field in cases:
        response = await notify.post("/internal/events", json=body, headers=bearer(producer))
        assert response.status_code == 422, (field, response.text)
        assert response.headers["content-type"] == PROBLEM
        problem = response.json()
        assert {"type", "title", "status", "detail", "errors"} <= set(problem)
        assert field in [e["field"] for e in problem["errors"]], (field, problem)
    not_json = await notify.post(
        "/internal/events",
        content=b"{not json",
        headers={**bearer(producer), "content-type": "application/json"},
    )
    assert not_json.status_code == 400 and not_json.headers["content-type"] == PROBLEM
    assert (
        await stack.notify_rows("SELECT id FROM inbox WHERE id = $1", uuid.UUID(good["id"])) == []
    )


async def test_events_need_a_service_token_with_the_publish_scope(
    notify: httpx.AsyncClient, stack: Stack
) -> None:
    event = envelope("order.shipped", {}, None)
    assert (await notify.post("/internal/events", json=event)).status_code == 401
    shopper = await stack.register()
    assert (await post_event(notify, shopper.access_token, event)).status_code == 401
    no_scope = await stack.service_token("catalog-api", "")
    assert (await post_event(notify, no_scope, event)).status_code == 403
    wrong_scope = await stack.service_token("notify-hub", "users:read")
    assert (await post_event(notify, wrong_scope, event)).status_code == 403
    assert (
        await stack.notify_rows("SELECT id FROM inbox WHERE id = $1", uuid.UUID(event["id"])) == []
    )


# --- recipients ------------------------------------------------------------------------------


async def test_a_recipient_without_a_copy_is_looked_up_at_user_auth(
    notify: httpx.AsyncClient, producer: str, stack: Stack
) -> None:
    shopper = await stack.register()  # user-auth's relay is off: no copy here
    assert (
        await stack.notify_rows(
            "SELECT 1 FROM recipients WHERE user_id = $1", uuid.UUID(shopper.id)
        )
        == []
    )
    data = {"order_id": str(uuid.uuid4()), "total_cents": 1500, "currency": "USD"}
    event = envelope("order.cancelled", data, shopper.id)
    assert (await post_event(notify, producer, event)).status_code == 202
    message = await one_email_to(stack.smtp, shopper.email)
    assert message["To"].addresses[0].display_name == "Test Shopper"
    copy = await stack.notify_rows(
        "SELECT email, name FROM recipients WHERE user_id = $1", uuid.UUID(shopper.id)
    )
    assert [tuple(r) for r in copy] == [(shopper.email, "Test Shopper")]


async def test_an_event_about_an_unknown_user_is_ignored(
    notify: httpx.AsyncClient, producer: str, stack: Stack
) -> None:
    data = {"order_id": str(uuid.uuid4()), "total_cents": 1500, "currency": "USD"}
    event = envelope("order.cancelled", data, str(uuid.uuid4()))
    response = await post_event(notify, producer, event)
    assert response.status_code == 202 and response.json()["status"] == "ignored"
    assert await stack.notification(event["id"]) is None


# --- the public API ------------------------------------------------------------------------


async def test_users_see_only_their_own_notifications(
    notify: httpx.AsyncClient, producer: str, stack: Stack
) -> None:
    ann, bob = await stack.register(), await stack.register()
    events = {
        "ann_welcome": envelope("user.registered", {"email": ann.email, "name": "Ann"}, ann.id),
        "bob_welcome": envelope("user.registered", {"email": bob.email, "name": "Bob"}, bob.id),
        "ann_cancel": envelope(
            "order.cancelled",
            {"order_id": str(uuid.uuid4()), "total_cents": 900, "currency": "USD"},
            ann.id,
        ),
    }
    for event in events.values():
        assert (await post_event(notify, producer, event)).status_code == 202

    async def all_sent() -> bool:
        rows = [await stack.notification(e["id"]) for e in events.values()]
        return all(r is not None and r["status"] == "sent" for r in rows)

    await wait_until(all_sent, what="every notification sent")
    contract = await Contract.fetch(notify, "/notifications/openapi.json")

    mine = contract.check(await notify.get("/notifications", headers=ann.auth))
    assert mine.status_code == 200 and mine.headers["cache-control"] == "private, no-store"
    body = mine.json()
    assert (body["total"], body["page"], body["page_size"]) == (2, 1, 20)
    # Newest first: the cancellation came after the welcome.
    assert [n["type"] for n in body["items"]] == ["order.cancelled", "user.registered"]
    first = body["items"][0]
    assert set(first) == {"id", "type", "channel", "subject", "status", "created_at", "sent_at"}
    assert first["channel"] == "email" and first["status"] == "sent"
    assert first["subject"] == "Your ShopFlow order has been cancelled"
    assert first["created_at"].endswith("Z") and first["sent_at"].endswith("Z")

    theirs = contract.check(await notify.get("/notifications", headers=bob.auth)).json()
    assert [n["type"] for n in theirs["items"]] == ["user.registered"]
    assert {n["id"] for n in theirs["items"]}.isdisjoint({n["id"] for n in body["items"]})

    paged = contract.check(
        await notify.get("/notifications", params={"page": 2, "page_size": 1}, headers=ann.auth)
    ).json()
    assert paged["total"] == 2 and [n["type"] for n in paged["items"]] == ["user.registered"]
    beyond = contract.check(
        await notify.get("/notifications", params={"page": 3, "page_size": 1}, headers=ann.auth)
    ).json()
    assert beyond["items"] == [] and beyond["total"] == 2

    for params in ({"page_size": 101}, {"page": 0}, {"page": "x"}, {"sort": "old"}):
        bad = contract.check(await notify.get("/notifications", params=params, headers=ann.auth))
        assert bad.status_code == 400 and bad.headers["content-type"] == PROBLEM
    anonymous = contract.check(await notify.get("/notifications"))
    assert anonymous.status_code == 401
    service = await stack.service_token("order-mgmt", "notifications:publish")
    assert (await notify.get("/notifications", headers=bearer(service))).status_code == 401


async def test_the_public_openapi_document(notify: httpx.AsyncClient) -> None:
    document = (await notify.get("/notifications/openapi.json")).json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {"/notifications"}
    operation = document["paths"]["/notifications"]["get"]
    assert operation["security"] == [{"bearer": []}]
    assert {"200", "400", "401"} <= set(operation["responses"])
    names = {p["name"] for p in operation["parameters"]}
    assert names == {"page", "page_size"}


# --- user-auth unavailable (last: it stops user-auth) ---------------------------------------


async def test_an_unreachable_user_auth_answers_503_and_writes_nothing(
    notify: httpx.AsyncClient, producer: str, stack: Stack
) -> None:
    assert stack.auth is not None
    shopper = await stack.register()
    stack.auth.stop()
    data = {"order_id": str(uuid.uuid4()), "total_cents": 100, "currency": "USD"}
    event = envelope("order.cancelled", data, shopper.id)
    response = await post_event(notify, producer, event)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM and int(response.headers["retry-after"]) > 0
    assert (
        await stack.notify_rows("SELECT id FROM inbox WHERE id = $1", uuid.UUID(event["id"])) == []
    )
