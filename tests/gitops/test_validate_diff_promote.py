"""`shopctl validate` catches mistakes; `diff` and `promote` touch exactly what they should."""

from __future__ import annotations

from pathlib import Path

import yaml
from shopctl.validate import cross_references

from tests.utils.gitops import git, shopctl


def test_broken_references_are_named() -> None:
    objects = [
        (
            "a.yaml",
            {
                "kind": "Service",
                "metadata": {"name": "catalog-api"},
                "spec": {"ports": [{"port": 4000}]},
            },
        ),
        (
            "b.yaml",
            {
                "kind": "VirtualService",
                "metadata": {"name": "vs"},
                "spec": {
                    "http": [
                        {
                            "route": [
                                {"destination": {"host": "catalog-api", "port": {"number": 4000}}}
                            ]
                        },
                        {
                            "route": [
                                {"destination": {"host": "catalog-api", "port": {"number": 8080}}}
                            ]
                        },
                        {
                            "route": [
                                {
                                    "destination": {
                                        "host": "ghost.ns.svc.cluster.local",
                                        "port": {"number": 4000},
                                    }
                                }
                            ]
                        },
                    ]
                },
            },
        ),
        (
            "c.yaml",
            {
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "h"},
                "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "nope"}},
            },
        ),
        (
            "d.yaml",
            {
                "kind": "PodDisruptionBudget",
                "metadata": {"name": "p"},
                "spec": {"selector": {"matchLabels": {"app": "nope"}}},
            },
        ),
        (
            "e.yaml",
            {
                "kind": "Job",
                "metadata": {"name": "j"},
                "spec": {"template": {"spec": {"serviceAccountName": "missing-sa"}}},
            },
        ),
    ]
    found = [str(f) for f in cross_references(objects)]
    assert found == [
        "b.yaml: VirtualService/vs: spec.http[1].route[0].destination.port.number: Service catalog-api has no port 8080",
        "b.yaml: VirtualService/vs: spec.http[2].route[0].destination.host: no rendered Service named ghost",
        "c.yaml: HorizontalPodAutoscaler/h: spec.scaleTargetRef: no rendered Deployment named nope",
        "d.yaml: PodDisruptionBudget/p: spec.selector.matchLabels: selects no rendered Deployment's pods: {'app': 'nope'}",
        "e.yaml: Job/j: spec.template.spec.serviceAccountName: no rendered ServiceAccount named missing-sa",
    ]


def test_validate_catches_a_broken_mesh_reference(scratch_repo: Path) -> None:
    values = scratch_repo / "environments" / "dev" / "shopflow-mesh" / "values.yaml"
    data = yaml.safe_load(values.read_text())
    data["routes"] = [
        {"name": "cart", "prefix": "/cart", "service": "order-mgmnt", "timeout": "5s"}
    ]
    values.write_text(yaml.safe_dump(data))
    result = shopctl(scratch_repo, "validate", "--env", "dev")
    assert result.returncode == 1
    assert (
        "dev-mesh.yaml: VirtualService/shopflow-virtualservice: spec.http[0].route[0].destination.host: "
        "no rendered Service named order-mgmnt" in result.stdout
    )


def test_validate_catches_misspelled_fields(scratch_repo: Path) -> None:
    values = scratch_repo / "environments" / "prod" / "catalog-api" / "values.yaml"
    values.write_text(values.read_text() + "replicaCont: 4\n")
    result = shopctl(scratch_repo, "validate", "--env", "prod")
    assert result.returncode == 1
    assert "prod-catalog-api" in result.stderr and "'replicaCont' not allowed" in result.stderr
    values.write_text(values.read_text().replace("replicaCont: 4\n", ""))
    appset = scratch_repo / "argocd" / "applicationsets" / "shopflow-services.yaml"
    appset.write_text(
        appset.read_text().replace("selfHeal: true", "selfHeal: true\n          selfHeel: true")
    )
    result = shopctl(scratch_repo, "validate", "--env", "prod")
    assert result.returncode == 1
    assert "Application/prod-catalog-api: spec.syncPolicy.automated: " in result.stdout
    assert "'selfHeel' was unexpected" in result.stdout


def test_a_version_change_shows_only_in_its_environment(scratch_repo: Path) -> None:
    version = scratch_repo / "environments" / "dev" / "catalog-api" / "version.yaml"
    version.write_text(version.read_text().replace('tag: "1.1.0"', 'tag: "1.1.1"'))
    result = shopctl(scratch_repo, "diff", "--base", "HEAD")
    assert result.returncode == 0, result.stderr
    sections = dict(part.split("\n", 1) for part in result.stdout.split("== ")[1:])
    assert sections["staging"].strip() == "no changes" and sections["prod"].strip() == "no changes"
    dev = sections["dev"]
    assert dev.startswith("0 added, 0 removed, 2 changed")
    assert "Deployment shopflow-dev/catalog-api (dev-catalog-api)" in dev
    assert "Job shopflow-dev/catalog-api-migrate (dev-catalog-api)" in dev
    changed = [
        ln for ln in dev.splitlines() if ln[:1] in "+-" and not ln.startswith(("---", "+++"))
    ]
    assert changed and all("1.1.0" in ln or "1.1.1" in ln for ln in changed), changed
    markdown = shopctl(
        scratch_repo, "diff", "--base", "HEAD", "--env", "prod", "--format", "markdown"
    )
    assert "| prod | 0 | 0 | 0 |" in markdown.stdout and "no changes" in markdown.stdout


def test_promote_changes_exactly_one_file(scratch_repo: Path) -> None:
    result = shopctl(
        scratch_repo, "promote", "--from", "dev", "--to", "staging", "--service", "catalog-api"
    )
    assert result.returncode == 0, result.stderr
    assert git(scratch_repo, "status", "--porcelain").split() == [
        "M",
        "environments/staging/catalog-api/version.yaml",
    ]
    assert '+  tag: "1.1.0"' in result.stdout and '-  tag: "1.0.4"' in result.stdout
    promoted = yaml.safe_load(
        (scratch_repo / "environments/staging/catalog-api/version.yaml").read_text()
    )
    assert promoted == {"image": {"tag": "1.1.0"}}
    again = shopctl(
        scratch_repo, "promote", "--from", "dev", "--to", "staging", "--service", "catalog-api"
    )
    assert again.returncode == 0 and "nothing to promote" in again.stderr


def test_promote_refuses_bad_input(scratch_repo: Path) -> None:
    version = scratch_repo / "environments" / "dev" / "order-mgmt" / "version.yaml"
    version.write_text(version.read_text().replace('"1.1.0"', '"latest"'))
    bad_tag = shopctl(
        scratch_repo, "promote", "--from", "dev", "--to", "staging", "--service", "order-mgmt"
    )
    assert (
        bad_tag.returncode == 1 and "'latest' is not a release tag or commit sha" in bad_tag.stderr
    )
    assert shopctl(scratch_repo, "promote", "--from", "dev", "--to", "qa").returncode == 1
    unknown = shopctl(
        scratch_repo, "promote", "--from", "dev", "--to", "prod", "--service", "billing"
    )
    assert unknown.returncode == 1 and "unknown service 'billing'" in unknown.stderr
    assert git(scratch_repo, "status", "--porcelain").split() == [
        "M",
        "environments/dev/order-mgmt/version.yaml",
    ]


def test_every_failing_render_is_named_and_the_rest_still_finish(scratch_repo: Path) -> None:
    """A failing Application neither cancels the renders in flight nor hides their errors."""
    for service in ("catalog-api", "payment-api"):
        values = scratch_repo / "environments" / "prod" / service / "values.yaml"
        values.write_text(values.read_text() + "replicaCont: 4\n")
    result = shopctl(scratch_repo, "render", "--env", "prod")
    assert result.returncode == 1
    assert "prod-catalog-api" in result.stderr and "prod-payment-api" in result.stderr
    assert result.stderr.count("'replicaCont' not allowed") == 2
    # The renders that did not fail ran to their end, and said so.
    assert "rendered prod-user-auth" in result.stderr
