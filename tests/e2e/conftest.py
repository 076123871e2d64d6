"""Fixtures for tests/e2e; they live in tests/utils/e2e.py with its helpers."""

from tests.utils.e2e import (  # noqa: F401 (pytest finds fixtures and hooks by name)
    platform,
)
