"""ShopFlow's zero-trust policies: namespaces (2), mTLS (12), authorization (4, 13), routes (11)."""

from __future__ import annotations

from typing import Any

from shopflow_base import ShopflowCheck, name_of, namespace_of, of_kind, scan_objects

from checkov.common.bridgecrew.severities import BcSeverities

MESH_ROOT = "istio-system"


class ShopflowNamespaceLabels(ShopflowCheck):
    ID = "CKV_SHOPFLOW_2"
    NAME = "Each shopflow-* Namespace has istio-injection=enabled and enforces the restricted Pod Security level"
    SEVERITY = BcSeverities.HIGH
    GUIDELINE = (
        "Create ShopFlow namespaces with charts/shopflow-platform, which labels them "
        "istio-injection=enabled and pod-security.kubernetes.io/enforce=restricted."
    )
    KINDS = ("Namespace",)

    def problems(self, conf: dict[str, Any]) -> list[str]:
        if not name_of(conf).startswith("shopflow-"):
            return []
        labels = (conf.get("metadata") or {}).get("labels") or {}
        wanted = {"istio-injection": "enabled", "pod-security.kubernetes.io/enforce": "restricted"}
        return [f"label {k}={v} is missing" for k, v in wanted.items() if labels.get(k) != v]


def _namespace_wide(policy: dict[str, Any]) -> bool:
    return not ((policy.get("spec") or {}).get("selector"))


class StrictMtlsEverywhere(ShopflowCheck):
    ID = "CKV_SHOPFLOW_12"
    NAME = "Each workload's namespace has a namespace-wide STRICT PeerAuthentication"
    SEVERITY = BcSeverities.HIGH
    GUIDELINE = "Deploy charts/shopflow-mesh into the namespace: it holds PeerAuthentication default, mode STRICT."
    KINDS = ("Deployment", "StatefulSet", "DaemonSet")

    def problems(self, conf: dict[str, Any]) -> list[str]:
        namespace = namespace_of(conf)
        for policy in of_kind(scan_objects(self.entity_path), "PeerAuthentication"):
            mode = ((policy.get("spec") or {}).get("mtls") or {}).get("mode")
            if (
                mode == "STRICT"
                and _namespace_wide(policy)
                and namespace_of(policy) in (namespace, MESH_ROOT)
            ):
                return []
        return [f"namespace {namespace} has no namespace-wide STRICT PeerAuthentication"]


def _selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    wanted = (((policy.get("spec") or {}).get("selector") or {}).get("matchLabels")) or {}
    return bool(wanted) and wanted.items() <= labels.items()


class ServicesAreAuthorized(ShopflowCheck):
    ID = "CKV_SHOPFLOW_4"
    NAME = "A namespace-wide allow-nothing AuthorizationPolicy exists, and one selects each Service"
    SEVERITY = BcSeverities.HIGH
    GUIDELINE = (
        "Deploy charts/shopflow-mesh (AuthorizationPolicy allow-nothing with an empty spec) and render "
        "each service from the library chart, whose AuthorizationPolicy selects app=<service>."
    )
    KINDS = ("Service",)

    def problems(self, conf: dict[str, Any]) -> list[str]:
        namespace = namespace_of(conf)
        policies = [
            p
            for p in of_kind(scan_objects(self.entity_path), "AuthorizationPolicy")
            if namespace_of(p) == namespace
        ]
        found = []
        if not any((p.get("spec") or {}) == {} for p in policies):
            found.append(
                f"namespace {namespace} has no allow-nothing AuthorizationPolicy (spec: {{}})"
            )
        selector = ((conf.get("spec") or {}).get("selector")) or {}
        if not any(_selects(p, selector) for p in policies):
            found.append(f"no AuthorizationPolicy selects the pods of Service {name_of(conf)}")
        return found


class NarrowAllowRules(ShopflowCheck):
    ID = "CKV_SHOPFLOW_13"
    NAME = "ALLOW rules name their callers and paths: no notPaths, no rule open to every principal"
    SEVERITY = BcSeverities.HIGH
    GUIDELINE = (
        "In an ALLOW AuthorizationPolicy, list source.principals (cluster.local/ns/<ns>/sa/<caller>) "
        "and operation.paths explicitly; never principals: ['*'], a rule without from, or notPaths."
    )
    KINDS = ("AuthorizationPolicy",)

    def problems(self, conf: dict[str, Any]) -> list[str]:
        spec = conf.get("spec") or {}
        if spec.get("action", "ALLOW") != "ALLOW":
            return []
        found = []
        for i, rule in enumerate(spec.get("rules") or []):
            sources = [f.get("source") or {} for f in rule.get("from") or []]
            if not sources:
                found.append(f"rules[{i}] has no from: it allows every caller")
            for source in sources:
                if "*" in (source.get("principals") or []) or not (
                    source.get("principals") or source.get("requestPrincipals")
                ):
                    found.append(f"rules[{i}] allows all principals")
            for j, target in enumerate(rule.get("to") or []):
                if "notPaths" in (target.get("operation") or {}):
                    found.append(f"rules[{i}].to[{j}] uses notPaths")
        return found


class RoutesPointAtServices(ShopflowCheck):
    ID = "CKV_SHOPFLOW_11"
    NAME = (
        "Every VirtualService route points at a Service and port rendered in the same environment"
    )
    SEVERITY = BcSeverities.HIGH
    GUIDELINE = (
        "Route only to Services the environment renders (charts/<image>, port 4000); check the "
        "routes in charts/shopflow-mesh/values.yaml against ARCHITECTURE.md's table."
    )
    KINDS = ("VirtualService",)

    def problems(self, conf: dict[str, Any]) -> list[str]:
        services: dict[tuple[str, str], set[int]] = {}
        for service in of_kind(scan_objects(self.entity_path), "Service"):
            ports = {int(p.get("port", 0)) for p in (service.get("spec") or {}).get("ports") or []}
            services[(namespace_of(service), name_of(service))] = ports
        found = []
        for i, route in enumerate((conf.get("spec") or {}).get("http") or []):
            for j, destination in enumerate(route.get("route") or []):
                target = destination.get("destination") or {}
                parts = str(target.get("host", "")).split(".")
                key = (parts[1] if len(parts) > 1 else namespace_of(conf), parts[0])
                port = (target.get("port") or {}).get("number")
                if key not in services:
                    found.append(f"http[{i}].route[{j}]: no Service {key[1]} in namespace {key[0]}")
                elif port is not None and int(port) not in services[key]:
                    found.append(f"http[{i}].route[{j}]: Service {key[1]} has no port {port}")
        return found


namespaces = ShopflowNamespaceLabels()
strict_mtls = StrictMtlsEverywhere()
authorized = ServicesAreAuthorized()
narrow_rules = NarrowAllowRules()
routes = RoutesPointAtServices()
