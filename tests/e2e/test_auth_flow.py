"""Every row of API.md's auth table, through `shopctl up`'s gateway."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.utils.e2e import Platform
from tests.utils.factories import PASSWORD, unique_email


@pytest.fixture
def gw(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.gateway, timeout=20) as client:
        yield client


def test_health_through_the_gateway(gw: httpx.Client) -> None:
    response = gw.get("/auth/health")
    assert response.status_code == 200 and response.headers["x-request-id"]


def test_account_lifecycle(gw: httpx.Client) -> None:
    email = unique_email()
    created = gw.post("/auth/register", json={"email": email, "password": PASSWORD, "name": "E2E"})
    assert created.status_code == 201 and created.json()["role"] == "customer"
    assert (
        gw.post(
            "/auth/register", json={"email": email.upper(), "password": PASSWORD, "name": "x"}
        ).status_code
        == 409
    )
    tokens = gw.post("/auth/login", json={"email": email, "password": PASSWORD}).json()
    me = gw.get("/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200 and me.json()["email"] == email
    rotated = gw.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    assert (
        gw.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    )
    assert (
        gw.post(
            "/auth/refresh", json={"refresh_token": rotated.json()["refresh_token"]}
        ).status_code
        == 401
    )
    fresh = gw.post("/auth/login", json={"email": email, "password": PASSWORD}).json()
    assert (
        gw.post("/auth/logout", json={"refresh_token": fresh["refresh_token"]}).status_code == 204
    )
    assert (
        gw.post("/auth/logout", json={"refresh_token": fresh["refresh_token"]}).status_code == 401
    )


def test_bad_input_answers(gw: httpx.Client) -> None:
    json_type = {"content-type": "application/json"}
    assert gw.post("/auth/register", content=b"{oops", headers=json_type).status_code == 400
    form = gw.post("/auth/register", data={"email": unique_email(), "password": PASSWORD})
    assert form.status_code == 415
    weak = gw.post(
        "/auth/register", json={"email": unique_email(), "password": "123456789", "name": "x"}
    )
    assert weak.status_code == 422
    huge = gw.post("/auth/register", content=b"[" + b"0," * (1024 * 1024) + b"0]")
    assert huge.status_code == 413
    assert huge.headers["content-type"] == "application/problem+json"


def test_login_throttling_through_the_gateway(gw: httpx.Client) -> None:
    email = unique_email()
    gw.post("/auth/register", json={"email": email, "password": PASSWORD, "name": "T"})
    for _ in range(5):
        assert (
            gw.post("/auth/login", json={"email": email, "password": "wrong-wrong-1"}).status_code
            == 401
        )
    throttled = gw.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0


def test_discovery_and_service_tokens(gw: httpx.Client, platform: Platform) -> None:
    config = gw.get("/auth/.well-known/openid-configuration").json()
    assert config["issuer"] == f"{platform.gateway}/auth"
    assert gw.get("/auth/.well-known/jwks.json").json()["keys"]
    secret = platform.secrets["clients"]["order-mgmt"]
    token = gw.post(
        "/auth/oauth/token", data={"grant_type": "client_credentials"}, auth=("order-mgmt", secret)
    )
    assert token.status_code == 200 and "inventory:reserve" in token.json()["scope"]
    denied = gw.post(
        "/auth/oauth/token", data={"grant_type": "client_credentials"}, auth=("order-mgmt", "x")
    )
    assert denied.status_code == 401


def test_seeded_admin_can_log_in(gw: httpx.Client, platform: Platform) -> None:
    login = gw.post(
        "/auth/login",
        json={"email": "admin@shopflow.example", "password": platform.secrets["admin_password"]},
    )
    me = gw.get("/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"})
    assert me.json()["role"] == "admin"
