"""Lint, render, schema-validate, snapshot and checkov-scan every chart."""

from __future__ import annotations

import difflib
import subprocess

import pytest
from shopctl.schemas import validate_objects
from shopctl.toolchain import require_helm

from tests.utils.charts import APP_CHARTS, CHARTS, KUBE_VERSION, ROOT, Render, variants

SNAPSHOTS = ROOT / "tests" / "charts" / "snapshots"
ALLOWED_SKIPS = {"CKV_K8S_43"}  # README, "checkov skips"


@pytest.mark.parametrize("chart", [*APP_CHARTS, "shopflow-service"])
def test_helm_lint_strict(chart: str) -> None:
    args = [str(require_helm(ROOT)), "lint", "--strict", str(CHARTS / chart)]
    if (CHARTS / chart / "Chart.yaml").read_text().find("dependencies") >= 0:
        subprocess.run(
            [str(require_helm(ROOT)), "dependency", "build", str(CHARTS / chart)],
            capture_output=True,
            check=True,
        )
    for _, values in variants(chart) if chart != "shopflow-service" else []:
        if values:
            args += ["--values", str(values)]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_render_passes_strict_schemas(renders: dict[tuple[str, str], Render]) -> None:
    problems = {
        key: [str(i) for i in validate_objects(r.docs, KUBE_VERSION)] for key, r in renders.items()
    }
    assert {k: v for k, v in problems.items() if v} == {}


def test_snapshots(renders: dict[tuple[str, str], Render], request: pytest.FixtureRequest) -> None:
    update = request.config.getoption("--update-snapshots")
    changed = []
    for (chart, variant), rendered in sorted(renders.items()):
        path = SNAPSHOTS / f"{chart}__{variant}.yaml"
        if update:
            path.write_text(rendered.text)
            continue
        expected = path.read_text() if path.exists() else ""
        if expected != rendered.text:
            diff = difflib.unified_diff(
                expected.splitlines(),
                rendered.text.splitlines(),
                f"snapshots/{path.name}",
                f"rendered {chart} ({variant})",
                lineterm="",
                n=2,
            )
            changed.append("\n".join(diff))
    assert not changed, (
        "rendered charts differ from tests/charts/snapshots (run "
        "`make test PYTEST_ARGS='tests/charts --update-snapshots'` if intended):\n\n"
        + "\n\n".join(changed)
    )


def test_checkov_builtin_kubernetes_checks_pass(checkov_report: dict) -> None:
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for c in checkov_report["results"]["failed_checks"]
    ]
    assert failed == []
    assert checkov_report["summary"]["passed"] > 500
    skipped = {c["check_id"] for c in checkov_report["results"]["skipped_checks"]}
    assert skipped <= ALLOWED_SKIPS
    for check in checkov_report["results"]["skipped_checks"]:
        assert len(check["check_result"]["suppress_comment"]) > 20, check  # each skip has a reason
