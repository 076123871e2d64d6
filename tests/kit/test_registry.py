"""The service registry is the one list of services: everything else must agree with it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from shopflow_kit.config import ServiceSettings
from shopflow_kit.registry import SERVICES, Service, callers_of, client_scopes, lookup

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "charts"


def chart_values(service: Service) -> dict:
    return yaml.safe_load((CHARTS / service.image / "values.yaml").read_text())


def test_names_ports_and_databases_are_unique() -> None:
    for attribute in ("name", "image", "package", "database", "local_port"):
        values = [getattr(s, attribute) for s in SERVICES]
        assert len(set(values)) == len(values), attribute
    prefixes = [p for s in SERVICES for p in s.prefixes]
    assert len(set(prefixes)) == len(prefixes)


def test_every_call_names_a_known_service() -> None:
    for service in SERVICES:
        for callee in service.calls:
            assert lookup(callee).name == callee != service.name


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_service_chart_matches_the_registry(service: Service) -> None:
    values = chart_values(service)
    where = f"charts/{service.image}/values.yaml"
    assert values["serviceName"] == service.name, where
    mesh = values["mesh"]
    assert tuple(mesh["publicPrefixes"]) == service.prefixes, f"{where}: mesh.publicPrefixes"
    assert set(mesh["callees"]) == set(service.calls), f"{where}: mesh.callees"
    callers = {c["serviceAccount"] for c in mesh["callers"]}
    assert callers == set(callers_of(service.name)), f"{where}: mesh.callers"


def test_mesh_routes_match_the_registry() -> None:
    routes = yaml.safe_load((CHARTS / "shopflow-mesh" / "values.yaml").read_text())["routes"]
    routed = {(r["prefix"], r["service"]) for r in routes}
    registered = {(p, s.name) for s in SERVICES for p in s.prefixes}
    assert routed == registered, "charts/shopflow-mesh/values.yaml routes"


def test_applicationset_lists_the_registry() -> None:
    appset = yaml.safe_load(
        (ROOT / "argocd" / "applicationsets" / "shopflow-services.yaml").read_text()
    )
    (matrix,) = appset["spec"]["generators"]
    (listed,) = [g["list"]["elements"] for g in matrix["matrix"]["generators"] if "list" in g]
    assert [(e["service"], e["chart"]) for e in listed] == [(s.name, s.image) for s in SERVICES]


def test_kit_knows_every_service_url() -> None:
    fields = {name for name in ServiceSettings.model_fields if name.endswith("_url")}
    fields -= {"database_url", "shared_database_url"}
    assert fields == {s.url_setting for s in SERVICES}
    defaults = ServiceSettings.model_fields
    for service in SERVICES:
        assert defaults[service.url_setting].default == service.cluster_url


def test_oauth_scopes_come_from_the_registry() -> None:
    scopes = client_scopes()
    assert set(scopes) == {s.name for s in SERVICES}
    # Only notify-hub may read users; only order-mgmt may reserve, charge and refund.
    assert [n for n, granted in scopes.items() if "users:read" in granted] == ["notify-hub"]
    for scope in ("inventory:reserve", "payments:charge", "payments:refund"):
        assert [n for n, granted in scopes.items() if scope in granted] == ["order-mgmt"]


def test_service_folders_and_charts_exist() -> None:
    for service in SERVICES:
        assert (CHARTS / service.image / "Chart.yaml").is_file()
        assert (ROOT / "apps" / service.image / "Dockerfile").is_file()
