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
from shopctl.render import render_environment
from shopctl.toolchain import kubectl_path

ROOT = Path(__file__).resolve().parents[2]
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
        if d["kind"] in ("Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy")
        and d["metadata"].get("name")
        in ("shopflow-dev", "shopflow-quota", "shopflow-limits", "default-deny")
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
