"""Fixtures for tests/auth; they live in tests/utils/auth.py with its helpers."""

from tests.utils.auth import (  # noqa: F401 (pytest finds fixtures and hooks by name)
    auth,
    client,
)
