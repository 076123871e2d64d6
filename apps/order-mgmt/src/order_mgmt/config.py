"""order-mgmt's settings; read by the app, its operations and the tests alike."""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict
from shopflow_kit import ServiceSettings
from shopflow_kit.registry import lookup

from order_mgmt.checkout import Step, charge_backoff, worst_case_charge_seconds

SERVICE = lookup("order-mgmt")
MODELS = "order_mgmt.models"
#: What order-mgmt may do with its service token (the registry grants exactly these).
CALL_SCOPES = ("inventory:reserve", "payments:charge", "payments:refund")


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=SERVICE.env_prefix)
    service_name: str = SERVICE.name
    database_name: str = SERVICE.database

    #: Keys the HMAC fingerprint of checkout requests (their bodies hold card
    #: numbers, so a plain hash could be brute-forced). From a Secret; required
    #: to serve, not to migrate.
    fingerprint_key: SecretStr | None = Field(default=None, min_length=32)

    # Every call to another service has an explicit total timeout. A cart change
    # makes two catalog calls within the mesh's 5 s timeout for /cart.
    catalog_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    payment_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    #: Waits before the 2nd, 3rd and 4th charge attempt: this, then x2, then x4.
    charge_backoff_seconds: float = Field(default=0.5, ge=0, le=10)
    #: POST /orders answers 503 (the order stays in its step) rather than run past
    #: this; below the mesh's 30 s timeout for /orders.
    checkout_deadline_seconds: float = Field(default=20.0, gt=0, le=120)
    #: How long catalog-api holds the stock; must outlast the worst-case charge.
    reservation_ttl_seconds: int = Field(default=900, ge=1, le=3600)
    #: An order no worker has advanced for this long is resumed by the recovery
    #: loop; it is also how long a worker's claim on an order lasts between steps.
    recovery_after_seconds: float = Field(default=60.0, gt=0, le=3600)
    recovery_interval_seconds: float = Field(default=5.0, gt=0, le=600)
    recovery_batch_size: int = Field(default=20, ge=1, le=500)
    retry_after_seconds: int = Field(default=2, ge=1, le=60)

    #: TEST ONLY, off by default, never set by the chart: SIGKILL this process right
    #: after it persists an order at this step (``placed``, ``reserved``,
    #: ``charging``, ...), so the crash-recovery tests crash it at every step
    #: boundary for real.
    test_sigkill_after_step: Step | None = None
    #: TEST ONLY, off by default: SIGKILL this process once a step's call has
    #: answered but before the step it leads to is persisted (``charged``: the
    #: payment is captured, and the process dies before it could note that).
    test_sigkill_before_step: Step | None = None

    @property
    def worst_case_charge_seconds(self) -> float:
        return worst_case_charge_seconds(self.payment_timeout_seconds, self.charge_backoff_seconds)

    @property
    def longest_step_seconds(self) -> float:
        """The longest a runner goes without writing (and so renewing its lease): a
        charge attempt after its backoff, then the catalog commit, whose outcome is
        written together with the capture's."""
        last_backoff = charge_backoff(4, self.charge_backoff_seconds)
        return self.payment_timeout_seconds + last_backoff + self.catalog_timeout_seconds

    @property
    def key_lease_seconds(self) -> float:
        """How long a checkout holds its Idempotency-Key: its deadline plus one step."""
        return self.checkout_deadline_seconds + self.longest_step_seconds + 1

    @model_validator(mode="after")
    def timings_fit_together(self) -> Self:
        if self.recovery_after_seconds <= self.longest_step_seconds:
            raise ValueError(
                f"recovery_after_seconds ({self.recovery_after_seconds}) must exceed the "
                f"longest step ({self.longest_step_seconds:g} s), or recovery would resume "
                "orders that are still being worked on"
            )
        if self.reservation_ttl_seconds <= self.worst_case_charge_seconds:
            raise ValueError(
                f"reservation_ttl_seconds ({self.reservation_ttl_seconds}) must exceed the "
                f"worst-case charge ({self.worst_case_charge_seconds:g} s)"
            )
        return self
