"""Fixtures for tests/order_mgmt; they live in tests/utils/order_mgmt.py with its helpers."""

from tests.utils.order_mgmt import (  # noqa: F401 (pytest finds fixtures and hooks by name)
    api,
    issuer,
    receiver,
    shop,
    spec,
)
