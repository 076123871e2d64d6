"""Shared pieces of ShopFlow's checkov Python checks (not a check itself).

Checks that need the whole render (a VirtualService's Services, a Service's
AuthorizationPolicy, ...) read every YAML file under the scan root:
SHOPFLOW_POLICY_SCAN_ROOT when `shopctl policy` sets it, else the folder of the
file being scanned.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from checkov.common.bridgecrew.severities import BcSeverities, Severities
from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.kubernetes.checks.resource.base_spec_check import BaseK8Check

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")


def pod_spec(conf: dict[str, Any]) -> dict[str, Any]:
    kind = conf.get("kind")
    spec = conf.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return ((spec.get("template") or {}).get("spec")) or {}


def pod_labels(conf: dict[str, Any]) -> dict[str, str]:
    if conf.get("kind") == "Pod":
        return dict((conf.get("metadata") or {}).get("labels") or {})
    template = ((conf.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return dict(template.get("labels") or {})


def containers(conf: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(conf)
    return [
        c
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(key) or []
    ]


def namespace_of(conf: dict[str, Any]) -> str:
    return str((conf.get("metadata") or {}).get("namespace") or "default")


def name_of(conf: dict[str, Any]) -> str:
    return str((conf.get("metadata") or {}).get("name") or "?")


@cache
def _load(root: str) -> tuple[dict[str, Any], ...]:
    docs: list[dict[str, Any]] = []
    for path in sorted(Path(root).rglob("*.y*ml")):
        try:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
        except (yaml.YAMLError, OSError, UnicodeDecodeError):
            continue
    return tuple(docs)


def scan_objects(entity_path: str) -> tuple[dict[str, Any], ...]:
    root = os.environ.get("SHOPFLOW_POLICY_SCAN_ROOT")
    if not root:
        root = str(Path(entity_path.split(":", 1)[0]).resolve().parent)
    return _load(str(Path(root).resolve()))


def of_kind(objects: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") == kind]


class ShopflowCheck(BaseK8Check):
    """A Kubernetes check that returns the list of problems it found (empty: passed)."""

    ID = ""
    NAME = ""
    SEVERITY = BcSeverities.HIGH
    GUIDELINE = ""
    KINDS: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__(
            name=self.NAME,
            id=self.ID,
            categories=[CheckCategories.KUBERNETES],
            supported_entities=self.KINDS,
            guideline=self.GUIDELINE,
        )
        self.severity = Severities[self.SEVERITY]

    @abstractmethod
    def problems(self, conf: dict[str, Any]) -> list[str]:
        """What is wrong with ``conf``, one sentence each."""

    def scan_spec_conf(self, conf: dict[str, Any]) -> CheckResult:
        found = self.problems(conf)
        self.details.extend(found)
        return CheckResult.FAILED if found else CheckResult.PASSED
