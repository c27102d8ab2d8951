"""HOST[:PORT] as the configuration and the command line write it, for every part that dials out."""

from __future__ import annotations

import re

_HOSTPORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[^:\s]+)(?::(\d{1,5}))?$")


def split_host_port(value: str, default_port: int = 161) -> tuple[str, int]:
    """`10.0.0.1` -> (10.0.0.1, 161); `127.0.0.1:1161`; `[::1]:1161`.

    >>> split_host_port("127.0.0.1:1161")
    ('127.0.0.1', 1161)
    """
    m = _HOSTPORT.match(value.strip())
    if not m:
        raise ValueError(f"{value!r} is not HOST or HOST:PORT")
    host = m.group(1).strip("[]")
    port = int(m.group(2)) if m.group(2) else default_port
    if not 0 < port < 65536:
        raise ValueError(f"port {port} out of range")
    return host, port
