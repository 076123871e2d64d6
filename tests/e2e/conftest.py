"""tests/e2e: helpers live in tests/utils/e2e.py; the session's ``platform`` fixture is
re-exported by the root tests/conftest.py, so tests/contracts shares the same one."""
