"""`shopctl up`: the whole platform on this machine, behind the mesh gateway."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import click

from shopctl import pg
from shopctl.procs import Child, sanic_args, wait_http
from shopctl.repo import local_state
from shopctl.services import (
    GATEWAY_PORT,
    POSTGRES_PORT,
    SERVICES,
    SMTP_PORT,
    Service,
    has_code,
    local_port,
)
from shopctl.smtp import SmtpSink

STATUS_FILE = "status.json"


def step(message: str) -> float:
    click.echo(f"==> {message}", err=True)
    return time.monotonic()


def done(started: float) -> None:
    click.echo(f"    ok ({time.monotonic() - started:.1f}s)", err=True)


def shown(path: Path) -> str:
    """A path as the user should read it: relative inside the current folder, else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


ADMIN_EMAIL = "admin@shopflow.example"

#: Email delivery is asynchronous: it is never on a shopper's request path. On one
#: machine these (and the SMTP sink) take the CPU the request path leaves, as in the
#: cluster they have CPU of their own; under checkout load the request path then
#: does not queue behind a burst of emails (docs/local-platform.md).
BACKGROUND_SERVICES = frozenset({"notify-hub"})
BACKGROUND_NICE = 10


def background_nice() -> int:
    """The niceness added to background work: ``SHOPFLOW_BACKGROUND_NICE``, 0 turns it off."""
    raw = os.environ.get("SHOPFLOW_BACKGROUND_NICE", "").strip() or str(BACKGROUND_NICE)
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= 19:
        raise click.UsageError(
            f"SHOPFLOW_BACKGROUND_NICE must be a whole number from 0 to 19, not {raw!r}"
        )
    return value


def local_secrets(state: Path) -> dict[str, object]:
    """Generated once per state folder, mode 0600, never committed (.shopflow is ignored)."""
    path = state / "secrets.json"
    wanted: dict[str, object] = {
        "clients": {s.name: secrets.token_urlsafe(32) for s in SERVICES},
        "key_encryption_key": secrets.token_urlsafe(32),
        "admin_password": secrets.token_urlsafe(18),
        "order_fingerprint_key": secrets.token_urlsafe(32),
        "card_fingerprint_key": secrets.token_urlsafe(48),
    }
    data: dict[str, object] = json.loads(path.read_text()) if path.exists() else {}
    if set(wanted) <= set(data):
        return data
    data = {**wanted, **data}  # keep what exists, add what a newer version needs
    state.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=2)
    partial.replace(path)
    return data


def service_env(
    service: Service,
    database_url: str,
    state_secrets: dict[str, object],
    gateway_port: int,
    smtp_port: int,
) -> dict[str, str]:
    """The environment a service process gets locally: every URL points at 127.0.0.1."""
    p = service.env_prefix
    clients = state_secrets["clients"]
    assert isinstance(clients, dict)
    env = {
        f"{p}DATABASE_URL": database_url,
        f"{p}JWT_ISSUER": f"http://127.0.0.1:{gateway_port}/auth",
        f"{p}OAUTH_CLIENT_ID": service.name,
        f"{p}OAUTH_CLIENT_SECRET": str(clients[service.name]),
    }
    # Least privilege: only the service that needs a secret gets it.
    if service.name == "user-auth":
        env[f"{p}OAUTH_CLIENTS"] = json.dumps(clients)
        env[f"{p}KEY_ENCRYPTION_KEY"] = str(state_secrets["key_encryption_key"])
        env[f"{p}SEED_ADMIN_EMAIL"] = ADMIN_EMAIL
        env[f"{p}SEED_ADMIN_PASSWORD"] = str(state_secrets["admin_password"])
    if service.name == "order-mgmt":
        env[f"{p}FINGERPRINT_KEY"] = str(state_secrets["order_fingerprint_key"])
    if service.name == "payment-api":
        env[f"{p}CARD_FINGERPRINT_KEY"] = str(state_secrets["card_fingerprint_key"])
    if service.name == "notify-hub":
        env[f"{p}SMTP_HOST"] = "127.0.0.1"
        env[f"{p}SMTP_PORT"] = str(smtp_port)
    for other in SERVICES:
        env[f"{p}{other.name.upper().replace('-', '_')}_URL"] = f"http://127.0.0.1:{other.port()}"
    return env


def run_operation(
    service: Service, args: list[str], env: dict[str, str], *, stdin: str | None = None
) -> str:
    """``python -m <package> <args>``, as a Job or ``kubectl exec`` runs it in the image.

    Returns what the operation printed; a failure raises a ClickException that
    carries the operation's own message.
    """
    command = [sys.executable, "-m", service.package, *args]
    result = subprocess.run(  # noqa: S603
        command,
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()[-2000:]
        raise click.ClickException(f"{service.name}: `{' '.join(command[1:])}` failed:\n{output}")
    return result.stdout.strip()


def migrate_and_seed(
    service: Service, env: dict[str, str], *, seed: bool = True, seed_args: Sequence[str] = ()
) -> None:
    """Apply ``service``'s migrations, then its seed if it has one (both idempotent)."""
    run_operation(service, ["migrate"], env)
    if seed and "seed" in service.operations:
        run_operation(service, ["seed", *seed_args], env)


#: A process that crashes this often within CRASH_WINDOW seconds is left down.
CRASH_LIMIT = 5
CRASH_WINDOW = 60.0
#: The first restart waits this long; each further crash in the window doubles it.
BACKOFF_START = 1.0
BACKOFF_MAX = 30.0


def exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass
class Supervised:
    """One child under supervision, as a Deployment's ReplicaSet keeps one pod."""

    child: Child
    state: str = "running"  # running | restarting | down | stopped
    restarts: int = 0
    last_exit: str | None = None
    restart_at: float = 0.0
    crashes: deque[float] = field(default_factory=deque)

    def crashed(self, now: float) -> float | None:
        """Record an exit; the delay before the restart, or None to leave it down."""
        assert self.child.process is not None
        self.last_exit = exit_reason(self.child.process.returncode)
        self.crashes.append(now)
        while self.crashes and self.crashes[0] <= now - CRASH_WINDOW:
            self.crashes.popleft()
        if len(self.crashes) >= CRASH_LIMIT:
            self.state = "down"
            return None
        delay: float = min(BACKOFF_MAX, BACKOFF_START * 2.0 ** (len(self.crashes) - 1))
        self.state, self.restart_at = "restarting", now + delay
        return delay

    def restart(self) -> None:
        self.child.start()
        self.restarts += 1
        self.state = "running"

    def status(self) -> dict[str, object]:
        return {
            "name": self.child.name,
            "state": self.state,
            "pid": self.child.pid if self.child.alive() else None,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "crashes_in_window": len(self.crashes),
            "log": str(self.child.log_path),
        }


@dataclass
class Platform:
    root: Path
    fresh: bool = False
    children: list[Child] = field(default_factory=list)
    supervised: list[Supervised] = field(default_factory=list)
    smtp: SmtpSink | None = None
    postgres: pg.LocalPostgres | None = None

    @property
    def state(self) -> Path:
        return local_state(self.root)

    def services(self) -> list[Service]:
        return [s for s in SERVICES if has_code(s, self.root)]

    def start(self) -> None:
        state = self.state
        nice = background_nice()
        gateway_port = local_port("gateway", GATEWAY_PORT)
        smtp_port = local_port("smtp", SMTP_PORT)
        if self.fresh:
            t = step(f"--fresh: wiping local data in {shown(state)}")
            pg.LocalPostgres(state / "pg").wipe()
            for name in ("mail", "logs", "secrets.json"):
                target = state / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
            done(t)
        state_secrets = local_secrets(state)

        external = os.environ.get("SHOPFLOW_DATABASE_URL")
        if external:
            server_url = external.rstrip("/")
            t = step("using external PostgreSQL from SHOPFLOW_DATABASE_URL")
        else:
            t = step(f"starting embedded PostgreSQL in {shown(state / 'pg')}")
            self.postgres = pg.LocalPostgres(
                state / "pg", port=local_port("postgres", POSTGRES_PORT)
            )
            server_url = self.postgres.start()
        done(t)

        services = self.services()

        for service in services:
            t = step(f"{service.name}: database {service.database}, migrations, seed")
            db_url = asyncio.run(pg.create_database(server_url, service.database))
            env = service_env(service, db_url, state_secrets, gateway_port, smtp_port)
            migrate_and_seed(service, env)
            done(t)

        for service in services:
            t = step(f"{service.name}: starting on 127.0.0.1:{service.port()}")
            db_url = pg.database_url(server_url, service.database)
            child = Child(
                service.name,
                sanic_args(service.factory, service.port()),
                service_env(service, db_url, state_secrets, gateway_port, smtp_port),
                state / "logs" / f"{service.name}.log",
                nice=nice if service.name in BACKGROUND_SERVICES else 0,
            ).start()
            self.children.append(child)
            done(t)

        t = step(f"SMTP sink on 127.0.0.1:{smtp_port} (mail kept in {shown(state / 'mail')})")
        self.smtp = SmtpSink(state / "mail", smtp_port, nice=nice).start()
        done(t)

        t = step(f"gateway on 127.0.0.1:{gateway_port}, routing by charts/shopflow-mesh")
        gateway = Child(
            "gateway",
            [sys.executable, "-m", "shopctl", "gateway", "--port", str(gateway_port)],
            {},
            state / "logs" / "gateway.log",
            cwd=self.root,
        ).start()
        self.children.append(gateway)
        done(t)

        t = step("waiting until every service is ready")
        for service, child in zip(services, self.children, strict=False):
            wait_http(f"http://127.0.0.1:{service.port()}/ready", child)
        wait_http(f"http://127.0.0.1:{gateway_port}/", gateway, accept=(200, 404))
        done(t)
        self.supervised = [Supervised(child) for child in self.children]
        self.write_status()
        self._print_table(services, gateway_port, smtp_port, server_url)
        if any(s.name == "user-auth" for s in services):
            click.echo(
                f"Admin: {ADMIN_EMAIL} / {state_secrets['admin_password']} "
                f"(generated; kept in {shown(state / 'secrets.json')})\n"
            )

    def _print_table(
        self, services: list[Service], gateway_port: int, smtp_port: int, server_url: str
    ) -> None:
        rows = [("gateway", f"http://127.0.0.1:{gateway_port}", "public API")]
        rows += [(s.name, f"http://127.0.0.1:{s.port()}", ", ".join(s.prefixes)) for s in services]
        if nice := background_nice():
            rows = [
                (n, u, f"{note} (background: nice {nice})" if n in BACKGROUND_SERVICES else note)
                for n, u, note in rows
            ]
        missing = [s.name for s in SERVICES if s not in services]
        rows.append(
            ("smtp sink", f"smtp://127.0.0.1:{smtp_port}", f"mail in {shown(self.state / 'mail')}")
        )
        rows.append(
            (
                "postgresql",
                server_url.split("@")[-1],
                "databases: " + ", ".join(s.database for s in services),
            )
        )
        width = max(len(r[0]) for r in rows)
        click.echo("\nShopFlow is up:\n")
        for name, url, note in rows:
            click.echo(f"  {name.ljust(width)}  {url.ljust(28)}  {note}")
        if missing:
            click.echo(f"\n  not built yet (no code under apps/<image>): {', '.join(missing)}")
        click.echo(
            f"\nLogs: {shown(self.state / 'logs')}   Status: shopctl status   Stop: Ctrl-C\n"
        )

    def write_status(self) -> None:
        """The supervisor's view, for `shopctl status` (written atomically)."""
        status = {
            "supervisor_pid": os.getpid(),
            "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "processes": [s.status() for s in self.supervised],
        }
        path = self.state / STATUS_FILE
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(status, indent=2))
        partial.replace(path)

    def watch(self, stop: threading.Event) -> int:
        """Restart exited processes with backoff until asked to stop; returns the exit code."""
        while not stop.wait(0.2):
            now = time.monotonic()
            changed = False
            for process in self.supervised:
                name, log = process.child.name, shown(process.child.log_path)
                if process.state == "running" and not process.child.alive():
                    delay = process.crashed(now)
                    if delay is None:
                        click.echo(
                            f"{name} crashed {CRASH_LIMIT} times within {CRASH_WINDOW:g}s; "
                            f"leaving it down (last: {process.last_exit}). "
                            f"The rest keeps running. Its log: {log}\n{process.child.log_tail()}",
                            err=True,
                        )
                    else:
                        click.echo(
                            f"{name} exited ({process.last_exit}); restarting in {delay:g}s "
                            f"(crash {len(process.crashes)} of {CRASH_LIMIT} within "
                            f"{CRASH_WINDOW:g}s; log: {log})",
                            err=True,
                        )
                    changed = True
                elif process.state == "restarting" and now >= process.restart_at:
                    process.restart()
                    click.echo(
                        f"{name} restarted (pid {process.child.pid}, restart {process.restarts})",
                        err=True,
                    )
                    changed = True
            if changed:
                self.write_status()
        return 0

    def stop(self) -> None:
        # The gateway first (it was started last), so no new request reaches a service.
        for child in reversed(self.children):
            child.stop()
        for process in self.supervised:
            process.state = "stopped"
        if self.supervised:
            self.write_status()
        if self.smtp:
            self.smtp.stop()
        if self.postgres:
            self.postgres.stop()


def _alive(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def format_status(state: Path) -> str:
    """`shopctl status`: the supervisor's last word on each process."""
    path = state / STATUS_FILE
    if not path.exists():
        raise click.ClickException(f"no status in {shown(state)}: `shopctl up` has not run there")
    data = json.loads(path.read_text())
    supervisor = data.get("supervisor_pid")
    running = _alive(supervisor)
    lines = [
        f"shopctl up (pid {supervisor}) is {'running' if running else 'not running'}; "
        f"state folder {shown(state)}; updated {data.get('updated_at')}",
    ]
    processes = data.get("processes", [])
    width = max((len(p["name"]) for p in processes), default=0)
    for process in processes:
        state_name = process["state"] if running else "stopped"
        pid = process["pid"] if running and process["pid"] else "-"
        note = f"last exit: {process['last_exit']}" if process.get("last_exit") else ""
        if state_name == "down":
            note = f"crashed {process['crashes_in_window']} times within {CRASH_WINDOW:g}s; {note}"
        lines.append(
            f"  {process['name'].ljust(width)}  {state_name.ljust(10)}  pid {str(pid).ljust(7)}  "
            f"restarts {process['restarts']}  {note}".rstrip()
        )
    return "\n".join(lines)


def run(root: Path, fresh: bool) -> int:
    platform = Platform(root, fresh)
    stop = threading.Event()
    started = False

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()
        if not started:  # interrupt a start-up in progress
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        platform.start()
        started = True
        code = platform.watch(stop)
    except KeyboardInterrupt:
        code = 130
    except (click.ClickException, RuntimeError, TimeoutError, pg.PostgresError) as exc:
        click.echo(f"error: {exc}", err=True)
        code = 1
    finally:
        click.echo("stopping ShopFlow...", err=True)
        platform.stop()
        click.echo("stopped.", err=True)
    return code
