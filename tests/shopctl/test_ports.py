"""free_port picks ports the kernel never gives an outgoing connection."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from shopctl import ports
from shopctl.ports import ephemeral_range, free_port


def test_ports_lie_below_the_ephemeral_range_and_are_free() -> None:
    low, _ = ephemeral_range()
    picked = [free_port() for _ in range(300)]
    assert len(set(picked)) == len(picked)
    for port in picked:
        assert 20000 <= port < low
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_listening_port_is_never_picked() -> None:
    low, _ = ephemeral_range()
    listeners = []
    try:
        # Hold most of a narrowed range so the picker must step around the held ports.
        for port in range(low - 1200, low - 100):
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            sock.listen()
            listeners.append(sock)
        held = {sock.getsockname()[1] for sock in listeners}
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ports, "_LOWEST", low - 1200)
            picked = [free_port() for _ in range(50)]
        assert not held & set(picked)
    finally:
        for sock in listeners:
            sock.close()


def test_outgoing_connections_take_source_ports_only_inside_the_range() -> None:
    """The race CI hit: a picked port handed to a client as its source port."""
    low, high = ephemeral_range()
    picked = {free_port() for _ in range(50)}
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.listen(256)
        clients = [socket.create_connection(server.getsockname()) for _ in range(200)]
        try:
            sources = {client.getsockname()[1] for client in clients}
        finally:
            for client in clients:
                client.close()
    assert all(low <= port <= high for port in sources)
    assert not sources & picked


def test_range_file_unreadable_or_odd(tmp_path: Path) -> None:
    assert ephemeral_range(tmp_path / "missing") == (32768, 60999)
    odd = tmp_path / "range"
    odd.write_text("nonsense\n")
    assert ephemeral_range(odd) == (32768, 60999)
    odd.write_text("1024\t65535\n")
    assert ephemeral_range(odd) == (1024, 65535)


def test_no_room_below_the_range_falls_back_to_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "ephemeral_range", lambda: (1024, 65535))
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
