"""The policy pack itself: every policy fails its bad fixtures and passes its good ones."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
POLICIES = sorted((p.name for p in FIXTURES.iterdir()), key=lambda n: int(n.rsplit("_", 1)[1]))


@pytest.fixture(scope="module")
def outcomes() -> dict[tuple[str, str], dict[str, set[str]]]:
    """(policy, good|bad) -> {"passed": resources, "failed": resources}, from one checkov run."""
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "checkov"),
            "-d",
            str(FIXTURES),
            "--framework",
            "kubernetes",
            "dockerfile",
            "--external-checks-dir",
            str(ROOT / "policies" / "checkov"),
            "-o",
            "json",
            "--skip-download",
            "--compact",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    reports = json.loads(result.stdout)
    found: dict[tuple[str, str], dict[str, set[str]]] = defaultdict(
        lambda: {"passed": set(), "failed": set(), "passed_files": set(), "failed_files": set()}
    )
    metadata: dict[str, tuple[str, str]] = {}
    for report in reports if isinstance(reports, list) else [reports]:
        for outcome in ("passed", "failed"):
            for check in report["results"][f"{outcome}_checks"]:
                if not check["check_id"].startswith("CKV_SHOPFLOW_"):
                    continue
                folder, kind = Path(check["file_path"]).parts[-3:-1]
                if folder == check["check_id"]:
                    found[(folder, kind)][outcome].add(check["resource"])
                    found[(folder, kind)][f"{outcome}_files"].add(Path(check["file_path"]).name)
                metadata[check["check_id"]] = (
                    check.get("severity") or "",
                    check.get("guideline") or "",
                )
    found[("__metadata__", "")] = {"passed": {json.dumps(metadata)}, "failed": set()}
    return found


def test_there_is_a_policy_for_each_rule() -> None:
    assert {f"CKV_SHOPFLOW_{n}" for n in range(1, 19)} <= set(POLICIES)


@pytest.mark.parametrize("policy", POLICIES)
def test_policy_fails_bad_and_passes_good(outcomes: dict, policy: str) -> None:
    good, bad = outcomes[(policy, "good")], outcomes[(policy, "bad")]
    assert good["passed"] and not good["failed"], good
    assert bad["failed"], f"{policy} found nothing wrong in its bad fixtures"
    bad_files = [p for p in (FIXTURES / policy / "bad").iterdir()]
    assert bad_files


@pytest.mark.parametrize("policy", [f"CKV_SHOPFLOW_{n}" for n in range(14, 19)])
def test_each_access_control_bad_fixture_fails_on_its_own(outcomes: dict, policy: str) -> None:
    bad = outcomes[(policy, "bad")]
    assert {p.name for p in (FIXTURES / policy / "bad").iterdir()} == bad["failed_files"]


def test_every_policy_has_a_severity_and_a_guideline(outcomes: dict) -> None:
    metadata = json.loads(next(iter(outcomes[("__metadata__", "")]["passed"])))
    for policy in POLICIES:
        severity, guideline = metadata[policy]
        assert severity in {"LOW", "MEDIUM", "HIGH", "CRITICAL"}, policy
        assert len(guideline) > 40, policy
