"""Fixtures for tests/charts; they live in tests/utils/charts.py with its helpers."""

from tests.utils.charts import (  # noqa: F401 (pytest finds fixtures and hooks by name)
    checkov_report,
    pytest_addoption,
    renders,
    service_renders,
)
