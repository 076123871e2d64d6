"""`make load`: the Locust shopper mix through the gateway, on a throwaway local platform.

The whole platform runs as `shopctl up` runs it (every service, the gateway, the
SMTP sink, embedded PostgreSQL) on free ports, with ``--products`` synthetic
products added to the seed catalog, so the mix's cart and checkout tasks go
through order-mgmt, payment-api and notify-hub too. Runs Locust headless for
``--seconds`` and exits non-zero on any failed request.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from shopctl.services import lookup

from tests.utils.e2e import start_platform


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.load.shopper")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--products", type=int, default=10_000)
    args = parser.parse_args(argv)

    platform = start_platform()
    try:
        catalog = lookup("catalog-api")
        subprocess.run(
            [sys.executable, "-m", catalog.package, "seed", "--synthetic", str(args.products)],
            env={**os.environ, **platform.service_env(catalog.name)},
            check=True,
            capture_output=True,
        )
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(Path(__file__).with_name("locustfile.py")),
                "Shopper",
                "--headless",
                "--host",
                platform.gateway,
                "-u",
                str(args.users),
                "-r",
                str(args.users),
                "-t",
                f"{args.seconds}s",
                "--only-summary",
                "--stop-timeout",
                "5",
            ],
            check=False,
        )
        return result.returncode
    finally:
        platform.stop()
        shutil.rmtree(platform.state.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
