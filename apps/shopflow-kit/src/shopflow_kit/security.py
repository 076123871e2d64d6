"""JWT verification against user-auth's JWKS, and the access decorators."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, Protocol

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact
from sanic import HTTPResponse, Request

from shopflow_kit.errors import Problem
from shopflow_kit.openapi import doc_of

ALLOWED_ALGORITHMS = ("ES256", "RS256")
Handler = Callable[..., Awaitable[HTTPResponse]]


class InvalidToken(Exception):
    """The token is missing, malformed, unsigned, tampered with, expired or not for us."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (``role``) or a service (``scopes``)."""

    subject: str
    role: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    claims: dict[str, Any] = field(default_factory=dict)


class JWKSCache:
    """Public keys from a JWKS URL: cached, refetched on an unknown ``kid``.

    Refetches are rate-limited so that a flood of tokens with random ``kid``s
    cannot turn every request into a call to user-auth.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 300.0,
        min_refetch_interval: float = 10.0,
        timeout: float = 3.0,
    ) -> None:
        self.url = url
        self.ttl = ttl
        self.min_refetch_interval = min_refetch_interval
        self.timeout = timeout
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    async def _fetch(self) -> None:
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            response = await client.get(self.url)
            response.raise_for_status()
            document = response.json()
        # Only asymmetric public keys: a symmetric ("oct") key in a JWKS is never trusted.
        keys = [
            k
            for k in document.get("keys", [])
            if k.get("kty") in ("EC", "RSA") and k.get("alg", "ES256") in ALLOWED_ALGORITHMS
        ]
        self._keys = KeySet.import_key_set({"keys": keys})
        self._fetched_at = time.monotonic()
        self.fetch_count += 1

    def _lookup(self, kid: str) -> Any:
        if self._keys is None:
            return None
        for key in self._keys.keys:
            if key.kid == kid:
                return key
        return None

    async def key_for(self, kid: str) -> Any:
        key = self._lookup(kid)
        age = time.monotonic() - self._fetched_at
        if key is not None and age < self.ttl:
            return key
        async with self._lock:
            key = self._lookup(kid)
            age = time.monotonic() - self._fetched_at
            if (key is None or age >= self.ttl) and age >= self.min_refetch_interval:
                try:
                    await self._fetch()
                except (httpx.HTTPError, ValueError) as exc:
                    if key is None:
                        raise InvalidToken(f"signing keys unavailable: {exc}") from None
                key = self._lookup(kid)
        if key is None:
            raise InvalidToken("unknown signing key")
        return key


class KeySource(Protocol):
    async def key_for(self, kid: str) -> Any: ...


class TokenVerifier:
    def __init__(self, jwks: KeySource, issuer: str, *, leeway: int = 30) -> None:
        self.jwks = jwks
        self.issuer = issuer
        self.leeway = leeway

    async def verify(self, token: str, audience: str) -> dict[str, Any]:
        try:
            header = extract_compact(token.encode()).protected
        except (JoseError, ValueError, UnicodeError):
            raise InvalidToken("malformed token") from None
        alg, kid = header.get("alg"), header.get("kid")
        # Checked before any key is touched: rules out "none" and HS256-with-public-key.
        if alg not in ALLOWED_ALGORITHMS:
            raise InvalidToken("algorithm not allowed")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("token has no kid")
        key = await self.jwks.key_for(kid)
        try:
            decoded = jwt.decode(token, key, algorithms=list(ALLOWED_ALGORITHMS))
            registry = jwt.JWTClaimsRegistry(
                leeway=self.leeway,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": audience},
                exp={"essential": True},
                sub={"essential": True},
            )
            registry.validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            raise InvalidToken(getattr(exc, "description", None) or "invalid token") from None
        return dict(decoded.claims)


def _unauthorized(detail: str) -> Problem:
    return Problem(401, detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


async def authenticate(request: Request, audience: str) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    verifier: TokenVerifier = request.app.ctx.verifier
    try:
        claims = await verifier.verify(token.strip(), audience)
    except InvalidToken as exc:
        raise _unauthorized(f"invalid token: {exc}") from None
    scope = claims.get("scope", "")
    principal = Principal(
        subject=str(claims["sub"]),
        role=claims.get("role") if isinstance(claims.get("role"), str) else None,
        scopes=frozenset(scope.split()) if isinstance(scope, str) else frozenset(),
        claims=claims,
    )
    request.ctx.principal = principal
    return principal


def _secured(wrapper: Handler, problems: set[int]) -> Handler:
    """Record in the OpenAPI declaration that ``wrapper`` needs a bearer token."""
    doc = doc_of(wrapper)
    doc.secured = True
    doc.problems.update(problems)
    return wrapper


def require_user(handler: Handler) -> Handler:
    """Any signed-in shopper or admin (``aud=shopflow``)."""

    @wraps(handler)
    async def wrapper(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
        await authenticate(request, request.app.ctx.settings.jwt_audience)
        return await handler(request, *args, **kwargs)

    return _secured(wrapper, {401})


def require_role(role: str) -> Callable[[Handler], Handler]:
    def decorator(handler: Handler) -> Handler:
        @wraps(handler)
        async def wrapper(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
            principal = await authenticate(request, request.app.ctx.settings.jwt_audience)
            if principal.role != role:
                raise Problem(403, f"this action needs the {role} role")
            return await handler(request, *args, **kwargs)

        secured = _secured(wrapper, {401, 403})
        doc_of(secured).roles.add(role)  # documented as {"bearer": [role]}
        return secured

    return decorator


def require_scope(scope: str) -> Callable[[Handler], Handler]:
    """A service token (``aud=shopflow-internal``) carrying ``scope``."""

    def decorator(handler: Handler) -> Handler:
        @wraps(handler)
        async def wrapper(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
            principal = await authenticate(request, request.app.ctx.settings.service_audience)
            if scope not in principal.scopes:
                raise Problem(403, f"this endpoint needs the {scope} scope")
            return await handler(request, *args, **kwargs)

        return _secured(wrapper, {401, 403})

    return decorator
