"""The real mesh chart, rendered by Helm, is what the local gateway routes by."""

from __future__ import annotations

from pathlib import Path

import pytest
from shopctl.helm import documents, mesh_virtual_service, template
from shopctl.virtualservice import RoutingTable

ROOT = Path(__file__).resolve().parents[2]

EXPECTED = {
    "/auth": "user-auth",
    "/products": "catalog-api",
    "/categories": "catalog-api",
    "/cart": "order-mgmt",
    "/orders": "order-mgmt",
    "/payments": "payment-api",
    "/notifications": "notify-hub",
}


@pytest.fixture(scope="module")
def table() -> RoutingTable:
    return RoutingTable.from_virtual_service(mesh_virtual_service(ROOT))


@pytest.mark.parametrize(("prefix", "service"), sorted(EXPECTED.items()))
def test_each_prefix_routes_to_its_service_on_4000(
    table: RoutingTable, prefix: str, service: str
) -> None:
    for path in (prefix, f"{prefix}/x/y"):
        resolved = table.resolve("GET", path, {})
        assert resolved is not None, path
        destination = resolved[0].destinations
        assert [(d.host, d.port) for d in destination] == [(service, 4000)]


@pytest.mark.parametrize(
    "path",
    ["/internal/events", "/internal/payments", "/internal/reservations/1/commit", "/", "/health"],
)
def test_nothing_else_is_routed(table: RoutingTable, path: str) -> None:
    assert table.resolve("POST", path, {}) is None


def test_gateway_object_matches_the_seed() -> None:
    rendered = template(
        ROOT, ROOT / "charts" / "shopflow-mesh", release="shopflow-mesh", namespace="shopflow-dev"
    )
    gateway = next(d for d in documents(rendered) if d["kind"] == "Gateway")
    assert gateway["metadata"] == {
        **gateway["metadata"],
        "name": "shopflow-gateway",
        "namespace": "istio-system",
    }
    server = gateway["spec"]["servers"][0]
    assert server["port"]["number"] == 80 and server["port"]["protocol"] == "HTTP"
    assert server["hosts"] == ["*"]
    vs = next(d for d in documents(rendered) if d["kind"] == "VirtualService")
    assert vs["spec"]["gateways"] == ["istio-system/shopflow-gateway"]
