"""HOST[:PORT] as the configuration and the command line write it, for every part that dials out; and a
free port on this machine, for every part that starts a local peer (the simulator's, the city's PostgreSQL)."""

from __future__ import annotations

import re
import socket

from eduedge.core.i18n import _

_HOSTPORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[^:\s]+)(?::(\d{1,5}))?$")


def split_host_port(value: str, default_port: int = 161) -> tuple[str, int]:
    """`10.0.0.1` -> (10.0.0.1, 161); `127.0.0.1:1161`; `[::1]:1161`.

    >>> split_host_port("127.0.0.1:1161")
    ('127.0.0.1', 1161)
    """
    m = _HOSTPORT.match(value.strip())
    if not m:
        raise ValueError(_("{value} is not HOST or HOST:PORT").format(value=repr(value)))
    host = m.group(1).strip("[]")
    port = int(m.group(2)) if m.group(2) else default_port
    if not 0 < port < 65536:
        raise ValueError(_("port {port} out of range").format(port=port))
    return host, port


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now (the kernel's pick; free until someone else takes it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port nobody is bound to now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]
