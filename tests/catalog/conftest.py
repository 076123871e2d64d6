"""Fixtures for tests/catalog; they live in tests/utils/catalog.py with its helpers."""

from tests.utils.catalog import (  # noqa: F401 (pytest finds fixtures and hooks by name)
    catalog,
    client,
    issuer,
)
