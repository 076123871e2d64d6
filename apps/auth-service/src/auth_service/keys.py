"""Signing keys: loaded from a mounted secret, or generated and stored encrypted.

Rotation publishes a new key in the JWKS before it signs anything
(``active_from`` lies in the future), and keeps each old key published until
the last access token it signed has expired.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc.jwk import ECKey
from shopflow_kit.config import ConfigError
from shopflow_kit.security import InvalidToken as InvalidJWT
from shopflow_kit.security import Unauthorized
from tortoise.transactions import in_transaction

from auth_service.config import Settings
from auth_service.models import SigningKey

ALG = "ES256"


class KeyConfigError(ConfigError):
    """The signing keys cannot be set up; the message names the setting to fix."""


def _fernet(key_encryption_key: str) -> Fernet:
    if len(key_encryption_key) < 32:
        raise KeyConfigError("the key-encryption key must be at least 32 characters")
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"shopflow-signing-keys"
    ).derive(key_encryption_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PublishedKey:
    kid: str
    key: ECKey
    active_from: datetime


def load_configured_key(pem_or_jwk: str) -> ECKey:
    """A key from a mounted Secret: PEM, or a private JWK as JSON."""
    text = pem_or_jwk.strip()
    try:
        if text.startswith("{"):
            key = ECKey.import_key(json.loads(text))
        else:
            key = ECKey.import_key(text.encode())
    except (ValueError, TypeError) as exc:
        raise KeyConfigError(f"the configured signing key cannot be read: {exc}") from None
    if key.is_private is False:
        raise KeyConfigError("the configured signing key has no private part")
    kid = key.kid or key.thumbprint()
    return ECKey.import_key(key.as_dict(private=True), parameters={"kid": kid, "alg": ALG})


class KeyRing:
    """All of user-auth's keys: which signs now, which the JWKS publishes."""

    def __init__(
        self,
        key_encryption_key: str,
        access_token_ttl: timedelta,
        configured_key: str | None = None,
        configured_key_file: Path | None = None,
    ) -> None:
        self.access_token_ttl = access_token_ttl
        self._kek = key_encryption_key
        self._private: dict[str, ECKey] = {}
        self._configured: ECKey | None = None
        if configured_key_file is not None:
            configured_key = configured_key_file.read_text()
        if configured_key:
            self._configured = load_configured_key(configured_key)

    def _decrypt(self, row: SigningKey) -> ECKey:
        if row.kid not in self._private:
            try:
                data = _fernet(self._kek).decrypt(row.private_key_encrypted.encode())
            except InvalidToken:
                raise KeyConfigError(
                    f"signing key {row.kid} cannot be decrypted: wrong key-encryption key"
                ) from None
            self._private[row.kid] = ECKey.import_key(json.loads(data))
        return self._private[row.kid]

    async def ensure_key(self) -> None:
        """On first start, generate and store one key (safe with several replicas)."""
        if self._configured is not None:
            return
        async with in_transaction() as conn:
            await conn.execute_query("SELECT pg_advisory_xact_lock(hashtext('signing_keys'))")
            if not await SigningKey.exists():
                await self._create(active_from=utcnow())

    async def rotate(self, activate_in: timedelta) -> SigningKey:
        """Add a key, published now and used for signing after ``activate_in``."""
        if self._configured is not None:
            raise KeyConfigError("keys come from a mounted secret; rotate the secret instead")
        async with in_transaction() as conn:
            await conn.execute_query("SELECT pg_advisory_xact_lock(hashtext('signing_keys'))")
            return await self._create(active_from=utcnow() + activate_in)

    async def _create(self, active_from: datetime) -> SigningKey:
        kid = f"{ALG.lower()}-{uuid.uuid4().hex[:16]}"
        key = ECKey.generate_key("P-256", parameters={"kid": kid, "alg": ALG, "use": "sig"})
        encrypted = _fernet(self._kek).encrypt(json.dumps(key.as_dict(private=True)).encode())
        return await SigningKey.create(
            kid=kid,
            alg=ALG,
            public_jwk=key.as_dict(private=False),
            private_key_encrypted=encrypted.decode(),
            active_from=active_from,
        )

    async def signing_key(self) -> ECKey:
        """The newest key that is already active."""
        if self._configured is not None:
            return self._configured
        row = await SigningKey.filter(active_from__lte=utcnow()).order_by("-active_from").first()
        if row is None:
            raise KeyConfigError("no active signing key; user-auth has not finished starting")
        return self._decrypt(row)

    async def published(self) -> list[dict[str, Any]]:
        """The JWKS keys: future keys, the active key, and retired keys still in use."""
        if self._configured is not None:
            return [self._configured.as_dict(private=False)]
        now = utcnow()
        rows = await SigningKey.all().order_by("active_from")
        keys = []
        for index, row in enumerate(rows):
            successor = rows[index + 1] if index + 1 < len(rows) else None
            retired_at = (
                successor.active_from if successor and successor.active_from <= now else None
            )
            # A token signed just before retirement lives one access-token TTL more.
            if retired_at is None or now < retired_at + self.access_token_ttl + timedelta(
                minutes=1
            ):
                keys.append(dict(row.public_jwk))
        return keys

    async def key_for(self, kid: str) -> ECKey:
        """For the kit's TokenVerifier: user-auth verifies against its own published keys."""
        for jwk in await self.published():
            if jwk.get("kid") == kid:
                return ECKey.import_key(jwk)
        raise InvalidJWT(Unauthorized.UNKNOWN_KEY)


def key_ring(settings: Settings) -> KeyRing:
    """The key ring the settings describe: a mounted key, or generated keys under the KEK."""
    kek = settings.key_encryption_key.get_secret_value() if settings.key_encryption_key else ""
    configured = settings.signing_key.get_secret_value() if settings.signing_key else None
    if not kek and configured is None and settings.signing_key_file is None:
        raise KeyConfigError(
            "user-auth needs SHOPFLOW_AUTH_SERVICE_KEY_ENCRYPTION_KEY (to store generated "
            "signing keys) or SHOPFLOW_AUTH_SERVICE_SIGNING_KEY[_FILE]"
        )
    return KeyRing(
        kek,
        timedelta(seconds=settings.access_token_ttl_seconds),
        configured_key=configured,
        configured_key_file=settings.signing_key_file,
    )
