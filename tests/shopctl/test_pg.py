"""The local PostgreSQL's URLs: the services' Unix socket, TCP for tools."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
from shopctl import pg


async def test_the_services_url_is_the_unix_socket_and_tcp_stays_open(
    pg_server: str, database_url: str
) -> None:
    parts = urlsplit(database_url)
    socket_dir = Path(parse_qs(parts.query)["host"][0])
    port = int(parse_qs(parts.query)["port"][0])
    assert (socket_dir / f".s.PGSQL.{port}").is_socket()
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT inet_server_addr()") is None  # not over TCP
        name = await conn.fetchval("SELECT current_database()")
    finally:
        await conn.close()
    conn = await asyncpg.connect(f"postgres://postgres@127.0.0.1:{port}/{name}")
    try:
        assert str(await conn.fetchval("SELECT inet_server_addr()")) == "127.0.0.1"
    finally:
        await conn.close()


def test_a_data_folder_too_deep_for_a_socket_path_means_tcp(tmp_path: Path) -> None:
    deep = pg.LocalPostgres(tmp_path / ("d" * 100), port=5544)
    assert deep.socket_dir is None
    assert deep.url == "postgres://postgres@127.0.0.1:5544"
    near = pg.LocalPostgres(tmp_path / "pg", port=5544)
    assert near.socket_dir == (tmp_path / "pg").absolute()
    assert near.url == near.tcp_url  # no socket there: nothing is running


def test_database_url_names_the_database_on_either_kind_of_server() -> None:
    assert pg.database_url("postgres://postgres@127.0.0.1:5544", "orders") == (
        "postgres://postgres@127.0.0.1:5544/orders"
    )
    assert pg.database_url("postgres://postgres@/?host=/srv/pg&port=5544", "orders") == (
        "postgres://postgres@/orders?host=/srv/pg&port=5544"
    )
    assert pg.database_url("postgres://u:p@db:5432/postgres?ssl=require", "orders") == (
        "postgres://u:p@db:5432/orders?ssl=require"
    )
