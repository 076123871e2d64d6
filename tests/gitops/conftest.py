"""Fixtures for tests/gitops; they live in tests/utils/gitops.py with its helpers."""

from tests.utils.gitops import (  # noqa: F401 (pytest finds fixtures and hooks by name)
    rendered,
    scratch_repo,
)
