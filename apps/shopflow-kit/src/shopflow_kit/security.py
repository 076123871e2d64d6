"""JWT verification against user-auth's JWKS, and the access decorators."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import wraps
from typing import Any, Protocol

import httpx
from joserfc import jwt
from joserfc.errors import ClaimError, ExpiredTokenError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact
from sanic import HTTPResponse, Request

from shopflow_kit.errors import Problem
from shopflow_kit.openapi import doc_of

ALLOWED_ALGORITHMS = ("ES256", "RS256")
#: The roles a shopper's token may carry (``role`` claim).
ROLES = ("customer", "admin")
#: The longest any ShopFlow token may live (``exp - iat``); user-auth issues within it.
MAX_TOKEN_LIFETIME_SECONDS = 3600
#: The most clock skew ever tolerated; the setting is ``jwt_leeway_seconds``.
MAX_LEEWAY_SECONDS = 30
Handler = Callable[..., Awaitable[HTTPResponse]]


class Unauthorized(StrEnum):
    """What a 401 says went wrong, in the kit's words.

    A library's own message can change between versions and may describe more
    than it should, so no 401 ever carries one.
    """

    MISSING = "a bearer token is required"
    MALFORMED = "the token is malformed"
    INVALID = "the token is invalid"
    EXPIRED = "the token has expired"
    NOT_FOR_US = "the token was not issued for this service"
    TOO_LONG_LIVED = "the token lives longer than its issuer allows"
    UNKNOWN_KEY = "the token names an unknown signing key"
    KEYS_UNAVAILABLE = "the signing keys cannot be fetched; try again"
    BAD_ROLE = "the token carries no valid role"


UNAUTHORIZED_DETAILS = frozenset(str(u) for u in Unauthorized)


class InvalidToken(Exception):
    """The token is missing, malformed, unsigned, tampered with, expired or not for us.

    Its message is an :class:`Unauthorized` detail, safe to show.
    """


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
                except (httpx.HTTPError, ValueError):
                    if key is None:
                        raise InvalidToken(Unauthorized.KEYS_UNAVAILABLE) from None
                key = self._lookup(kid)
        if key is None:
            raise InvalidToken(Unauthorized.UNKNOWN_KEY)
        return key


class KeySource(Protocol):
    async def key_for(self, kid: str) -> Any: ...


class TokenVerifier:
    """Verifies bearer tokens, and remembers the ones it verified for a short while.

    A shopper or a service sends the same token with every request until it
    expires; checking its ES256 signature again each time was 70 µs of CPU per
    request. A token verified for an audience is taken again without the
    signature check for ``remember_seconds`` (never past its ``exp``). A token
    verified just before its signing key was taken out of the JWKS is therefore
    accepted for at most ``remember_seconds`` more; the JWKS cache itself keeps a
    removed key for up to its own 5 minutes. Only tokens that passed
    every check are remembered, at most ``remember_max`` of them (oldest out
    first), so made-up tokens cannot fill the memory.
    """

    def __init__(
        self,
        jwks: KeySource,
        issuer: str,
        *,
        leeway: int = MAX_LEEWAY_SECONDS,
        max_lifetime: int = MAX_TOKEN_LIFETIME_SECONDS,
        remember_seconds: float = 60.0,
        remember_max: int = 4096,
    ) -> None:
        if not 0 <= leeway <= MAX_LEEWAY_SECONDS:
            raise ValueError(f"leeway must be 0-{MAX_LEEWAY_SECONDS} seconds")
        self.jwks = jwks
        self.issuer = issuer
        self.leeway = leeway
        self.max_lifetime = max_lifetime
        self.remember_seconds = remember_seconds
        self.remember_max = remember_max
        #: (token, audience) -> (time.monotonic() until which it is taken, its claims)
        self._verified: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    async def verify(self, token: str, audience: str) -> dict[str, Any]:
        """The token's claims, or :class:`InvalidToken` saying what is wrong with it."""
        key = (token, audience)
        known = self._verified.get(key)
        if known is not None:
            until, claims = known
            if time.monotonic() < until and time.time() < claims["exp"] + self.leeway:
                return dict(claims)
            del self._verified[key]  # checked in full again: "expired" says why
        claims = await self._verify(token, audience)
        if self.remember_seconds > 0:
            if len(self._verified) >= self.remember_max:
                del self._verified[next(iter(self._verified))]
            self._verified[key] = (time.monotonic() + self.remember_seconds, claims)
        return dict(claims)

    async def _verify(self, token: str, audience: str) -> dict[str, Any]:
        try:
            header = extract_compact(token.encode()).protected
        except (JoseError, ValueError, UnicodeError):
            raise InvalidToken(Unauthorized.MALFORMED) from None
        alg, kid = header.get("alg"), header.get("kid")
        # Checked before any key is touched: rules out "none" and HS256-with-public-key.
        if alg not in ALLOWED_ALGORITHMS or not isinstance(kid, str) or not kid:
            raise InvalidToken(Unauthorized.INVALID)
        key = await self.jwks.key_for(kid)
        try:
            decoded = jwt.decode(token, key, algorithms=list(ALLOWED_ALGORITHMS))
            registry = jwt.JWTClaimsRegistry(
                leeway=self.leeway,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": audience},
                exp={"essential": True},
                iat={"essential": True},
                sub={"essential": True},
            )
            registry.validate(decoded.claims)
        except ExpiredTokenError:
            raise InvalidToken(Unauthorized.EXPIRED) from None
        except ClaimError as exc:
            detail = (
                Unauthorized.NOT_FOR_US if exc.claim in ("iss", "aud") else Unauthorized.INVALID
            )
            raise InvalidToken(detail) from None
        except (JoseError, ValueError, UnicodeError):
            raise InvalidToken(Unauthorized.INVALID) from None
        claims = dict(decoded.claims)
        # A stolen long-lived token is the damage this bounds, whoever signed it.
        if claims["exp"] - claims["iat"] > self.max_lifetime:
            raise InvalidToken(Unauthorized.TOO_LONG_LIVED)
        return claims


def _unauthorized(detail: str) -> Problem:
    return Problem(401, detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


async def authenticate(request: Request, audience: str) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Problem(401, Unauthorized.MISSING, headers={"WWW-Authenticate": "Bearer"})
    verifier: TokenVerifier = request.app.ctx.verifier
    try:
        claims = await verifier.verify(token, audience)
    except InvalidToken as exc:
        raise _unauthorized(str(exc)) from None
    role, scope = claims.get("role"), claims.get("scope", "")
    # A shopper's token must name a known role; a service token may not name an unknown one.
    if ("role" in claims or audience == request.app.ctx.settings.jwt_audience) and (
        not isinstance(role, str) or role not in ROLES
    ):
        raise _unauthorized(Unauthorized.BAD_ROLE)
    if not isinstance(scope, str):
        raise _unauthorized(Unauthorized.INVALID)
    principal = Principal(
        subject=str(claims["sub"]),
        role=role,
        scopes=frozenset(scope.split()),
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
