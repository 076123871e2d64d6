"""What every service chart renders, and how hardened it is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from shopctl.helm import RenderError

from tests.utils.charts import NAMESPACE, SERVICE_CHARTS, Render, render

NAMES = {
    "auth-service": "user-auth",
    "catalog-api": "catalog-api",
    "order-mgmt": "order-mgmt",
    "payment-api": "payment-api",
    "notify-hub": "notify-hub",
}
ECR = re.compile(
    r"^[0-9]{12}\.dkr\.ecr\.ap-south-1\.amazonaws\.com/shopflow-platform/(?P<image>[a-z-]+):(?P<tag>.+)$"
)


def default(renders: dict, chart: str) -> Render:
    return renders[(chart, "default")]


@pytest.mark.parametrize("chart", SERVICE_CHARTS)
def test_renders_every_object(renders: dict, chart: str) -> None:
    kinds = sorted(d["kind"] for d in default(renders, chart).docs)
    assert kinds == sorted(
        [
            "AuthorizationPolicy",
            "ConfigMap",
            "Deployment",
            "DestinationRule",
            "ExternalSecret",
            "HorizontalPodAutoscaler",
            "Job",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
        ]
    )
    for doc in default(renders, chart).docs:
        assert doc["metadata"]["namespace"] == NAMESPACE
        assert doc["metadata"]["labels"]["app"] == NAMES[chart]


@pytest.mark.parametrize("chart", SERVICE_CHARTS)
def test_service_and_account(renders: dict, chart: str) -> None:
    r = default(renders, chart)
    service = r.one("Service")
    assert service["metadata"]["name"] == NAMES[chart]
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(4000, "http")]
    account = r.one("ServiceAccount")
    assert account["metadata"]["name"] == NAMES[chart]
    assert account["automountServiceAccountToken"] is False


@pytest.mark.parametrize("chart", SERVICE_CHARTS)
def test_deployment_is_hardened(renders: dict, chart: str) -> None:
    deployment = default(renders, chart).one("Deployment")
    spec = deployment["spec"]
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    pod = spec["template"]["spec"]
    assert (
        pod["serviceAccountName"] == NAMES[chart] and pod["automountServiceAccountToken"] is False
    )
    assert (
        pod["securityContext"]["runAsNonRoot"] is True
        and pod["securityContext"]["runAsUser"] >= 10000
    )
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["privileged"] is False
    assert {"/tmp"} <= {m["mountPath"] for m in container["volumeMounts"]}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > sleep + 10
    image = ECR.match(container["image"])
    assert image and image["image"] == chart and image["tag"] == "1.0.0"  # appVersion, never latest
    assert "checksum/config" in spec["template"]["metadata"]["annotations"]
    labels = spec["template"]["metadata"]["labels"]
    assert labels["app"] == NAMES[chart] and labels["version"] == "1.0.0"
    assert labels["app.kubernetes.io/part-of"] == "shopflow"
    # Secrets are files, never environment variables.
    assert all("secretRef" not in source for source in container["envFrom"])


@pytest.mark.parametrize("chart", SERVICE_CHARTS)
def test_scaling_and_disruption(renders: dict, chart: str) -> None:
    r = default(renders, chart)
    hpa = r.one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    assert hpa["spec"]["scaleTargetRef"]["name"] == NAMES[chart]
    pdb = r.one("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"]["app"] == NAMES[chart]
    prod = renders[(chart, "prod-like")]
    assert prod.one("HorizontalPodAutoscaler")["spec"]["minReplicas"] == 3
    assert prod.one("HorizontalPodAutoscaler")["spec"]["maxReplicas"] == 10


@pytest.mark.parametrize("chart", SERVICE_CHARTS)
def test_mesh_objects(renders: dict, chart: str) -> None:
    r = default(renders, chart)
    rule = r.one("DestinationRule")["spec"]
    assert rule["host"] == f"{NAMES[chart]}.{NAMESPACE}.svc.cluster.local"
    assert rule["trafficPolicy"]["tls"]["mode"] == "ISTIO_MUTUAL"
    assert rule["trafficPolicy"]["connectionPool"] and rule["trafficPolicy"]["outlierDetection"]
    policy = r.one("NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    egress_ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert {53, 5432} <= egress_ports
    authz = r.one("AuthorizationPolicy")["spec"]
    assert authz["action"] == "ALLOW" and authz["selector"]["matchLabels"] == {"app": NAMES[chart]}
    for rule in authz["rules"]:
        assert all(
            p.startswith("cluster.local/ns/")
            for s in rule["from"]
            for p in s["source"]["principals"]
        )
        assert all("notPaths" not in t["operation"] for t in rule["to"])


def principals_for(renders: dict, chart: str, path: str) -> set[str]:
    rules = default(renders, chart).one("AuthorizationPolicy")["spec"]["rules"]
    return {
        p
        for rule in rules
        for s in rule["from"]
        for p in s["source"]["principals"]
        if any(path in t["operation"]["paths"] for t in rule["to"])
    }


def test_who_may_call_whom(renders: dict) -> None:
    sa = lambda name: f"cluster.local/ns/{NAMESPACE}/sa/{name}"  # noqa: E731
    ingress = "cluster.local/ns/istio-system/sa/istio-ingressgateway"
    assert principals_for(renders, "catalog-api", "/products") == {ingress}
    assert principals_for(renders, "catalog-api", "/internal/*") == {sa("order-mgmt")}
    assert principals_for(renders, "payment-api", "/internal/*") == {sa("order-mgmt")}
    assert principals_for(renders, "notify-hub", "/internal/events") == {
        sa("user-auth"),
        sa("order-mgmt"),
        sa("payment-api"),
    }
    assert principals_for(renders, "auth-service", "/auth/.well-known/jwks.json") == {
        sa(s) for s in ("catalog-api", "order-mgmt", "payment-api", "notify-hub")
    }
    assert principals_for(renders, "auth-service", "/auth/oauth/token") == {
        sa(s) for s in ("catalog-api", "order-mgmt", "payment-api", "notify-hub")
    }
    # Only notify-hub looks users up (GET only; the scope users:read is its alone too).
    assert principals_for(renders, "auth-service", "/internal/users/*") == {sa("notify-hub")}


@pytest.mark.parametrize("chart", SERVICE_CHARTS)
def test_migration_job_is_a_presync_hook(renders: dict, chart: str) -> None:
    job = default(renders, chart).one("Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["argocd.argoproj.io/hook"] == "PreSync"
    assert "HookSucceeded" in annotations["argocd.argoproj.io/hook-delete-policy"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    # The service's own operations entry point, as shopctl runs it locally.
    assert container["command"] == ["python", "-m", chart.replace("-", "_"), "migrate"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("chart", SERVICE_CHARTS)
def test_secrets_come_from_external_secrets_only(renders: dict, chart: str) -> None:
    for rendered in (r for (c, _), r in renders.items() if c == chart):
        assert rendered.of_kind("Secret") == []
    es = default(renders, chart).one("ExternalSecret")
    assert es["apiVersion"] == "external-secrets.io/v1"
    prefix = f"SHOPFLOW_{chart.replace('-', '_').upper()}_"
    assert all(d["secretKey"].startswith(prefix) for d in es["spec"]["data"])
    assert renders[(chart, "minimal")].of_kind("ExternalSecret") == []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("resourses:\n  limits: {}\n", "additional properties 'resourses' not allowed"),
        ("image:\n  tag: latest\n", "/image/tag"),
        ("image:\n  account: abc\n", "/image/account"),
        ("mesh:\n  calers: []\n", "additional properties 'calers' not allowed"),
        ("lifecycle:\n  terminationGracePeriodSeconds: 10\n", "must exceed preStopSleepSeconds"),
    ],
)
def test_bad_values_fail_the_render(tmp_path: Path, values: str, message: str) -> None:
    (tmp_path / "values.yaml").write_text(values)
    with pytest.raises(RenderError, match=re.escape(message)):
        render("catalog-api", tmp_path / "values.yaml")
