"""EEST/1, eduedge's broadband test protocol: what its client (collectors/broadband) and its server
(cloud/speedtest_server.py, also run behind a simulated campus's WAN) both need, including how a stream
moves bytes cheaply (a small box must measure a fast line, not its own CPU):

- sending: the incompressible payload sits in a memory file and goes out with `os.sendfile`, the kernel
  taking its pages as they are instead of a copy from the process per chunk; one writer callback per
  stream sends whatever the socket takes each time it has room (`pump`), no future per chunk;
- receiving: Linux's TCP discards what `recv_into(..., MSG_TRUNC)` asks for instead of copying it out
  (`DISCARD`): a test counts bytes, it never reads them.

Elsewhere than Linux both fall back to plain `send` of a memoryview and `recv_into` a buffer.

>>> a, b = socket.socketpair()
>>> p = Payload(4096); p.send(a, 1000), p.fd >= 0           # a memory file, sent from an offset
(3096, True)
>>> p.close(); p.send(a, 0)
Traceback (most recent call last):
OSError: [Errno 9] the payload is closed
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import sys
from collections.abc import Callable

PROTOCOL = "EEST/1"
ECHO = b"EEST/1 ECHO "                  # the first bytes of an echo datagram, both ways
DEFAULT_PORT = 5201
CHUNK = 256 * 1024                      # at most this much per send
RECV_BUF = 1 << 20                      # what one receive may take
DISCARD = getattr(socket, "MSG_TRUNC", 0) if sys.platform.startswith("linux") else 0


class Payload:
    """Incompressible bytes to send (so link compression cannot flatter the result), made when a test starts -
    never at import: a box that never runs a test keeps nothing for one. `send` sends from an offset into
    the block as much as the socket takes now."""

    def __init__(self, block: int = 1 << 20):
        data = os.urandom(block)
        self.block = block
        self.fd = -1
        if hasattr(os, "memfd_create") and hasattr(os, "sendfile"):
            try:
                fd = os.memfd_create("eest-payload", os.MFD_CLOEXEC)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                self.fd = fd
            except OSError:
                self.fd = -1
        # without a memory file: the block twice over, so a chunk that starts anywhere in the first is whole
        self.view = memoryview(data + data) if self.fd < 0 else None

    def send(self, sock: socket.socket, off: int) -> int:
        """Send without blocking from `off` (< block); the bytes sent (BlockingIOError when none fit)."""
        if self.fd >= 0:
            # a CHUNK at a time: larger sendfile calls made a paced link's downloads uneven (test_broadband_loopback)
            return os.sendfile(sock.fileno(), self.fd, off, min(CHUNK, self.block - off))
        if self.view is None:
            raise OSError(errno.EBADF, "the payload is closed")
        return sock.send(self.view[off:off + CHUNK])

    def close(self) -> None:
        """Release the memory file; a stream still sending from it ends with EBADF (never another file's)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


async def pump(sock: socket.socket, data: Payload, sent: Callable[[int], None]) -> None:
    """Send `data` over and over on the non-blocking `sock` until the connection fails (the OSError is raised)
    or the task is cancelled; `sent(n)` counts each send."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    fd = sock.fileno()
    off = 0

    def writable() -> None:
        nonlocal off
        try:
            while True:
                n = data.send(sock, off)
                if n <= 0:
                    raise ConnectionResetError("the connection takes no more data")
                off = (off + n) % data.block
                sent(n)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            loop.remove_writer(fd)
            if not done.done():
                done.set_exception(e)

    loop.add_writer(fd, writable)
    try:
        await done
    finally:
        loop.remove_writer(fd)
