"""The school's WAN link in user space: rate, latency and loss between the campus and the test server.

A relay that listens where the campus reaches "the Internet" and forwards to the WAN-side test server
(cloud/speedtest_server.py):
- TCP: each direction is paced by one token bucket shared by all connections (the link's rate) and
  delayed by half the added round-trip time, in order;
- UDP: each datagram is delayed the same way; datagrams toward the server are dropped with the
  configured probability (only that way, so an echo probe's round-trip loss is exactly the setting).

In loopback mode this relay is the whole WAN link. In namespace mode `tc tbf` shapes the rate on a real
veth and the relay adds only latency and loss (this kernel has no netem). TCP data cannot be "lost" in
user space (the relay's own TCP would retransmit it), so loss applies to UDP only - which is what the
agent's latency/jitter/loss probes use.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

CHUNK = 64 * 1024


@dataclass
class LinkParams:
    down_Bps: float | None      # toward the campus; None = unlimited
    up_Bps: float | None
    rtt_s: float = 0.0          # added round-trip time
    loss: float = 0.0           # UDP drop probability


class TokenBucket:
    """Bytes per second with a small burst; `take` waits until the bytes may pass."""

    def __init__(self, rate: Callable[[], float | None], burst_s: float = 0.005):
        self.rate = rate
        self.burst_s = burst_s
        self.tokens = 0.0
        self.at = time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self, n: int) -> None:
        async with self.lock:
            while True:
                rate = self.rate()
                if rate is None:
                    return
                now = time.monotonic()
                self.tokens = min(rate * self.burst_s + n, self.tokens + (now - self.at) * rate)
                self.at = now
                if self.tokens >= n:
                    self.tokens -= n
                    return
                await asyncio.sleep((n - self.tokens) / rate)


class WanLink:
    def __init__(self, params: LinkParams, upstream: tuple[str, int],
                 socket_factory: Callable[[int, int], socket.socket] | None = None):
        self.params = params
        self.upstream = upstream
        self._socket = socket_factory or (lambda family, kind: socket.socket(family, kind))
        self.down = TokenBucket(lambda: self.params.down_Bps)
        self.up = TokenBucket(lambda: self.params.up_Bps)
        self._servers: list[asyncio.AbstractServer] = []
        self._transports: list[asyncio.BaseTransport] = []
        self._rng = random.Random()

    async def start(self, tcp_sock: socket.socket, udp_sock: socket.socket) -> None:
        """Serve on bound sockets (the listening TCP one and the UDP one)."""
        loop = asyncio.get_running_loop()
        self._servers.append(await asyncio.start_server(self._tcp_client, sock=tcp_sock))
        transport, _ = await loop.create_datagram_endpoint(lambda: _UdpFront(self), sock=udp_sock)
        self._transports.append(transport)

    def close(self) -> None:
        for s in self._servers:
            s.close()
        for t in self._transports:
            t.close()

    async def _connect_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        s = self._socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        await asyncio.get_running_loop().sock_connect(s, self.upstream)
        return await asyncio.open_connection(sock=s)

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await self._connect_upstream()
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pump(reader, up_writer, self.up), self._pump(up_reader, writer, self.down),
                             return_exceptions=True)
        for w in (writer, up_writer):
            with contextlib.suppress(Exception):
                w.close()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, bucket: TokenBucket) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                at, data = await queue.get()
                if not data:
                    with contextlib.suppress(OSError):
                        dst.write_eof()
                    return
                wait = at - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                dst.write(data)
                await dst.drain()

        sender = asyncio.create_task(deliver())
        try:
            while True:
                data = await src.read(CHUNK)
                if data:
                    await bucket.take(len(data))
                queue.put_nowait((time.monotonic() + self.params.rtt_s / 2, data))
                if not data:
                    break
            await sender
        except (ConnectionError, OSError):
            sender.cancel()


class _UdpFront(asyncio.DatagramProtocol):
    """One upstream UDP socket per client address; both directions delayed and thinned."""

    def __init__(self, link: WanLink):
        self.link = link
        self.transport: asyncio.DatagramTransport | None = None
        self.backs: dict[tuple, asyncio.DatagramTransport] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        asyncio.get_running_loop().create_task(self._forward(data, addr))

    async def _forward(self, data: bytes, addr: tuple) -> None:
        link = self.link
        if link._rng.random() < link.params.loss:
            return
        await asyncio.sleep(link.params.rtt_s / 2)
        back = self.backs.get(addr)
        if back is None:
            s = link._socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setblocking(False)
            s.connect(link.upstream)
            back, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: _UdpBack(self, addr), sock=s)
            self.backs[addr] = back
        back.sendto(data)

    def reply(self, data: bytes, addr: tuple) -> None:
        asyncio.get_running_loop().call_later(self.link.params.rtt_s / 2, self._send, data, addr)

    def _send(self, data: bytes, addr: tuple) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)


class _UdpBack(asyncio.DatagramProtocol):
    def __init__(self, front: _UdpFront, addr: tuple):
        self.front, self.addr = front, addr

    def datagram_received(self, data: bytes, _addr: tuple) -> None:
        self.front.reply(data, self.addr)
