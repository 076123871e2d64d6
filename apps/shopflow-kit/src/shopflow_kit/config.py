"""Typed settings shared by every service.

Each service subclasses :class:`ServiceSettings` and sets its own ``env_prefix``
(``SHOPFLOW_<IMAGE>_``), its ``service_name`` and its ``database_name``.
"""

from __future__ import annotations

import os
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from shopflow_kit.registry import CLUSTER_PORT, SERVICES

#: Where the cluster mounts the service's Secret, one file per setting
#: (``SHOPFLOW_<IMAGE>_DATABASE_URL``, ...). Files, not env vars: they do not
#: leak into child processes, crash dumps or `kubectl describe`.
SECRETS_DIR = Path(os.environ.get("SHOPFLOW_SECRETS_DIR", "/var/run/secrets/shopflow"))


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message names the environment variable."""


class ServiceSettings(BaseSettings):
    # Settings hold secrets: a validation error names the setting, never its value.
    model_config = SettingsConfigDict(
        env_prefix="SHOPFLOW_", extra="ignore", hide_input_in_errors=True
    )

    service_name: str
    database_name: str
    #: Full URL for this service's database, e.g. ``SHOPFLOW_CATALOG_API_DATABASE_URL``.
    database_url: SecretStr | None = None
    #: Server-wide URL; the service's ``database_name`` replaces its path.
    shared_database_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SHOPFLOW_DATABASE_URL")
    )
    database_pool_max: int = Field(default=5, ge=1, le=50)

    log_level: str = "INFO"

    # Where the other services are: cluster DNS by default, 127.0.0.1 locally.
    user_auth_url: str = "http://user-auth:4000"
    catalog_api_url: str = "http://catalog-api:4000"
    order_mgmt_url: str = "http://order-mgmt:4000"
    payment_api_url: str = "http://payment-api:4000"
    notify_hub_url: str = "http://notify-hub:4000"

    # Tokens are verified against user-auth's JWKS.
    jwt_issuer: str = "https://auth.shopflow.example/auth"
    jwt_audience: str = "shopflow"
    #: At most one JWKS refetch per this many seconds for unknown ``kid``s.
    jwks_refetch_interval: float = Field(default=10.0, ge=0)
    service_audience: str = "shopflow-internal"
    #: Clock skew tolerated on ``exp``/``iat``/``nbf``; the one setting, never above 30 s.
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=30)

    #: Peers whose ``X-Forwarded-For`` is believed: the local gateway and the
    #: Istio sidecar both reach the service over loopback.
    trusted_proxies: list[IPv4Network | IPv6Network] = Field(
        default_factory=lambda: [ip_network("127.0.0.0/8"), ip_network("::1/128")]
    )
    #: How many proxies append to ``X-Forwarded-For``; the client's address is the
    #: entry this far from the right (1: the gateway's own entry). 0 trusts none.
    trusted_proxy_hops: int = Field(default=1, ge=0, le=5)

    #: After SIGTERM, how long in-flight requests may take before they are cut
    #: off. Must stay below the chart's terminationGracePeriodSeconds minus its
    #: preStop sleep (tests/gitops/test_shutdown_grace.py checks every environment).
    shutdown_grace_seconds: float = Field(default=15.0, gt=0, le=300)

    # OAuth2 client credentials this service uses to call other services.
    oauth_client_id: str | None = None
    oauth_client_secret: SecretStr | None = None

    def resolve_url(self, url: str) -> str:
        """Where this process reaches a URL that names a service by its cluster name.

        ``http://catalog-api:4000/health`` (or ``catalog-api.<ns>.svc.cluster.local``)
        means the catalog-api Service on its cluster port: it is sent to this
        process's ``catalog_api_url``, which is that same address in the cluster
        and ``http://127.0.0.1:<local port>`` under ``shopctl up``. So code,
        operators and the seed checks can use cluster names everywhere; any other
        URL is returned unchanged.
        """
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        name, _, domain = host.partition(".")
        service = next((s for s in SERVICES if s.name == name), None)
        cluster_domain = domain == "" or domain.endswith("svc.cluster.local")
        if service is None or not cluster_domain or parts.scheme != "http":
            return url
        if (parts.port or 80) != CLUSTER_PORT:
            return url
        base = urlsplit(str(getattr(self, service.url_setting)))
        path = base.path.rstrip("/") + parts.path
        return urlunsplit((base.scheme, base.netloc, path, parts.query, parts.fragment))

    @property
    def jwks_url(self) -> str:
        return f"{self.user_auth_url.rstrip('/')}/auth/.well-known/jwks.json"

    @property
    def oauth_token_url(self) -> str:
        return f"{self.user_auth_url.rstrip('/')}/auth/oauth/token"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings]
        if SECRETS_DIR.is_dir():
            sources.append(SecretsSettingsSource(settings_cls, secrets_dir=SECRETS_DIR))
        return tuple(sources)

    def env_name(self, field: str) -> str:
        prefix = self.model_config.get("env_prefix", "")
        return f"{prefix}{field}".upper()

    def resolved_database_url(self) -> str:
        """The asyncpg URL for this service's own database."""
        if self.database_url is not None:
            url = self.database_url.get_secret_value()
        elif self.shared_database_url is not None:
            parts = urlsplit(self.shared_database_url.get_secret_value())
            url = urlunsplit(parts._replace(path=f"/{self.database_name}"))
        else:
            raise ConfigError(
                f"{self.service_name}: no database configured; set "
                f"{self.env_name('database_url')} or SHOPFLOW_DATABASE_URL"
            )
        if not url.startswith(("postgres://", "postgresql://")):
            raise ConfigError(f"{self.service_name}: the database URL must start with postgres://")
        return url
