"""Service probes: can the school reach the platforms its lessons run on, and how well?

For each endpoint `live_class.endpoints` lists (the national and provincial education platforms, the city
cloud, the live-class servers) and nothing else:

- `url`: one GET, every stage timed, as Prometheus's blackbox_exporter times its HTTP probe (resolve,
  connect, tls, then the wait for the first byte): the name is resolved (against `live_class.resolver`
  when one is configured, else the system's resolver), a TCP connection opened to the first address, TLS
  negotiated and the certificate checked (chain and host name; its expiry is read even when it has
  expired), the request sent and the status line read. Redirects are not followed: only the configured URL
  is ever requested, and a 3xx answer is the service answering. The body is not read.
- `echo`: the live-class server's eduedge test server (cloud/speedtest_server.py) answers a burst of UDP
  echoes shaped like a video stream (`live_class.video_probe`: 1200-byte datagrams, 100 a second, 3 s),
  sent and timed by the broadband engine's prober (collectors/broadband/engine.py): median RTT, RFC 3550
  jitter and loss of the burst. Like SmokePing, every round is a burst of many probes summarised by its
  median and loss, not one ping.

A stage that fails ends the URL's check with that stage named and the reason in words; the echo burst is
tried even when the URL failed (a live-class server's media path matters more than its web page).

Metrics (device = the endpoint's name; tag `role`: national-platform, provincial-platform, city-cloud,
live-class):

| metric                   | unit    | what                                                                  |
|--------------------------|---------|-----------------------------------------------------------------------|
| service.up               | bool    | 1 when every configured stage succeeded, else 0                       |
| service.failure          | text    | `stage: reason` of the first stage that failed (only when up is 0)   |
| service.dns_ms           | ms      | name resolution (absent for an address, or when it failed)            |
| service.connect_ms       | ms      | TCP handshake to the first address                                    |
| service.tls_ms           | ms      | TLS handshake, certificate checks included                            |
| service.cert_days        | d       | days until the server's certificate expires (negative: expired)       |
| service.http_status      | code    | status of the answer to the GET                                       |
| service.ttfb_ms          | ms      | request sent to first byte of the answer                              |
| service.udp_rtt_ms       | ms      | median round trip of the video-like echo burst                        |
| service.udp_jitter_ms    | ms      | RFC 3550 interarrival jitter of the burst                             |
| service.udp_loss_percent | percent | echoes of the burst not answered                                      |

>>> r = ServiceProbe("city-cloud", "city-cloud", 10.0, dns_ms=3.2, connect_ms=8.0, http_status=200)
>>> [(s.metric, s.value) for s in r.samples()][:3]
[('service.up', 1), ('service.dns_ms', 3.2), ('service.connect_ms', 8.0)]
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import secrets
import socket
import ssl
import struct
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from eduedge.collectors.broadband.engine import parse_server, probe_once
from eduedge.collectors.broadband.result import Probes
from eduedge.collectors.service_probes_config import LiveClassConfig, LiveClassEndpoint
from eduedge.core.netaddr import split_host_port
from eduedge.core.samples import Sample
from eduedge.core.secrets import SecretError

STAGES = ("dns", "connect", "tls", "http", "udp")
ECHO_WAIT_S = 3.0            # the longest wait for the echo burst's request and its last answers
_MAX_STATUS_LINE = 8192


class StageError(Exception):
    """A stage of a probe that failed: `stage` is one of STAGES, the message says why in words."""

    def __init__(self, stage: str, reason: str):
        super().__init__(f"{stage}: {reason}")
        self.stage, self.reason = stage, reason


@dataclass
class ServiceProbe:
    """One round of one endpoint: what each stage took, and the first stage that failed."""

    endpoint: str
    role: str
    time: float
    target: str = ""                       # the URL, and/or the echo server
    address: str | None = None             # the address connected to
    dns_ms: float | None = None
    connect_ms: float | None = None
    tls_ms: float | None = None
    cert_days: float | None = None
    cert_expires: str | None = None        # ISO date the certificate expires
    http_status: int | None = None
    ttfb_ms: float | None = None
    udp: Probes | None = None
    failures: list[StageError] = field(default_factory=list)

    @property
    def up(self) -> bool:
        return not self.failures

    @property
    def failure(self) -> str | None:
        return str(self.failures[0]) if self.failures else None

    def samples(self) -> list[Sample]:
        """The samples of the table above."""
        tags = {"role": self.role}
        out = [Sample(self.time, self.endpoint, "service.up", 1 if self.up else 0, "bool", tags)]
        if self.failure:
            out.append(Sample(self.time, self.endpoint, "service.failure", self.failure, "text", tags))
        for metric, value, unit in (("service.dns_ms", self.dns_ms, "ms"),
                                    ("service.connect_ms", self.connect_ms, "ms"),
                                    ("service.tls_ms", self.tls_ms, "ms"), ("service.cert_days", self.cert_days, "d"),
                                    ("service.http_status", self.http_status, "code"),
                                    ("service.ttfb_ms", self.ttfb_ms, "ms")):
            if value is not None:
                out.append(Sample(self.time, self.endpoint, metric, round(value, 3), unit, tags))
        u = self.udp
        if u is not None and u.sent:
            for metric, value, unit in (("service.udp_rtt_ms", u.median_ms, "ms"),
                                        ("service.udp_jitter_ms", u.jitter_ms, "ms"),
                                        ("service.udp_loss_percent", u.loss_percent, "percent")):
                if value is not None:
                    out.append(Sample(self.time, self.endpoint, metric, round(value, 3), unit, tags))
        return out

    def to_dict(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 3)
        return {"endpoint": self.endpoint, "role": self.role, "time": self.time, "target": self.target,
                "address": self.address, "up": self.up, "dns_ms": r(self.dns_ms), "connect_ms": r(self.connect_ms),
                "tls_ms": r(self.tls_ms), "cert_days": r(self.cert_days), "cert_expires": self.cert_expires,
                "http_status": self.http_status, "ttfb_ms": r(self.ttfb_ms),
                "udp": self.udp.summary() if self.udp is not None else None,
                "failures": [{"stage": f.stage, "reason": f.reason} for f in self.failures]}


# -- DNS ----------------------------------------------------------------------------------------------

_RCODES = {1: "the resolver could not read the question (FORMERR)", 2: "the resolver failed (SERVFAIL)",
           3: "the name does not exist (NXDOMAIN)", 4: "the resolver does not do that (NOTIMP)",
           5: "the resolver refused to answer (REFUSED)"}


def dns_query(name: str, qtype: int, qid: int) -> bytes:
    """A recursive DNS question for `name` (type 1 = A, 28 = AAAA), RFC 1035 4.1.

    >>> dns_query("a.b", 1, 7).hex()
    '000701000001000000000000016101620000010001'
    """
    labels = b"".join(bytes([len(p)]) + p for p in (x.encode("idna") for x in name.rstrip(".").split(".")))
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", qtype, 1)


def _skip_name(msg: bytes, i: int) -> int:
    while True:
        if i >= len(msg):
            raise ValueError("a name runs past the end of the message")
        n = msg[i]
        if n & 0xC0 == 0xC0:            # a compression pointer ends the name
            return i + 2
        if n == 0:
            return i + 1
        i += 1 + n


def dns_answer(msg: bytes, qid: int) -> tuple[int, list[str]]:
    """(RCODE, the A and AAAA addresses) of an answer to question `qid`; ValueError if it is not one."""
    if len(msg) < 12:
        raise ValueError("shorter than a DNS header")
    rid, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    if rid != qid or not flags & 0x8000:
        raise ValueError("not the answer to our question")
    if flags & 0x0200:
        raise ValueError("the answer was truncated (TC)")
    i = 12
    for _ in range(qd):
        i = _skip_name(msg, i) + 4
    out = []
    for _ in range(an):
        i = _skip_name(msg, i)
        rtype, _cls, _ttl, size = struct.unpack("!HHIH", msg[i:i + 10])
        data = msg[i + 10:i + 10 + size]
        if rtype == 1 and size == 4:
            out.append(socket.inet_ntop(socket.AF_INET, data))
        elif rtype == 28 and size == 16:
            out.append(socket.inet_ntop(socket.AF_INET6, data))
        i += 10 + size
    return flags & 0x000F, out


class _Answer(asyncio.DatagramProtocol):
    def __init__(self, qid: int):
        self.qid = qid
        self.done: asyncio.Future[tuple[int, list[str]]] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        with contextlib.suppress(ValueError):       # a stray datagram is not the answer: keep waiting
            answer = dns_answer(data, self.qid)
            if not self.done.done():
                self.done.set_result(answer)

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


async def _ask(resolver: tuple[str, int], name: str, qtype: int, timeout: float) -> tuple[int, list[str]]:
    loop = asyncio.get_running_loop()
    qid = secrets.randbelow(1 << 16)
    transport, proto = await loop.create_datagram_endpoint(lambda: _Answer(qid), remote_addr=resolver)
    try:
        transport.sendto(dns_query(name, qtype, qid))
        return await asyncio.wait_for(proto.done, timeout)
    finally:
        transport.close()


async def resolve(host: str, port: int, resolver: tuple[str, int] | None, timeout: float) -> tuple[list[str], float]:
    """The addresses of `host` and the milliseconds the lookup took; raises StageError("dns", ...)."""
    t0 = time.perf_counter()
    if resolver is None:
        try:
            infos = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM),
                                           timeout)
        except TimeoutError:
            raise StageError("dns", f"the system resolver did not answer for {host} within {_s(timeout)} s") from None
        except socket.gaierror as e:
            raise StageError("dns", f"cannot resolve {host}: {e.strerror}") from None
        return [i[4][0] for i in infos], (time.perf_counter() - t0) * 1000
    where = f"resolver {resolver[0]}:{resolver[1]}"
    addresses: list[str] = []
    try:
        for qtype in (1, 28):                       # A, then AAAA when the name has no IPv4 address
            rcode, addresses = await _ask(resolver, host, qtype, max(0.05, timeout - (time.perf_counter() - t0)))
            if rcode:
                raise StageError("dns", f"{host}: {_RCODES.get(rcode, f'RCODE {rcode}')} at {where}")
            if addresses:
                break
    except TimeoutError:
        raise StageError("dns", f"no answer from {where} for {host} within {_s(timeout)} s") from None
    except OSError as e:
        raise StageError("dns", f"{where}: {e.strerror or e} (asking for {host})") from None
    if not addresses:
        raise StageError("dns", f"{host} has no address (no A or AAAA record) at {where}")
    return addresses, (time.perf_counter() - t0) * 1000


def _s(seconds: float) -> str:
    """Seconds as configured (what is left of a deadline reads as the deadline): `0.5`, `10`."""
    return f"{round(seconds, 1):g}"


def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# -- TCP, TLS, HTTP -----------------------------------------------------------------------------------

class _Deadline:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.01, self.end - time.monotonic())


async def _connect(address: str, port: int, deadline: _Deadline) -> tuple[socket.socket, float]:
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    t0 = time.perf_counter()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (address, port)), deadline.left())
    except TimeoutError:
        sock.close()
        raise StageError("connect", f"no answer from {address} port {port} within {deadline.seconds:g} s") from None
    except ConnectionRefusedError:
        sock.close()
        raise StageError("connect", f"{address} refused the connection: nothing listens on port {port}") from None
    except OSError as e:
        sock.close()
        reason = os.strerror(e.errno).lower() if e.errno else str(e)
        raise StageError("connect", f"cannot reach {address} port {port}: {reason}") from None
    return sock, (time.perf_counter() - t0) * 1000


def _cert_expiry(writer: asyncio.StreamWriter, now: float) -> tuple[float, str] | None:
    obj = writer.get_extra_info("ssl_object")
    der = obj.getpeercert(binary_form=True) if obj is not None else None
    if not der:
        return None
    not_after = x509.load_der_x509_certificate(der).not_valid_after_utc
    return (not_after.timestamp() - now) / 86400, not_after.date().isoformat()


async def _expired_cert(address: str, port: int, host: str, deadline: _Deadline,
                        now: float) -> tuple[float, str] | None:
    """The expiry of a certificate that failed its checks: a second handshake that checks nothing, to read it."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with contextlib.suppress(StageError, OSError, TimeoutError, ssl.SSLError):
        sock, _ = await _connect(address, port, deadline)
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(sock=sock, ssl=ctx, server_hostname=host, ssl_handshake_timeout=deadline.left()),
            deadline.left())
        try:
            return _cert_expiry(writer, now)
        finally:
            writer.close()
    return None


def _tls_context(ep: LiveClassEndpoint) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ep.ca_file) if ep.ca_file else None)


async def _http(ep: LiveClassEndpoint, result: ServiceProbe, resolver: tuple[str, int] | None) -> None:
    assert ep.url is not None
    url = urlsplit(ep.url)
    tls = url.scheme == "https"
    host = url.hostname or ""
    port = url.port or (443 if tls else 80)
    deadline = _Deadline(ep.timeout)
    if _literal(host):
        addresses = [host]
    else:
        addresses, result.dns_ms = await resolve(host, port, resolver, deadline.left())
    result.address = addresses[0]
    sock, result.connect_ms = await _connect(addresses[0], port, deadline)
    t0 = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(sock=sock, ssl=_tls_context(ep) if tls else None,
                                    server_hostname=host if tls else None,
                                    ssl_handshake_timeout=deadline.left() if tls else None),
            deadline.left())
    except ssl.SSLCertVerificationError as e:
        sock.close()
        expiry = await _expired_cert(addresses[0], port, host, deadline, time.time())
        if expiry is not None:
            result.cert_days, result.cert_expires = expiry
        reason = e.verify_message or e.reason or str(e)
        if result.cert_days is not None and result.cert_days < 0:
            reason += f" (expired {result.cert_expires}, {-result.cert_days:.1f} days ago)"
        raise StageError("tls", f"the certificate of {host} does not check out: {reason}") from None
    except (ssl.SSLError, ConnectionError) as e:
        sock.close()
        raise StageError("tls", f"the TLS handshake with {host} failed: {getattr(e, 'reason', None) or e}") from None
    except TimeoutError:
        sock.close()
        raise StageError("tls", f"the TLS handshake with {host} did not finish within {ep.timeout:g} s") from None
    try:
        if tls:
            result.tls_ms = (time.perf_counter() - t0) * 1000
            expiry = _cert_expiry(writer, time.time())
            if expiry is not None:
                result.cert_days, result.cert_expires = expiry
        hostport = url.netloc.rpartition("@")[2]
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {hostport}\r\nUser-Agent: eduedge-probe\r\nAccept: */*\r\n"
                     "Connection: close\r\n\r\n".encode())
        try:
            await asyncio.wait_for(writer.drain(), deadline.left())
            t1 = time.perf_counter()
            first = await asyncio.wait_for(reader.read(1), deadline.left())
            if not first:
                raise StageError("http", f"{host} closed the connection without answering")
            result.ttfb_ms = (time.perf_counter() - t1) * 1000
            line = first + await asyncio.wait_for(reader.readline(), deadline.left())
        except TimeoutError:
            raise StageError("http", f"no answer from {host} within {ep.timeout:g} s of the request") from None
        except (ConnectionError, ssl.SSLError) as e:
            raise StageError("http", f"the connection to {host} failed while waiting for the answer: {e}") from None
        words = line[:_MAX_STATUS_LINE].decode("latin-1").split(None, 2)
        if len(words) < 2 or not words[0].startswith("HTTP/") or not words[1].isdigit():
            raise StageError("http", f"the answer of {host} is not HTTP: {line[:40]!r}")
        result.http_status = int(words[1])
        if result.http_status >= 400:
            status = " ".join(words[1:]).strip()
            raise StageError("http", f"{host} answered {status}")
    finally:
        writer.close()


async def _echo(ep: LiveClassEndpoint, cfg: LiveClassConfig, result: ServiceProbe,
                resolver: tuple[str, int] | None) -> None:
    assert ep.echo is not None
    host, port = parse_server(ep.echo)
    if _literal(host):
        address = host
    elif result.address is not None and ep.url is not None and urlsplit(ep.url).hostname == host:
        address = result.address            # the URL's lookup already found it
    else:
        addresses, ms = await resolve(host, port, resolver, ep.timeout)
        address = addresses[0]
        if result.dns_ms is None:
            result.dns_ms = ms
    try:
        token = ep.token.read(f"live_class.endpoints {ep.name} token") if ep.token is not None else None
    except SecretError as e:
        raise StageError("udp", str(e)) from None
    v = cfg.video_probe
    count = max(1, round(v.packets_per_second * v.seconds))
    got = await probe_once(address, port, token, count, 1.0 / v.packets_per_second, min(ep.timeout, ECHO_WAIT_S),
                           v.packet_bytes)
    if got.probes is None:
        raise StageError("udp", got.error or "no echo came back")
    result.udp = got.probes


async def probe_endpoint(ep: LiveClassEndpoint, cfg: LiveClassConfig) -> ServiceProbe:
    """One round of one configured endpoint: the URL's stages, then the echo burst."""
    resolver = split_host_port(cfg.resolver, 53) if cfg.resolver else None
    target = " and ".join([*([ep.url] if ep.url else []), *([f"echo {ep.echo}"] if ep.echo else [])])
    result = ServiceProbe(ep.name, ep.role, time.time(), target)
    if ep.url is not None:
        try:
            await _http(ep, result, resolver)
        except StageError as e:
            result.failures.append(e)
    if ep.echo is not None:
        try:
            await _echo(ep, cfg, result, resolver)
        except StageError as e:
            result.failures.append(e)
    return result


async def probe_all(cfg: LiveClassConfig) -> list[ServiceProbe]:
    """One round of every configured endpoint, all at once."""
    return list(await asyncio.gather(*(probe_endpoint(ep, cfg) for ep in cfg.endpoints)))


def expires_in_words(days: float, now: float | None = None) -> str:
    """`expires 2025-04-01 (in 21 days)` / `expired 2025-03-01 (9 days ago)`.

    >>> expires_in_words(21.0, 1741651200.0)
    'expires 2025-04-01 (in 21 days)'
    """
    now = time.time() if now is None else now
    when = datetime.fromtimestamp(now + days * 86400, UTC).date().isoformat()
    return f"expires {when} (in {days:.0f} days)" if days >= 0 else f"expired {when} ({-days:.0f} days ago)"
