"""Limits that every service and the local gateway enforce alike."""

from __future__ import annotations

#: API.md: a request body over 1 MiB gets 413, from the gateway and from a service.
MAX_BODY_BYTES = 1024 * 1024
