"""Static contracts: every environment's render against the five public OpenAPI documents.

The documents come from each service's own CLI (``python -m <package> openapi``),
the renders from ``shopctl.render`` exactly as Argo CD would make them. Each
check is then proved able to fail: a test breaks one contract in a copy of the
render (or of a document) and asserts the named finding, its environment,
subject and the file to change.
"""

from __future__ import annotations

import asyncio
import copy
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from shopctl.contracts import (
    Deployment,
    Finding,
    Request,
    Source,
    Workload,
    authorize,
    check_environment,
)
from shopctl.contracts_io import deployment, load_documents
from shopctl.render import render_environment
from shopctl.services import SERVICES, has_code, lookup

ROOT = Path(__file__).resolve().parents[2]
ENVS = ("dev", "staging", "prod")

Documents = dict[str, dict[str, Any] | None]


@pytest.fixture(scope="session")
def documents() -> Documents:
    return asyncio.run(load_documents(ROOT))


@pytest.fixture(scope="session")
def deployments() -> dict[str, Deployment]:
    return {env: deployment(ROOT, asyncio.run(render_environment(ROOT, env))) for env in ENVS}


@pytest.fixture
def prod(deployments: dict[str, Deployment]) -> Deployment:
    """A private copy of prod's render that a test may break."""
    return copy.deepcopy(deployments["prod"])


def objects(deployment: Deployment, kind: str, name: str) -> Iterator[dict[str, Any]]:
    for _, obj in deployment.objects(kind):
        if obj["metadata"]["name"] == name:
            yield obj


def one(deployment: Deployment, kind: str, name: str) -> dict[str, Any]:
    (found,) = objects(deployment, kind, name)
    return found


def routes(deployment: Deployment) -> list[dict[str, Any]]:
    return one(deployment, "VirtualService", "shopflow-virtualservice")["spec"]["http"]


def route(deployment: Deployment, name: str) -> dict[str, Any]:
    (found,) = [r for r in routes(deployment) if r["name"] == name]
    return found


def findings_of(check: str, findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.check == check]


def only(findings: list[Finding], predicate: Callable[[Finding], bool]) -> Finding:
    matching = [f for f in findings if predicate(f)]
    assert len(matching) == 1, "\n".join(map(str, findings))
    return matching[0]


# --- every environment keeps every contract --------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_environment_keeps_every_contract(
    env: str, deployments: dict[str, Deployment], documents: Documents
) -> None:
    findings = check_environment(deployments[env], documents)
    broken = [str(f) for f in findings if f.check != "pending"]
    assert broken == []
    # A service without code yet is named, never silently passed.
    pending = {f.subject for f in findings_of("pending", findings)}
    assert pending == {s.name for s in SERVICES if not has_code(s, ROOT)}


def test_every_documented_operation_was_checked(documents: Documents) -> None:
    """The documents are real: each service with code documents operations under its prefixes."""
    for service in SERVICES:
        document = documents[service.name]
        if document is None:
            assert not has_code(service, ROOT)
            continue
        paths = document["paths"]
        assert paths, service.name
        for prefix in service.prefixes:
            assert any(p == prefix or p.startswith(f"{prefix}/") for p in paths), prefix


def test_a_service_without_code_is_named_not_passed(
    deployments: dict[str, Deployment], documents: Documents
) -> None:
    without = {**documents, "notify-hub": None}
    findings = check_environment(deployments["dev"], without)
    pending = only(findings, lambda f: f.check == "pending")
    assert (pending.env, pending.subject, pending.file) == ("dev", "notify-hub", "apps/notify-hub")
    assert "not checked" in pending.message
    assert not [f for f in findings if "notify-hub" in f.subject and f.check != "pending"]


def shopctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shopctl", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_cli_names_pending_services_and_fails_on_findings() -> None:
    result = shopctl("contracts", "--env", "dev", "--allow-pending")
    assert result.returncode == 0, result.stdout + result.stderr
    for service in SERVICES:
        if not has_code(service, ROOT):
            assert f"[dev] pending: {service.name}" in result.stdout
    unknown = shopctl("contracts", "--env", "nowhere")
    assert unknown.returncode == 1 and "unknown environment 'nowhere'" in unknown.stderr


# --- owner: each prefix belongs to exactly one service ------------------------------


def test_a_route_to_the_wrong_service_is_named(prod: Deployment, documents: Documents) -> None:
    for name in ("products", "products-reads"):
        route(prod, name)["route"][0]["destination"]["host"] = "user-auth"
    findings = check_environment(prod, documents)
    owner = only(findings_of("owner", findings), lambda f: f.subject.startswith("route products "))
    assert owner.env == "prod"
    assert "owned by catalog-api but routed to user-auth" in owner.message
    assert owner.file == "charts/shopflow-mesh/values.yaml"
    # ...and every catalog operation under /products is now unreachable by its owner.
    broken = findings_of("route", findings)
    assert any(f.subject == "GET /products (catalog-api operation)" for f in broken)
    assert any(f.subject.startswith("POST /products ") for f in broken)
    assert all("sends" in f.message and "user-auth" in f.message for f in broken)


def test_a_prefix_without_an_owner_or_a_documented_path(
    prod: Deployment, documents: Documents
) -> None:
    extra = copy.deepcopy(route(prod, "auth"))
    extra["name"] = "internal"
    extra["match"] = [{"uri": {"prefix": "/internal"}}]
    catch_all = copy.deepcopy(route(prod, "auth"))
    catch_all["name"] = "everything"
    catch_all.pop("match")
    undocumented = copy.deepcopy(route(prod, "auth"))
    undocumented["name"] = "auth-admin"
    undocumented["match"] = [{"uri": {"prefix": "/auth/admin"}}]
    routes(prod)[:0] = [extra, undocumented]
    routes(prod).append(catch_all)
    owners = findings_of("owner", check_environment(prod, documents))
    assert {(f.subject, f.message) for f in owners} == {
        ("route internal (prefix /internal)", "no service in the registry owns this prefix"),
        ("route everything", "matches every path: each route must name a prefix"),
        (
            "route auth-admin (prefix /auth/admin)",
            "user-auth's OpenAPI has no path under /auth/admin",
        ),
    }


# --- route: each documented operation is routable to its owner ------------------------


def test_rewrites_and_normalisation_are_taken_into_account(
    prod: Deployment, documents: Documents
) -> None:
    # The catalog moves behind /shop/products, rewritten to the path it serves: still routable...
    for name in ("products", "products-reads"):
        r = route(prod, name)
        r["match"][0]["uri"]["prefix"] = "/shop/products"
        r["rewrite"] = {"uri": "/products"}
    findings = check_environment(prod, documents)
    assert not [f for f in findings_of("route", findings) if "/products" in f.subject]
    # ...but the owner check now sees a prefix no service owns.
    assert any(
        f.subject == "route products (prefix /shop/products)"
        for f in findings_of("owner", findings)
    )
    # A rewrite to the wrong place leaves every catalog product operation unroutable.
    for name in ("products", "products-reads"):
        route(prod, name)["rewrite"] = {"uri": "/catalog/products"}
    unroutable = findings_of("route", check_environment(prod, documents))
    assert any(
        f.subject == "GET /products/{product_id} (catalog-api operation)"
        and f.message == "no route reaches it through the gateway"
        for f in unroutable
    )


def test_retries_on_a_non_idempotent_method_are_named(
    prod: Deployment, documents: Documents
) -> None:
    route(prod, "auth")["retries"] = {"attempts": 2, "retryOn": "5xx"}
    retried = [
        f
        for f in findings_of("route", check_environment(prod, documents))
        if "retries" in f.message
    ]
    assert retried and all(f.subject.startswith("POST /auth/") for f in retried)
    assert "route auth allows 2 retries for a non-idempotent method" in retried[0].message
    # No retries field at all means Istio's default retries: also named.
    del route(prod, "auth")["retries"]
    defaults = findings_of("route", check_environment(prod, documents))
    assert any("Istio's default retries" in f.message for f in defaults)


def test_a_sidecar_that_refuses_the_ingress_is_named(
    prod: Deployment, documents: Documents
) -> None:
    policy = one(prod, "AuthorizationPolicy", "catalog-api")
    ingress_rule = policy["spec"]["rules"][0]
    ingress_rule["to"][0]["operation"]["paths"] = ["/products", "/products/*"]
    refused = only(
        findings_of("route", check_environment(prod, documents)),
        lambda f: f.subject.startswith("GET /categories "),
    )
    assert "AuthorizationPolicy does not admit the ingress gateway" in refused.message
    assert refused.file == "charts/catalog-api/values.yaml"


# --- security: secured in OpenAPI iff the mesh demands a verified JWT ------------------


def deny_rules(deployment: Deployment) -> list[dict[str, Any]]:
    return one(deployment, "AuthorizationPolicy", "shopflow-require-jwt")["spec"]["rules"]


def test_a_secured_operation_left_open_by_the_mesh_is_named(
    prod: Deployment, documents: Documents
) -> None:
    rules = deny_rules(prod)
    rules[:] = [r for r in rules if "/auth/me" not in r["to"][0]["operation"]["paths"]]
    rules[-1]["to"][0]["operation"]["methods"] = ["POST", "PUT", "DELETE"]  # PATCH forgotten
    security = findings_of("security", check_environment(prod, documents))
    assert {f.subject for f in security} == {
        "GET /auth/me (user-auth operation)",
        "PATCH /products/{product_id} (catalog-api operation)",
    }
    assert all(f.message.endswith("the mesh lets it through without a token") for f in security)
    assert all(f.file == "charts/shopflow-mesh/values.yaml" for f in security)


def test_a_public_read_blocked_by_the_mesh_is_named(prod: Deployment, documents: Documents) -> None:
    deny_rules(prod)[-1]["to"][0]["operation"].pop("methods")
    security = findings_of("security", check_environment(prod, documents))
    subjects = {f.subject for f in security}
    assert {
        "GET /products (catalog-api operation)",
        "GET /products/openapi.json (catalog-api OpenAPI document)",
    } <= subjects
    assert all("public in its OpenAPI, but the mesh blocks it" in f.message for f in security)


def test_a_token_the_mesh_cannot_verify_is_named(prod: Deployment, documents: Documents) -> None:
    ingress_jwt = one(prod, "RequestAuthentication", "shopflow-ingress-jwt")
    ingress_jwt["spec"]["jwtRules"][0]["issuer"] = "https://someone-else.example/auth"
    security = findings_of("security", check_environment(prod, documents))
    assert any(
        f.subject == "GET /auth/me (user-auth operation)" and "no token can ever pass" in f.message
        for f in security
    )


def test_an_undocumented_security_requirement_is_named(
    prod: Deployment, documents: Documents
) -> None:
    """The other side of the iff: a document that drops `security` from a secured operation."""
    changed = copy.deepcopy(documents)
    auth = changed["user-auth"]
    assert auth is not None
    del auth["paths"]["/auth/me"]["get"]["security"]
    security = only(findings_of("security", check_environment(prod, changed)), lambda f: True)
    assert security.subject == "GET /auth/me (user-auth operation)"
    assert "public in its OpenAPI, but the mesh blocks it without a token" in security.message


# --- callers: AuthorizationPolicy and NetworkPolicy equal the call graph ----------------


def test_a_missing_caller_is_named(prod: Deployment, documents: Documents) -> None:
    policy = one(prod, "AuthorizationPolicy", "catalog-api")
    policy["spec"]["rules"] = policy["spec"]["rules"][:1]  # order-mgmt's rule gone
    netpol = one(prod, "NetworkPolicy", "catalog-api")
    netpol["spec"]["ingress"][0]["from"] = netpol["spec"]["ingress"][0]["from"][:1]
    callers = findings_of("callers", check_environment(prod, documents))
    assert {(f.subject, f.message, f.file) for f in callers} == {
        (
            "catalog-api AuthorizationPolicy",
            "callers missing order-mgmt",
            "charts/catalog-api/values.yaml",
        ),
        (
            "catalog-api NetworkPolicy ingress",
            "peers missing order-mgmt",
            "charts/catalog-api/values.yaml",
        ),
    }


def test_an_extra_caller_and_callee_are_named(prod: Deployment, documents: Documents) -> None:
    policy = one(prod, "AuthorizationPolicy", "payment-api")
    extra = copy.deepcopy(policy["spec"]["rules"][-1])
    extra["from"][0]["source"]["principals"] = ["cluster.local/ns/shopflow-prod/sa/notify-hub"]
    policy["spec"]["rules"].append(extra)
    netpol = one(prod, "NetworkPolicy", "notify-hub")
    netpol["spec"]["egress"].append(
        {"to": [{"podSelector": {"matchLabels": {"app": "payment-api"}}}]}
    )
    callers = findings_of("callers", check_environment(prod, documents))
    assert {(f.subject, f.message, f.file) for f in callers} == {
        (
            "payment-api AuthorizationPolicy",
            "callers not in the registry: notify-hub",
            "charts/payment-api/values.yaml",
        ),
        (
            "notify-hub NetworkPolicy egress",
            "peers not in the registry: payment-api",
            "charts/notify-hub/values.yaml",
        ),
    }


def test_the_finding_names_the_file_that_sets_the_value(prod: Deployment) -> None:
    """An environment override is the file to change, not the chart's default."""
    sources = list(prod.sources)
    index = next(i for i, s in enumerate(sources) if s.component == "catalog-api")
    layers = list(sources[index].value_files)
    layers.append(("environments/prod/catalog-api/values.yaml", {"mesh": {"callers": []}}))
    sources[index] = Source(
        sources[index].component, sources[index].chart, tuple(layers), sources[index].objects
    )
    assert sources[index].blame("mesh", "callers") == "environments/prod/catalog-api/values.yaml"
    assert sources[index].blame("mesh", "callees") == "charts/catalog-api/values.yaml"
    assert sources[index].blame("no", "such", "key") == "charts/catalog-api/values.yaml"


# --- links: every OpenAPI link leads somewhere --------------------------------------


def test_a_link_to_nowhere_is_named(prod: Deployment, documents: Documents) -> None:
    changed = copy.deepcopy(documents)
    catalog = changed["catalog-api"]
    assert catalog is not None
    links = catalog["paths"]["/products"]["get"]["responses"]["200"]["links"]
    links["GetProduct"]["operationId"] = "get_produkt"
    links["Elsewhere"] = {"operationRef": "/products/openapi.json#/paths/~1products~1{id}/put"}
    links["Nowhere"] = {"operationRef": "/shop/openapi.json#/paths/~1shop/get"}
    found = {(f.subject, f.message) for f in findings_of("links", check_environment(prod, changed))}
    assert found == {
        ("GET /products -> 200 link GetProduct", "no operationId get_produkt"),
        ("GET /products -> 200 link Elsewhere", "catalog-api's OpenAPI has no PUT /products/{id}"),
        (
            "GET /products -> 200 link Nowhere",
            "operationRef '/shop/openapi.json#/paths/~1shop/get' names no service's OpenAPI document",
        ),
    }


# --- the AuthorizationPolicy model itself -------------------------------------------


GATEWAY = Workload("istio-system", {"istio": "ingressgateway"})


def policy(action: str, rules: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "p", "namespace": "istio-system"},
        "spec": {
            "action": action,
            "rules": rules,
            "selector": {"matchLabels": {"istio": "ingressgateway"}},
            **spec,
        },
    }


def test_authorization_policy_semantics() -> None:
    deny_anonymous = policy(
        "DENY",
        [
            {
                "from": [{"source": {"notRequestPrincipals": ["*"]}}],
                "to": [{"operation": {"paths": ["/cart/*"], "notPaths": ["/cart/openapi.json"]}}],
            }
        ],
    )
    anonymous = Request("GET", "/cart/items")
    signed = Request("GET", "/cart/items", request_principal="iss/sub")
    assert not authorize([deny_anonymous], GATEWAY, anonymous)
    assert authorize([deny_anonymous], GATEWAY, signed)
    assert authorize([deny_anonymous], GATEWAY, Request("GET", "/cart/openapi.json"))
    assert authorize([deny_anonymous], GATEWAY, Request("GET", "/cartography"))
    # An ALLOW policy makes everything else denied; an empty one allows nothing.
    allow_reads = policy(
        "ALLOW", [{"to": [{"operation": {"methods": ["GET"], "paths": ["*/health"]}}]}]
    )
    assert authorize([allow_reads], GATEWAY, Request("GET", "/auth/health"))
    assert not authorize([allow_reads], GATEWAY, Request("POST", "/auth/health"))
    assert not authorize([policy("ALLOW", [])], GATEWAY, Request("GET", "/"))
    # Another workload's policy does not apply.
    elsewhere = Workload("shopflow-dev", {"app": "catalog-api"})
    assert authorize([deny_anonymous], elsewhere, anonymous)


def test_unmodelled_policy_fields_are_refused_not_ignored(
    prod: Deployment, documents: Documents
) -> None:
    deny_rules(prod)[0]["when"] = [{"key": "request.auth.claims[role]", "values": ["admin"]}]
    model = findings_of("model", check_environment(prod, documents))
    assert model and all("spec.rules[0].when is not evaluated" in f.message for f in model)


def test_every_service_is_known() -> None:
    assert lookup("catalog-api").prefixes == ("/products", "/categories")
