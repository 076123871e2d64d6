"""Fixtures for tests/notify_hub; they live in tests/utils/notify_hub.py with its helpers."""

from tests.utils.notify_hub import (  # noqa: F401 (pytest finds fixtures and hooks by name)
    notify,
    producer,
    smtp,
    stack,
    stack_factory,
)
