"""`shopctl validate`: schemas plus the cross-object references Argo CD cannot check."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopctl.argocd import load_yaml_documents
from shopctl.render import EnvironmentRender
from shopctl.schemas import validate_object


@dataclass(frozen=True)
class Finding:
    file: str
    kind: str
    name: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.kind}/{self.name}: {self.field}: {self.message}"


def _name(doc: dict[str, Any]) -> str:
    return str((doc.get("metadata") or {}).get("name", "?"))


def _qualified(doc: dict[str, Any], kind: str) -> str:
    """``namespace/name`` for namespaced RBAC objects, ``name`` for cluster-scoped ones."""
    if kind == "ClusterRole":
        return _name(doc)
    return f"{(doc.get('metadata') or {}).get('namespace', 'default')}/{_name(doc)}"


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return dict((((doc.get("spec") or {}).get("template") or {}).get("spec")) or {})
    return None


def cross_references(objects: list[tuple[str, dict[str, Any]]]) -> list[Finding]:
    """Every reference between rendered objects points at something rendered."""
    findings = []
    services: dict[str, set[int]] = {}
    deployments: dict[str, dict[str, Any]] = {}
    accounts: set[str] = set()
    roles: set[tuple[str, str]] = set()  # (kind, namespace/name) of every rendered Role
    for _, doc in objects:
        kind = doc.get("kind")
        if kind in ("Role", "ClusterRole"):
            roles.add((str(kind), _qualified(doc, str(kind))))
        if kind == "Service":
            services[_name(doc)] = {int(p["port"]) for p in doc["spec"].get("ports", [])}
        elif kind == "Deployment":
            deployments[_name(doc)] = doc
        elif kind == "ServiceAccount":
            accounts.add(_name(doc))
    for file, doc in objects:
        kind, name = str(doc.get("kind")), _name(doc)
        if kind == "VirtualService":
            for i, route in enumerate(doc["spec"].get("http", [])):
                for j, dest in enumerate(route.get("route", [])):
                    host = dest["destination"]["host"].split(".")[0]
                    port = (dest["destination"].get("port") or {}).get("number")
                    where = f"spec.http[{i}].route[{j}].destination"
                    if host not in services:
                        findings.append(
                            Finding(
                                file,
                                kind,
                                name,
                                f"{where}.host",
                                f"no rendered Service named {host}",
                            )
                        )
                    elif port is not None and port not in services[host]:
                        findings.append(
                            Finding(
                                file,
                                kind,
                                name,
                                f"{where}.port.number",
                                f"Service {host} has no port {port}",
                            )
                        )
        elif kind == "HorizontalPodAutoscaler":
            target = doc["spec"]["scaleTargetRef"]
            if target.get("kind") != "Deployment" or target.get("name") not in deployments:
                findings.append(
                    Finding(
                        file,
                        kind,
                        name,
                        "spec.scaleTargetRef",
                        f"no rendered Deployment named {target.get('name')}",
                    )
                )
        elif kind == "PodDisruptionBudget":
            wanted = (doc["spec"].get("selector") or {}).get("matchLabels") or {}
            selected = [
                d
                for d in deployments.values()
                if wanted and wanted.items() <= d["spec"]["template"]["metadata"]["labels"].items()
            ]
            if not selected:
                findings.append(
                    Finding(
                        file,
                        kind,
                        name,
                        "spec.selector.matchLabels",
                        f"selects no rendered Deployment's pods: {wanted}",
                    )
                )
        elif kind in ("RoleBinding", "ClusterRoleBinding"):
            ref = doc.get("roleRef") or {}
            ref_kind = str(ref.get("kind"))
            namespace = str((doc.get("metadata") or {}).get("namespace", "default"))
            target = str(ref.get("name"))
            target = target if ref_kind == "ClusterRole" else f"{namespace}/{target}"
            if (ref_kind, target) not in roles:
                # A binding to a Role nobody rendered grants nothing today and whatever
                # that name means tomorrow; built-in ClusterRoles are refused too.
                findings.append(
                    Finding(
                        file,
                        kind,
                        name,
                        "roleRef",
                        f"no rendered {ref_kind} named {target}",
                    )
                )
        pod = _pod_spec(doc)
        if pod is not None:
            account = pod.get("serviceAccountName", "default")
            if account not in accounts:
                findings.append(
                    Finding(
                        file,
                        kind,
                        name,
                        "spec.template.spec.serviceAccountName",
                        f"no rendered ServiceAccount named {account}",
                    )
                )
    return findings


def validate_environment(result: EnvironmentRender) -> list[Finding]:
    kube = result.environment.kube_version
    objects: list[tuple[str, dict[str, Any]]] = []
    findings: list[Finding] = []
    for app in result.applications:
        file = f"{app.name}.yaml"
        findings += [
            Finding(f"{app.name} (Application)", "Application", app.name, i.field, i.message)
            for i in validate_object(app.application, kube)
        ]
        for doc in app.documents:
            objects.append((file, doc))
            findings += [
                Finding(file, i.kind, i.name, i.field, i.message)
                for i in validate_object(doc, kube)
            ]
    return findings + cross_references(objects)


def validate_argocd(root: Path, kube_version: str) -> list[Finding]:
    """The static Argo CD manifests under argocd/."""
    findings = []
    for path in sorted((root / "argocd").rglob("*.yaml")):
        for doc in load_yaml_documents(path):
            rel = str(path.relative_to(root))
            findings += [
                Finding(rel, i.kind, i.name, i.field, i.message)
                for i in validate_object(doc, kube_version)
            ]
    return findings
