"""Is each classroom device up: ICMP echo with loss and RTT, and TCP connect where ICMP is blocked.

Targets are the devices the configuration lists (`reachability.targets`, and `snmp.devices` unless
`reachability.snmp_devices: false`) and the discovered devices of `reachability.discovered_classes`
(projectors, panels, printers, UPSes, cameras, NVRs - not students' tablets). A target that is not listed
must lie inside `discovery.subnets` (`Scope.check_host`), or it is refused with `OutOfScope`.

ICMP uses one icmplib socket for all targets, raw (root or CAP_NET_RAW) or else the unprivileged datagram
socket (which needs `net.ipv4.ping_group_range` to include the agent's group); each round sends one echo
request to every target, and each reply is timed by the kernel's receive timestamp, so that a round trip
is the network's, not the time the agent took to get to the reply. A target
that answers no echo is then tried with TCP connect on its own `tcp_port`, else on `reachability.tcp_ports`
in turn: a completed handshake or a refusal (RST) both prove the device is up, and time its round trip.

| sample              | unit    | tags             | value                                        |
|---------------------|---------|------------------|----------------------------------------------|
| device.reachable    | bool    | method, + target | 1 answered, 0 not                            |
| device.rtt_ms       | ms      | method, + target | mean round trip of the answered probes       |
| device.loss_percent | percent | method, + target | probes not answered                          |

>>> r = Reach("proj-a101", "198.18.10.11", True, "icmp", 0.21, 0.0, 3, 3)
>>> [(s.metric, s.value) for s in r.samples(1.0)]
[('device.reachable', 1), ('device.rtt_ms', 0.21), ('device.loss_percent', 0.0)]
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from eduedge.collectors.discovery.discovery import OutOfScope, Scope
from eduedge.core.samples import Sample


@dataclass(frozen=True)
class Target:
    name: str                       # the inventory name (configured, or `mac-…` for a discovered device)
    address: str
    tcp_port: int | None = None
    listed: bool = False            # named in the configuration: probed even outside discovery.subnets
    tags: tuple[tuple[str, str], ...] = ()


@dataclass
class Reach:
    name: str
    address: str
    reachable: bool
    method: str | None              # icmp, tcp, or None when nothing answered
    rtt_ms: float | None
    loss_percent: float
    sent: int
    received: int
    error: str | None = None
    port: int | None = None         # the TCP port that answered
    tags: dict[str, str] = field(default_factory=dict)

    def samples(self, now: float) -> list[Sample]:
        tags = {**self.tags, "method": self.method or "icmp"}
        out = [Sample(now, self.name, "device.reachable", int(self.reachable), "bool", tags)]
        if self.rtt_ms is not None:
            out.append(Sample(now, self.name, "device.rtt_ms", self.rtt_ms, "ms", tags))
        out.append(Sample(now, self.name, "device.loss_percent", self.loss_percent, "percent", tags))
        return out

    def summary(self) -> str:
        if not self.reachable:
            return f"down ({self.error})" if self.error else "down"
        how = "ping" if self.method == "icmp" else f"tcp/{self.port}"
        loss = f", {self.loss_percent:g}% loss" if self.loss_percent else ""
        return f"up, {how} {self.rtt_ms:.1f} ms{loss}"


def check_targets(targets: Sequence[Target], scope: Scope) -> None:
    """`OutOfScope` for the first target that is neither listed nor inside the configured subnets."""
    for t in targets:
        if not t.listed:
            scope.check_host(t.address)


# The kernel's receive time of each reply (Linux's generic SO_TIMESTAMPNS, as on x86 and ARM; Python does not
# name it): a reply's round trip is then the kernel's arrival time minus the send time, whatever the event loop
# was doing when the reply arrived. Timed in Python after the loop gets to it (icmplib's `async_multiping`, a
# task and a socket per host), 26 loopback hosts that answer in 0.05 ms measured 10-40 ms.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
BURST = 64                      # echo requests sent back to back before the replies are read
ROUND_INTERVAL_S = 0.2          # between a host's echo requests


@dataclass
class _Echoes:
    sent: dict[tuple[str, int], float] = field(default_factory=dict)       # (address, sequence) -> send time
    rtts: dict[str, list[float]] = field(default_factory=dict)             # address -> round trips (ms)

    def answer(self, source: str, sequence: int, arrived: float, timeout: float) -> None:
        t0 = self.sent.pop((source, sequence), None)
        if t0 is not None and 0 <= arrived - t0 <= timeout:
            self.rtts.setdefault(source, []).append((arrived - t0) * 1000)


def _read_replies(raw: socket.socket, ident: int, privileged: bool, echoes: _Echoes, timeout: float) -> None:
    """Every echo reply waiting on the socket, timed by the kernel's receive stamp."""
    while True:
        try:
            data, ancdata, _flags, addr = raw.recvmsg(2048, socket.CMSG_SPACE(16))
        except (BlockingIOError, InterruptedError):
            return
        arrived = None
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
                sec, nsec = struct.unpack("@qq", payload[:16])
                arrived = sec + nsec / 1e9
        # a raw socket gets the IP header (and, on loopback, the requests themselves); a datagram socket
        # only the ICMP message, with the kernel's identifier
        icmp = data[(data[0] & 0x0F) * 4:] if privileged else data
        if len(icmp) < 8 or icmp[0] != 0:             # 0: echo reply
            continue
        reply_id, sequence = struct.unpack("!HH", icmp[4:8])
        if privileged and reply_id != ident:
            continue
        echoes.answer(addr[0], sequence, arrived if arrived is not None else time.time(), timeout)


async def _icmp(addresses: list[str], count: int, timeout: float) -> dict[str, tuple]:
    """(sent, received, mean RTT in ms or None) per address: one ICMP socket for all of them, `count` rounds
    of one echo request each, the replies timed by the kernel."""
    from icmplib import ICMPRequest, ICMPv4Socket
    from icmplib.exceptions import ICMPSocketError, SocketPermissionError
    from icmplib.utils import unique_identifier

    if not addresses:
        return {}
    try:
        sock = ICMPv4Socket(privileged=True)
    except SocketPermissionError:
        sock = ICMPv4Socket(privileged=False)
    loop = asyncio.get_running_loop()
    raw = sock.sock
    try:
        raw.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)      # a burst of replies at once
        raw.setblocking(False)
        ident = unique_identifier()
        echoes = _Echoes()
        sent = dict.fromkeys(addresses, 0)
        errors: dict[str, str] = {}
        loop.add_reader(raw.fileno(), _read_replies, raw, ident, sock.is_privileged, echoes, timeout)
        for seq in range(count):
            if seq:
                await asyncio.sleep(ROUND_INTERVAL_S)
            for i, address in enumerate(addresses):
                if address in errors:
                    continue
                request = ICMPRequest(address, ident, seq)
                try:
                    sock.send(request)
                except ICMPSocketError as e:
                    errors[address] = str(e)
                    continue
                echoes.sent[(address, seq)] = request.time
                sent[address] += 1
                if i % BURST == BURST - 1:
                    await asyncio.sleep(0)            # let the reader take the replies so far
        deadline = time.monotonic() + timeout
        while echoes.sent and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        loop.remove_reader(raw.fileno())
        _read_replies(raw, ident, sock.is_privileged, echoes, timeout)
    finally:
        sock.close()
    out = {}
    for address in addresses:
        got = echoes.rtts.get(address, [])
        out[address] = (sent[address] or count, len(got), sum(got) / len(got) if got else None)
    return out


async def _tcp_once(address: str, port: int, timeout: float) -> float | None:
    """Round trip of a TCP handshake (or of the RST that refuses it) in ms; None when nothing came back."""
    t0 = time.perf_counter()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout)
    except ConnectionRefusedError:
        return (time.perf_counter() - t0) * 1000
    except (OSError, TimeoutError):
        return None
    rtt = (time.perf_counter() - t0) * 1000
    writer.close()
    return rtt


async def _tcp(t: Target, ports: Sequence[int], count: int, timeout: float) -> Reach:
    for port in ([t.tcp_port] if t.tcp_port else list(ports)):
        first = await _tcp_once(t.address, port, timeout)
        if first is None:
            continue
        rtts = [first] + [r for r in [await _tcp_once(t.address, port, timeout) for _ in range(count - 1)]
                          if r is not None]
        return Reach(t.name, t.address, True, "tcp", round(sum(rtts) / len(rtts), 3),
                     round(100.0 * (count - len(rtts)) / count, 1), count, len(rtts), port=port, tags=dict(t.tags))
    tried = ", ".join(map(str, [t.tcp_port] if t.tcp_port else ports))
    return Reach(t.name, t.address, False, None, None, 100.0, count, 0,
                 error=f"no ICMP echo reply and no answer on TCP {tried}", tags=dict(t.tags))


async def _resolve(t: Target) -> str:
    try:
        return str(ipaddress.IPv4Address(t.address))
    except ValueError:
        infos = await asyncio.get_running_loop().getaddrinfo(t.address, None, family=socket.AF_INET)
        return str(infos[0][4][0])


async def probe(targets: Sequence[Target], scope: Scope, count: int = 3, timeout: float = 1.0,
                concurrency: int = 256, tcp_ports: Sequence[int] = (4352, 80, 443, 9100, 554)) -> list[Reach]:
    """Probe every target; one result each, in the order given. Raises `OutOfScope` before sending anything
    if a target is not allowed."""
    check_targets(targets, scope)
    resolved: dict[int, str] = {}
    failed: dict[int, str] = {}
    for i, t in enumerate(targets):
        try:
            resolved[i] = await _resolve(t)
        except OSError as e:
            failed[i] = f"cannot resolve {t.address}: {e.strerror or e}"
    for i, ip in resolved.items():
        if not targets[i].listed and not scope.allows(ip):
            raise OutOfScope(f"{targets[i].address} resolves to {ip}, outside the configured subnets")
    icmp_error = None
    try:
        icmp = await _icmp(sorted(set(resolved.values())), count, timeout)
    except Exception as e:      # icmplib's errors (no permission at all, a bad address) end no scan
        icmp, icmp_error = {}, f"ICMP unavailable: {type(e).__name__}: {e}"
    out: list[Reach | None] = [None] * len(targets)
    tcp_wanted: list[int] = []
    for i, t in enumerate(targets):
        if i in failed:
            out[i] = Reach(t.name, t.address, False, None, None, 100.0, 0, 0, error=failed[i], tags=dict(t.tags))
            continue
        sent, received, rtt = icmp.get(resolved[i], (count, 0, None))
        if received:
            out[i] = Reach(t.name, t.address, True, "icmp", round(rtt, 3), round(100.0 * (sent - received) / sent, 1),
                           sent, received, tags=dict(t.tags))
        else:
            tcp_wanted.append(i)
    sem = asyncio.Semaphore(concurrency)

    async def tcp(i: int) -> None:
        async with sem:
            t = targets[i]
            r = await _tcp(Target(t.name, resolved[i], t.tcp_port, t.listed, t.tags), tcp_ports, count, timeout)
            r.address = t.address
            if not r.reachable and icmp_error:
                r.error = f"{icmp_error}; {r.error}"
            out[i] = r

    await asyncio.gather(*(tcp(i) for i in tcp_wanted))
    return [r for r in out if r is not None]
