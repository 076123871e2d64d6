"""Free TCP ports for local servers, picked where the kernel never hands out its own.

``bind(("127.0.0.1", 0))`` returns a port from the kernel's ephemeral range. Between
closing that probe and the server binding the port, any outgoing connection (a
service's pool to PostgreSQL, a test's HTTP client) may be given the same port as its
source port, and the server then fails with "Address already in use"; CI saw
order-mgmt die that way. Below the ephemeral range a port is only ever taken by an
explicit bind, so a port found free there stays free until its server binds it,
unless another picker chooses it too: this process never hands the same port out
twice, and the range is wide enough that two processes seldom try the same one.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: Linux's default when /proc does not say.
_DEFAULT_EPHEMERAL = (32768, 60999)
#: Below this lie the ports people run things on by hand (5432, 8000, 8080, 9090...).
_LOWEST = 20000
_TRIES = 200

_given: set[int] = set()
_pick = random.Random()


def ephemeral_range(
    source: Path = Path("/proc/sys/net/ipv4/ip_local_port_range"),
) -> tuple[int, int]:
    """The kernel's ephemeral (automatic source) port range."""
    try:
        low, high = (int(part) for part in source.read_text().split())
    except (OSError, ValueError):
        return _DEFAULT_EPHEMERAL
    return low, high


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on, outside the ephemeral range when there is room."""
    low, _high = ephemeral_range()
    if low - _LOWEST >= 1000:
        for _ in range(_TRIES):
            port = _pick.randrange(_LOWEST, low)
            if port not in _given and _bindable(host, port):
                _given.add(port)
                return port
    # No room below the range (an unusual ip_local_port_range): the kernel's choice.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port = int(sock.getsockname()[1])
    _given.add(port)
    return port
