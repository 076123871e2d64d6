"""The seed's own checks, as tests, on the shared `shopctl up` platform.

`GET /products` and `GET /auth/health` answer 200 through the gateway, and a
service reaches another by its cluster name (``http://catalog-api:4000/health``):
the kit maps the name to where that service is (``ServiceSettings.resolve_url``),
its local port under `shopctl up`. The check runs as the calling service itself,
``python -m <package> reach URL`` with the settings `shopctl up` gives it, as
``kubectl exec`` runs it in the cluster (tests/cluster).
"""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from shopctl.ports import free_port
from shopctl.services import SERVICES, has_code, lookup

from tests.utils.e2e import ROOT, Platform

EDGES = [
    (caller.name, callee)
    for caller in SERVICES
    for callee in caller.calls
    if has_code(caller, ROOT) and has_code(lookup(callee), ROOT)
]


def reach(platform: Platform, caller: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **platform.service_env(caller)}
    return subprocess.run(
        [sys.executable, "-m", lookup(caller).package, "reach", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_products_and_auth_health_through_the_gateway(platform: Platform) -> None:
    products = httpx.get(f"{platform.gateway}/products", timeout=20)
    assert products.status_code == 200 and products.json()["items"]
    assert httpx.get(f"{platform.gateway}/auth/health", timeout=20).status_code == 200


@pytest.mark.parametrize(("caller", "callee"), EDGES, ids=[f"{a}->{b}" for a, b in EDGES])
def test_a_service_reaches_another_by_its_cluster_name(
    platform: Platform, caller: str, callee: str
) -> None:
    result = reach(platform, caller, f"http://{callee}:4000/health")
    assert result.returncode == 0, result.stderr
    port = platform.ports[callee.upper().replace("-", "_")]
    assert f"(via http://127.0.0.1:{port}/health): 200" in result.stdout


def test_catalog_health_by_cluster_name(platform: Platform) -> None:
    """The seed's own example: catalog-api by name, from the service that calls it most."""
    caller = "order-mgmt" if has_code(lookup("order-mgmt"), ROOT) else "user-auth"
    result = reach(platform, caller, "http://catalog-api:4000/health")
    assert result.returncode == 0, result.stderr
    assert f"127.0.0.1:{platform.ports['CATALOG_API']}" in result.stdout


def test_reach_names_what_failed(platform: Platform) -> None:
    missing = reach(platform, "user-auth", "http://catalog-api:4000/no/such/path")
    assert missing.returncode == 1
    assert "GET http://catalog-api:4000/no/such/path" in missing.stderr
    assert "answered 404" in missing.stderr
    nowhere = reach(platform, "user-auth", f"http://127.0.0.1:{free_port()}/health")
    assert nowhere.returncode == 1 and "ConnectError" in nowhere.stderr
