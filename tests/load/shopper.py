"""`make load`: the Locust shopper mix through the gateway, on a throwaway local platform.

Starts embedded PostgreSQL, every service that exists in this checkout (the
catalog seeded plus ``--products`` synthetic products) and the gateway, routing
by the mesh chart's VirtualService restricted to those services, the way
`shopctl up` lists services "not built yet". Runs Locust headless for
``--seconds`` and exits non-zero on any failed request.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from shopctl.helm import mesh_virtual_service
from shopctl.pg import LocalPostgres, create_database, free_port
from shopctl.procs import Child, wait_http
from shopctl.services import SERVICES, has_code

from tests.utils.live import ROOT, LiveService, start_service
from tests.utils.services import run_operation, service_env


def existing_routes(vs: dict, present: set[str]) -> dict:
    """The VirtualService without the routes of services that have no code yet."""
    routes = [
        r
        for r in vs["spec"]["http"]
        if all(d["destination"]["host"].split(".")[0] in present for d in r["route"])
    ]
    return {**vs, "spec": {**vs["spec"], "http": routes}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.load.shopper")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--products", type=int, default=10_000)
    args = parser.parse_args(argv)

    from tests.utils.auth import auth_env

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        server = LocalPostgres(tmp / "pg", durable=False)
        server.start()
        started: list[LiveService | Child] = []
        try:
            catalog_url = asyncio.run(create_database(server.url, "load_catalog"))
            auth_url = asyncio.run(create_database(server.url, "load_auth"))
            catalog_env = service_env("catalog-api", catalog_url)
            run_operation("catalog-api", ["migrate"], catalog_env)
            run_operation("catalog-api", ["seed", "--synthetic", str(args.products)], catalog_env)
            run_operation("user-auth", ["migrate"], service_env("user-auth", auth_url))
            auth = start_service(
                "user-auth", "auth_service.app:create_app", auth_env(auth_url), tmp
            )
            started.append(auth)
            catalog = start_service(
                "catalog-api",
                "catalog_api.app:create_app",
                {"SHOPFLOW_CATALOG_API_DATABASE_URL": catalog_url},
                tmp,
            )
            started.append(catalog)
            present = {s.name for s in SERVICES if has_code(s, ROOT)}
            vs_file = tmp / "vs.yaml"
            vs_file.write_text(yaml.safe_dump(existing_routes(mesh_virtual_service(ROOT), present)))
            port = free_port()
            gateway = Child(
                "gateway",
                [
                    sys.executable,
                    "-m",
                    "shopctl",
                    "gateway",
                    "--port",
                    str(port),
                    "--virtual-service",
                    str(vs_file),
                    "--upstream",
                    f"user-auth={auth.base_url}",
                    "--upstream",
                    f"catalog-api={catalog.base_url}",
                ],
                {},
                tmp / "gateway.log",
                cwd=ROOT,
            ).start()
            started.append(gateway)
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/products/health", gateway)
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "locust",
                    "-f",
                    str(Path(__file__).with_name("locustfile.py")),
                    "--headless",
                    "--host",
                    base,
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
            for item in reversed(started):
                item.stop()
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
