"""A stream's bytes as EEST/1 moves them (core/eest.py): what `pump` sends is the payload's block over and over,
counted as it goes, and what a receiver discards with DISCARD is counted exactly."""

from __future__ import annotations

import asyncio
import socket

from eduedge.core.eest import DISCARD, RECV_BUF, Payload, pump


def test_pump_sends_the_block_again_and_again_and_counts_every_byte() -> None:
    async def run() -> tuple[bytes, int]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        a.setblocking(False)
        b.setblocking(False)
        data = Payload(64 * 1024)
        block = data.block
        counted = [0]
        task = asyncio.create_task(pump(a, data, lambda n: counted.__setitem__(0, counted[0] + n)))
        got = bytearray()
        loop = asyncio.get_running_loop()
        while len(got) < 5 * block + 123:
            got += await loop.sock_recv(b, 65536)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        while True:                                   # what was sent before the cancel
            try:
                more = b.recv(1 << 20)
            except BlockingIOError:
                break
            got += more
        first = bytes(got[:block])
        assert bytes(got) == (first * (len(got) // block + 1))[:len(got)]
        data.close()
        a.close()
        b.close()
        return first, counted[0] - len(got)

    first, unread = asyncio.run(run())
    assert len(set(first)) > 200                      # random bytes, not a pattern a link could compress
    assert unread == 0


def test_a_closed_connection_ends_the_pump_with_its_error() -> None:
    async def run() -> BaseException | None:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        a.setblocking(False)
        b.close()
        data = Payload(4096)
        try:
            await asyncio.wait_for(pump(a, data, lambda n: None), 5)
        except OSError as e:
            return e
        finally:
            data.close()
            a.close()
        return None

    assert isinstance(asyncio.run(run()), BrokenPipeError)


def test_discard_counts_tcp_bytes_without_copying_them() -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    c = socket.create_connection(srv.getsockname())
    s, _ = srv.accept()
    c.sendall(b"x" * 3_000_000)
    c.shutdown(socket.SHUT_WR)
    buf = bytearray(RECV_BUF)
    total = 0
    while n := s.recv_into(buf, RECV_BUF, DISCARD):
        total += n
    assert total == 3_000_000
    assert DISCARD == 0 or buf.count(0) == len(buf)        # Linux: nothing was copied into the buffer
    for x in (c, s, srv):
        x.close()
