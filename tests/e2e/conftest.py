"""The e2e modules use the session's shared platform (tests/conftest.py)."""

from tests.utils.platform import ROOT, Platform, start_platform

__all__ = ["ROOT", "Platform", "start_platform"]
