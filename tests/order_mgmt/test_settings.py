"""order-mgmt's settings refuse timings that would break the saga's guarantees."""

from __future__ import annotations

import pytest
from order_mgmt.checkout import Step
from order_mgmt.config import Settings
from pydantic import ValidationError


def test_defaults_fit_together() -> None:
    settings = Settings()
    assert settings.test_sigkill_after_step is None  # the test-only crash is off
    assert settings.reservation_ttl_seconds > settings.worst_case_charge_seconds
    assert settings.recovery_after_seconds > settings.longest_step_seconds
    # A checkout answers before the mesh gives up on /orders (30 s).
    assert settings.checkout_deadline_seconds < 30


def test_a_reservation_must_outlast_the_worst_case_charge() -> None:
    with pytest.raises(ValidationError, match="worst-case charge"):
        Settings(reservation_ttl_seconds=30, payment_timeout_seconds=10)


def test_recovery_must_not_resume_orders_still_being_worked_on() -> None:
    with pytest.raises(ValidationError, match="longest step"):
        Settings(recovery_after_seconds=5, payment_timeout_seconds=10)


def test_the_crash_point_names_a_step() -> None:
    assert Settings(test_sigkill_after_step="charged").test_sigkill_after_step == Step.CHARGED
    with pytest.raises(ValidationError):
        Settings(test_sigkill_after_step="sometime")


def test_the_fingerprint_key_is_long() -> None:
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(fingerprint_key="short")
