"""Service probes: can the school reach the platforms its lessons run on, and how well?

For each endpoint `live_class.endpoints` lists (the national and provincial education platforms, the city
cloud, the live-class servers) and nothing else:

- `url`: one GET, every stage timed, as Prometheus's blackbox_exporter times its HTTP probe (resolve,
  connect, tls, then the wait for the first byte): the name is resolved (against `live_class.resolver`
  when one is configured, else the system's resolver), a TCP connection opened to the first address, TLS
  negotiated and the certificate checked (chain and host name; its expiry is read even when it has
  expired), the request sent and the answer's status line and headers read. Redirects are not followed:
  only the configured URL is ever requested, and a 3xx answer is the service answering. The body is not read.
- `echo`: the live-class server's eduedge test server (cloud/speedtest_server.py) answers a burst of UDP
  echoes shaped like a video stream (`live_class.video_probe`: 1200-byte datagrams, 100 a second, 3 s),
  sent and timed by the broadband collector's prober (collectors/broadband/probe.py): median RTT, RFC 3550
  jitter and loss of the burst. Like SmokePing, every round is a burst of many probes summarised by its
  median and loss, not one ping.

A stage that fails ends the URL's check with that stage named and the reason in words; the echo burst is
tried even when the URL failed (a live-class server's media path matters more than its web page).

Libraries do the protocols, and time them:
- DNS: dnspython writes the question, reads the answer (stray datagrams passed over, a truncated answer
  asked again over TCP) and times each question's round trip; `service.dns_ms` is the sum of those round
  trips (A, then AAAA when the name has no IPv4 address).
- HTTP and TLS: httpcore (the transport under httpx), one request on one connection, timed by its trace
  events: connect = `connection.connect_tcp`, tls = `connection.start_tls` (handshake and certificate
  checks), ttfb = `http11.receive_response_headers` (request sent to the answer's head read). Chosen over
  pycurl's CURLINFO_* timers because (1) it runs on the agent's asyncio loop, where every endpoint of a round
  is probed at once, not one blocked thread per probe; (2) TLS is Python's `ssl` with our own SSLContext:
  the same trust store and `ca_file`, the same verification and the same words for a failure ("certificate
  has expired", "Hostname mismatch", "unable to get local issuer certificate") that technicians read and
  the tests check, and the certificate at hand to read its expiry - curl brings its own TLS build, CA path
  and messages; (3) its events are the probe's stages one to one, while curl's times are cumulative from
  its own name lookup, which here is dnspython's against `live_class.resolver`; (4) it is pure Python
  (with h11, anyio and idna about 3 MB installed) where pycurl is a C extension whose wheels bundle libcurl
  and its TLS library, and which is built from source (libcurl headers, a compiler) on a box without one.
  Not httpx itself: its extra layer (redirects, cookies, proxies from the environment, default headers) is
  what a probe of one exact request must turn off. IPv6 works the same (an address such as ::1 is connected
  to as given). The price, measured on loopback against the hand-timed sockets this replaced (medians of 30
  probes each): connect +0.3 ms and ttfb +0.15 ms of client-side work (anyio's connect task, h11's parse),
  tls -0.5 ms; against platforms tens of milliseconds away that is within their jitter.

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
| service.ttfb_ms          | ms      | request sent to the answer's head (status line and headers) read      |
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
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import httpcore
from cryptography import x509

from eduedge.collectors.broadband.probe import parse_server, probe_once
from eduedge.collectors.broadband.result import Probes
from eduedge.collectors.service_probes_config import LiveClassConfig, LiveClassEndpoint
from eduedge.core.netaddr import split_host_port
from eduedge.core.samples import Sample
from eduedge.core.secrets import SecretError

STAGES = ("dns", "connect", "tls", "http", "udp")
ECHO_WAIT_S = 3.0            # the longest wait for the echo burst's request and its last answers


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

_RCODES = {dns.rcode.FORMERR: "the resolver could not read the question (FORMERR)",
           dns.rcode.SERVFAIL: "the resolver failed (SERVFAIL)",
           dns.rcode.NXDOMAIN: "the name does not exist (NXDOMAIN)",
           dns.rcode.NOTIMP: "the resolver does not do that (NOTIMP)",
           dns.rcode.REFUSED: "the resolver refused to answer (REFUSED)"}


async def _ask(resolver: tuple[str, int], name: str, rdtype: dns.rdatatype.RdataType) -> tuple[int, list[str], float]:
    """(RCODE, the A and AAAA addresses, the round trip in seconds) of `resolver`'s answer to a recursive
    question for `name`.

    dnspython writes the question, reads the answer and times the round trip (question sent to answer
    received, by its own clock): a datagram that is not the answer to this question (another source, another
    id, not DNS) is passed over and the wait goes on; a truncated answer is asked again over TCP, and both
    round trips count. No deadline of its own: the caller's bounds the whole lookup."""
    query = dns.message.make_query(name, rdtype)
    where, port = resolver
    answer = await dns.asyncquery.udp(query, where, port=port, ignore_unexpected=True, ignore_errors=True)
    rtt = answer.time
    if answer.flags & dns.flags.TC:
        answer = await dns.asyncquery.tcp(query, where, port=port)
        rtt += answer.time
    addresses = [rd.address for rrset in answer.answer if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
                 for rd in rrset]
    return answer.rcode(), addresses, rtt


async def resolve(host: str, port: int, resolver: tuple[str, int] | None, timeout: float) -> tuple[list[str], float]:
    """The addresses of `host` and the milliseconds the lookup took; raises StageError("dns", ...).

    Against a configured resolver the time is the round trips of the questions asked (A, then AAAA), as
    dnspython measures them; against the system's, the call to getaddrinfo."""
    if resolver is None:
        t0 = time.perf_counter()
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
    rtt = 0.0
    try:
        async with asyncio.timeout(timeout):
            for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):     # AAAA only when the name has no IPv4 address
                rcode, addresses, seconds = await _ask(resolver, host, rdtype)
                rtt += seconds
                if rcode:
                    raise StageError("dns", f"{host}: {_RCODES.get(rcode, dns.rcode.to_text(rcode))} at {where}")
                if addresses:
                    break
    except TimeoutError:
        raise StageError("dns", f"no answer from {where} for {host} within {_s(timeout)} s") from None
    except dns.exception.DNSException as e:
        raise StageError("dns", f"{where}: {e} (asking for {host})") from None
    except OSError as e:
        raise StageError("dns", f"{where}: {e.strerror or e} (asking for {host})") from None
    if not addresses:
        raise StageError("dns", f"{host} has no address (no A or AAAA record) at {where}")
    return addresses, rtt * 1000


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


class _Stages:
    """httpcore's trace events, timed as they come: when each step of the request started and ended."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.tls_stream: Any = None

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        self.at[event] = time.perf_counter()
        if event == f"{_TLS}.complete":
            self.tls_stream = info["return_value"]

    def ssl_object(self) -> ssl.SSLObject | None:
        return None if self.tls_stream is None else self.tls_stream.get_extra_info("ssl_object")

    def ms(self, step: str) -> float | None:
        """Milliseconds from `step`.started to `step`.complete, None unless it completed."""
        start, end = self.at.get(f"{step}.started"), self.at.get(f"{step}.complete")
        return None if start is None or end is None else (end - start) * 1000

    def stage(self) -> str:
        """The probe's stage that was under way when the request stopped."""
        if f"{_CONNECT}.complete" not in self.at:
            return "connect"
        if f"{_TLS}.started" in self.at and f"{_TLS}.complete" not in self.at:
            return "tls"
        return "http"


_CONNECT, _TLS, _HEAD = "connection.connect_tcp", "connection.start_tls", "http11.receive_response_headers"


def _os_error(e: BaseException) -> OSError | None:
    """The operating system's error under httpcore's and anyio's wrappers."""
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _cause(e: BaseException, kind: type[BaseException]) -> Any:
    seen: BaseException | None = e
    while seen is not None and not isinstance(seen, kind):
        seen = seen.__cause__ or seen.__context__
    return seen


def _cert_expiry(ssl_object: ssl.SSLObject | ssl.SSLSocket | None, now: float) -> tuple[float, str] | None:
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        return None
    not_after = x509.load_der_x509_certificate(der).not_valid_after_utc
    return (not_after.timestamp() - now) / 86400, not_after.date().isoformat()


async def _expired_cert(address: str, port: int, host: str, deadline: _Deadline,
                        now: float) -> tuple[float, str] | None:
    """The expiry of a certificate that failed its checks: a second handshake that checks nothing, to read it."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(address, port, ssl=ctx, server_hostname=host,
                                    ssl_handshake_timeout=deadline.left()), deadline.left())
        try:
            return _cert_expiry(writer.get_extra_info("ssl_object"), now)
        finally:
            writer.close()
    return None


def _tls_context(ep: LiveClassEndpoint) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ep.ca_file) if ep.ca_file else None)


def _failed(stage: str, e: Exception, host: str, address: str, port: int, timeout: float) -> StageError:
    """The words for a request that stopped in `stage` with `e`."""
    if stage == "connect":
        if isinstance(e, TimeoutError):
            return StageError("connect", f"no answer from {address} port {port} within {timeout:g} s")
        os_error = _os_error(e)
        if isinstance(os_error, ConnectionRefusedError):
            return StageError("connect", f"{address} refused the connection: nothing listens on port {port}")
        reason = os.strerror(os_error.errno).lower() if os_error is not None and os_error.errno else str(e)
        return StageError("connect", f"cannot reach {address} port {port}: {reason}")
    if stage == "tls":
        if isinstance(e, TimeoutError):
            return StageError("tls", f"the TLS handshake with {host} did not finish within {timeout:g} s")
        cause = _cause(e, ssl.SSLError) or _cause(e, OSError) or e
        return StageError("tls", f"the TLS handshake with {host} failed: {getattr(cause, 'reason', None) or cause}")
    if isinstance(e, TimeoutError):
        return StageError("http", f"no answer from {host} within {timeout:g} s of the request")
    if isinstance(e, httpcore.RemoteProtocolError):
        if "without sending a response" in str(e):
            return StageError("http", f"{host} closed the connection without answering")
        return StageError("http", f"the answer of {host} is not HTTP: {e}")
    return StageError("http", f"the connection to {host} failed while waiting for the answer: {e}")


def _timed(result: ServiceProbe, stages: _Stages) -> None:
    """What the stages that completed took, and the certificate the TLS handshake brought."""
    result.connect_ms, result.tls_ms, result.ttfb_ms = stages.ms(_CONNECT), stages.ms(_TLS), stages.ms(_HEAD)
    expiry = _cert_expiry(stages.ssl_object(), time.time())
    if expiry is not None:
        result.cert_days, result.cert_expires = expiry


async def _http(ep: LiveClassEndpoint, result: ServiceProbe, resolver: tuple[str, int] | None) -> None:
    """One GET of the endpoint's URL by httpcore, to the address the lookup found, each stage timed by httpcore's
    trace events; the answer's status and the certificate are read, the body is not."""
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
    address = result.address = addresses[0]
    hostport = url.netloc.rpartition("@")[2]
    target = (url.path or "/") + (f"?{url.query}" if url.query else "")
    stages = _Stages()
    request = httpcore.Request(
        "GET", httpcore.URL(scheme=url.scheme, host=address, port=port, target=target),
        headers=[("Host", hostport), ("User-Agent", "eduedge-probe"), ("Accept", "*/*"), ("Connection", "close")],
        extensions={"trace": stages, "sni_hostname": host})   # the certificate is checked for the name, not the address
    try:
        async with (httpcore.AsyncConnectionPool(ssl_context=_tls_context(ep) if tls else None, retries=0) as pool,
                    asyncio.timeout(deadline.left())):
            response = await pool.handle_async_request(request)
            await response.aclose()          # the body is not read
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol, ssl.SSLError, OSError) as e:
        stage = stages.stage()
        _timed(result, stages)
        verify = _cause(e, ssl.SSLCertVerificationError)
        if stage == "tls" and verify is not None:
            expiry = await _expired_cert(address, port, host, deadline, time.time())
            if expiry is not None:
                result.cert_days, result.cert_expires = expiry
            reason = verify.verify_message or verify.reason or str(verify)
            if result.cert_days is not None and result.cert_days < 0:
                reason += f" (expired {result.cert_expires}, {-result.cert_days:.1f} days ago)"
            raise StageError("tls", f"the certificate of {host} does not check out: {reason}") from None
        raise _failed(stage, e, host, address, port, ep.timeout) from None
    _timed(result, stages)
    result.http_status = response.status
    if response.status >= 400:
        reason = response.extensions.get("reason_phrase", b"").decode("latin-1")
        raise StageError("http", f"{host} answered {response.status} {reason}".rstrip())


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


async def probe_all(cfg: LiveClassConfig, on_done: Callable[[ServiceProbe], None] | None = None) -> list[ServiceProbe]:
    """One round of every configured endpoint, all at once; `on_done` hears of each probe as it ends."""
    async def one(ep: LiveClassEndpoint) -> ServiceProbe:
        result = await probe_endpoint(ep, cfg)
        if on_done is not None:
            on_done(result)
        return result

    return list(await asyncio.gather(*(one(ep) for ep in cfg.endpoints)))


def expires_in_words(days: float, now: float | None = None) -> str:
    """`expires 2025-04-01 (in 21 days)` / `expired 2025-03-01 (9 days ago)`.

    >>> expires_in_words(21.0, 1741651200.0)
    'expires 2025-04-01 (in 21 days)'
    """
    now = time.time() if now is None else now
    when = datetime.fromtimestamp(now + days * 86400, UTC).date().isoformat()
    return f"expires {when} (in {days:.0f} days)" if days >= 0 else f"expired {when} ({-days:.0f} days ago)"
