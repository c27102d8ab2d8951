"""EEST/1, eduedge's broadband test protocol: what its client (collectors/broadband) and its server
(cloud/speedtest_server.py, also run behind a simulated campus's WAN) both need.

>>> data = payload(4096); len(data), data[:4096] == data[4096:]
(8192, True)
"""

from __future__ import annotations

import os

PROTOCOL = "EEST/1"
ECHO = b"EEST/1 ECHO "                  # the first bytes of an echo datagram, both ways
DEFAULT_PORT = 5201
CHUNK = 256 * 1024                      # bytes per send of a stream; divides the payload's block


def payload(block: int = 1 << 20) -> memoryview:
    """Incompressible bytes to send (so link compression cannot flatter the result): a random block twice
    over, so that a CHUNK starting anywhere in the first copy is contiguous.

    Built when a test starts, never at import: a box that never runs a test keeps no megabytes for one,
    and each test gets bytes of its own."""
    data = os.urandom(block)
    return memoryview(data + data)
