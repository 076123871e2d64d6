"""JWT verification and the access decorators, against a real JWKS over HTTP."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time

import httpx
import pytest
from joserfc.jwk import ECKey
from shopflow_kit.security import InvalidToken, JWKSCache, TokenVerifier
from shopflow_kit.service_client import ServiceTokenClient

from tests.utils.issuer import ISSUER, TokenIssuer


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(claims: dict, header: dict) -> tuple[str, str]:
    return b64(json.dumps(header).encode()), b64(json.dumps(claims).encode())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims_for(issuer: TokenIssuer) -> dict:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": "shopflow",
        "sub": "u1",
        "role": "admin",
        "iat": now,
        "exp": now + 600,
    }


async def test_valid_token_is_accepted(client: httpx.AsyncClient, issuer: TokenIssuer) -> None:
    response = await client.get("/me", headers=bearer(issuer.token(sub="user-1")))
    assert response.status_code == 200
    assert response.json() == {"sub": "user-1", "role": "customer"}


async def test_missing_token_is_401_with_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert (await client.get("/me", headers={"Authorization": "Basic abc"})).status_code == 401


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "wrong_audience",
        "wrong_issuer",
        "alg_none",
        "tampered",
        "hs256_with_public_key",
        "unknown_kid",
        "garbage",
        "no_kid",
    ],
)
async def test_bad_tokens_are_401(
    client: httpx.AsyncClient, issuer: TokenIssuer, case: str
) -> None:
    key = issuer.keys[0]
    if case == "expired":
        token = issuer.token(ttl=-120)
    elif case == "wrong_audience":
        token = issuer.token(aud="someone-else")
    elif case == "wrong_issuer":
        token = issuer.token(iss="https://evil.example/auth")
    elif case == "alg_none":
        header, payload = unsigned(claims_for(issuer), {"alg": "none", "kid": key.kid})
        token = f"{header}.{payload}."
    elif case == "tampered":
        header, payload, signature = issuer.token(role="customer").split(".")
        forged = json.loads(base64.urlsafe_b64decode(payload + "==="))
        forged["role"] = "admin"
        token = f"{header}.{b64(json.dumps(forged).encode())}.{signature}"
    elif case == "hs256_with_public_key":
        # The classic key-confusion attack: HMAC keyed with the public JWK.
        public = json.dumps(key.as_dict(private=False)).encode()
        header, payload = unsigned(claims_for(issuer), {"alg": "HS256", "kid": key.kid})
        mac = hmac.new(public, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        token = f"{header}.{payload}.{b64(mac)}"
    elif case == "unknown_kid":
        stranger = ECKey.generate_key("P-256", parameters={"kid": "stranger", "alg": "ES256"})
        token = issuer.token(key=stranger)
    elif case == "no_kid":
        header, payload, signature = issuer.token().split(".")
        token = f"{b64(json.dumps({'alg': 'ES256'}).encode())}.{payload}.{signature}"
    else:
        token = "not-a-jwt"
    response = await client.get("/me", headers=bearer(token))
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_rotated_key_is_fetched_on_unknown_kid(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    assert (await client.get("/me", headers=bearer(issuer.token()))).status_code == 200
    new_key = issuer.rotate("k-rotated")
    await asyncio.sleep(0.6)  # past the sample's refetch interval
    before = issuer.jwks_requests
    response = await client.get("/me", headers=bearer(issuer.token(key=new_key)))
    assert response.status_code == 200
    assert issuer.jwks_requests == before + 1


async def test_role_is_enforced(client: httpx.AsyncClient, issuer: TokenIssuer) -> None:
    assert (await client.get("/admin", headers=bearer(issuer.token()))).status_code == 403
    assert (
        await client.get("/admin", headers=bearer(issuer.token(role="admin")))
    ).status_code == 200
    assert (await client.get("/admin")).status_code == 401


async def test_service_token_is_accepted_by_require_scope(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    service = ServiceTokenClient(
        f"{issuer.url}/auth/oauth/token", "order-mgmt", "order-secret", ["widgets:read"]
    )
    try:
        response = await service.get(f"{client.base_url}/internal/ping")
    finally:
        await service.aclose()
    assert response.status_code == 200
    assert response.json() == {"caller": "order-mgmt"}


async def test_scope_and_audience_are_enforced(
    client: httpx.AsyncClient, issuer: TokenIssuer
) -> None:
    # A shopper's token is for aud=shopflow, never for internal endpoints.
    user = await client.get("/internal/ping", headers=bearer(issuer.token(role="admin")))
    assert user.status_code == 401
    other = issuer.token(sub="reader", aud="shopflow-internal", scope="other:scope")
    assert (await client.get("/internal/ping", headers=bearer(other))).status_code == 403


async def test_jwks_refetch_is_rate_limited(issuer: TokenIssuer) -> None:
    cache = JWKSCache(f"{issuer.url}/auth/.well-known/jwks.json", min_refetch_interval=60)
    verifier = TokenVerifier(cache, ISSUER)
    await verifier.verify(issuer.token(), "shopflow")
    for i in range(20):
        stranger = ECKey.generate_key("P-256", parameters={"kid": f"random-{i}", "alg": "ES256"})
        with pytest.raises(InvalidToken, match="unknown signing key"):
            await verifier.verify(issuer.token(key=stranger), "shopflow")
    assert cache.fetch_count == 1


async def test_symmetric_keys_in_a_jwks_are_ignored(issuer: TokenIssuer) -> None:
    cache = JWKSCache(f"{issuer.url}/auth/.well-known/jwks.json")
    kid = issuer.keys[0].kid
    assert kid is not None
    await cache.key_for(kid)
    assert all(k.key_type in ("EC", "RSA") for k in cache._keys.keys)  # type: ignore[union-attr]


class CountingKeys:
    """The issuer's keys, counting how often a signature needed one."""

    def __init__(self, issuer: TokenIssuer) -> None:
        self.issuer = issuer
        self.lookups = 0

    async def key_for(self, kid: str) -> object:
        self.lookups += 1
        return next(k for k in self.issuer.keys if k.kid == kid)


async def test_a_verified_token_is_remembered_per_audience(issuer: TokenIssuer) -> None:
    keys = CountingKeys(issuer)
    verifier = TokenVerifier(keys, ISSUER)
    token = issuer.token(sub="ann")
    first = await verifier.verify(token, "shopflow")
    first["sub"] = "changed by a caller"
    again = await verifier.verify(token, "shopflow")
    assert again["sub"] == "ann"  # each caller gets its own copy
    assert keys.lookups == 1
    # Another audience is a check of its own, and fails as it always did.
    with pytest.raises(InvalidToken, match="not issued for this service"):
        await verifier.verify(token, "shopflow-internal")
    assert keys.lookups == 2


async def test_a_remembered_token_still_expires(issuer: TokenIssuer) -> None:
    verifier = TokenVerifier(CountingKeys(issuer), ISSUER, leeway=0)
    token = issuer.token(ttl=2)
    exp = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==="))["exp"]
    await verifier.verify(token, "shopflow")
    await asyncio.sleep(max(0.0, exp - time.time()) + 0.05)
    with pytest.raises(InvalidToken, match="expired"):
        await verifier.verify(token, "shopflow")


async def test_remembered_tokens_are_bounded_and_forgotten_in_time(issuer: TokenIssuer) -> None:
    keys = CountingKeys(issuer)
    verifier = TokenVerifier(keys, ISSUER, remember_max=2)
    tokens = [issuer.token() for _ in range(3)]
    for token in tokens:
        await verifier.verify(token, "shopflow")
    assert len(verifier._verified) == 2
    await verifier.verify(tokens[0], "shopflow")  # the oldest went first
    assert keys.lookups == 4
    forgetful = TokenVerifier(keys, ISSUER, remember_seconds=0)
    await forgetful.verify(tokens[1], "shopflow")
    await forgetful.verify(tokens[1], "shopflow")
    assert keys.lookups == 6
