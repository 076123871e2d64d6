"""No card number at rest or in logs: every path that touches a card, then a dump and the log.

This module's payment-api logs at DEBUG, so Tortoise's SQL statements and their
parameters are in the log too. (Every other module's service is scanned the
same way when it stops; see ``payments`` in tests/utils/payment_api.py.)
"""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest

from tests.utils.issuer import TokenIssuer
from tests.utils.payment_api import (
    AMEX,
    APPROVED,
    CARD_NUMBERS,
    DECLINED,
    INSUFFICIENT_FUNDS,
    MASTERCARD,
    PROCESSING_ERROR,
    EventSink,
    Payments,
    assert_no_card_data,
    card,
    card_data_found,
    charge,
    charge_body,
    service_auth,
    user_auth,
)


@pytest.fixture(scope="module")
def payment_settings() -> dict[str, str]:
    return {"log_level": "DEBUG"}


def test_the_scan_finds_card_numbers_in_any_form() -> None:
    assert card_data_found(f'{{"number": "{APPROVED}"}}') == [APPROVED]
    assert card_data_found("card 4000-0000-0000-0002 declined") == ["4000-0000-0000-0002"]
    assert card_data_found("3782 8224 6310 005") == ["3782 8224 6310 005"]
    assert card_data_found("last4 4242, fingerprint 0f3a") == []


async def test_no_card_number_in_the_database_or_the_logs(
    client: httpx.AsyncClient, issuer: TokenIssuer, payments: Payments, sink: EventSink
) -> None:
    # Every outcome, every brand, every way of writing the number.
    for number in CARD_NUMBERS:
        for written in (number, " ".join(number[i : i + 4] for i in range(0, len(number), 4))):
            response = await charge(client, issuer, charge_body(written))
            assert response.status_code in (201, 402), response.text
    # Every validation failure, each with a real card number in the body.
    for bad in (
        card("4242424242424241"),
        card(APPROVED, exp_month=13),
        card(APPROVED, exp_year=2001),
        card(APPROVED, cvc="12"),
        card(AMEX, cvc="123"),
        {**card(MASTERCARD), "extra": MASTERCARD},
    ):
        assert (await charge(client, issuer, charge_body(card=bad))).status_code == 422
    assert (await charge(client, issuer, charge_body(amount_cents=0))).status_code == 422
    # A replay, a mismatch and concurrent duplicates.
    body, key = charge_body(INSUFFICIENT_FUNDS), str(uuid.uuid4())
    await asyncio.gather(*(charge(client, issuer, body, key) for _ in range(10)))
    mismatch = {**body, "card": card(DECLINED)}
    assert (await charge(client, issuer, mismatch, key)).status_code == 422
    # Malformed JSON around a number, a number in the path, a number as a query value.
    malformed = await client.post(
        "/internal/payments",
        content=json.dumps({"card": {"number": PROCESSING_ERROR}}).encode()[:-2],
        headers={
            **service_auth(issuer),
            "Idempotency-Key": "malformed",
            "Content-Type": "application/json",
        },
    )
    assert malformed.status_code == 400
    owner = str(uuid.uuid4())
    odd = await client.get(
        f"/payments/{APPROVED}?card={MASTERCARD}", headers=user_auth(issuer, owner)
    )
    assert odd.status_code == 404
    # A refund and its event.
    paid = await charge(client, issuer, charge_body(APPROVED, customer_id=owner))
    refunded = await client.post(
        f"/internal/payments/{paid.json()['id']}/refund", headers=service_auth(issuer)
    )
    assert refunded.status_code == 200
    (event,) = await sink.wait_for("payment.refunded", payment_id=paid.json()["id"])
    assert card_data_found(json.dumps(event)) == []

    payments.service.stop()  # flushes the log
    dump_size, lines = assert_no_card_data(payments.database_url, payments.log)
    log = payments.log.read_text()
    assert dump_size > 10_000 and lines > 200
    # The scan looked at the real thing: SQL with parameters, and a masked path.
    assert 'INSERT INTO \\"payments\\"' in log or 'INSERT INTO "payments"' in log
    assert "[card number redacted]" in log
