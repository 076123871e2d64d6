"""notify-hub's settings; read by the app, its operations and the tests alike."""

from __future__ import annotations

from email.utils import parseaddr

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict
from shopflow_kit import ServiceSettings
from shopflow_kit.registry import lookup

SERVICE = lookup("notify-hub")
MODELS = "notify_hub.models"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=SERVICE.env_prefix)
    service_name: str = SERVICE.name
    database_name: str = SERVICE.database

    # The SMTP server: `shopctl up`'s aiosmtpd sink locally (plain, no login);
    # in the cluster a relay on 587 with STARTTLS required (chart values) and a
    # password from the ExternalSecret (SHOPFLOW_NOTIFY_HUB_SMTP_PASSWORD).
    smtp_host: str = Field(default="127.0.0.1", min_length=1)
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    #: True: STARTTLS is required (a server without it is an error); False: plain SMTP.
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    #: Per SMTP step (connect, each command, the message data).
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    mail_from: str = Field(default="ShopFlow <no-reply@shopflow.example>", min_length=3)
    #: The right-hand side of every Message-ID (``<event-id@domain>``).
    message_id_domain: str = Field(
        default="notify.shopflow.example", pattern=r"^[A-Za-z0-9.-]+$", max_length=200
    )

    # The delivery worker (one per replica).
    delivery_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    delivery_batch_size: int = Field(default=10, ge=1, le=100)
    #: A claimed notification is invisible to other replicas this long; a replica
    #: that dies mid-send leaves it to be claimed again after the lease.
    delivery_lease_seconds: float = Field(default=300.0, gt=0)
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_max_seconds: float = Field(default=600.0, gt=0)
    #: Transient failures are retried this many attempts in all, then the notification fails.
    max_attempts: int = Field(default=12, ge=1, le=100)

    @model_validator(mode="after")
    def safe_delivery(self) -> Settings:
        if "@" not in parseaddr(self.mail_from)[1]:
            raise ValueError("mail_from must be an address, e.g. 'ShopFlow <no-reply@example.com>'")
        if (self.smtp_username or self.smtp_password) and not self.smtp_starttls:
            raise ValueError("SMTP credentials are only sent over STARTTLS: set smtp_starttls")
        if bool(self.smtp_username) != (self.smtp_password is not None):
            raise ValueError("smtp_username and smtp_password go together")
        # One send can take several SMTP steps; it must end well inside its lease.
        if self.delivery_lease_seconds < 10 * self.smtp_timeout_seconds:
            raise ValueError("delivery_lease_seconds must be at least 10 x smtp_timeout_seconds")
        return self
