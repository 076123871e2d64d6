"""Fixtures for tests/payment_api; they live in tests/utils/payment_api.py with its helpers."""

from tests.utils.payment_api import (  # noqa: F401 (pytest finds fixtures and hooks by name)
    checker,
    client,
    issuer,
    payment_settings,
    payments,
    sink,
)
