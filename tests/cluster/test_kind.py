"""Against a real Kubernetes API server (kind), opt-in: `make test PYTEST_ARGS="-m cluster"`.

No cluster can start on the development machines or in .ci/run, so these run in
GitHub Actions (the `cluster` job), where kind is installed.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from shopctl import access
from shopctl.render import render_environment
from shopctl.toolchain import kubectl_path

ROOT = Path(__file__).resolve().parents[2]
RBAC_KINDS = ("Role", "RoleBinding")
# Beyond the matrix's columns: the WebSocket forms of exec and port-forward, and patching.
EXTRA_REQUESTS = (
    access.Request("exec (websocket)", "get", "pods/exec"),
    access.Request("port-forward (websocket)", "get", "pods/portforward"),
    access.Request("patch configmaps", "patch", "configmaps"),
    access.Request("watch Secrets", "watch", "secrets"),
)
CRD_GROUPS = ("networking.istio.io", "security.istio.io", "external-secrets.io")

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        shutil.which("kind") is None, reason="needs the kind binary and a Docker engine"
    ),
]


def kubectl(k8s: Any, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(kubectl_path()), "--kubeconfig", str(k8s.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.mark.k8s(provider="kind", cluster_name="shopflow-ci")
def test_dev_render_is_accepted_by_a_real_api_server(k8s: Any) -> None:
    k8s.create()
    render = asyncio.run(render_environment(ROOT, "dev"))
    docs = [d for app in render.applications for d in app.documents]
    platform = [
        d
        for d in docs
        if (
            d["kind"] in ("Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy")
            and d["metadata"].get("name")
            in ("shopflow-dev", "shopflow-quota", "shopflow-limits", "default-deny")
        )
        or d["kind"] in RBAC_KINDS
    ]
    applied = kubectl(k8s, "apply", "-f", "-", stdin=yaml.safe_dump_all(platform))
    assert applied.returncode == 0, applied.stderr
    namespace = json.loads(kubectl(k8s, "get", "namespace", "shopflow-dev", "-o", "json").stdout)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"

    # Everything but the CRD kinds (no Istio or External Secrets in a bare kind cluster),
    # validated by the API server and its admission chain, Pod Security included.
    native = [
        d for d in docs if d["apiVersion"].split("/")[0] not in CRD_GROUPS and d not in platform
    ]
    dry_run = kubectl(k8s, "apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump_all(native))
    assert dry_run.returncode == 0, dry_run.stderr
    assert "would violate PodSecurity" not in dry_run.stderr

    _access_matrix_holds_on_a_real_api_server(k8s)


def _can_i(k8s: Any, group: str, namespace: str, request: access.Request) -> bool:
    result = kubectl(
        k8s,
        "auth",
        "can-i",
        *request.can_i,
        "--namespace",
        namespace,
        "--as",
        f"someone-in-{group}",
        "--as-group",
        group,
    )
    assert result.stdout.strip() in ("yes", "no"), result.stderr
    return result.stdout.strip() == "yes"


def _access_matrix_holds_on_a_real_api_server(k8s: Any) -> None:
    """Every cell of docs/access-control.md's Kubernetes matrix, asked of the API server."""
    renders = {env: asyncio.run(render_environment(ROOT, env)) for env in ("staging", "prod")}
    for result in renders.values():
        platform = [
            d for a in result.applications if a.component == "platform" for d in a.documents
        ]
        applied = kubectl(k8s, "apply", "-f", "-", stdin=yaml.safe_dump_all(platform))
        assert applied.returncode == 0, applied.stderr
    renders["dev"] = asyncio.run(render_environment(ROOT, "dev"))
    disagreements = []
    for env, result in renders.items():
        objects = [d for a in result.applications for d in a.documents]
        namespace = result.environment.namespace
        for group in access.bound_groups(objects):
            for request in (*access.REQUESTS, *EXTRA_REQUESTS):
                expected = access.k8s_allowed(objects, group, namespace, request)
                if _can_i(k8s, group, namespace, request) != expected:
                    disagreements.append((env, group, request.label, expected))
    assert disagreements == []
    # The promises, asked directly.
    secret = access.Request("get Secrets", "get", "secrets")
    exec_ = access.Request("exec", "create", "pods/exec")
    patch = access.Request("restart rollout", "patch", "deployments", "apps")
    for env in ("dev", "staging", "prod"):
        assert not _can_i(k8s, "shopflow-developers", f"shopflow-{env}", secret)
        assert not _can_i(k8s, "shopflow-readonly", f"shopflow-{env}", patch)
    assert not _can_i(k8s, "shopflow-sre", "shopflow-prod", exec_)
    assert _can_i(k8s, "shopflow-developers", "shopflow-dev", exec_)
    assert _can_i(k8s, "shopflow-sre", "shopflow-prod", patch)
