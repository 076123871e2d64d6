"""Schemathesis hooks for the live contract runs (loaded with ``SCHEMATHESIS_HOOKS``).

Secured operations get a real bearer token: the customer's, or the admin's for
operations whose ``security`` names the ``admin`` role. A token a link already
put on the case (a shopper's own, from ``POST /auth/login``) is kept, so the
stateful run follows that shopper.

The sessions are logged in by the parent before any fuzzing starts
(``SHOPFLOW_FUZZ_SESSIONS``: role -> ``{access_token, refresh_token}``), one
per run: fuzzing ``POST /auth/login`` soon trips user-auth's per-address
throttle, so the hooks never log in. Access tokens live 15 minutes; every 10 the
hooks exchange the refresh token (``POST /auth/refresh``, not throttled).
"""

from __future__ import annotations

import base64
import json
import os

import httpx
import schemathesis

GATEWAY = os.environ.get("SHOPFLOW_FUZZ_GATEWAY", "")
SESSIONS: dict[str, dict[str, str]] = json.loads(os.environ.get("SHOPFLOW_FUZZ_SESSIONS", "{}"))
_fresh = {"first": True}


def _refreshed(session: dict[str, str]) -> dict[str, str]:
    response = httpx.post(
        f"{GATEWAY}/auth/refresh", json={"refresh_token": session["refresh_token"]}, timeout=10
    )
    response.raise_for_status()
    return dict(response.json())


def _roles(case: schemathesis.Case) -> list[str] | None:
    """None when the operation is public, else the roles its bearer requirement names."""
    requirements = case.operation.definition.raw.get("security") or []
    for requirement in requirements:
        if "bearer" in requirement:
            return list(requirement["bearer"])
    return None


def _issued_token(value: object) -> bool:
    """Whether ``value`` is a bearer token user-auth signed (a link carried it from a login).

    Schemathesis also generates ``Authorization`` values from the bearer scheme;
    those are random strings, never a JWT whose header names a signing key.
    """
    scheme, _, token = str(value).partition(" ")
    header = token.split(".")[0]
    if scheme != "Bearer" or token.count(".") != 2:
        return False
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except ValueError:
        return False
    return isinstance(decoded, dict) and "kid" in decoded


@schemathesis.auth(refresh_interval=600)
class PlatformTokens:
    def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> dict[str, str]:
        if not _fresh.pop("first", False):  # the first call uses the tokens as given
            for role, session in SESSIONS.items():
                SESSIONS[role] = _refreshed(session)
        return {role: session["access_token"] for role, session in SESSIONS.items()}

    def set(
        self, case: schemathesis.Case, data: dict[str, str], ctx: schemathesis.AuthContext
    ) -> None:
        roles = _roles(case)
        # A case-insensitive mapping: "authorization" and "Authorization" are one header.
        headers = case.headers
        if roles is None or _issued_token(headers.get("Authorization", "")):
            return
        role = "admin" if "admin" in roles else "customer"
        headers["Authorization"] = f"Bearer {data[role]}"
