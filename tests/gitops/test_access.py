"""Access control as code: the matrix the rendered objects give, and its published copy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from shopctl import access
from shopctl.helm import RenderError, template
from shopctl.render import EnvironmentRender
from shopctl.validate import cross_references

from tests.utils.gitops import ENVS, ROOT

K8S_GROUPS = ("shopflow-developers", "shopflow-sre", "shopflow-readonly")
REQUESTS = {r.label: r for r in access.REQUESTS}


def docs(result: EnvironmentRender) -> list[dict]:
    return [d for a in result.applications for d in a.documents]


def can(rendered: dict[str, EnvironmentRender], group: str, env: str, label: str) -> bool:
    result = rendered[env]
    return access.k8s_allowed(docs(result), group, result.environment.namespace, REQUESTS[label])


# What ARCHITECTURE.md and issue 18 promise, typed out here by hand.
SECRETS = {g: {e: (False, False) for e in ENVS} for g in K8S_GROUPS}
EXEC = {
    "shopflow-developers": {"dev": True, "staging": False, "prod": False},
    "shopflow-sre": {"dev": False, "staging": False, "prod": False},
    "shopflow-readonly": {"dev": False, "staging": False, "prod": False},
}
SCALE = {
    "shopflow-developers": {e: False for e in ENVS},
    "shopflow-sre": {e: True for e in ENVS},
    "shopflow-readonly": {e: False for e in ENVS},
}
ARGO_SYNC = {
    "shopflow-developers": {"dev": True, "staging": True, "prod": False},
    "shopflow-sre": {"dev": True, "staging": True, "prod": False},
    "shopflow-readonly": {"dev": False, "staging": False, "prod": False},
    "shopflow-release": {"dev": True, "staging": True, "prod": True},
}


@pytest.fixture(scope="module")
def matrix() -> access.Matrix:
    return access.compute(ROOT)


@pytest.mark.parametrize("group", K8S_GROUPS)
@pytest.mark.parametrize("env", ENVS)
def test_kubernetes_matrix_from_the_rendered_objects(
    rendered: dict[str, EnvironmentRender], group: str, env: str
) -> None:
    secrets = (can(rendered, group, env, "get Secrets"), can(rendered, group, env, "list Secrets"))
    assert secrets == SECRETS[group][env]
    assert can(rendered, group, env, "exec") == EXEC[group][env]
    assert can(rendered, group, env, "port-forward") == EXEC[group][env]
    assert can(rendered, group, env, "scale") == SCALE[group][env]
    assert can(rendered, group, env, "restart rollout") == SCALE[group][env]
    assert can(rendered, group, env, "read workloads")  # everyone may look
    assert can(rendered, group, env, "read logs") == (group != "shopflow-readonly")
    assert not can(rendered, group, env, "edit RBAC")


def test_argocd_matrix(matrix: access.Matrix) -> None:
    assert matrix.argo_groups == sorted(ARGO_SYNC)
    for group, envs in ARGO_SYNC.items():
        for env, may_sync in envs.items():
            assert matrix.argo[(group, env, "sync")] == may_sync, (group, env)
            assert matrix.argo[(group, env, "get")], (group, env)
            assert not matrix.argo[(group, env, "override")], (group, env)
            assert not matrix.argo[(group, env, "delete")], (group, env)


def test_the_published_matrix_is_the_rendered_one(matrix: access.Matrix) -> None:
    page = (ROOT / "docs" / "access-control.md").read_text()
    assert access.splice(page, access.to_markdown(matrix)) == page, (
        "docs/access-control.md is out of date: run "
        "`.venv/bin/shopctl access-matrix --write docs/access-control.md`"
    )


def test_access_matrix_cli_check(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(f"# x\n{access.BEGIN}\nstale\n{access.END}\nafter\n")
    run = [sys.executable, "-m", "shopctl", "access-matrix"]
    stale = subprocess.run(
        [*run, "--check", str(page)], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert stale.returncode == 1 and "out of date" in stale.stderr
    wrote = subprocess.run(
        [*run, "--write", str(page)], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert wrote.returncode == 0, wrote.stderr
    assert "| `shopflow-release` | view, sync | view, sync | view, sync |" in page.read_text()
    assert page.read_text().endswith(f"{access.END}\nafter\n")
    fresh = subprocess.run(
        [*run, "--check", str(page)], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert fresh.returncode == 0, fresh.stderr
    page.write_text("no markers\n")
    missing = subprocess.run(
        [*run, "--check", str(page)], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert missing.returncode == 1 and "markers" in missing.stderr


@pytest.mark.parametrize("env", ENVS)
def test_workloads_get_no_role(rendered: dict[str, EnvironmentRender], env: str) -> None:
    objects = docs(rendered[env])
    for binding in (d for d in objects if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        assert {s["kind"] for s in binding["subjects"]} == {"Group"}, binding["metadata"]
        assert binding["roleRef"]["name"] != "cluster-admin"
    assert not [d for d in objects if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    for account in (d for d in objects if d["kind"] == "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False
    pods = [d["spec"]["template"]["spec"] for d in objects if d["kind"] in ("Deployment", "Job")]
    assert pods and all(p["automountServiceAccountToken"] is False for p in pods)
    assert {b["metadata"]["name"] for b in objects if b["kind"] == "RoleBinding"} == set(K8S_GROUPS)


def test_no_role_uses_wildcards(rendered: dict[str, EnvironmentRender]) -> None:
    for env in ENVS:
        for role in (d for d in docs(rendered[env]) if d["kind"] == "Role"):
            for rule in role["rules"]:
                for key in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule[key] and all("*" not in v for v in rule[key])


def test_access_entries_map_exactly_the_charts_groups() -> None:
    values = yaml.safe_load((ROOT / "charts/shopflow-platform/values.yaml").read_text())
    groups = set(values["rbac"]["groups"])
    for tier, account in (("non-prod", "111122223333"), ("prod", "444455556666")):
        config = yaml.safe_load((ROOT / f"environments/_clusters/{tier}/cluster.yaml").read_text())
        access_config = config["accessConfig"]
        assert access_config["authenticationMode"] == "API"
        entries = access_config["accessEntries"]
        mapped = {g for e in entries for g in e["kubernetesGroups"]}
        assert mapped == groups
        for entry in entries:
            # RBAC alone decides: no EKS access policy (AmazonEKSClusterAdminPolicy, ...).
            assert "accessPolicies" not in entry
            (group,) = entry["kubernetesGroups"]
            assert entry["principalARN"] == f"arn:aws:iam::{account}:role/{group}"


def test_argocd_rbac_configmap_is_synced_by_the_root_app() -> None:
    (cm,) = yaml.safe_load_all((ROOT / "argocd/rbac/argocd-rbac-cm.yaml").read_text())
    assert cm["metadata"] == {
        "name": "argocd-rbac-cm",
        "namespace": "argocd",
        "labels": {
            "app.kubernetes.io/name": "argocd-rbac-cm",
            "app.kubernetes.io/part-of": "argocd",
        },
    }
    assert cm["data"]["policy.default"] == "role:readonly"
    assert yaml.safe_load(cm["data"]["scopes"]) == ["groups"]
    root = yaml.safe_load((ROOT / "argocd/bootstrap/root.yaml").read_text())
    assert "rbac/*.yaml" in root["spec"]["source"]["directory"]["include"]
    bootstrap = yaml.safe_load((ROOT / "argocd/projects/shopflow-bootstrap.yaml").read_text())
    assert {"group": "", "kind": "ConfigMap"} in bootstrap["spec"]["namespaceResourceWhitelist"]


def test_validate_names_a_binding_to_a_role_nobody_rendered() -> None:
    role = {"kind": "Role", "metadata": {"name": "shopflow-sre", "namespace": "shopflow-dev"}}

    def binding(name: str, kind: str, ref: str) -> tuple[str, dict]:
        return (
            "platform.yaml",
            {
                "kind": kind,
                "metadata": {"name": name, "namespace": "shopflow-dev"},
                "roleRef": {"kind": "Role" if "-" in ref else "ClusterRole", "name": ref},
            },
        )

    found = [
        str(f)
        for f in cross_references(
            [
                ("platform.yaml", role),
                binding("ok", "RoleBinding", "shopflow-sre"),
                binding("typo", "RoleBinding", "shopflow-sre2"),
                binding("builtin", "RoleBinding", "view"),
            ]
        )
    ]
    assert found == [
        "platform.yaml: RoleBinding/typo: roleRef: no rendered Role named shopflow-dev/shopflow-sre2",
        "platform.yaml: RoleBinding/builtin: roleRef: no rendered ClusterRole named view",
    ]


def test_rbac_evaluator_follows_kubernetes_rules() -> None:
    objects = [
        {
            "kind": "Role",
            "metadata": {"name": "r", "namespace": "a"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["secrets"],
                    "verbs": ["get"],
                    "resourceNames": ["x"],
                },
                {"apiGroups": ["apps"], "resources": ["deployments/*"], "verbs": ["patch"]},
            ],
        },
        {
            "kind": "ClusterRole",
            "metadata": {"name": "c"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
        },
        {
            "kind": "RoleBinding",
            "metadata": {"name": "b", "namespace": "a"},
            "subjects": [{"kind": "Group", "name": "g"}],
            "roleRef": {"kind": "Role", "name": "r"},
        },
        {
            "kind": "RoleBinding",
            "metadata": {"name": "b2", "namespace": "a"},
            "subjects": [{"kind": "Group", "name": "g"}],
            "roleRef": {"kind": "ClusterRole", "name": "c"},
        },
    ]
    ask = access.Request
    assert not access.k8s_allowed(objects, "g", "a", ask("", "get", "secrets"))  # named only
    assert access.k8s_allowed(objects, "g", "a", ask("", "patch", "deployments/scale", "apps"))
    assert not access.k8s_allowed(objects, "g", "a", ask("", "patch", "deployments", "apps"))
    assert access.k8s_allowed(objects, "g", "a", ask("", "list", "pods"))  # ClusterRole, bound here
    assert not access.k8s_allowed(objects, "g", "b", ask("", "list", "pods"))  # other namespace
    assert not access.k8s_allowed(objects, "h", "a", ask("", "list", "pods"))  # other group
    assert ask("", "patch", "deployments/scale", "apps").can_i == [
        "patch",
        "deployments.apps",
        "--subresource=scale",
    ]


def test_argocd_evaluator_follows_argocd_rules() -> None:
    project = {
        "metadata": {"name": "p"},
        "spec": {
            "roles": [
                {
                    "name": "r",
                    "groups": ["g"],
                    "policies": ["p, proj:p:r, applications, *, p/*, allow"],
                }
            ]
        },
    }
    cm = {
        "data": {
            "policy.default": "role:readonly",
            "policy.csv": "# comment\np, g, applications, delete, p/*, deny\ng, h, role:admin\n",
        }
    }
    policy = access.ArgoPolicy.load([project], cm)
    assert policy.allowed("g", "sync", "p/app")  # project role, glob action
    assert not policy.allowed("g", "delete", "p/app")  # a deny beats the allow
    assert policy.allowed("nobody", "get", "q/app")  # policy.default is a floor
    assert not policy.allowed("nobody", "sync", "p/app")
    assert policy.allowed("h", "delete", "q/app")  # g-bound to role:admin
    with pytest.raises(ValueError, match="not an Argo CD policy line"):
        access.parse_csv("p, too, few")


def test_platform_chart_refuses_unknown_sets_and_wildcards(tmp_path: Path) -> None:
    chart = ROOT / "charts" / "shopflow-platform"
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("rbac:\n  groups:\n    shopflow-sre: [read, root]\n")
    with pytest.raises(RenderError, match='names the permission set "root"'):
        template(ROOT, chart, release="p", namespace="shopflow-dev", value_files=[unknown])
    wildcard = tmp_path / "wildcard.yaml"
    wildcard.write_text(
        "rbac:\n  permissions:\n    root:\n      description: everything\n"
        "      rules: [{apiGroups: ['*'], resources: ['*'], verbs: ['*']}]\n"
    )
    with pytest.raises(RenderError) as refused:
        template(ROOT, chart, release="p", namespace="shopflow-dev", value_files=[wildcard])
    message = str(refused.value)
    for field in ("verbs", "apiGroups", "resources"):
        assert f"/rbac/permissions/root/rules/0/{field}/0" in message, message
