"""EEST/1 without moving data: the requests to the city's test server, its UDP echo probes, and the WAN port.

What the broadband collector's light monitor and the live-class service probes use between tests; the
throughput test itself (engine.py) is imported only when a test runs.

>>> parse_server("eest://speedtest.city.example:5301"), parse_server("[::1]")
(('speedtest.city.example', 5301), ('::1', 5201))
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import re
import secrets
import socket
import struct
import sys
import time
from dataclasses import dataclass

import psutil

from eduedge.collectors.broadband.result import PortInfo, Probes
from eduedge.core.eest import DEFAULT_PORT, ECHO
from eduedge.core.netaddr import split_host_port

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform.startswith("linux") else None)
COUNTER_BITS = 64 if sys.maxsize > 2**32 else 32


class MeasureError(Exception):
    """The reason a test (or one direction of it) has no figure."""


def parse_server(text: str) -> tuple[str, int]:
    """`host`, `host:port`, `eest://host:port` or `[v6]:port` -> (host, port)."""
    return split_host_port(re.sub(r"^eest://", "", text.strip()).rstrip("/"), DEFAULT_PORT)


def server_text(host: str, port: int) -> str:
    """HOST:PORT as people (and split_host_port) write it.

    >>> server_text("::1", 5201), server_text("198.19.100.2", 5201)
    ('[::1]:5201', '198.19.100.2:5201')
    """
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- UDP echo ---------------------------------------------------------------------------------------

@dataclass
class _Probe:
    mono: float
    sent_ns: int
    rtt_ms: float | None = None


class Prober:
    """Sends echo probes to the test server and times their answers; `size` pads each probe to that many
    bytes (a video-sized datagram; the server echoes up to 1500), 0 keeps them as short as they go."""

    def __init__(self, host: str, port: int, size: int = 0):
        info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        self.sock = socket.socket(info[0], socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.kernel_stamps = False
        if SO_TIMESTAMPNS is not None:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                self.kernel_stamps = True
        self.sock.connect(info[4])
        self.nonce = secrets.token_hex(4).encode()
        self.size = size
        self.probes: list[_Probe] = []
        self.refused = 0                        # ICMP port unreachable: nothing listens there
        self.last_rtt: float | None = None
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._readable)

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def send(self) -> None:
        seq = len(self.probes)
        payload = ECHO + self.nonce + b" %d" % seq
        if self.size > len(payload) + 1:
            payload += b" " + b"." * (self.size - len(payload) - 1)
        self.probes.append(_Probe(time.monotonic(), time.time_ns()))
        try:
            self.sock.send(payload)
        except ConnectionRefusedError:
            self.refused += 1
        except OSError:
            pass                                  # no route, buffer full: the probe is simply lost

    async def run(self, interval: float, count: int | None = None, until: asyncio.Event | None = None) -> None:
        """Send every `interval` seconds (on a fixed grid, so a late wake-up does not stretch it)."""
        start, n = time.monotonic(), 0
        while (count is None or n < count) and not (until is not None and until.is_set()):
            self.send()
            n += 1
            await asyncio.sleep(max(0.0, start + n * interval - time.monotonic()))

    def batch(self, since: float, until: float) -> Probes:
        """The probes sent between two monotonic times."""
        return Probes([p.rtt_ms for p in self.probes if since <= p.mono < until])

    def outstanding(self, since: float) -> int:
        return sum(1 for p in self.probes if p.mono >= since and p.rtt_ms is None)

    def _readable(self) -> None:
        while True:
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(max(256, self.size), socket.CMSG_SPACE(16))
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionRefusedError:
                self.refused += 1
                continue
            except OSError:
                return
            arrived = time.time_ns()
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                    sec, nsec = struct.unpack("@ll", value[:16])
                    arrived = sec * 1_000_000_000 + nsec
            head, _, rest = data[len(ECHO):].partition(b" ")
            number = rest.partition(b" ")[0]          # what follows it is padding
            if not data.startswith(ECHO) or head != self.nonce or not number.isdigit():
                continue
            seq = int(number)
            if seq < len(self.probes) and self.probes[seq].rtt_ms is None:
                rtt = (arrived - self.probes[seq].sent_ns) / 1e6
                if rtt >= 0:                      # a wall-clock step in between: drop, never invent
                    self.probes[seq].rtt_ms = self.last_rtt = rtt


# -- TCP ------------------------------------------------------------------------------------------

async def _connect(host: str, port: int, timeout: float) -> socket.socket:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise MeasureError(f"cannot resolve {host}: {e.strerror}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, addr), timeout)
    except TimeoutError:
        sock.close()
        raise MeasureError(f"cannot reach the test server {host}:{port}: no answer within {timeout:g} s") from None
    except OSError as e:
        sock.close()
        reason = os.strerror(e.errno).lower() if e.errno else str(e)
        raise MeasureError(f"cannot reach the test server {host}:{port}: {reason}") from None
    return sock


async def _read_line(sock: socket.socket, timeout: float, what: str) -> tuple[str, bytes]:
    """One line from the server (and what came after it)."""
    loop = asyncio.get_running_loop()
    data = b""
    try:
        async with asyncio.timeout(timeout):
            while b"\n" not in data:
                more = await loop.sock_recv(sock, 4096)
                if not more:
                    raise MeasureError(f"the test server closed the connection instead of answering the {what}")
                data += more
                if len(data) > 4096:
                    raise MeasureError(f"the test server's answer to the {what} is not EEST/1")
    except TimeoutError:
        raise MeasureError(f"the test server did not answer the {what} within {timeout:g} s") from None
    except OSError as e:
        raise MeasureError(f"the connection to the test server failed during the {what}: {e.strerror or e}") from None
    line, _, rest = data.partition(b"\n")
    return line.decode("ascii", errors="replace").strip(), rest


async def request(host: str, port: int, line: str, timeout: float, what: str) -> tuple[socket.socket, str, bytes]:
    """Connect, send one request, and return the `OK ...` answer; `ERR` becomes a MeasureError."""
    sock = await _connect(host, port, timeout)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_sendall(sock, line.encode() + b"\n"), timeout)
        answer, rest = await _read_line(sock, timeout, what)
    except BaseException:
        sock.close()
        raise
    if answer.startswith("ERR "):
        sock.close()
        raise MeasureError(f"the test server refused the {what}: {answer[4:]}")
    if not answer.startswith("OK"):
        sock.close()
        raise MeasureError(f"the test server answered the {what} with {answer[:60]!r}, not EEST/1")
    return sock, answer, rest


# -- the WAN interface ------------------------------------------------------------------------------

def route_interface(host: str, port: int) -> str | None:
    """The local interface the kernel would use to reach `host` (no packet is sent); None for a server on this
    box, which no WAN port leads to (the loopback's counters carry everything local, not the school's line)."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(info[0], socket.SOCK_DGRAM) as s:
            s.connect(info[4])
            local = s.getsockname()[0]
    except OSError:
        return None
    if ipaddress.ip_address(local.split("%")[0]).is_loopback:
        return None
    for name, addrs in psutil.net_if_addrs().items():
        if any(a.address.split("%")[0] == local for a in addrs):
            return name
    return None


def port_info(interface: str, ipv6: bool = False) -> PortInfo | None:
    st = psutil.net_if_stats().get(interface)
    if st is None:
        return None
    return PortInfo(interface, st.speed or None, st.mtu or None, ipv6)


# -- the light monitor --------------------------------------------------------------------------------

@dataclass
class ProbeResult:
    """A few echo probes: did the server answer at all, and what the probes saw."""

    reachable: bool
    probes: Probes | None = None
    error: str | None = None


async def probe_once(host: str, port: int, token: str | None = None, count: int = 10, interval: float = 0.1,
                     timeout: float = 5.0, size: int = 0) -> ProbeResult:
    """Open a `probe` (so a token server echoes to this address), send `count` echoes of `size` bytes (0: as
    short as they go), wait for them."""
    auth = f" token={token}" if token else ""
    seconds = count * interval + timeout + 2
    try:
        sock, _, _ = await request(host, port, f"EEST/1 probe {seconds:g}{auth}", timeout, "probe request")
    except MeasureError as e:
        return ProbeResult(reachable=False, error=str(e))
    prober = Prober(host, port, size)
    try:
        start = time.monotonic()
        await prober.run(interval, count)
        deadline = time.monotonic() + timeout
        while prober.outstanding(start) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        batch = prober.batch(start, time.monotonic())
    finally:
        prober.close()
        sock.close()
    if not batch.answered:
        why = "the server's address refuses UDP" if prober.refused else "UDP to the test server is blocked"
        return ProbeResult(True, None, f"the server accepted the probe but no echo came back ({why})")
    return ProbeResult(True, batch)
