"""ShopFlow's access-control policies: binding subjects (15), Argo CD prod sync (16),
no override or delete in prod (17), no Secret reads in Roles (18). Rule 14 (no
cluster-admin binding) is CKV_SHOPFLOW_14.yaml.

Argo CD policies are evaluated with shopctl.access, the same evaluator that writes
docs/access-control.md, so the policy and the published matrix cannot disagree.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from shopctl.access import ArgoPolicy
from shopflow_base import ShopflowCheck, name_of

from checkov.common.bridgecrew.severities import BcSeverities

PLATFORM_VALUES = Path(__file__).resolve().parents[2] / "charts/shopflow-platform/values.yaml"
RELEASE_GROUP = "shopflow-release"
RBAC_CM = "argocd-rbac-cm"
# Anyone whom no line of the policy names: covers policy.default.
ANYONE = "someone-unlisted"
READ_VERBS = {"get", "list", "watch", "*"}


@cache
def known_groups() -> frozenset[str]:
    """The groups the platform chart binds: the one list, in its values."""
    values = yaml.safe_load(PLATFORM_VALUES.read_text()) or {}
    return frozenset(((values.get("rbac") or {}).get("groups") or {}).keys())


def _is_prod_project(project: dict[str, Any]) -> bool:
    destinations = (project.get("spec") or {}).get("destinations") or []
    return name_of(project).endswith("-prod") or any(
        str(d.get("namespace", "")).endswith("-prod") for d in destinations
    )


def _argo_subjects(conf: dict[str, Any]) -> tuple[ArgoPolicy, str, set[str]] | None:
    """The policy a prod AppProject or argocd-rbac-cm holds, a prod object, and whom it names."""
    if conf.get("kind") == "AppProject":
        if not _is_prod_project(conf):
            return None
        policy = ArgoPolicy.load([conf], {})
        roles = {p[0] for p in policy.policies if p[0].startswith("proj:")}
        return policy, f"{name_of(conf)}/any-application", {s for s, _ in policy.grants} | roles
    if conf.get("kind") == "ConfigMap" and name_of(conf) == RBAC_CM:
        policy = ArgoPolicy.load([], conf)
        named = {s for s, _ in policy.grants} | {p[0] for p in policy.policies}
        return policy, "shopflow-prod/any-application", named | {"role:admin", ANYONE}
    return None


class BindingSubjectsAreKnownGroups(ShopflowCheck):
    ID = "CKV_SHOPFLOW_15"
    NAME = "RoleBindings bind only the known ShopFlow groups (never users or service accounts)"
    SEVERITY = BcSeverities.HIGH
    GUIDELINE = (
        "Bind a Group listed under rbac.groups in charts/shopflow-platform/values.yaml (mapped "
        "from IAM by an EKS access entry); workloads get no Role, so no ServiceAccount subject."
    )
    KINDS = ("RoleBinding", "ClusterRoleBinding")

    def problems(self, conf: dict[str, Any]) -> list[str]:
        known = known_groups()
        return [
            f"subject {s.get('kind')} {s.get('name')!r} is not a known group "
            f"({', '.join(sorted(known))})"
            for s in conf.get("subjects") or []
            if s.get("kind") != "Group" or s.get("name") not in known
        ]


class ProdArgoCheck(ShopflowCheck):
    """Judges what the subjects a prod AppProject or argocd-rbac-cm names may do in prod."""

    KINDS = ("AppProject", "ConfigMap")
    ACTIONS: tuple[str, ...] = ()

    def restricted(self, subject: str) -> bool:
        """Whether ``subject`` must not be allowed ``ACTIONS``."""
        return True

    def problems(self, conf: dict[str, Any]) -> list[str]:
        found = _argo_subjects(conf)
        if found is None:
            return []
        policy, target, subjects = found
        project = target.split("/")[0]
        return [
            f"{subject} may {action} in {project}"
            for subject in sorted(subjects)
            for action in self.ACTIONS
            if self.restricted(subject) and policy.allowed(subject, action, target)
        ]


class ProdSyncOnlyForRelease(ProdArgoCheck):
    ID = "CKV_SHOPFLOW_16"
    NAME = "Only the shopflow-release group may sync prod in Argo CD"
    SEVERITY = BcSeverities.HIGH
    GUIDELINE = (
        "Grant `applications, sync` on the prod project only in a project role whose groups are "
        "[shopflow-release]; give developers and SRE `get` there, and keep argocd-rbac-cm's "
        "policy.default at role:readonly with no group bound to role:admin."
    )
    ACTIONS = ("sync",)

    def restricted(self, subject: str) -> bool:
        # People and groups; a role's own grant is judged through whoever holds the role.
        return subject != RELEASE_GROUP and not subject.startswith(("proj:", "role:"))


class NoOverrideOrDeleteInProd(ProdArgoCheck):
    ID = "CKV_SHOPFLOW_17"
    NAME = "Nobody may override or delete prod Applications through Argo CD"
    SEVERITY = BcSeverities.HIGH
    GUIDELINE = (
        "Grant no `override`, `delete` or `*` action on the prod project in any role, and keep "
        "argocd-rbac-cm's deny lines for role:admin and every group "
        "(`p, role:admin, applications, delete, shopflow-prod/*, deny`)."
    )
    ACTIONS = ("override", "delete")


class NoSecretReadsInRoles(ShopflowCheck):
    ID = "CKV_SHOPFLOW_18"
    NAME = "No Role or ClusterRole grants get, list or watch on Secrets"
    SEVERITY = BcSeverities.HIGH
    GUIDELINE = (
        "People never read Secrets through the API server (the values live in AWS Secrets "
        "Manager, read by External Secrets' own IRSA role): drop secrets from the rule."
    )
    KINDS = ("Role", "ClusterRole")

    def problems(self, conf: dict[str, Any]) -> list[str]:
        found = []
        for i, rule in enumerate(conf.get("rules") or []):
            groups = set(rule.get("apiGroups") or [])
            resources = set(rule.get("resources") or [])
            verbs = set(rule.get("verbs") or [])
            if groups & {"", "*"} and resources & {"secrets", "*"} and verbs & READ_VERBS:
                found.append(f"rules[{i}] grants {sorted(verbs & READ_VERBS)} on Secrets")
        return found


subjects = BindingSubjectsAreKnownGroups()
prod_sync = ProdSyncOnlyForRelease()
prod_changes = NoOverrideOrDeleteInProd()
secret_reads = NoSecretReadsInRoles()
