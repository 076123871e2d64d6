"""Fixtures for tests/kit; they live in tests/utils/kit.py with its helpers."""

from tests.utils.kit import (  # noqa: F401 (pytest finds fixtures and hooks by name)
    client,
    issuer,
    sample,
)
