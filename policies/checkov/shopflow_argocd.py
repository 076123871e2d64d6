"""ShopFlow's Argo CD policy (8): projects, automated sync with selfHeal and prune, retries."""

from __future__ import annotations

from typing import Any

from shopflow_base import ShopflowCheck, name_of, of_kind, scan_objects

from checkov.common.bridgecrew.severities import BcSeverities


class ApplicationsSyncSafely(ShopflowCheck):
    ID = "CKV_SHOPFLOW_8"
    NAME = "Argo CD Applications use a named project, automated sync with selfHeal and prune, and retries"
    SEVERITY = BcSeverities.HIGH
    GUIDELINE = (
        "Set spec.project to the environment's AppProject (never default), syncPolicy.automated "
        "{prune: true, selfHeal: true}, a syncPolicy.retry, and a destination namespace the project allows."
    )
    KINDS = ("Application", "ApplicationSet")

    def problems(self, conf: dict[str, Any]) -> list[str]:
        spec = conf.get("spec") or {}
        if conf.get("kind") == "ApplicationSet":
            spec = ((spec.get("template") or {}).get("spec")) or {}
        found = []
        project = str(spec.get("project", "default"))
        if project == "default":
            found.append("spec.project is default")
        policy = spec.get("syncPolicy") or {}
        automated = policy.get("automated") or {}
        if automated.get("selfHeal") is not True or automated.get("prune") is not True:
            found.append("syncPolicy.automated needs selfHeal: true and prune: true")
        if not policy.get("retry"):
            found.append("syncPolicy.retry is not set")
        if conf.get("kind") == "Application":
            namespace = (spec.get("destination") or {}).get("namespace")
            projects = [
                p
                for p in of_kind(scan_objects(self.entity_path), "AppProject")
                if name_of(p) == project
            ]
            if projects:
                allowed = {
                    d.get("namespace")
                    for d in (projects[0].get("spec") or {}).get("destinations") or []
                }
                if namespace not in allowed:
                    found.append(
                        f"destination namespace {namespace} is not a destination of project {project}"
                    )
            elif namespace != project:
                found.append(f"destination namespace {namespace} does not match project {project}")
        return found


applications = ApplicationsSyncSafely()
