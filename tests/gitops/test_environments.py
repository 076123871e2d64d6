"""Every environment renders, validates, and keeps its invariants."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml
from shopctl.render import EnvironmentRender
from shopctl.validate import validate_argocd, validate_environment

from tests.utils.gitops import ENVS, ROOT

REPO = "https://github.com/shopflow/shopflow.git"


def objects(result: EnvironmentRender, kind: str) -> list[dict]:
    return [d for a in result.applications for d in a.documents if d["kind"] == kind]


@pytest.mark.parametrize("env", ENVS)
def test_render_validates(rendered: dict[str, EnvironmentRender], env: str) -> None:
    result = rendered[env]
    assert len(result.applications) == 7
    assert [str(f) for f in validate_environment(result)] == []


def test_argocd_manifests_validate() -> None:
    assert [str(f) for f in validate_argocd(ROOT, "1.33.0")] == []


@pytest.mark.parametrize("env", ENVS)
def test_namespace_and_images(rendered: dict[str, EnvironmentRender], env: str) -> None:
    result = rendered[env]
    env_file = yaml.safe_load((ROOT / "environments" / env / "env.yaml").read_text())
    for app in result.applications:
        for doc in app.documents:
            namespace = doc["metadata"].get("namespace")
            if doc["kind"] == "Namespace":
                assert doc["metadata"]["name"] == f"shopflow-{env}"
            else:
                assert namespace in (f"shopflow-{env}", "istio-system"), (app.name, doc["kind"])
    for deployment in objects(result, "Deployment"):
        chart = {"user-auth": "auth-service"}.get(
            deployment["metadata"]["name"], deployment["metadata"]["name"]
        )
        tag = yaml.safe_load((ROOT / "environments" / env / chart / "version.yaml").read_text())[
            "image"
        ]["tag"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == (
            f"{env_file['aws']['account']}.dkr.ecr.ap-south-1.amazonaws.com/shopflow-platform/{chart}:{tag}"
        )


def test_replicas_per_environment(rendered: dict[str, EnvironmentRender]) -> None:
    dev, staging, prod = (rendered[e] for e in ENVS)
    assert {d["spec"]["replicas"] for d in objects(dev, "Deployment")} == {1}
    assert objects(dev, "HorizontalPodAutoscaler") == []
    assert {h["spec"]["minReplicas"] for h in objects(staging, "HorizontalPodAutoscaler")} == {2}
    prod_deployments = objects(prod, "Deployment")
    assert len(prod_deployments) == 5
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"]
        for h in objects(prod, "HorizontalPodAutoscaler")
    }
    pdbs = {p["metadata"]["name"] for p in objects(prod, "PodDisruptionBudget")}
    for deployment in prod_deployments:
        name = deployment["metadata"]["name"]
        assert hpas[name]["minReplicas"] >= 3 and hpas[name]["maxReplicas"] == 10
        assert name in pdbs
        spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert {"kubernetes.io/hostname": "DoNotSchedule"}.items() <= {
            c["topologyKey"]: c["whenUnsatisfiable"] for c in spread
        }.items()


def test_environments_differ_realistically(rendered: dict[str, EnvironmentRender]) -> None:
    def config(env: str) -> dict:
        (cm,) = [
            c
            for c in objects(rendered[env], "ConfigMap")
            if c["metadata"]["name"] == "catalog-api-config"
        ]
        return cm["data"]

    levels = {env: config(env)["SHOPFLOW_CATALOG_API_LOG_LEVEL"] for env in ENVS}
    issuers = {env: config(env)["SHOPFLOW_CATALOG_API_JWT_ISSUER"] for env in ENVS}
    assert len(set(levels.values())) == 3 and len(set(issuers.values())) == 3
    limits = {
        env: next(d for d in objects(rendered[env], "Deployment"))["spec"]["template"]["spec"][
            "containers"
        ][0]["resources"]
        for env in ("dev", "prod")
    }
    assert limits["dev"] != limits["prod"]


def test_app_projects() -> None:
    for env in ENVS:
        project = yaml.safe_load(
            (ROOT / "argocd" / "projects" / f"shopflow-{env}.yaml").read_text()
        )
        spec = project["spec"]
        assert project["metadata"]["name"] == f"shopflow-{env}"
        assert set(spec["sourceRepos"]) == {
            REPO,
            "https://istio-release.storage.googleapis.com/charts",
        }
        assert {d["namespace"] for d in spec["destinations"]} == {f"shopflow-{env}", "istio-system"}
        assert spec["clusterResourceWhitelist"] == [{"group": "", "kind": "Namespace"}]
    prod = yaml.safe_load((ROOT / "argocd" / "projects" / "shopflow-prod.yaml").read_text())["spec"]
    (window,) = prod["syncWindows"]
    assert window["kind"] == "deny" and window["schedule"] and window["duration"]


def test_clusters_and_registries() -> None:
    for tier in ("non-prod", "prod"):
        config = yaml.safe_load(
            (ROOT / "environments" / "_clusters" / tier / "cluster.yaml").read_text()
        )
        assert (
            config["metadata"]["name"] == "shopflow-cluster"
            and config["metadata"]["region"] == "ap-south-1"
        )
        assert config["iam"]["withOIDC"] is True
        (group,) = config["managedNodeGroups"]
        assert (
            group["instanceType"] == "t3.medium"
            and group["minSize"] <= group["desiredCapacity"] <= group["maxSize"]
        )
        assert any("ContainerRegistryReadOnly" in arn for arn in group["iam"]["attachPolicyARNs"])
        if tier == "prod":
            assert group["desiredCapacity"] == 3


def test_render_cli(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run(
        [sys.executable, "-m", "shopctl", "render", "--env", "staging", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"staging-{s}.yaml"
        for s in (
            "platform",
            "mesh",
            "user-auth",
            "catalog-api",
            "order-mgmt",
            "payment-api",
            "notify-hub",
        )
    )
    assert "rendered staging-catalog-api" in result.stderr  # progress on stderr
    unknown = subprocess.run(
        [sys.executable, "-m", "shopctl", "render", "--env", "qa"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert unknown.returncode == 1 and "unknown environment 'qa'" in unknown.stderr
    assert re.search(r"environments: dev, prod, staging", unknown.stderr)


def test_the_mesh_trusts_the_issuer_the_services_use(
    rendered: dict[str, EnvironmentRender],
) -> None:
    """The issuer is written once per environment for the services and once for the mesh."""
    for env in ENVS:
        issuers = {
            value
            for cm in objects(rendered[env], "ConfigMap")
            for key, value in cm["data"].items()
            if key.endswith("_JWT_ISSUER")
        }
        mesh = {
            rule["issuer"]
            for ra in objects(rendered[env], "RequestAuthentication")
            for rule in ra["spec"]["jwtRules"]
        }
        assert len(issuers) == 1, f"{env}: services disagree on the issuer: {issuers}"
        assert mesh == issuers, (
            f"{env}: environments/{env}/shopflow-mesh/values.yaml jwt.issuer {mesh} != "
            f"environments/{env}/values.yaml config.jwtIssuer {issuers}"
        )
