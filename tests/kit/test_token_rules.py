"""Token rules beyond the signature: lifetime, clock-skew leeway, role, and 401 wording."""

from __future__ import annotations

import time

import httpx
import pytest
from pydantic import ValidationError
from shopflow_kit.security import MAX_TOKEN_LIFETIME_SECONDS, ROLES, UNAUTHORIZED_DETAILS

from tests.kit_sample.app import Settings
from tests.utils.issuer import ISSUER, TokenIssuer


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_lifetime_beyond_the_issuers_maximum_is_401(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    longest = issuer.token(ttl=MAX_TOKEN_LIFETIME_SECONDS)
    assert (await client.get("/me", headers=bearer(longest))).status_code == 200
    for ttl in (MAX_TOKEN_LIFETIME_SECONDS + 1, 30 * 24 * 3600):
        response = await client.get("/me", headers=bearer(issuer.token(ttl=ttl)))
        assert response.status_code == 401, ttl
    # Lifetime is exp - iat, so a token without iat cannot prove it is short-lived.
    now = int(time.time())
    no_iat = issuer.token(exp=now + 60, drop=("iat",))
    assert (await client.get("/me", headers=bearer(no_iat))).status_code == 401


async def test_clock_skew_leeway_is_at_most_30_seconds(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    now = int(time.time())
    just_expired = issuer.token(iat=now - 600, exp=now - 10)
    assert (await client.get("/me", headers=bearer(just_expired))).status_code == 200
    long_expired = issuer.token(iat=now - 600, exp=now - 45)
    assert (await client.get("/me", headers=bearer(long_expired))).status_code == 401
    from_the_future = issuer.token(iat=now + 120, exp=now + 600)
    assert (await client.get("/me", headers=bearer(from_the_future))).status_code == 401
    with pytest.raises(ValidationError, match="jwt_leeway_seconds"):
        Settings(database_url="postgres://x@127.0.0.1/x", jwt_leeway_seconds=31)


@pytest.mark.parametrize("role", [123, ["admin"], {"name": "admin"}, "superuser", "", None])
async def test_role_must_be_a_known_string(
    client: httpx.AsyncClient, issuer: TokenIssuer, role: object
) -> None:
    token = issuer.token(role=role)  # type: ignore[arg-type]
    response = await client.get("/me", headers=bearer(token))
    assert response.status_code == 401, response.text
    assert ROLES == ("customer", "admin")


async def test_401_details_are_the_kits_own_words(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    now = int(time.time())
    cases = [
        issuer.token(ttl=-120),
        issuer.token(aud="someone-else"),
        issuer.token(iss="https://evil.example/auth"),
        issuer.token(drop=("sub",)),
        issuer.token(iat=now, exp=now + 7200),
        "not-a-jwt",
        "a.b.c",
    ]
    for token in cases:
        response = await client.get("/me", headers=bearer(token))
        assert response.status_code == 401
        detail = response.json()["detail"]
        assert detail in UNAUTHORIZED_DETAILS, detail
    assert ISSUER not in " ".join(UNAUTHORIZED_DETAILS)
