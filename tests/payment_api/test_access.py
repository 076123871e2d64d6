"""GET /payments/{id}: the owner or an admin, 404 for anyone else; checked against the OpenAPI."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.utils.contract import Contract
from tests.utils.issuer import TokenIssuer
from tests.utils.payment_api import (
    APPROVED,
    charge,
    charge_body,
    service_auth,
    user_auth,
)

PUBLIC_FIELDS = {"id", "order_id", "status", "amount_cents", "currency", "card", "created_at"}


@pytest.fixture
async def payment(client: httpx.AsyncClient, issuer: TokenIssuer) -> dict[str, Any]:
    response = await charge(client, issuer, charge_body(APPROVED, amount_cents=1234))
    assert response.status_code == 201
    return dict(response.json())


async def test_the_owner_sees_exactly_the_public_fields(
    client: httpx.AsyncClient, issuer: TokenIssuer, payment: dict[str, Any]
) -> None:
    response = await client.get(
        f"/payments/{payment['id']}", headers=user_auth(issuer, payment["customer_id"])
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == PUBLIC_FIELDS
    assert body == {k: v for k, v in payment.items() if k in PUBLIC_FIELDS}
    assert body["card"] == {"brand": "visa", "last4": "4242"}
    assert APPROVED not in response.text


async def test_an_admin_sees_any_payment(
    client: httpx.AsyncClient, issuer: TokenIssuer, payment: dict[str, Any]
) -> None:
    response = await client.get(
        f"/payments/{payment['id']}", headers=user_auth(issuer, str(uuid.uuid4()), role="admin")
    )
    assert response.status_code == 200 and response.json()["id"] == payment["id"]


async def test_another_customer_gets_404_like_an_unknown_id(
    client: httpx.AsyncClient, issuer: TokenIssuer, payment: dict[str, Any]
) -> None:
    stranger = user_auth(issuer, str(uuid.uuid4()))
    theirs = await client.get(f"/payments/{payment['id']}", headers=stranger)
    unknown = await client.get(f"/payments/{uuid.uuid4()}", headers=stranger)
    not_uuid = await client.get("/payments/not-a-uuid", headers=stranger)
    for response in (theirs, unknown, not_uuid):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == theirs.json()["detail"]


async def test_a_token_is_required(
    client: httpx.AsyncClient, issuer: TokenIssuer, payment: dict[str, Any]
) -> None:
    assert (await client.get(f"/payments/{payment['id']}")).status_code == 401
    # A service token is not a shopper's token (aud=shopflow-internal).
    internal = await client.get(f"/payments/{payment['id']}", headers=service_auth(issuer))
    assert internal.status_code == 401
    expired = user_auth(issuer, payment["customer_id"])
    expired["Authorization"] = f"Bearer {issuer.token(sub=payment['customer_id'], ttl=-120)}"
    assert (await client.get(f"/payments/{payment['id']}", headers=expired)).status_code == 401


async def test_the_openapi_document_is_public_only_and_checked(
    client: httpx.AsyncClient, checker: Contract, issuer: TokenIssuer
) -> None:
    document = (await client.get("/payments/openapi.json")).json()
    assert document["openapi"] == "3.1.0"
    assert list(document["paths"]) == ["/payments/{payment_id}"]
    get = document["paths"]["/payments/{payment_id}"]["get"]
    # 414: the gateway refuses a request line over its limit, and a path parameter is the
    # client's, so the kit documents it for every operation that has one.
    assert set(get["responses"]) == {"200", "401", "404", "414"}
    schema = document["components"]["schemas"]["PaymentOut"]
    assert set(schema["properties"]) == PUBLIC_FIELDS
    # The hook validates every public response: the document is not looked at, this is.
    before = checker.checked
    await client.get(f"/payments/{uuid.uuid4()}", headers=user_auth(issuer, "someone"))
    await client.get(f"/payments/{uuid.uuid4()}")
    assert checker.checked == before + 2


async def test_the_checker_catches_a_response_that_breaks_the_document(
    client: httpx.AsyncClient, checker: Contract, issuer: TokenIssuer
) -> None:
    """The validation is real: a body with a field the document does not allow fails."""
    response = await client.get(f"/payments/{uuid.uuid4()}", headers=user_auth(issuer, "x"))
    forged = httpx.Response(
        200,
        json={"id": "not-a-uuid", "status": "pending"},
        request=response.request,
    )
    with pytest.raises(Exception, match=r"(?i)invalid"):
        checker.check(forged)
