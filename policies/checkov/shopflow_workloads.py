"""ShopFlow policies on workloads: images (1), availability (5), graceful shutdown (7)."""

from __future__ import annotations

import re
from typing import Any

from shopflow_base import (
    WORKLOADS,
    ShopflowCheck,
    containers,
    name_of,
    namespace_of,
    of_kind,
    pod_labels,
    pod_spec,
    scan_objects,
)

from checkov.common.bridgecrew.severities import BcSeverities

ECR_IMAGE = re.compile(
    r"^[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/shopflow-platform/[a-z0-9][a-z0-9._-]*"
    r"(:(v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?|[0-9a-f]{7,40})|@sha256:[0-9a-f]{64})$"
)


class ImagesFromShopflowEcr(ShopflowCheck):
    ID = "CKV_SHOPFLOW_1"
    NAME = "Container images come from the ShopFlow ECR path, pinned to a release tag or digest"
    SEVERITY = BcSeverities.CRITICAL
    GUIDELINE = (
        "Use <account>.dkr.ecr.<region>.amazonaws.com/shopflow-platform/<image>:<release tag, "
        "commit sha or @sha256 digest>; set the tag in environments/<env>/<image>/version.yaml. "
        "Never latest, never another registry."
    )
    KINDS = WORKLOADS

    def problems(self, conf: dict[str, Any]) -> list[str]:
        return [
            f"container {c.get('name')}: image {c.get('image')!r} is not a pinned ShopFlow ECR image"
            for c in containers(conf)
            if not ECR_IMAGE.match(str(c.get("image", "")))
        ]


class DisruptionSafeRollouts(ShopflowCheck):
    ID = "CKV_SHOPFLOW_5"
    NAME = "Replicated or autoscaled workloads have a PDB, and rolling updates use maxUnavailable 0"
    SEVERITY = BcSeverities.MEDIUM
    GUIDELINE = (
        "Keep pdb.enabled (library chart) for workloads with more than one replica or an HPA, "
        "and keep strategy.rollingUpdate.maxUnavailable at 0."
    )
    KINDS = ("Deployment", "StatefulSet")

    def problems(self, conf: dict[str, Any]) -> list[str]:
        found = []
        objects = scan_objects(self.entity_path)
        name, namespace = name_of(conf), namespace_of(conf)
        spec = conf.get("spec") or {}
        autoscaled = any(
            (h.get("spec") or {}).get("scaleTargetRef", {}).get("name") == name
            and namespace_of(h) == namespace
            for h in of_kind(objects, "HorizontalPodAutoscaler")
        )
        if int(spec.get("replicas", 1)) > 1 or autoscaled:
            labels = pod_labels(conf)
            covered = any(
                namespace_of(p) == namespace
                and (selector := ((p.get("spec") or {}).get("selector") or {}).get("matchLabels"))
                and selector.items() <= labels.items()
                for p in of_kind(objects, "PodDisruptionBudget")
            )
            if not covered:
                found.append(
                    "replicated or autoscaled, but no PodDisruptionBudget selects its pods"
                )
        strategy = spec.get("strategy") or {}
        if (
            conf.get("kind") == "Deployment"
            and strategy.get("type", "RollingUpdate") == "RollingUpdate"
        ):
            unavailable = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%")
            if str(unavailable) not in ("0", "0%"):
                found.append(f"rollingUpdate.maxUnavailable is {unavailable}, not 0")
        return found


def _prestop_seconds(container: dict[str, Any]) -> int | None:
    pre_stop = ((container.get("lifecycle") or {}).get("preStop")) or {}
    if "sleep" in pre_stop:
        return int((pre_stop["sleep"] or {}).get("seconds", 0))
    command = ((pre_stop.get("exec") or {}).get("command")) or []
    if command and command[0].endswith("sleep") and len(command) > 1 and str(command[1]).isdigit():
        return int(command[1])
    if pre_stop:
        return 0
    return None


class GracefulShutdown(ShopflowCheck):
    ID = "CKV_SHOPFLOW_7"
    NAME = "Each container has a preStop hook, and the grace period covers it"
    SEVERITY = BcSeverities.MEDIUM
    GUIDELINE = (
        "Give every long-running container lifecycle.preStop (sleep) so endpoints drain first, "
        "and set terminationGracePeriodSeconds longer than the sleep plus the drain time."
    )
    KINDS = ("Deployment", "StatefulSet", "DaemonSet")

    def problems(self, conf: dict[str, Any]) -> list[str]:
        grace = int(pod_spec(conf).get("terminationGracePeriodSeconds", 30))
        found = []
        for container in pod_spec(conf).get("containers") or []:
            seconds = _prestop_seconds(container)
            if seconds is None:
                found.append(f"container {container.get('name')} has no preStop hook")
            elif seconds >= grace:
                found.append(
                    f"container {container.get('name')}: preStop takes {seconds}s but the grace "
                    f"period is {grace}s"
                )
        return found


images = ImagesFromShopflowEcr()
availability = DisruptionSafeRollouts()
shutdown = GracefulShutdown()
