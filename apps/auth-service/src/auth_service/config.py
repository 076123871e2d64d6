"""user-auth's settings; read by the app, its operations and the tests alike."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from shopflow_kit import ServiceSettings
from shopflow_kit.registry import client_scopes, lookup
from shopflow_kit.security import MAX_TOKEN_LIFETIME_SECONDS

SERVICE = lookup("user-auth")
MODELS = "auth_service.models"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=SERVICE.env_prefix)
    service_name: str = SERVICE.name
    database_name: str = SERVICE.database

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
    #: Least privilege: each client gets exactly the scopes the service registry grants it.
    oauth_client_scopes: dict[str, list[str]] = Field(default_factory=client_scopes)

    seed_admin_email: str | None = None
    seed_admin_password: SecretStr | None = None
