"""user-auth: the app factory, settings and background housekeeping."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from sanic import Sanic
from shopflow_kit import ServiceSettings
from shopflow_kit import create_app as kit_create_app
from shopflow_kit.idempotency import purge_expired
from shopflow_kit.outbox import relay_task
from shopflow_kit.security import MAX_TOKEN_LIFETIME_SECONDS, TokenVerifier

from auth_service import service
from auth_service.api import bp
from auth_service.keys import KeyRing

MODELS = "auth_service.models"

#: Least privilege: each caller gets exactly the scopes its calls need.
DEFAULT_CLIENT_SCOPES: dict[str, list[str]] = {
    "order-mgmt": [
        "inventory:reserve",
        "payments:charge",
        "payments:refund",
        "notifications:publish",
    ],
    "payment-api": ["notifications:publish"],
    "user-auth": ["notifications:publish"],
    "catalog-api": [],
    "notify-hub": [],
}


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPFLOW_AUTH_SERVICE_")
    service_name: str = "user-auth"
    database_name: str = "auth"

    #: Encrypts generated signing keys at rest; from a Secret in the cluster.
    key_encryption_key: SecretStr | None = None
    #: A signing key from a mounted Secret (PEM or private JWK), instead of generating one.
    signing_key: SecretStr | None = None
    signing_key_file: Path | None = None

    access_token_ttl_seconds: int = Field(default=900, ge=60, le=MAX_TOKEN_LIFETIME_SECONDS)
    refresh_token_ttl_days: int = Field(default=30, ge=1, le=365)
    login_failure_limit: int = Field(default=5, ge=1)
    ip_failure_limit: int = Field(default=50, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)

    #: client id -> secret (JSON in the environment; a Secret in the cluster).
    oauth_clients: dict[str, SecretStr] = Field(default_factory=dict)
    oauth_client_scopes: dict[str, list[str]] = Field(
        default_factory=lambda: dict(DEFAULT_CLIENT_SCOPES)
    )

    seed_admin_email: str | None = None
    seed_admin_password: SecretStr | None = None


def key_ring(settings: Settings) -> KeyRing:
    kek = settings.key_encryption_key.get_secret_value() if settings.key_encryption_key else ""
    configured = settings.signing_key.get_secret_value() if settings.signing_key else None
    if not kek and configured is None and settings.signing_key_file is None:
        from shopflow_kit.config import ConfigError

        raise ConfigError(
            "user-auth needs SHOPFLOW_AUTH_SERVICE_KEY_ENCRYPTION_KEY (to store generated "
            "signing keys) or SHOPFLOW_AUTH_SERVICE_SIGNING_KEY[_FILE]"
        )
    return KeyRing(
        kek,
        timedelta(seconds=settings.access_token_ttl_seconds),
        configured_key=configured,
        configured_key_file=settings.signing_key_file,
    )


async def housekeeping(app: Sanic[Any, Any]) -> None:
    """Drop expired throttling rows, refresh tokens and idempotency keys."""
    settings: Settings = app.ctx.settings
    while True:
        await service.purge_expired_state(settings)
        await purge_expired()
        await asyncio.sleep(600)


def create_app() -> Sanic[Any, Any]:
    settings = Settings()
    keys = key_ring(settings)

    async def prepare_keys(app: Sanic[Any, Any]) -> None:
        await keys.ensure_key()

    app = kit_create_app(
        "user-auth",
        settings,
        [bp],
        MODELS,
        public_prefix="/auth",
        startup=[prepare_keys],
        background=[housekeeping, relay_task(settings)],
    )
    app.ctx.keys = keys
    app.ctx.minter = service.TokenMinter(keys, settings)
    # user-auth verifies its own tokens against its key ring, not over HTTP.
    app.ctx.verifier = TokenVerifier(keys, settings.jwt_issuer, leeway=settings.jwt_leeway_seconds)
    return app
