"""A test token issuer on loopback: real JWKS and client-credentials endpoints.

It stands in for user-auth in the kit's own tests (user-auth is a service built
on the kit, so the kit cannot depend on it). The verifier under test talks to
it over real HTTP, exactly as it talks to user-auth.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from joserfc import jwt
from joserfc.jwk import ECKey

from tests.utils.live import LoopbackHTTPServer

ISSUER = "https://issuer.test/auth"


class TokenIssuer:
    def __init__(self, clients: dict[str, tuple[str, list[str]]] | None = None) -> None:
        self.keys = [ECKey.generate_key("P-256", parameters={"kid": "k1", "alg": "ES256"})]
        self.clients = clients or {}
        self.jwks_requests = 0
        self.tokens_issued = 0
        #: (client id, requested scope) of every service token issued, in order.
        self.issued: list[tuple[str, str]] = []
        self.server = LoopbackHTTPServer(self._handle)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> TokenIssuer:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def rotate(self, kid: str) -> ECKey:
        key = ECKey.generate_key("P-256", parameters={"kid": kid, "alg": "ES256"})
        self.keys.append(key)
        return key

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.as_dict(private=False) for k in self.keys]}

    def token(
        self,
        *,
        sub: str | None = None,
        role: str = "customer",
        aud: str = "shopflow",
        iss: str = ISSUER,
        ttl: int = 900,
        key: ECKey | None = None,
        scope: str | None = None,
        drop: tuple[str, ...] = (),
        **extra: Any,
    ) -> str:
        """A signed token; ``extra`` claims override the defaults, ``drop`` removes claims."""
        key = key or self.keys[0]
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": iss,
            "aud": aud,
            "sub": sub or str(uuid.uuid4()),
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            **extra,
        }
        if scope is None:
            claims["role"] = role
        else:
            claims["scope"] = scope
        for name in drop:
            claims.pop(name, None)
        header = {"alg": "ES256", "kid": key.kid}
        return jwt.encode(header, claims, key)

    def _handle(
        self, req: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if req.path == "/auth/.well-known/jwks.json":
            self.jwks_requests += 1
            return 200, {"content-type": "application/json"}, json.dumps(self.jwks()).encode()
        if req.path == "/auth/oauth/token" and req.command == "POST":
            scheme, _, encoded = (req.headers.get("authorization") or "").partition(" ")
            client_id, _, secret = base64.b64decode(encoded or "").decode().partition(":")
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            known = self.clients.get(client_id)
            if scheme != "Basic" or known is None or known[0] != secret:
                return 401, {"content-type": "application/json"}, b'{"error":"invalid_client"}'
            scopes = form.get("scope", "").split()
            if (
                any(s not in known[1] for s in scopes)
                or form.get("grant_type") != "client_credentials"
            ):
                return 400, {"content-type": "application/json"}, b'{"error":"invalid_scope"}'
            self.tokens_issued += 1
            self.issued.append((client_id, " ".join(scopes)))
            token = self.token(
                sub=client_id, aud="shopflow-internal", scope=" ".join(scopes), ttl=60
            )
            payload = {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": 60,
                "scope": " ".join(scopes),
            }
            return 200, {"content-type": "application/json"}, json.dumps(payload).encode()
        return 404, {}, b""
