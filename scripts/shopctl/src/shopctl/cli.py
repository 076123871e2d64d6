"""`shopctl`: the repository's toolkit."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import click
import yaml
from shopflow_kit.limits import MAX_BODY_BYTES

from shopctl import runner, toolchain
from shopctl.database import service_database
from shopctl.repo import NotInRepo, local_state, repo_root
from shopctl.services import GATEWAY_PORT, SERVICES, has_code, local_port, lookup


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
@click.option(
    "--fresh", is_flag=True, help="Wipe local data (the state folder, .shopflow) before starting."
)
def up(fresh: bool) -> None:
    """Run the platform locally on embedded PostgreSQL, behind the gateway on :8080."""
    sys.exit(runner.run(_root(), fresh))


@main.command()
def status() -> None:
    """Show what `shopctl up` supervises: each process's state, pid and restarts."""
    click.echo(runner.format_status(local_state(_root())))


@main.command()
@click.argument("target")
@click.option("-n", "--name", help="Name for the migration file.")
def makemigrations(target: str, name: str | None) -> None:
    """Write a Tortoise migration for TARGET's model changes (a service, or `kit`)."""
    import json
    import tempfile

    from tortoise.cli.cli import run_cli_async

    if target == "kit":
        label, models, migrations = "kit", "shopflow_kit.models", "shopflow_kit.migrations"
    else:
        try:
            service = lookup(target)
        except KeyError as exc:
            raise click.ClickException(str(exc.args[0])) from None
        label = service.package
        models, migrations = f"{label}.models", f"{label}.migrations"
    # makemigrations compares models with the migration files; it never connects.
    config = {
        "connections": {"default": "postgres://unused@127.0.0.1:1/unused"},
        "apps": {label: {"models": [models], "migrations": migrations}},
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(config, file)
        file.flush()
        args = ["--config-file", file.name, "makemigrations", *(["-n", name] if name else [])]
        sys.exit(asyncio.run(run_cli_async(args)))


@main.command()
@click.argument("services", nargs=-1)
@click.option("--database-url", help="The service's database (only with one service).")
@click.option(
    "--synthetic",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="catalog-api: also add N realistic synthetic products (idempotent).",
)
def seed(services: tuple[str, ...], database_url: str | None, synthetic: int) -> None:
    """Migrate and load seed data for SERVICES (default: every service that has a seed)."""
    from shopctl.runner import local_secrets, migrate_and_seed, service_env

    root = _root()
    try:
        chosen = [lookup(name) for name in services] or [s for s in SERVICES if has_code(s, root)]
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from None
    if database_url and len(chosen) != 1:
        raise click.UsageError("--database-url needs exactly one service")
    secrets = local_secrets(local_state(root))
    for service in chosen:
        if not has_code(service, root):
            raise click.ClickException(f"{service.name} has no code under apps/{service.image} yet")
        with service_database(root, service, database_url) as url:
            env = service_env(service, url, secrets, local_port("gateway", GATEWAY_PORT), 0)
            extra = (
                ["--synthetic", str(synthetic)]
                if synthetic and service.name == "catalog-api"
                else []
            )
            if extra:
                click.echo(
                    f"{service.name}: generating {synthetic} synthetic products...", err=True
                )
            migrate_and_seed(service, env, seed_args=extra)
        click.echo(f"{service.name}: migrated and seeded", err=True)


@main.command()
@click.option(
    "--check", is_flag=True, help="Only report Dockerfiles that differ from the template."
)
def dockerfiles(check: bool) -> None:
    """Write apps/<image>/Dockerfile for the five services from one template."""
    from shopctl import dockerfiles as generator

    root = _root()
    if check:
        stale = generator.stale(root)
        for path in stale:
            click.echo(f"{path.relative_to(root)} differs from the template", err=True)
        if stale:
            raise click.ClickException("run `shopctl dockerfiles` to regenerate them")
        return
    for path in generator.write(root):
        click.echo(f"wrote {path.relative_to(root)}")


def _user_auth_operation(
    args: list[str], database_url: str | None, stdin: str | None = None
) -> str:
    """Run ``python -m auth_service <args>`` against user-auth's database, as a Job would."""
    from shopctl.runner import local_secrets, run_operation, service_env

    root = _root()
    service = lookup("user-auth")
    with service_database(root, service, database_url) as url:
        env = service_env(
            service, url, local_secrets(local_state(root)), local_port("gateway", GATEWAY_PORT), 0
        )
        # What the operator set (a KEK for a remote database) wins over the local platform's.
        env = {key: value for key, value in env.items() if key not in os.environ}
        return run_operation(service, args, env, stdin=stdin)


@main.group()
def admin() -> None:
    """Administer user accounts."""


@admin.command("create")
@click.option("--email", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--name", default="Admin", show_default=True)
@click.option("--database-url", help="user-auth's database (default: the local platform's).")
def admin_create(email: str, password: str, name: str, database_url: str | None) -> None:
    """Create an admin user; the HTTP API can never create one."""
    # The password goes over standard input, never into the child's arguments.
    args = ["create-admin", "--email", email, "--name", name]
    click.echo(_user_auth_operation(args, database_url, stdin=f"{password}\n"))


@main.group("auth")
def auth_group() -> None:
    """Operate user-auth."""


@auth_group.command("rotate-keys")
@click.option(
    "--activate-in",
    type=click.IntRange(min=0),
    default=360,
    show_default=True,
    help="Seconds before the new key signs; it is published in the JWKS at once, so "
    "every verifier's cache (5 minutes) has it before its first token.",
)
@click.option("--database-url", help="user-auth's database (default: the local platform's).")
def rotate_keys(activate_in: int, database_url: str | None) -> None:
    """Add a new signing key; old keys stay published until their tokens expire."""
    click.echo(
        _user_auth_operation(["rotate-keys", "--activate-in", str(activate_in)], database_url)
    )


def _progress(message: str) -> None:
    click.echo(f"  {message}", err=True)


@main.command()
@click.option("--env", "env", required=True, help="dev, staging or prod")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one file per Application here.",
)
@click.option("--service", help="Only this service's Application (user-auth, ..., platform, mesh).")
def render(env: str, out: Path | None, service: str | None) -> None:
    """Render ENV exactly as Argo CD would (ApplicationSets -> Applications -> helm template)."""
    from shopctl.render import write_render

    click.echo(f"rendering {env}...", err=True)
    result = _run_render(env, service)
    if out:
        for path in write_render(result, out):
            click.echo(str(path))
    else:
        for app in result.applications:
            click.echo(f"# Application {app.name}\n{app.text}", nl=False)
    click.echo(
        f"rendered {len(result.applications)} Applications in {result.seconds:.1f}s", err=True
    )


def _run_render(env: str, service: str | None = None):  # type: ignore[no-untyped-def]
    from shopctl.argocd import ApplicationSetError
    from shopctl.helm import RenderError
    from shopctl.render import UnknownEnvironment, render_environment

    try:
        return asyncio.run(render_environment(_root(), env, service=service, progress=_progress))
    except (UnknownEnvironment, ApplicationSetError, RenderError, toolchain.ToolError) as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--env", "env", required=True, help="dev, staging or prod")
def validate(env: str) -> None:
    """Validate ENV's render: schemas (Kubernetes, Istio, Argo CD) and cross-references."""
    from shopctl.validate import validate_argocd, validate_environment

    click.echo(f"rendering {env}...", err=True)
    result = _run_render(env)
    findings = validate_environment(result) + validate_argocd(
        _root(), result.environment.kube_version
    )
    objects = sum(len(a.documents) for a in result.applications)
    for finding in findings:
        click.echo(str(finding))
    if findings:
        raise click.ClickException(f"{len(findings)} problem(s) in {env}")
    click.echo(
        f"{env}: {len(result.applications)} Applications, {objects} objects valid "
        f"for Kubernetes {result.environment.kube_version}",
        err=True,
    )


@main.command()
@click.option("--base", required=True, help="The git revision to compare with (e.g. origin/main).")
@click.option("--env", "envs", multiple=True, help="Only this environment (repeatable).")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "markdown"]), default="text", show_default=True
)
def diff(base: str, envs: tuple[str, ...], fmt: str) -> None:
    """Per-object diff of what Argo CD would apply, BASE against the working tree."""
    from shopctl import diff as differ
    from shopctl.argocd import ApplicationSetError
    from shopctl.helm import RenderError
    from shopctl.render import UnknownEnvironment, environments

    root = _root()
    known = sorted(environments(root))
    chosen = list(envs) or known
    for env in chosen:
        if env not in known:
            raise click.ClickException(
                f"unknown environment {env!r}; environments: {', '.join(known)}"
            )
    try:
        results = differ.diff(root, base, chosen, progress=_progress)
    except (
        differ.DiffError,
        UnknownEnvironment,
        ApplicationSetError,
        RenderError,
        toolchain.ToolError,
    ) as exc:
        raise click.ClickException(str(exc)) from None
    text = (
        differ.format_markdown(results, base) if fmt == "markdown" else differ.format_text(results)
    )
    click.echo(text, nl=False)


@main.command()
@click.option("--from", "source", help="Environment to take the tags from.")
@click.option(
    "--release",
    "release",
    metavar="TAG",
    help="A release tag (v1.2.3) to set for every service instead (only --to dev).",
)
@click.option("--to", "target", required=True, help="Environment to promote into.")
@click.option("--service", "services", multiple=True, help="Only this service (repeatable).")
def promote(
    source: str | None, release: str | None, target: str, services: tuple[str, ...]
) -> None:
    """Copy image tags into an environment's version.yaml files (nothing else).

    Either from another environment (--from), or a new release for every service (--release).
    """
    from shopctl import promote as promoter

    if (source is None) == (release is None):
        raise click.UsageError("give exactly one of --from ENV or --release TAG")
    if release is not None and services:
        raise click.UsageError("--release sets every service; --service does not apply")
    try:
        if release is not None:
            changes = promoter.plan_release(_root(), release, target)
        else:
            assert source is not None
            changes = promoter.plan(_root(), source, target, list(services))
    except promoter.PromotionError as exc:
        raise click.ClickException(str(exc)) from None
    if not changes:
        click.echo(f"{target} already runs {source or release}; nothing to promote", err=True)
        return
    promoter.apply(changes)
    for change in changes:
        click.echo(change.diff, nl=False)
    click.echo(f"promoted {len(changes)} service(s) from {source or release} to {target}", err=True)


@main.command("release-matrix")
@click.option("--tag", help="Refuse unless this is a release tag (v1.2.3).")
@click.option("--only-existing", is_flag=True, help="Only services whose code exists under apps/.")
def release_matrix(tag: str | None, only_existing: bool) -> None:
    """The release workflow's matrix as JSON, generated from the service registry."""
    import json

    from shopctl import release
    from shopctl.promote import PromotionError, check_release_tag

    if tag is not None:
        try:
            check_release_tag(tag)
        except PromotionError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(release.matrix(_root(), only_existing=only_existing), sort_keys=True))


@main.command("access-matrix")
@click.option(
    "--write",
    "write_to",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Replace the generated section of this Markdown file.",
)
@click.option(
    "--check",
    "check_in",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Exit 1 if this Markdown file's generated section is out of date.",
)
def access_matrix(write_to: Path | None, check_in: Path | None) -> None:
    """Who may do what, per group and environment, from the rendered RBAC and Argo CD roles."""
    from shopctl import access
    from shopctl.argocd import ApplicationSetError
    from shopctl.helm import RenderError

    try:
        table = access.to_markdown(access.compute(_root()))
    except (ApplicationSetError, RenderError, toolchain.ToolError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    target = write_to or check_in
    if target is None:
        click.echo(table, nl=False)
        return
    try:
        current = target.read_text()
        updated = access.splice(current, table)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{target}: {exc}") from None
    if check_in is not None:
        if updated != current:
            raise click.ClickException(
                f"{target}'s access matrix is out of date; "
                f"run `shopctl access-matrix --write {target}`"
            )
        return
    target.write_text(updated)
    click.echo(f"wrote the access matrix into {target}", err=True)


@main.command()
@click.option("--env", "env", help="Scan what Argo CD would apply for this environment.")
@click.option(
    "--manifests", type=click.Path(path_type=Path), help="Scan any folder of YAML instead."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Report folder (default reports/<env>).",
)
def policy(env: str | None, manifests: Path | None, out: Path | None) -> None:
    """Run checkov and the ShopFlow pack; write SARIF, JUnit, JSON, Markdown and HTML reports."""
    from shopctl import policy as policies
    from shopctl.argocd import ApplicationSetError
    from shopctl.helm import RenderError
    from shopctl.render import UnknownEnvironment

    if (env is None) == (manifests is None):
        raise click.UsageError("give exactly one of --env ENV or --manifests DIR")
    root = _root()
    out = out or root / "reports" / (env or "manifests")
    try:
        result = policies.run(root, env=env, manifests=manifests, out=out, progress=_progress)
    except (policies.PolicyError, UnknownEnvironment, ApplicationSetError, RenderError) as exc:
        raise click.ClickException(str(exc)) from None
    for line in policies.summary_lines(result, out):
        click.echo(line)
    if not result.ok:
        sys.exit(1)


@main.command()
@click.option(
    "--env", "envs", multiple=True, help="dev, staging or prod (repeatable; default: every one)."
)
@click.option(
    "--allow-pending",
    is_flag=True,
    help="Exit 0 when the only findings are services whose code has not landed yet.",
)
def contracts(envs: tuple[str, ...], allow_pending: bool) -> None:
    """Check the mesh's routes, JWT policy and callers against each service's OpenAPI."""
    from shopctl.argocd import ApplicationSetError
    from shopctl.contracts_io import ContractsError, check
    from shopctl.render import UnknownEnvironment, environments

    root = _root()
    known = sorted(environments(root))
    chosen = list(envs) or known
    unknown = [e for e in chosen if e not in known]
    if unknown:
        raise click.ClickException(
            f"unknown environment {unknown[0]!r}; environments: {', '.join(known)}"
        )
    try:
        results = asyncio.run(check(root, chosen))
    except (ContractsError, UnknownEnvironment, ApplicationSetError, toolchain.ToolError) as exc:
        raise click.ClickException(str(exc)) from None
    failed = pending = 0
    for env, findings in results.items():
        for finding in findings:
            click.echo(str(finding))
        pending += sum(f.check == "pending" for f in findings)
        failed += sum(f.check != "pending" for f in findings)
        click.echo(f"{env}: {len(findings)} finding(s)", err=True)
    if failed or (pending and not allow_pending):
        raise click.ClickException(
            f"{failed} contract finding(s), {pending} service(s) not checkable yet"
        )


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
@click.option(
    "--max-body-bytes",
    type=int,
    default=MAX_BODY_BYTES,
    show_default=True,
    help="Larger request bodies get 413 (API.md's limit).",
)
@click.option("--idle-timeout", type=float, default=60.0, show_default=True, metavar="SECONDS")
@click.option("--header-timeout", type=float, default=10.0, show_default=True, metavar="SECONDS")
@click.option("--body-timeout", type=float, default=30.0, show_default=True, metavar="SECONDS")
def gateway(
    host: str,
    port: int | None,
    vs_file: Path | None,
    upstreams: tuple[str, ...],
    max_body_bytes: int,
    idle_timeout: float,
    header_timeout: float,
    body_timeout: float,
) -> None:
    """Run the local gateway, routing by the mesh chart's VirtualService."""
    from shopctl import gateway as proxy
    from shopctl.helm import RenderError, mesh_virtual_service
    from shopctl.virtualservice import GatewayConfigError, RoutingTable

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
    limits = proxy.Limits(
        max_body=max_body_bytes,
        idle_timeout=idle_timeout,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
    )
    proxy.run(table, mapping, host, port or local_port("gateway", GATEWAY_PORT), limits)
