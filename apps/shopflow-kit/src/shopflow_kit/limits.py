"""Limits that every service and the local gateway enforce alike."""

from __future__ import annotations

#: API.md: a request body over 1 MiB gets 413, from the gateway and from a service.
MAX_BODY_BYTES = 1024 * 1024
#: The gateway answers 414 to a request line (method, path and query) over 8 KiB, as
#: nginx's default large_client_header_buffers does; the kit documents that 414 on
#: every operation whose URL carries client data (path parameters or a query).
MAX_REQUEST_LINE_BYTES = 8 * 1024
