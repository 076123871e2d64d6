"""Rendered environments, and a scratch git repository for diff and promote."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from shopctl.render import EnvironmentRender, render_environment
from shopctl.toolchain import require_helm

ROOT = Path(__file__).resolve().parents[2]
ENVS = ("dev", "staging", "prod")


@pytest.fixture(scope="session")
def rendered() -> dict[str, EnvironmentRender]:
    return {env: asyncio.run(render_environment(ROOT, env)) for env in ENVS}


def shopctl(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`shopctl ARGS` run in ``repo``, as a separate process."""
    return subprocess.run(
        [sys.executable, "-m", "shopctl", *args],
        capture_output=True,
        text=True,
        cwd=repo,
        check=False,
        timeout=300,
    )


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@shopflow.test",
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


@pytest.fixture
def scratch_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This working tree's tracked files, committed into a fresh repository."""
    repo = tmp_path / "repo"
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        source = ROOT / name
        if source.is_file() or source.is_symlink():
            target = repo / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_symlink():
                os.symlink(os.readlink(source), target)
            else:
                shutil.copy2(source, target)
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    monkeypatch.setenv("SHOPFLOW_HELM", str(require_helm(ROOT)))
    monkeypatch.chdir(repo)
    return repo
