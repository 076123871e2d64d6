"""The five services, named exactly as ARCHITECTURE.md names them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Service:
    name: str  # Kubernetes Service and `app` label
    image: str  # image, chart and apps/ folder
    database: str
    local_port: int
    prefixes: tuple[str, ...]

    @property
    def package(self) -> str:
        return self.image.replace("-", "_")

    @property
    def env_prefix(self) -> str:
        return f"SHOPFLOW_{self.package.upper()}_"

    @property
    def factory(self) -> str:
        return f"{self.package}.app:create_app"

    def port(self) -> int:
        """The local port; ``SHOPFLOW_PORT_<NAME>`` overrides it."""
        return int(
            os.environ.get(f"SHOPFLOW_PORT_{self.name.upper().replace('-', '_')}", self.local_port)
        )

    def exists(self, root: Path) -> bool:
        return (root / "apps" / self.image / "pyproject.toml").is_file()


SERVICES: tuple[Service, ...] = (
    Service("user-auth", "auth-service", "auth", 4001, ("/auth",)),
    Service("catalog-api", "catalog-api", "catalog", 4002, ("/products", "/categories")),
    Service("order-mgmt", "order-mgmt", "orders", 4003, ("/cart", "/orders")),
    Service("payment-api", "payment-api", "payments", 4004, ("/payments",)),
    Service("notify-hub", "notify-hub", "notify", 4005, ("/notifications",)),
)
BY_NAME = {s.name: s for s in SERVICES} | {s.image: s for s in SERVICES}

CLUSTER_PORT = 4000
GATEWAY_PORT = 8080
SMTP_PORT = 1025
POSTGRES_PORT = 5544


def local_port(name: str, default: int) -> int:
    return int(os.environ.get(f"SHOPFLOW_PORT_{name.upper()}", default))


def lookup(name: str) -> Service:
    try:
        return BY_NAME[name]
    except KeyError:
        known = ", ".join(s.name for s in SERVICES)
        raise KeyError(f"unknown service {name!r}; known services: {known}") from None
