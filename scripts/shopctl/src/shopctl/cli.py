"""`shopctl`: the repository's toolkit."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import yaml

from shopctl import runner, toolchain
from shopctl.repo import NotInRepo, repo_root
from shopctl.services import GATEWAY_PORT, SERVICES, local_port


def _root() -> Path:
    try:
        return repo_root()
    except NotInRepo as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """ShopFlow's toolkit: run the platform locally, check the toolchain, render and validate."""


@main.command()
def doctor() -> None:
    """Print the versions of the tools ShopFlow needs; exit 1 naming any that is missing."""
    reports = toolchain.doctor(_root())
    width = max(len(r.name) for r in reports)
    for report in reports:
        status = report.version or "MISSING"
        extra = f"  ({report.detail})" if report.detail else ""
        click.echo(f"{report.name.ljust(width)}  {status}{extra}")
    missing = [r.name for r in reports if not r.ok]
    helm = next(r for r in reports if r.name == "helm")
    if helm.version and not helm.version.startswith("v4."):
        missing.append(f"helm v4 (found {helm.version})")
    if missing:
        raise click.ClickException(f"missing: {', '.join(missing)}; run `make setup`")


@main.command("install-tools")
def install_tools() -> None:
    """Install the pinned Helm v4 into .tools/bin unless a Helm v4 is on PATH (idempotent)."""
    try:
        path, installed = toolchain.install_helm(_root())
    except toolchain.ToolError as exc:
        raise click.ClickException(str(exc)) from None
    if installed:
        click.echo(
            f"installed Helm {toolchain.HELM_VERSION} into {path} (sha256 verified)", err=True
        )


@main.command()
@click.option("--fresh", is_flag=True, help="Wipe local data (.shopflow) before starting.")
def up(fresh: bool) -> None:
    """Run the platform locally on embedded PostgreSQL, behind the gateway on :8080."""
    sys.exit(runner.run(_root(), fresh))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port", type=int, default=None, help=f"Default {GATEWAY_PORT} (SHOPFLOW_PORT_GATEWAY)."
)
@click.option(
    "--virtual-service",
    "vs_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Route by this VirtualService file instead of rendering charts/shopflow-mesh.",
)
@click.option(
    "--upstream",
    "upstreams",
    multiple=True,
    metavar="HOST=URL",
    help="Map a destination host to a local URL (repeatable); defaults to the local service ports.",
)
def gateway(host: str, port: int | None, vs_file: Path | None, upstreams: tuple[str, ...]) -> None:
    """Run the local gateway, routing by the mesh chart's VirtualService."""
    from shopctl.gateway import GatewayConfigError, RoutingTable, create_gateway_app
    from shopctl.helm import RenderError, mesh_virtual_service

    try:
        if vs_file:
            vs = next(
                d
                for d in yaml.safe_load_all(vs_file.read_text())
                if isinstance(d, dict) and d.get("kind") == "VirtualService"
            )
        else:
            vs = mesh_virtual_service(_root())
        table = RoutingTable.from_virtual_service(vs)
    except StopIteration:
        raise click.ClickException(f"{vs_file} holds no VirtualService") from None
    except (GatewayConfigError, RenderError, toolchain.ToolError) as exc:
        raise click.ClickException(str(exc)) from None
    mapping = {s.name: f"http://127.0.0.1:{s.port()}" for s in SERVICES}
    for item in upstreams:
        name, sep, url = item.partition("=")
        if not sep or not url.startswith("http"):
            raise click.BadParameter(f"{item!r} is not HOST=URL", param_hint="--upstream")
        mapping[name] = url
    app = create_gateway_app(table, mapping)
    app.run(
        host=host,
        port=port or local_port("gateway", GATEWAY_PORT),
        single_process=True,
        access_log=False,
        motd=False,
    )
