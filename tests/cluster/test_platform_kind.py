"""All five services on a real cluster (kind + Istio), and the seed's checks through its ingress.

Opt-in (`-m cluster`), in the GitHub Actions `cluster` job: no Docker engine or
cluster can run on the development machines or in .ci/run. What it does:

1. builds each service image from its Dockerfile, tagged exactly as the dev
   render names it, and loads it into kind;
2. installs Istio (base, CNI, istiod, the ingress gateway) exactly as the istio
   ApplicationSet in argocd/applicationsets/istio.yaml does (chart, version,
   release and values); the CNI plugin replaces the sidecar's NET_ADMIN init
   container, which the namespace's Pod Security `restricted` level would refuse;
3. runs PostgreSQL in a namespace of its own and creates the five databases;
4. applies the dev render as Argo CD would, except that each ExternalSecret
   becomes the Secret it would have produced (no secrets manager in kind) and
   the NetworkPolicies' database CIDR becomes kind's pod network;
5. then the seed's checks: `GET /products` and `GET /auth/health` through the
   ingress gateway answer 200, and order-mgmt reaches
   `http://catalog-api:4000/health` by its cluster name.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from shopctl.argocd import all_applications
from shopctl.ports import free_port
from shopctl.render import render_environment
from shopctl.services import SERVICES
from shopctl.toolchain import kubectl_path, require_helm

ROOT = Path(__file__).resolve().parents[2]
ENV = "dev"
NAMESPACE = "shopflow-dev"
KIND_POD_CIDR = "10.244.0.0/16"
WAVE = "argocd.argoproj.io/sync-wave"
DB_PASSWORD = secrets.token_urlsafe(16)

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        shutil.which("kind") is None or shutil.which("docker") is None,
        reason="needs the kind binary and a Docker engine",
    ),
]


def run(*args: str, stdin: str | None = None, timeout: int = 900) -> str:
    result = subprocess.run(
        list(args), input=stdin, capture_output=True, text=True, check=False, timeout=timeout
    )
    assert result.returncode == 0, f"{' '.join(args[:4])}...: {result.stderr[-3000:]}"
    return result.stdout


def istio_applications(cluster: str) -> list[dict[str, Any]]:
    """The istio ApplicationSet's Applications for ``cluster``, in sync-wave order."""
    apps = [
        a for a in all_applications(ROOT) if a["metadata"]["name"].startswith(f"{cluster}-istio-")
    ]
    return sorted(apps, key=lambda a: int(a["metadata"]["annotations"][WAVE]))


def secret_from(external: dict[str, Any], clients: dict[str, str]) -> dict[str, Any]:
    """The Secret an ExternalSecret would have produced, with values made up here."""
    service = external["metadata"]["labels"]["app"]
    database = next(s.database for s in SERVICES if s.name == service)
    values = {}
    for entry in external["spec"]["data"]:
        prop = entry["remoteRef"]["property"]
        if prop == "database_url":
            value = (
                f"postgresql://postgres:{DB_PASSWORD}@postgres.shopflow-db.svc.cluster.local"
                f":5432/{database}"
            )
        elif prop == "oauth_client_secret":
            value = clients[service]
        elif prop == "oauth_clients":
            value = json.dumps(clients)
        else:
            value = secrets.token_urlsafe(48)
        values[entry["secretKey"]] = value
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": external["spec"]["target"]["name"], "namespace": NAMESPACE},
        "stringData": values,
    }


def for_kind(doc: dict[str, Any]) -> dict[str, Any]:
    """The database is in kind's pod network, not the VPC's."""
    if doc["kind"] == "NetworkPolicy":
        for rule in doc["spec"].get("egress") or []:
            for peer in rule.get("to") or []:
                if "ipBlock" in peer:
                    peer["ipBlock"]["cidr"] = KIND_POD_CIDR
    return doc


@pytest.mark.k8s(provider="kind", cluster_name="shopflow-platform")
def test_the_seed_checks_hold_through_the_ingress(k8s: Any) -> None:
    k8s.create()
    kubeconfig = str(k8s.kubeconfig)
    kubectl = [str(kubectl_path()), "--kubeconfig", kubeconfig]
    helm = [str(require_helm(ROOT)), "--kubeconfig", kubeconfig]
    render = asyncio.run(render_environment(ROOT, ENV))
    docs = [d for app in render.applications for d in app.documents]

    # 1. Images, named as the render names them.
    images = {
        c["image"]
        for d in docs
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    for service in SERVICES:
        (image,) = [i for i in images if f"/{service.image}:" in i]
        run("docker", "build", "-f", f"apps/{service.image}/Dockerfile", "-t", image, str(ROOT))
        run("kind", "load", "docker-image", image, "--name", k8s.cluster_name)

    # 2. Istio exactly as the istio ApplicationSet installs it on the non-prod cluster: each
    #    Application's chart, version, release and values, in sync-wave order. The CNI plugin
    #    replaces the sidecar's NET_ADMIN init container, which `restricted` would refuse.
    for app in istio_applications("shopflow-nonprod"):
        source = app["spec"]["source"]
        extra = ["--set", "service.type=ClusterIP"] if source["chart"] == "gateway" else []
        run(
            *helm,
            "upgrade",
            "--install",
            source["helm"]["releaseName"],
            source["chart"],
            "--repo",
            source["repoURL"],
            "--version",
            source["targetRevision"],
            "--namespace",
            app["spec"]["destination"]["namespace"],
            "--create-namespace",
            "--wait",
            "--values",
            "-",
            *extra,
            stdin=source["helm"].get("values") or "{}",
        )

    # 3. PostgreSQL outside the mesh, and the five databases.
    postgres = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "postgres", "namespace": "shopflow-db"},
        "spec": {
            "selector": {"matchLabels": {"app": "postgres"}},
            "template": {
                "metadata": {"labels": {"app": "postgres"}},
                "spec": {
                    "containers": [
                        {
                            "name": "postgres",
                            "image": "postgres:18",
                            "env": [{"name": "POSTGRES_PASSWORD", "value": DB_PASSWORD}],
                            "ports": [{"containerPort": 5432}],
                        }
                    ]
                },
            },
        },
    }
    postgres_service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "postgres", "namespace": "shopflow-db"},
        "spec": {"selector": {"app": "postgres"}, "ports": [{"port": 5432}]},
    }
    run(*kubectl, "create", "namespace", "shopflow-db")
    run(*kubectl, "apply", "-f", "-", stdin=yaml.safe_dump_all([postgres, postgres_service]))
    run(*kubectl, "-n", "shopflow-db", "rollout", "status", "deploy/postgres", "--timeout=300s")
    for s in SERVICES:
        psql = ["psql", "-U", "postgres", "-c", f"CREATE DATABASE {s.database}"]
        for _ in range(30):  # the server accepts connections a moment after it is Ready
            create = subprocess.run(
                [*kubectl, "-n", "shopflow-db", "exec", "deploy/postgres", "--", *psql],
                capture_output=True,
                text=True,
                check=False,
            )
            if create.returncode == 0 or "already exists" in create.stderr:
                break
            time.sleep(2)
        else:
            pytest.fail(f"cannot create database {s.database}: {create.stderr}")

    # 4. The dev render: platform first, then the mesh, then the services.
    clients = {s.name: secrets.token_urlsafe(32) for s in SERVICES}
    ordered = sorted(docs, key=lambda d: (d["kind"] != "Namespace", d["kind"] == "Job"))
    objects = [
        secret_from(d, clients) if d["kind"] == "ExternalSecret" else for_kind(d) for d in ordered
    ]
    run(*kubectl, "apply", "-f", "-", stdin=yaml.safe_dump_all(objects))
    for s in SERVICES:
        run(*kubectl, "-n", NAMESPACE, "rollout", "status", f"deploy/{s.name}", "--timeout=600s")
    run(
        *kubectl,
        "-n",
        NAMESPACE,
        "exec",
        "deploy/catalog-api",
        "-c",
        "catalog-api",
        "--",
        "python",
        "-m",
        "catalog_api",
        "seed",
    )

    # 5. The seed's checks, through the ingress gateway.
    port = free_port()
    forward = subprocess.Popen(
        [*kubectl, "-n", "istio-system", "port-forward", "svc/istio-ingressgateway", f"{port}:80"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                products = httpx.get(f"{base}/products", timeout=10)
                if products.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the ingress never answered GET /products"
            time.sleep(2)
        assert products.json()["total"] >= 50
        assert httpx.get(f"{base}/auth/health", timeout=10).status_code == 200
        assert httpx.get(f"{base}/internal/reservations", timeout=10).status_code == 404
    finally:
        forward.terminate()
        forward.wait(10)
    reached = run(
        *kubectl,
        "-n",
        NAMESPACE,
        "exec",
        "deploy/order-mgmt",
        "-c",
        "order-mgmt",
        "--",
        "python",
        "-m",
        "order_mgmt",
        "reach",
        "http://catalog-api:4000/health",
    )
    assert ": 200" in reached
