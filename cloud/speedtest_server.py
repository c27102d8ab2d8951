"""The broadband test server: what a school's agent measures its WAN link against.

The city runs it (and the simulated campus runs it behind its simulated WAN link). One port number,
two protocols:

TCP - throughput. The client opens one connection per stream and sends one request line:

    EEST/1 <download|upload> <seconds> [<token>]\\n

and the server answers `OK <seconds granted>\\n` or `ERR <reason>\\n` (and closes). Then
- download: the server sends incompressible bytes for the granted seconds, then closes;
- upload: the client sends for as long as it likes (up to the granted seconds); when it half-closes,
  the server answers `RECEIVED <bytes> <seconds>\\n` (what arrived, over how long) and closes.
The client measures goodput itself; the server's figure is there to cross-check uploads.

UDP - latency, jitter and loss. A datagram that begins with `EEST/1 ECHO ` (the client puts a
sequence number and its send time after it) is sent straight back unchanged. Anything else is
dropped.

Limits: at most `max_tests` TCP tests at once (more get `ERR busy`), at most `max_seconds` each,
requests must arrive within 5 s, and when `tokens` are configured a request without one of them gets
`ERR unauthorised`. The server never reads what an upload contains.

    python -m cloud.speedtest_server --listen 127.0.0.1:5201
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass, field

MAGIC = b"EEST/1"
ECHO = b"EEST/1 ECHO "
BLOCK = os.urandom(256 * 1024)   # incompressible, so link compression cannot flatter the result


@dataclass
class ServerStats:
    tests: int = 0
    refused: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    echoes: int = 0


@dataclass
class SpeedtestServer:
    host: str = "127.0.0.1"
    port: int = 5201
    max_tests: int = 32
    max_seconds: float = 30.0
    tokens: frozenset[str] = frozenset()
    stats: ServerStats = field(default_factory=ServerStats)
    _active: int = 0
    _server: asyncio.AbstractServer | None = None
    _udp: asyncio.DatagramTransport | None = None

    async def start(self, tcp_sock: object = None, udp_sock: object = None) -> None:
        """Listen (on `host:port`, or on the given bound sockets)."""
        loop = asyncio.get_running_loop()
        if tcp_sock is not None:
            self._server = await asyncio.start_server(self._client, sock=tcp_sock)  # type: ignore[arg-type]
        else:
            self._server = await asyncio.start_server(self._client, self.host, self.port, reuse_address=True)
            self.port = self._server.sockets[0].getsockname()[1]
        kwargs = {"sock": udp_sock} if udp_sock is not None else {"local_addr": (self.host, self.port)}
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _Echo(self.stats), **kwargs)  # type: ignore

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._udp is not None:
            self._udp.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                line = await asyncio.wait_for(reader.readline(), timeout=5)
            except (TimeoutError, ConnectionError):
                return
            mode, seconds, error = self._parse(line)
            if error:
                self.stats.refused += 1
                writer.write(f"ERR {error}\n".encode())
                await writer.drain()
                return
            self._active += 1
            self.stats.tests += 1
            try:
                writer.write(f"OK {seconds:g}\n".encode())
                await writer.drain()
                if mode == "download":
                    await self._send(writer, seconds)
                else:
                    await self._receive(reader, writer, seconds)
            finally:
                self._active -= 1
        except (ConnectionError, OSError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _parse(self, line: bytes) -> tuple[str, float, str]:
        parts = line.decode("ascii", errors="replace").split()
        if len(parts) < 3 or parts[0].encode() != MAGIC or parts[1] not in ("download", "upload"):
            return "", 0, "bad request (expected: EEST/1 download|upload SECONDS [TOKEN])"
        try:
            seconds = float(parts[2])
        except ValueError:
            return "", 0, "bad seconds"
        if not seconds > 0:
            return "", 0, "bad seconds"
        if self.tokens and (len(parts) < 4 or parts[3] not in self.tokens):
            return "", 0, "unauthorised"
        if self._active >= self.max_tests:
            return "", 0, "busy"
        return parts[1], min(seconds, self.max_seconds), ""

    async def _send(self, writer: asyncio.StreamWriter, seconds: float) -> None:
        end = time.monotonic() + seconds
        view = memoryview(BLOCK)
        while time.monotonic() < end:
            writer.write(view)
            self.stats.bytes_sent += len(view)
            await writer.drain()

    async def _receive(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seconds: float) -> None:
        t0 = time.monotonic()
        end = t0 + seconds
        got = 0
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            try:
                data = await asyncio.wait_for(reader.read(256 * 1024), timeout=left)
            except TimeoutError:
                break
            if not data:
                break
            got += len(data)
        self.stats.bytes_received += got
        writer.write(f"RECEIVED {got} {time.monotonic() - t0:.6f}\n".encode())
        await writer.drain()


class _Echo(asyncio.DatagramProtocol):
    def __init__(self, stats: ServerStats):
        self.stats = stats
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if data.startswith(ECHO) and self.transport is not None:
            self.stats.echoes += 1
            self.transport.sendto(data, addr)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="eduedge broadband test server (TCP throughput, UDP echo)")
    ap.add_argument("--listen", default="127.0.0.1:5201", help="HOST:PORT for both TCP and UDP")
    ap.add_argument("--max-tests", type=int, default=32)
    ap.add_argument("--max-seconds", type=float, default=30.0)
    ap.add_argument("--token-file", help="file with one accepted token per line")
    args = ap.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    tokens = frozenset()
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            tokens = frozenset(t.strip() for t in f if t.strip())

    async def run() -> None:
        server = SpeedtestServer(host or "127.0.0.1", int(port), args.max_tests, args.max_seconds, tokens)
        await server.start()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        print(f"speedtest server on {server.host}:{server.port} (tcp+udp)", flush=True)
        await stop.wait()
        server.close()

    asyncio.run(run())


if __name__ == "__main__":
    main()
