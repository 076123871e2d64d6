"""order-mgmt's settings refuse timings that would break the saga's guarantees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from order_mgmt.checkout import Step
from order_mgmt.config import Settings
from pydantic import ValidationError
from shopctl.ports import free_port
from shopctl.procs import sanic_args


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


def test_the_document_needs_no_secret_but_serving_does(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPFLOW_ORDER_MGMT_")}
    printed = subprocess.run(
        [sys.executable, "-m", "order_mgmt", "openapi"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert printed.returncode == 0, printed.stderr
    assert "/orders/{order_id}/cancel" in json.loads(printed.stdout)["paths"]
    env["SHOPFLOW_ORDER_MGMT_DATABASE_URL"] = "postgres://nobody@127.0.0.1:9/orders"
    served = subprocess.run(
        sanic_args("order_mgmt.app:create_app", free_port()),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert served.returncode != 0
    assert "SHOPFLOW_ORDER_MGMT_FINGERPRINT_KEY" in served.stdout + served.stderr
