"""The service registry: the one place the five services are described.

Everything else that lists services is generated from this module or checked
against it by a test (``tests/kit/test_registry.py``): the mesh chart's routes,
each service chart's ``publicPrefixes``, ``callers`` and ``callees``, the
ApplicationSet's list, the kit's service URLs, user-auth's OAuth client scopes,
the local ports of ``shopctl up`` and the release matrix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: Every service listens on this port in the cluster (ARCHITECTURE.md).
CLUSTER_PORT = 4000


@dataclass(frozen=True)
class Service:
    """One service, named exactly as ARCHITECTURE.md names it."""

    name: str  #: Kubernetes Service, ``app`` label, OAuth client id
    image: str  #: image, chart and ``apps/`` folder
    database: str
    local_port: int
    #: Public path prefixes the gateway routes to this service, in route order.
    prefixes: tuple[str, ...]
    #: OAuth scopes this service may request with client credentials (least privilege).
    scopes: tuple[str, ...] = ()
    #: The services this one calls (its mesh callees).
    calls: tuple[str, ...] = ()
    #: Operations of ``python -m <package>`` besides ``migrate``.
    operations: tuple[str, ...] = ()

    @property
    def package(self) -> str:
        return self.image.replace("-", "_")

    @property
    def env_prefix(self) -> str:
        """``SHOPFLOW_<IMAGE>_``: every setting of this service is read under it."""
        return f"SHOPFLOW_{self.package.upper()}_"

    @property
    def url_setting(self) -> str:
        """The settings field (``catalog_api_url``) other services find this one by."""
        return f"{self.name.replace('-', '_')}_url"

    @property
    def cluster_url(self) -> str:
        return f"http://{self.name}:{CLUSTER_PORT}"

    @property
    def factory(self) -> str:
        return f"{self.package}.app:create_app"

    @property
    def openapi_prefix(self) -> str:
        """Where its public OpenAPI document lives: ``<prefix>/openapi.json``."""
        return self.prefixes[0]

    def port(self) -> int:
        """The local port; ``SHOPFLOW_PORT_<NAME>`` overrides it."""
        return local_port(self.name, self.local_port)


SERVICES: tuple[Service, ...] = (
    Service(
        "user-auth",
        "auth-service",
        "auth",
        4001,
        ("/auth",),
        scopes=("notifications:publish",),
        calls=("notify-hub",),
        operations=("seed", "create-admin", "rotate-keys"),
    ),
    Service(
        "catalog-api",
        "catalog-api",
        "catalog",
        4002,
        ("/products", "/categories"),
        calls=("user-auth",),
        operations=("seed",),
    ),
    Service(
        "order-mgmt",
        "order-mgmt",
        "orders",
        4003,
        ("/cart", "/orders"),
        scopes=("inventory:reserve", "payments:charge", "payments:refund", "notifications:publish"),
        calls=("user-auth", "catalog-api", "payment-api", "notify-hub"),
    ),
    Service(
        "payment-api",
        "payment-api",
        "payments",
        4004,
        ("/payments",),
        scopes=("notifications:publish",),
        calls=("user-auth", "notify-hub"),
    ),
    Service(
        "notify-hub",
        "notify-hub",
        "notify",
        4005,
        ("/notifications",),
        scopes=("users:read",),
        calls=("user-auth",),
    ),
)

BY_NAME: dict[str, Service] = {s.name: s for s in SERVICES} | {s.image: s for s in SERVICES}

GATEWAY_PORT = 8080
SMTP_PORT = 1025
POSTGRES_PORT = 5544


def local_port(name: str, default: int) -> int:
    """A local port, overridable as ``SHOPFLOW_PORT_<NAME>`` (``SHOPFLOW_PORT_GATEWAY``)."""
    return int(os.environ.get(f"SHOPFLOW_PORT_{name.upper().replace('-', '_')}", default))


def lookup(name: str) -> Service:
    """A service by its name or its image name."""
    try:
        return BY_NAME[name]
    except KeyError:
        known = ", ".join(s.name for s in SERVICES)
        raise KeyError(f"unknown service {name!r}; known services: {known}") from None


def callers_of(name: str) -> tuple[str, ...]:
    """The services that call ``name``, in registry order."""
    return tuple(s.name for s in SERVICES if name in s.calls)


def client_scopes() -> dict[str, list[str]]:
    """OAuth client id -> the scopes it may request; user-auth enforces exactly this."""
    return {s.name: list(s.scopes) for s in SERVICES}
