"""user-auth's API (API.md, auth section) on a real server and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import argon2
import asyncpg
import httpx
from auth_service.keys import _fernet
from joserfc import jwt
from joserfc.jwk import ECKey

from tests.utils.auth import IP_LIMIT, ISSUER, KEK
from tests.utils.factories import PASSWORD, register_and_login, unique_email

PROBLEM = "application/problem+json"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def fetch_private_key(database_url: str) -> ECKey:
    """The active signing key, decrypted the way user-auth does (tests know the KEK)."""
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT private_key_encrypted FROM signing_keys WHERE active_from <= now() "
            "ORDER BY active_from DESC LIMIT 1"
        )
    finally:
        await conn.close()
    return ECKey.import_key(json.loads(_fernet(KEK).decrypt(row["private_key_encrypted"].encode())))


# --- register ---------------------------------------------------------------


async def test_register_returns_the_account(client: httpx.AsyncClient) -> None:
    email = unique_email()
    response = await client.post(
        "/auth/register", json={"email": email, "password": PASSWORD, "name": "Ann"}
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "email", "name", "role", "created_at"}
    assert body["role"] == "customer" and body["email"] == email and body["name"] == "Ann"
    assert body["created_at"].endswith("Z") or body["created_at"].endswith("+00:00")
    uuid.UUID(body["id"])


async def test_duplicate_email_in_another_case_is_409(client: httpx.AsyncClient) -> None:
    email = unique_email()
    first = await client.post(
        "/auth/register", json={"email": email, "password": PASSWORD, "name": "A"}
    )
    assert first.status_code == 201
    again = await client.post(
        "/auth/register", json={"email": email.upper(), "password": PASSWORD, "name": "B"}
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == PROBLEM


async def test_weak_passwords_and_bad_emails_are_422(client: httpx.AsyncClient) -> None:
    for body, field in [
        ({"email": unique_email(), "password": "short", "name": "A"}, "password"),
        ({"email": unique_email(), "password": "password1234", "name": "A"}, "password"),
        ({"email": "not-an-email", "password": PASSWORD, "name": "A"}, "email"),
        ({"email": unique_email(), "password": PASSWORD, "name": "   "}, "name"),
        ({"email": unique_email(), "password": PASSWORD}, "name"),
    ]:
        response = await client.post("/auth/register", json=body)
        assert response.status_code == 422, body
        assert field in [e["field"] for e in response.json()["errors"]]


async def test_role_in_register_body_is_never_honoured(client: httpx.AsyncClient) -> None:
    email = unique_email()
    response = await client.post(
        "/auth/register", json={"email": email, "password": PASSWORD, "name": "M", "role": "admin"}
    )
    assert response.status_code == 422
    assert (
        await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    ).status_code == 401


async def test_malformed_json_is_400_and_huge_body_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/register", content=b'{"email": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and response.headers["content-type"] == PROBLEM
    huge = await client.post("/auth/register", content=b"{" + b" " * (2 * 1024 * 1024) + b"}")
    assert huge.status_code == 413 and huge.headers["content-type"] == PROBLEM


async def test_registration_writes_its_event_in_the_outbox(
    client: httpx.AsyncClient, database_url: str
) -> None:
    account = await register_and_login(client)
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT type, data FROM outbox WHERE subject_user_id = $1", uuid.UUID(account.id)
        )
    finally:
        await conn.close()
    assert row["type"] == "user.registered"
    assert json.loads(row["data"])["email"] == account.email


async def test_stored_hash_is_argon2id_owasp(client: httpx.AsyncClient, database_url: str) -> None:
    account = await register_and_login(client)
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetchval(
            "SELECT password_hash FROM users WHERE id = $1", uuid.UUID(account.id)
        )
    finally:
        await conn.close()
    params = argon2.extract_parameters(stored)
    assert params.type is argon2.Type.ID
    assert (params.memory_cost, params.time_cost, params.parallelism) == (19456, 2, 1)
    assert PASSWORD not in stored


async def test_login_rehashes_when_parameters_changed(
    client: httpx.AsyncClient, database_url: str
) -> None:
    account = await register_and_login(client)
    weak = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE users SET password_hash = $1 WHERE id = $2", weak, uuid.UUID(account.id)
        )
        login = await client.post(
            "/auth/login", json={"email": account.email, "password": PASSWORD}
        )
        assert login.status_code == 200
        stored = await conn.fetchval(
            "SELECT password_hash FROM users WHERE id = $1", uuid.UUID(account.id)
        )
    finally:
        await conn.close()
    assert argon2.extract_parameters(stored).time_cost == 2


# --- login and throttling ------------------------------------------------------


async def test_login_returns_a_token_pair(client: httpx.AsyncClient) -> None:
    account = await register_and_login(client)
    response = await client.post(
        "/auth/login", json={"email": account.email.upper(), "password": PASSWORD}
    )
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    claims = jwt.decode(
        body["access_token"],
        ECKey.import_key((await client.get("/auth/.well-known/jwks.json")).json()["keys"][-1]),
    ).claims
    assert claims["aud"] == "shopflow" and claims["iss"] == ISSUER and claims["sub"] == account.id
    assert claims["role"] == "customer" and claims["exp"] - claims["iat"] == 900 and claims["jti"]


async def test_wrong_password_and_unknown_email_look_the_same(client: httpx.AsyncClient) -> None:
    account = await register_and_login(client)
    headers = {"x-forwarded-for": "10.0.0.1"}
    wrong = await client.post(
        "/auth/login", json={"email": account.email, "password": "nope-nope-nope"}, headers=headers
    )
    unknown = await client.post(
        "/auth/login", json={"email": unique_email(), "password": "nope-nope-nope"}, headers=headers
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


async def test_five_failures_give_429_with_retry_after(client: httpx.AsyncClient) -> None:
    account = await register_and_login(client)
    headers = {"x-forwarded-for": "10.0.0.2"}
    bad = {"email": account.email, "password": "wrong-password-x"}
    for _ in range(5):
        assert (await client.post("/auth/login", json=bad, headers=headers)).status_code == 401
    throttled = await client.post(
        "/auth/login", json={"email": account.email, "password": PASSWORD}, headers=headers
    )
    assert throttled.status_code == 429
    assert throttled.headers["content-type"] == PROBLEM
    assert 1 <= int(throttled.headers["retry-after"]) <= 900


async def test_per_address_limit_spans_accounts(client: httpx.AsyncClient) -> None:
    headers = {"x-forwarded-for": "203.0.113.7"}
    for _ in range(IP_LIMIT):
        response = await client.post(
            "/auth/login",
            json={"email": unique_email(), "password": "guess-guess-1"},
            headers=headers,
        )
        assert response.status_code == 401
    blocked = await client.post(
        "/auth/login", json={"email": unique_email(), "password": "guess-guess-1"}, headers=headers
    )
    assert blocked.status_code == 429 and "retry-after" in blocked.headers
    other = await client.post(
        "/auth/login",
        json={"email": unique_email(), "password": "guess-guess-1"},
        headers={"x-forwarded-for": "203.0.113.8"},
    )
    assert other.status_code == 401


# --- refresh and logout ---------------------------------------------------------


async def test_refresh_rotates_and_reuse_revokes_the_family(client: httpx.AsyncClient) -> None:
    account = await register_and_login(client)
    first = await client.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert first.status_code == 200
    second_token = first.json()["refresh_token"]
    assert second_token != account.refresh_token
    # The old token is spent: presenting it again is reuse.
    reuse = await client.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    assert reuse.status_code == 401
    # ...which revoked every token descended from the same login.
    assert (
        await client.post("/auth/refresh", json={"refresh_token": second_token})
    ).status_code == 401


async def test_refresh_with_unknown_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/refresh", json={"refresh_token": "made-up"})
    assert response.status_code == 401 and response.headers["content-type"] == PROBLEM


async def test_concurrent_refreshes_issue_one_pair(client: httpx.AsyncClient) -> None:
    account = await register_and_login(client)
    results = await asyncio.gather(
        *(
            client.post("/auth/refresh", json={"refresh_token": account.refresh_token})
            for _ in range(5)
        )
    )
    assert sorted(r.status_code for r in results) == [200, 401, 401, 401, 401]


async def test_logout_revokes_one_token(client: httpx.AsyncClient) -> None:
    account = await register_and_login(client)
    other = (
        await client.post("/auth/login", json={"email": account.email, "password": PASSWORD})
    ).json()
    assert (
        await client.post("/auth/logout", json={"refresh_token": account.refresh_token})
    ).status_code == 204
    assert (
        await client.post("/auth/logout", json={"refresh_token": account.refresh_token})
    ).status_code == 401
    assert (
        await client.post("/auth/refresh", json={"refresh_token": account.refresh_token})
    ).status_code == 401
    assert (
        await client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})
    ).status_code == 200


# --- /auth/me and token validation -------------------------------------------------


async def test_me(client: httpx.AsyncClient) -> None:
    account = await register_and_login(client)
    response = await client.get("/auth/me", headers=account.auth)
    assert response.json() == {
        "id": account.id,
        "email": account.email,
        "name": "Test Shopper",
        "role": "customer",
    }
    assert (await client.get("/auth/me")).status_code == 401


async def test_bad_tokens_get_401_from_me(client: httpx.AsyncClient, database_url: str) -> None:
    account = await register_and_login(client)
    key = await fetch_private_key(database_url)
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": "shopflow",
        "sub": account.id,
        "role": "admin",
        "iat": now,
        "exp": now + 600,
    }
    public = (await client.get("/auth/.well-known/jwks.json")).json()["keys"][-1]

    def signed(claims: dict, signer: ECKey = key) -> str:
        return jwt.encode({"alg": "ES256", "kid": signer.kid}, claims, signer)

    def unsigned(header: dict, claims: dict, secret: bytes | None = None) -> str:
        head, body = b64(json.dumps(header).encode()), b64(json.dumps(claims).encode())
        if secret is None:
            return f"{head}.{body}."
        mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{b64(mac)}"

    _, payload, signature = account.access_token.split(".")
    tampered_claims = json.loads(base64.urlsafe_b64decode(payload + "==="))
    tampered_claims["role"] = "admin"
    tampered = f"{account.access_token.split('.')[0]}.{b64(json.dumps(tampered_claims).encode())}.{signature}"
    stranger = ECKey.generate_key("P-256", parameters={"kid": "not-ours", "alg": "ES256"})
    cases = {
        "control": (signed(base), 200),
        "expired": (signed({**base, "iat": now - 2000, "exp": now - 1000}), 401),
        "wrong aud": (signed({**base, "aud": "shopflow-internal"}), 401),
        "wrong iss": (signed({**base, "iss": "https://evil.test/auth"}), 401),
        "alg none": (unsigned({"alg": "none", "kid": key.kid}, base), 401),
        "hs256 key confusion": (
            unsigned({"alg": "HS256", "kid": key.kid}, base, json.dumps(public).encode()),
            401,
        ),
        "tampered": (tampered, 401),
        "unknown kid": (signed(base, stranger), 401),
    }
    for name, (token, status) in cases.items():
        response = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == status, name


# --- discovery ------------------------------------------------------------------------


async def test_jwks_publishes_public_keys_only(client: httpx.AsyncClient) -> None:
    keys = (await client.get("/auth/.well-known/jwks.json")).json()["keys"]
    assert keys
    for key in keys:
        assert key["kty"] == "EC" and key["alg"] == "ES256" and key["kid"]
        assert "d" not in key


async def test_openid_configuration(client: httpx.AsyncClient) -> None:
    config = (await client.get("/auth/.well-known/openid-configuration")).json()
    assert config["issuer"] == ISSUER
    assert config["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert config["token_endpoint"] == f"{ISSUER}/oauth/token"
    assert "ES256" in config["id_token_signing_alg_values_supported"]


async def test_openapi_documents_every_endpoint(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/auth/openapi.json")).json()["paths"]
    for path in [
        "/auth/register",
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/auth/me",
        "/auth/.well-known/jwks.json",
        "/auth/.well-known/openid-configuration",
        "/auth/oauth/token",
    ]:
        assert path in paths, path
    assert paths["/auth/register"]["post"]["requestBody"]["content"]["application/json"]["schema"]


# --- service tokens -----------------------------------------------------------------------


async def test_client_credentials(client: httpx.AsyncClient) -> None:
    ok = await client.post(
        "/auth/oauth/token",
        data={"grant_type": "client_credentials", "scope": "inventory:reserve"},
        auth=("order-mgmt", "order-secret"),
    )
    assert ok.status_code == 200
    body = ok.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "inventory:reserve"
    public = (await client.get("/auth/.well-known/jwks.json")).json()["keys"][-1]
    claims = jwt.decode(body["access_token"], ECKey.import_key(public)).claims
    assert claims["aud"] == "shopflow-internal" and claims["sub"] == "order-mgmt"
    assert claims["scope"] == "inventory:reserve"
    # client_secret_post works too, and no scope means every allowed scope.
    post = await client.post(
        "/auth/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "order-mgmt",
            "client_secret": "order-secret",
        },
    )
    assert post.json()["scope"] == "inventory:reserve payments:charge"


async def test_client_credentials_errors(client: httpx.AsyncClient) -> None:
    form = {"grant_type": "client_credentials"}
    cases: list[tuple[dict[str, Any], int, str]] = [
        (dict(data=form, auth=("order-mgmt", "wrong")), 401, "invalid_client"),
        (dict(data=form, auth=("stranger", "x")), 401, "invalid_client"),
        (dict(data=form), 401, "invalid_client"),
        (
            dict(data={**form, "scope": "payments:refund"}, auth=("order-mgmt", "order-secret")),
            400,
            "invalid_scope",
        ),
        (
            dict(data={"grant_type": "password"}, auth=("order-mgmt", "order-secret")),
            400,
            "unsupported_grant_type",
        ),
        (dict(json=form, auth=("order-mgmt", "order-secret")), 400, "invalid_request"),
    ]
    for kwargs, status, error in cases:
        response = await client.post("/auth/oauth/token", **kwargs)
        assert response.status_code == status, (kwargs, response.text)
        assert response.json()["error"] == error
