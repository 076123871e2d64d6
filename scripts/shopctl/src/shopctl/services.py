"""shopctl's view of the service registry, which lives in the kit (``shopflow_kit.registry``).

shopctl may import the kit (never a service package); this module only adds what
is about the repository checkout rather than the services themselves.
"""

from __future__ import annotations

from pathlib import Path

from shopflow_kit.registry import (
    BY_NAME,
    CLUSTER_PORT,
    GATEWAY_PORT,
    POSTGRES_PORT,
    SERVICES,
    SMTP_PORT,
    Service,
    callers_of,
    client_scopes,
    local_port,
    lookup,
)

__all__ = [
    "BY_NAME",
    "CLUSTER_PORT",
    "GATEWAY_PORT",
    "POSTGRES_PORT",
    "SERVICES",
    "SMTP_PORT",
    "Service",
    "callers_of",
    "client_scopes",
    "has_code",
    "local_port",
    "lookup",
]


def has_code(service: Service, root: Path) -> bool:
    """Whether ``apps/<image>`` holds the service's code yet (its chart may come first)."""
    return (root / "apps" / service.image / "pyproject.toml").is_file()
