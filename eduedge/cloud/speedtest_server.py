"""The broadband test server: what a school's agent measures its WAN link against.

The city runs it (`eduedge cloud speedtest-server`), and the simulated campus runs it behind its
simulated WAN link. One port number, two protocols; the client is collectors/broadband/engine.py.
The protocol is ours rather than iperf3's because an iperf3 server runs one test at a time and answers no
latency probe during a test (loaded latency); on a tbf-shaped 100 Mbit/s link it measures what iperf3
measures (ratio 1.02 down, 1.00 up, bench/broadband.py; the figures are in engine.py's docstring).

TCP - one request line per connection, answered with `OK ...` or `ERR <reason>` (then closed):

    EEST/1 <verb> <seconds> [token=<token>] [test=<id>]\\n

- `session`: a throughput test. Answer `OK <seconds granted> <id>`; the connection stays open as the
  test's control channel. Every 100 ms the server writes `R <seconds since OK> <bytes received by the
  test's upload streams> <bytes sent by its download streams>` (so upload goodput is measured where it
  arrives), and `END time` when the granted time is over. Closing it ends the test: its streams are cut.
- `probe`: latency only. Answer `OK <seconds granted>`; while it is open, UDP echo answers this address.
- `download` / `upload` with `test=<id>`: one stream of that test (from the address that opened it).
  download: the server sends incompressible bytes until the test or the granted seconds end, then
  closes. upload: the client sends; when it half-closes (or time is up) the server answers
  `RECEIVED <bytes> <seconds>` and closes.
- `download` / `upload` without `test=`: a stand-alone one-stream test, as above.
- The token may also be given bare after the seconds (`EEST/1 download 5 s3cret`).

UDP - latency, jitter and loss. A datagram of at most 1500 bytes that begins with `EEST/1 ECHO ` is
sent straight back unchanged (never larger than it came, so the server amplifies nothing), at most
`ECHO_RATE` a second per address. When tokens are configured, only to addresses that hold an open
`session` or `probe`. Anything else is dropped and counted.

Limits: at most `max_tests` tests at once (sessions and stand-alone streams; more get `ERR busy`), at
most `max_streams` streams per test, `max_probes` probes at once, at most `max_seconds` each; the
request line must arrive within 5 s and fit in 512 bytes; with `tokens` a request without one of them
gets `ERR unauthorised`. The server never reads what an upload contains.

    python -m cloud.speedtest_server --listen 127.0.0.1:5201
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import math
import secrets
import signal
import socket
import time
from collections import Counter
from dataclasses import dataclass, field

from eduedge.core.eest import DEFAULT_PORT, DISCARD, ECHO, PROTOCOL, RECV_BUF, Payload, pump

USAGE = "EEST/1 session|probe|download|upload SECONDS [token=TOKEN] [test=ID]"
VERBS = ("session", "probe", "download", "upload")
MAX_LINE = 512
REQUEST_TIMEOUT = 5.0
REPORT_EVERY = 0.1
READ_PAUSE = 0.005
ECHO_MAX_BYTES = 1500
ECHO_RATE = 2000.0                      # datagrams a second per address (a 1 kHz probe fits twice)

log = logging.getLogger("eduedge.speedtest")


class Refused(Exception):
    """A request the server will not serve; the message is what follows `ERR `."""


@dataclass
class ServerStats:
    tests: int = 0
    probes: int = 0
    refused: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    echoes: int = 0
    dropped: Counter[str] = field(default_factory=Counter)   # UDP datagrams not answered, by reason


@dataclass
class Request:
    verb: str
    seconds: float
    token: str | None = None
    test: str | None = None


def parse_request(line: bytes) -> Request:
    """One request line, or `Refused` saying what is wrong with it.

    >>> parse_request(b"EEST/1 download 10 token=abc test=f00d")
    Request(verb='download', seconds=10.0, token='abc', test='f00d')
    >>> parse_request(b"EEST/2 download 10")
    Traceback (most recent call last):
    eduedge.cloud.speedtest_server.Refused: unsupported protocol version EEST/2 (this server speaks EEST/1)
    """
    parts = line.decode("ascii", errors="replace").split()
    if not parts or not parts[0].startswith("EEST/"):
        raise Refused(f"bad request (expected: {USAGE})")
    if parts[0] != PROTOCOL:
        raise Refused(f"unsupported protocol version {parts[0]} (this server speaks {PROTOCOL})")
    if len(parts) < 3 or parts[1] not in VERBS:
        verb = f": unknown verb {parts[1]!r}" if len(parts) > 1 and parts[1] not in VERBS else ""
        raise Refused(f"bad request{verb} (expected: {USAGE})")
    try:
        seconds = float(parts[2])
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise Refused(f"bad seconds {parts[2]!r} (a positive number)")
    req = Request(parts[1], seconds)
    for i, word in enumerate(parts[3:]):
        key, eq, value = word.partition("=")
        if not eq and i == 0:
            req.token = word                       # the first form of the protocol: a bare token
        elif key in ("token", "test") and value:
            setattr(req, key, value)
        else:
            raise Refused(f"bad request: unknown option {word!r} (expected: {USAGE})")
    if req.test is not None and req.verb not in ("download", "upload"):
        raise Refused(f"bad request: test= belongs on download and upload streams, not on {req.verb}")
    return req


@dataclass(eq=False)
class _Session:
    id: str
    peer: str
    kind: str                          # "session" or "probe"
    t0: float
    end: float
    up_bytes: int = 0
    down_bytes: int = 0
    streams: int = 0
    tasks: set[asyncio.Task] = field(default_factory=set)


@dataclass
class SpeedtestServer:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_tests: int = 32
    max_seconds: float = 60.0
    tokens: frozenset[str] = frozenset()
    max_streams: int = 16
    max_probes: int = 256
    stats: ServerStats = field(default_factory=ServerStats)
    _tests: int = 0
    _sessions: dict[str, _Session] = field(default_factory=dict)
    _echo_open: Counter[str] = field(default_factory=Counter)
    _listener: socket.socket | None = None
    _udp: asyncio.DatagramTransport | None = None
    _conns: set[asyncio.Task] = field(default_factory=set)
    _payload: Payload | None = None             # what downloads send, made by the first one

    @property
    def active_tests(self) -> int:
        return self._tests

    async def start(self, tcp_sock: socket.socket | None = None, udp_sock: socket.socket | None = None) -> None:
        """Listen on `host:port` (port 0: any free one, then `port` says which), or on bound sockets
        (how a test serves from inside a network namespace)."""
        loop = asyncio.get_running_loop()
        any_port = tcp_sock is None and self.port == 0
        # Port 0: the kernel picks a free TCP port, and the UDP twin of that number may be someone else's;
        # then pick again rather than fail.
        for attempt in range(20):
            sock = tcp_sock
            if sock is None:
                family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((self.host, 0 if any_port else self.port))
                sock.listen(256)
            sock.setblocking(False)
            host, port = sock.getsockname()[:2]
            kwargs = {"sock": udp_sock} if udp_sock is not None else {"local_addr": (host, port)}
            try:
                self._udp, _ = await loop.create_datagram_endpoint(lambda: _Echo(self), **kwargs)  # type: ignore[arg-type]
            except OSError as e:
                if not (any_port and e.errno == errno.EADDRINUSE and attempt < 19):
                    raise
                sock.close()
                continue
            break
        self._listener = sock
        self.host, self.port = host, port
        loop.add_reader(sock.fileno(), self._accept_ready)

    def close(self) -> None:
        """Stop listening and cut every connection (in the server's loop)."""
        for task in list(self._conns):
            task.cancel()
        if self._listener is not None and self._listener.fileno() >= 0:
            asyncio.get_running_loop().remove_reader(self._listener.fileno())
            self._listener.close()
        if self._udp is not None:
            self._udp.close()
        if self._payload is not None:
            self._payload.close()

    def echo_allowed(self, addr: str) -> bool:
        return not self.tokens or self._echo_open[addr] > 0

    def _accept_ready(self) -> None:
        assert self._listener is not None
        for _ in range(64):                                  # a burst of connections, then let others run
            try:
                conn, addr = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as e:                             # EMFILE and friends: keep serving the others
                log.warning("accept: %s", e)
                return
            conn.setblocking(False)
            task = asyncio.get_running_loop().create_task(self._connection(conn, addr[0]))
            self._conns.add(task)
            task.add_done_callback(self._conns.discard)

    async def _connection(self, conn: socket.socket, peer: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            try:
                line, rest = await asyncio.wait_for(_read_line(loop, conn), REQUEST_TIMEOUT)
            except TimeoutError:
                raise Refused(f"timeout: no request line within {REQUEST_TIMEOUT:g} s (expected: {USAGE})") from None
            await self._serve(conn, peer, parse_request(line), rest)
        except Refused as e:
            self.stats.refused += 1
            log.info("refused %s: %s", peer, e)
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(loop.sock_sendall(conn, f"ERR {e}\n".encode()), 5)
        except (ConnectionError, OSError, TimeoutError):
            pass
        finally:
            conn.close()

    async def _serve(self, conn: socket.socket, peer: str, req: Request, rest: bytes) -> None:
        # a stream of a test is authorised by the test's id (from the address that opened the test)
        if req.test is None and self.tokens and req.token not in self.tokens:
            raise Refused("unauthorised")
        if req.verb == "probe":
            if sum(1 for s in self._sessions.values() if s.kind == "probe") >= self.max_probes:
                raise Refused(f"busy: {self.max_probes} probes running (max {self.max_probes}); try again later")
            await self._session(conn, peer, "probe", min(req.seconds, self.max_seconds))
            return
        if req.test is not None:
            await self._stream(conn, peer, req, rest)
            return
        if self._tests >= self.max_tests:
            raise Refused(f"busy: {self._tests} tests running (max {self.max_tests}); try again later")
        if req.verb == "session":
            await self._session(conn, peer, "session", min(req.seconds, self.max_seconds))
            return
        seconds = min(req.seconds, self.max_seconds)       # a stand-alone stream is a test of its own
        self._tests += 1
        self.stats.tests += 1
        try:
            await asyncio.get_running_loop().sock_sendall(conn, f"OK {seconds:g}\n".encode())
            await self._transfer(conn, req.verb, seconds, rest, None)
        finally:
            self._tests -= 1

    async def _session(self, conn: socket.socket, peer: str, kind: str, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        s = _Session(secrets.token_hex(8), peer, kind, now, now + seconds)
        self._sessions[s.id] = s
        self._echo_open[peer] += 1
        if kind == "session":
            self._tests += 1
            self.stats.tests += 1
        else:
            self.stats.probes += 1
        try:
            head = f"OK {seconds:g} {s.id}\n" if kind == "session" else f"OK {seconds:g}\n"
            await loop.sock_sendall(conn, head.encode())
            said = asyncio.ensure_future(loop.sock_recv(conn, 64))
            try:
                async with asyncio.timeout(seconds):
                    while True:
                        await asyncio.wait({said}, timeout=REPORT_EVERY)
                        if said.done():
                            if not said.result():           # the client closed: the test is over
                                return
                            said = asyncio.ensure_future(loop.sock_recv(conn, 64))   # what it says is ignored
                        elif kind == "session":
                            line = f"R {time.monotonic() - s.t0:.4f} {s.up_bytes} {s.down_bytes}\n"
                            await loop.sock_sendall(conn, line.encode())
            except TimeoutError:
                with contextlib.suppress(OSError, TimeoutError):
                    await asyncio.wait_for(loop.sock_sendall(conn, b"END time\n"), 1)
            finally:
                said.cancel()
        finally:
            for task in list(s.tasks):
                task.cancel()
            del self._sessions[s.id]
            self._echo_open[peer] -= 1
            if not self._echo_open[peer]:
                del self._echo_open[peer]
            if kind == "session":
                self._tests -= 1
            log.info("%s %s from %s: %.1f s, %d streams, %d B down, %d B up", kind, s.id, peer,
                     time.monotonic() - s.t0, s.streams, s.down_bytes, s.up_bytes)

    async def _stream(self, conn: socket.socket, peer: str, req: Request, rest: bytes) -> None:
        s = self._sessions.get(req.test or "")
        if s is None or s.peer != peer or s.kind != "session":
            raise Refused(f"unknown test {req.test} (a test ends when its session connection closes)")
        if s.streams >= self.max_streams:
            raise Refused(f"too many streams: test {s.id} has {s.streams} (max {self.max_streams})")
        seconds = min(req.seconds, math.floor((s.end - time.monotonic()) * 10) / 10)   # what is left, rounded down
        if seconds <= 0:
            raise Refused(f"test {s.id} has no time left")
        task = asyncio.current_task()
        assert task is not None
        s.streams += 1
        s.tasks.add(task)
        try:
            await asyncio.get_running_loop().sock_sendall(conn, f"OK {seconds:g}\n".encode())
            await self._transfer(conn, req.verb, seconds, rest, s)
        finally:
            s.tasks.discard(task)

    async def _transfer(self, conn: socket.socket, verb: str, seconds: float, rest: bytes, s: _Session | None) -> None:
        loop = asyncio.get_running_loop()
        if verb == "download":
            if self._payload is None:
                self._payload = Payload()

            def sent(n: int) -> None:
                self.stats.bytes_sent += n
                if s is not None:
                    s.down_bytes += n

            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await pump(conn, self._payload, sent)
            return
        t0 = time.monotonic()
        got = len(rest)
        if s is not None:
            s.up_bytes += got
        buf = bytearray(RECV_BUF)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    try:
                        while n := conn.recv_into(buf, RECV_BUF, DISCARD):     # counted, not copied out
                            got += n
                            self.stats.bytes_received += n
                            if s is not None:
                                s.up_bytes += n
                    except BlockingIOError:
                        # drained: let READ_PAUSE of data gather (a wake-up per segment costs more than the test)
                        await asyncio.sleep(READ_PAUSE)
                        continue
                    break                                   # the client half-closed
        await asyncio.wait_for(loop.sock_sendall(conn, f"RECEIVED {got} {time.monotonic() - t0:.6f}\n".encode()), 5)


async def _read_line(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> tuple[bytes, bytes]:
    """The request line and whatever came after it (an eager upload's first bytes)."""
    data = b""
    while b"\n" not in data:
        if len(data) > MAX_LINE:
            raise Refused(f"bad request: no end of line within {MAX_LINE} bytes (expected: {USAGE})")
        more = await loop.sock_recv(conn, 4096)
        if not more:
            raise ConnectionError("closed before a request")
        data += more
    line, _, rest = data.partition(b"\n")
    if len(line) > MAX_LINE:
        raise Refused(f"bad request: request line longer than {MAX_LINE} bytes (expected: {USAGE})")
    return line, rest


class _Echo(asyncio.DatagramProtocol):
    def __init__(self, server: SpeedtestServer):
        self.server = server
        self.stats = server.stats
        self.transport: asyncio.DatagramTransport | None = None
        self.buckets: dict[str, tuple[float, float]] = {}     # address -> (tokens, monotonic time)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if not data.startswith(ECHO) or len(data) > ECHO_MAX_BYTES:
            self.stats.dropped["not an echo request"] += 1
        elif not self.server.echo_allowed(addr[0]):
            self.stats.dropped["no open session or probe"] += 1
        elif not self._allow(addr[0]):
            self.stats.dropped["over the rate limit"] += 1
        elif self.transport is not None:
            self.stats.echoes += 1
            self.transport.sendto(data, addr)

    def _allow(self, addr: str) -> bool:
        now = time.monotonic()
        tokens, at = self.buckets.get(addr, (ECHO_RATE / 4, now))
        tokens = min(ECHO_RATE / 4, tokens + (now - at) * ECHO_RATE)
        if len(self.buckets) > 100_000:                  # forget idle addresses rather than grow forever
            self.buckets.clear()
        allowed = tokens >= 1
        self.buckets[addr] = (tokens - 1 if allowed else tokens, now)
        return allowed


def read_tokens(path: str) -> frozenset[str]:
    """The accepted tokens: one a line, blank lines and `#` comments ignored; a token has no spaces."""
    with open(path, encoding="utf-8") as f:
        tokens = frozenset(t.strip() for t in f if t.strip() and not t.lstrip().startswith("#"))
    if not tokens:
        raise ValueError(f"{path}: no tokens in the token file")
    return tokens


async def serve(server: SpeedtestServer, announce: bool = True) -> None:
    """Run until SIGTERM or SIGINT."""
    await server.start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    if announce:
        auth = f", {len(server.tokens)} tokens" if server.tokens else ", no token needed"
        print(f"speedtest server on {server.host}:{server.port} (tcp+udp{auth})", flush=True)
    await stop.wait()
    server.close()


def main(argv: list[str] | None = None) -> None:
    from eduedge.core.netaddr import split_host_port

    ap = argparse.ArgumentParser(description="eduedge broadband test server (TCP throughput, UDP echo)")
    ap.add_argument("--listen", default="127.0.0.1:5201", help="HOST:PORT for both TCP and UDP")
    ap.add_argument("--max-tests", type=int, default=32)
    ap.add_argument("--max-seconds", type=float, default=60.0)
    ap.add_argument("--max-streams", type=int, default=16)
    ap.add_argument("--token-file", help="file with one accepted token per line")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    host, port = split_host_port(args.listen, DEFAULT_PORT)
    tokens = read_tokens(args.token_file) if args.token_file else frozenset()
    asyncio.run(serve(SpeedtestServer(host, port, args.max_tests, args.max_seconds, tokens, args.max_streams)))


if __name__ == "__main__":
    main()
