"""Every chart rendered once per session, with its defaults and each ci/*-values.yaml."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from shopctl.helm import documents, template

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "charts"
SERVICE_CHARTS = ["auth-service", "catalog-api", "order-mgmt", "payment-api", "notify-hub"]
APP_CHARTS = [*SERVICE_CHARTS, "shopflow-mesh", "shopflow-platform"]
NAMESPACE = "shopflow-dev"
# The oldest Kubernetes version an environment may declare (environments/*/env.yaml).
KUBE_VERSION = "1.33.0"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-snapshots",
        action="store_true",
        default=False,
        help="rewrite tests/charts/snapshots from the current charts",
    )


@dataclass(frozen=True)
class Render:
    chart: str
    variant: str  # "default" or a ci/*-values.yaml stem
    text: str

    @property
    def docs(self) -> list[dict[str, Any]]:
        return list(documents(self.text))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.of_kind(kind)
        assert len(found) == 1, f"{self.chart}/{self.variant}: {len(found)} {kind}"
        return found[0]


def variants(chart: str) -> list[tuple[str, Path | None]]:
    files = sorted((CHARTS / chart / "ci").glob("*-values.yaml"))
    return [("default", None)] + [(f.name.removesuffix("-values.yaml"), f) for f in files]


def render(chart: str, values: Path | None = None, namespace: str = NAMESPACE) -> str:
    return template(
        ROOT,
        CHARTS / chart,
        release=chart,
        namespace=namespace,
        value_files=[values] if values else [],
        kube_version=KUBE_VERSION,
    )


@pytest.fixture(scope="session")
def renders() -> dict[tuple[str, str], Render]:
    return {
        (chart, name): Render(chart, name, render(chart, values))
        for chart in APP_CHARTS
        for name, values in variants(chart)
    }


@pytest.fixture(scope="session")
def checkov_report(
    renders: dict[tuple[str, str], Render], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """checkov's built-in Kubernetes checks over every render, in one run (it starts slowly)."""
    folder = tmp_path_factory.mktemp("rendered")
    for (chart, variant), rendered in renders.items():
        (folder / f"{chart}__{variant}.yaml").write_text(rendered.text)
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "checkov"),
            "-d",
            str(folder),
            "--framework",
            "kubernetes",
            "-o",
            "json",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


@pytest.fixture
def service_renders(renders: dict[tuple[str, str], Render]) -> Iterator[Render]:
    yield from (r for (chart, _), r in renders.items() if chart in SERVICE_CHARTS)
