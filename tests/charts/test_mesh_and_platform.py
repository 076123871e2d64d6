"""The mesh chart (zero trust) and the platform chart (the namespace)."""

from __future__ import annotations

from shopctl.virtualservice import RoutingTable

from tests.utils.charts import NAMESPACE

PREFIXES = {
    "/auth": "user-auth",
    "/products": "catalog-api",
    "/categories": "catalog-api",
    "/cart": "order-mgmt",
    "/orders": "order-mgmt",
    "/payments": "payment-api",
    "/notifications": "notify-hub",
}


def mesh(renders: dict):  # type: ignore[no-untyped-def]
    return renders[("shopflow-mesh", "default")]


def test_routes_and_retries(renders: dict) -> None:
    table = RoutingTable.from_virtual_service(mesh(renders).one("VirtualService"))
    for prefix, service in PREFIXES.items():
        for method in ("GET", "POST", "DELETE"):
            resolved = table.resolve(method, f"{prefix}/x", {})
            assert resolved is not None, f"{method} {prefix}/x is not routed"
            route, _ = resolved
            assert [(d.host, d.port) for d in route.destinations] == [(service, 4000)]
            assert route.timeout
            retried = route.retries is not None and route.retries.attempts > 0
            assert retried == (method == "GET"), (method, prefix)
    for path in ("/internal/events", "/internal/reservations", "/health", "/"):
        assert table.resolve("GET", path, {}) is None


def test_strict_mtls_and_default_deny(renders: dict) -> None:
    r = mesh(renders)
    (peer,) = r.of_kind("PeerAuthentication")
    assert peer["metadata"]["namespace"] == NAMESPACE and peer["spec"]["mtls"]["mode"] == "STRICT"
    allow_nothing = [
        p for p in r.of_kind("AuthorizationPolicy") if p["metadata"]["name"] == "allow-nothing"
    ]
    assert allow_nothing and allow_nothing[0]["spec"] == {}


def test_jwt_on_protected_prefixes(renders: dict) -> None:
    r = mesh(renders)
    jwks = f"http://user-auth.{NAMESPACE}.svc.cluster.local:4000/auth/.well-known/jwks.json"
    for auth in r.of_kind("RequestAuthentication"):
        (rule,) = auth["spec"]["jwtRules"]
        assert rule["jwksUri"] == jwks and rule["forwardOriginalToken"] is True and rule["issuer"]
    assert {a["metadata"]["namespace"] for a in r.of_kind("RequestAuthentication")} == {
        NAMESPACE,
        "istio-system",
    }
    (deny,) = [p for p in r.of_kind("AuthorizationPolicy") if p["spec"].get("action") == "DENY"]
    rules = deny["spec"]["rules"]
    assert all(rule["from"] == [{"source": {"notRequestPrincipals": ["*"]}}] for rule in rules)
    operations = [rule["to"][0]["operation"] for rule in rules]
    every_method = {p for op in operations if "methods" not in op for p in op["paths"]}
    assert {"/cart", "/cart/*", "/orders/*", "/payments/*", "/notifications/*", "/auth/me"} <= (
        every_method
    )
    assert "/products" not in every_method and "/auth/login" not in every_method
    # Catalog writes need a token, catalog reads do not (tests/contracts checks every operation).
    (writes,) = [op for op in operations if "/products/*" in op["paths"]]
    assert "GET" not in writes["methods"] and "POST" in writes["methods"]


def test_sidecar_limits_egress(renders: dict) -> None:
    (sidecar,) = mesh(renders).of_kind("Sidecar")
    assert sidecar["spec"]["egress"] == [{"hosts": ["./*", "istio-system/*"]}]


def test_platform_namespace(renders: dict) -> None:
    for variant, env in (("default", "dev"), ("prod", "prod")):
        r = renders[("shopflow-platform", variant)]
        namespace = r.one("Namespace")
        assert namespace["metadata"]["name"] == f"shopflow-{env}"
        labels = namespace["metadata"]["labels"]
        assert labels["istio-injection"] == "enabled"
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        assert r.one("ResourceQuota")["spec"]["hard"]
        assert r.one("LimitRange")["spec"]["limits"]
        deny = r.one("NetworkPolicy")
        assert deny["spec"]["podSelector"] == {} and deny["spec"]["policyTypes"] == [
            "Ingress",
            "Egress",
        ]
        assert "ingress" not in deny["spec"]
