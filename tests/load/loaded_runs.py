"""`make test-loaded`: `make test` from a clean clone, again and again, on a busy machine.

A flaky test is a failed test. Timing bugs (a race, a lost wake-up, a
connection leaked by a cancellation) mostly hide on an idle machine, so this
runs the suite the way issue 11 demands: from a fresh clone of the current
commit, while one busy-loop process per core competes for the CPU, ``--runs``
times in a row (default 5), stopping at the first failure. Each run's output
goes to ``<folder>/run-N.log``; a line per run says how it went.

    make test-loaded                       # 5 runs, one busy loop per core
    LOADED_ARGS="--runs 2 --busy 2" make test-loaded
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUSY_LOOP = "while True: pass"


def run_once(commit: str, folder: Path, number: int, busy: int) -> tuple[bool, float]:
    clone = folder / f"clone-{number}"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", commit], check=True)
    log = folder / f"run-{number}.log"
    loops = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(busy)]
    started = time.monotonic()
    try:
        with log.open("w") as out:
            env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
            result = subprocess.run(
                ["make", "test"], cwd=clone, stdout=out, stderr=subprocess.STDOUT, env=env
            )
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    return result.returncode == 0, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs in a row (default 5)")
    parser.add_argument(
        "--busy", type=int, default=os.cpu_count() or 2, help="busy-loop processes (default: cores)"
    )
    parser.add_argument(
        "--folder", type=Path, help="where clones and logs go (default: a temp dir)"
    )
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="shopflow-loaded-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(
        f"make test from clean clones of {commit[:12]}: {args.runs} run(s) in a row, "
        f"{args.busy} busy-loop process(es); logs in {folder}",
        flush=True,
    )
    for number in range(1, args.runs + 1):
        print(f"run {number}/{args.runs}: running...", flush=True)
        passed, seconds = run_once(commit, folder, number, args.busy)
        verdict = "passed" if passed else f"FAILED (see {folder}/run-{number}.log)"
        print(f"run {number}/{args.runs}: {verdict} in {seconds / 60:.1f} min", flush=True)
        if not passed:
            return 1
    print(f"all {args.runs} runs passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
