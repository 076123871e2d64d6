"""user-auth's use cases: accounts, sessions and tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from joserfc import jwt
from pydantic import ValidationError
from shopflow_kit.errors import Problem
from shopflow_kit.outbox import publish
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from auth_service import passwords
from auth_service.config import Settings
from auth_service.keys import ALG, KeyRing
from auth_service.models import LoginFailure, RefreshToken, User
from auth_service.schemas import RegisterIn

BAD_CREDENTIALS = "the email or password is wrong"
BAD_REFRESH = "the refresh token is unknown, spent or expired"


def utcnow() -> datetime:
    return datetime.now(UTC)


def normalize_email(email: str) -> str:
    return email.strip().lower()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str


class TokenMinter:
    """Signs access and service tokens with the key ring's active key."""

    def __init__(self, keys: KeyRing, settings: Settings) -> None:
        self.keys = keys
        self.settings = settings

    @property
    def ttl(self) -> int:
        return self.settings.access_token_ttl_seconds

    async def _sign(self, claims: dict[str, Any]) -> str:
        key = await self.keys.signing_key()
        now = int(utcnow().timestamp())
        claims = {
            "iss": self.settings.jwt_issuer,
            "iat": now,
            "exp": now + self.ttl,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        return jwt.encode({"alg": ALG, "kid": key.kid, "typ": "JWT"}, claims, key)

    async def access_token(self, user: User) -> str:
        return await self._sign(
            {"aud": self.settings.jwt_audience, "sub": str(user.id), "role": user.role}
        )

    async def service_token(self, client_id: str, scopes: list[str]) -> str:
        return await self._sign(
            {
                "aud": self.settings.service_audience,
                "sub": client_id,
                "client_id": client_id,
                "scope": " ".join(scopes),
            }
        )


# --- accounts ---------------------------------------------------------------


async def register(email: str, password: str, name: str, *, role: str = "customer") -> User:
    """Create an account and its ``user.registered`` event in one transaction."""
    password_hash = await passwords.hash_password(password)
    try:
        async with in_transaction():
            user = await User.create(
                id=uuid.uuid4(),
                email=email.strip(),
                email_normalized=normalize_email(email),
                name=name,
                password_hash=password_hash,
                role=role,
            )
            await publish(
                "user.registered",
                {"email": user.email, "name": user.name},
                subject_user_id=user.id,
            )
    except IntegrityError:
        raise Problem(409, "an account with this email already exists") from None
    return user


async def find_user(user_id: str) -> User:
    """A user by id; 404 for unknown ids and non-UUIDs alike."""
    try:
        uid = uuid.UUID(user_id)
    except ValueError:
        raise Problem(404, "no such user") from None
    user = await User.get_or_none(id=uid)
    if user is None:
        raise Problem(404, "no such user")
    return user


# --- login and throttling ----------------------------------------------------


# One transaction-scoped lock per bucket serialises the check and the record of
# an attempt across every request and every replica (they share the database).
_LOCK_BUCKET = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"


async def _claim_attempt(settings: Settings, buckets: dict[str, int]) -> list[int]:
    """Check every bucket and record this attempt in each, as one atomic step.

    The attempt is recorded as a failure *before* the password is checked, so
    concurrent guesses each see the ones before them: no more than a bucket's
    limit is ever evaluated within the window. A full bucket answers 429 with
    Retry-After, whatever the password. Returns the recorded rows' ids.
    """
    window = timedelta(seconds=settings.login_window_seconds)
    async with in_transaction() as conn:
        for bucket in sorted(buckets):  # one lock order everywhere: no deadlocks
            await conn.execute_query(_LOCK_BUCKET, [bucket])
        now = utcnow()
        for bucket, limit in buckets.items():
            failures = (
                await LoginFailure.filter(bucket=bucket, failed_at__gt=now - window)
                .order_by("-failed_at")
                .limit(limit)
                .values_list("failed_at", flat=True)
            )
            if len(failures) >= limit:
                # Free again when the oldest of the last `limit` failures leaves the window.
                oldest: datetime = failures[-1]  # type: ignore[assignment]
                retry_after = max(1, int((oldest + window - now).total_seconds()) + 1)
                raise Problem(
                    429,
                    "too many failed logins; try again later",
                    headers={"Retry-After": str(retry_after)},
                )
        claimed = [await LoginFailure.create(bucket=b, failed_at=now) for b in sorted(buckets)]
    return [row.id for row in claimed]


async def login(minter: TokenMinter, email: str, password: str, client_address: str) -> TokenPair:
    settings = minter.settings
    buckets = {
        f"account:{normalize_email(email)}": settings.login_failure_limit,
        f"ip:{client_address}": settings.ip_failure_limit,
    }
    claimed = await _claim_attempt(settings, buckets)
    user = await User.get_or_none(email_normalized=normalize_email(email))
    # Unknown emails cost one argon2 verify too, so timing reveals nothing.
    valid = await passwords.verify_password(
        user.password_hash if user else passwords.dummy_hash(), password
    )
    if user is None or not valid:
        raise Problem(401, BAD_CREDENTIALS)  # the claimed attempt stays: it was a failure
    # A success withdraws only its own attempt; earlier failures keep counting
    # until they leave the window, so a login amid a burst wipes nothing.
    await LoginFailure.filter(id__in=claimed).delete()
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = await passwords.hash_password(password)
        await user.save(update_fields=["password_hash"])
    return await _new_session(minter, user, family_id=uuid.uuid4(), parent_id=None)


async def _new_session(
    minter: TokenMinter, user: User, *, family_id: uuid.UUID, parent_id: uuid.UUID | None
) -> TokenPair:
    refresh = secrets.token_urlsafe(32)
    await RefreshToken.create(
        id=uuid.uuid4(),
        user=user,
        family_id=family_id,
        parent_id=parent_id,
        token_hash=token_hash(refresh),
        expires_at=utcnow() + timedelta(days=minter.settings.refresh_token_ttl_days),
    )
    return TokenPair(await minter.access_token(user), minter.ttl, refresh)


# --- refresh tokens ------------------------------------------------------------


async def refresh(minter: TokenMinter, presented: str) -> TokenPair:
    """Rotate: the presented token is spent and a new pair issued.

    Presenting a spent token is a sign it was stolen: the whole family (every
    token descended from the same login) is revoked.
    """
    reused = False
    async with in_transaction():
        token = (
            await RefreshToken.filter(token_hash=token_hash(presented))
            .select_for_update()
            .prefetch_related("user")
            .first()
        )
        if token is None or token.revoked_at is not None or token.expires_at <= utcnow():
            raise Problem(401, BAD_REFRESH)
        if token.used_at is not None:
            await RefreshToken.filter(family_id=token.family_id, revoked_at=None).update(
                revoked_at=utcnow()
            )
            reused = True
        else:
            token.used_at = utcnow()
            await token.save(update_fields=["used_at"])
            return await _new_session(
                minter, token.user, family_id=token.family_id, parent_id=token.id
            )
    assert reused  # the revocation above is committed before answering
    raise Problem(401, BAD_REFRESH)


async def logout(presented: str) -> None:
    updated = await RefreshToken.filter(
        token_hash=token_hash(presented),
        revoked_at=None,
        used_at=None,
        expires_at__gt=utcnow(),
    ).update(revoked_at=utcnow())
    if not updated:
        raise Problem(401, BAD_REFRESH)


# --- service tokens (OAuth2 client credentials) ---------------------------------


def oauth_error(status: int, error: str, description: str, **headers: str) -> Problem:
    return Problem(
        status,
        description,
        headers=headers,
        extra={"error": error, "error_description": description},
    )


async def client_credentials(
    minter: TokenMinter, client_id: str, client_secret: str, requested: str | None
) -> tuple[str, list[str]]:
    settings = minter.settings
    known = settings.oauth_clients.get(client_id)
    # compare_digest on a dummy too, so unknown clients cost the same.
    expected = known.get_secret_value() if known else secrets.token_urlsafe(32)
    if not hmac.compare_digest(expected.encode(), client_secret.encode()) or known is None:
        raise oauth_error(
            401,
            "invalid_client",
            "client authentication failed",
            **{"WWW-Authenticate": 'Basic realm="shopflow"'},
        )
    allowed = settings.oauth_client_scopes.get(client_id, [])
    scopes = requested.split() if requested else list(allowed)
    refused = [s for s in scopes if s not in allowed]
    if refused:
        raise oauth_error(
            400, "invalid_scope", f"scope not allowed for {client_id}: {' '.join(refused)}"
        )
    return await minter.service_token(client_id, scopes), scopes


# --- admin and housekeeping -------------------------------------------------------


async def create_admin(email: str, password: str, name: str) -> User:
    """An admin, held to the rules of registration: an address notify-hub can mail too."""
    try:
        checked = RegisterIn.model_validate({"email": email, "password": password, "name": name})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"{field}: {first['msg'].removeprefix('Value error, ')}") from None
    return await register(checked.email, password, name, role="admin")


async def purge_expired_state(settings: Settings) -> None:
    cutoff = utcnow() - timedelta(seconds=settings.login_window_seconds)
    await LoginFailure.filter(failed_at__lt=cutoff).delete()
    await RefreshToken.filter(expires_at__lt=utcnow() - timedelta(days=1)).delete()
