"""Test-data factories for the public API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx

PASSWORD = "a-long-and-unusual-passphrase"


@dataclass
class Account:
    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def unique_email(prefix: str = "shopper") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


async def register_and_login(
    http: httpx.AsyncClient, email: str | None = None, password: str = PASSWORD
) -> Account:
    email = email or unique_email()
    created = await http.post(
        "/auth/register", json={"email": email, "password": password, "name": "Test Shopper"}
    )
    assert created.status_code == 201, created.text
    tokens = await http.post("/auth/login", json={"email": email, "password": password})
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    return Account(
        created.json()["id"], email, password, body["access_token"], body["refresh_token"]
    )
