"""Service probes against real servers the tests start on loopback: an HTTPS server with certificates from
a CA the test makes (one valid for 30 days, one expired, one for another name), a DNS responder the probe
is pointed at (`live_class.resolver`), a port nothing listens on, a server slow to answer, and the project's
test server behind a relay that delays, alternates its delay and drops every 20th datagram - each result
with every stage timed, or the stage that failed and why."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from eduedge.cloud.speedtest_server import SpeedtestServer
from eduedge.collectors.service_probes import probe_endpoint
from eduedge.collectors.service_probes_config import LiveClassConfig

pytestmark = pytest.mark.integration

NAME = "live.edu.test"
ADDRESS = "127.0.0.1"
EDUEDGE = str(Path(sys.executable).with_name("eduedge"))


# -- a CA and its certificates ---------------------------------------------------------------------------

@dataclass
class Ca:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    path: Path

    def issue(self, tmp: Path, stem: str, days: float, names: list[str]) -> tuple[Path, Path]:
        """A server certificate for `names` (and 127.0.0.1) that expires in `days` (negative: expired)."""
        now = dt.datetime.now(dt.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
        sans.append(x509.IPAddress(ipaddress.ip_address(ADDRESS)))
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=90)).not_valid_after(now + dt.timedelta(days=days))
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                               critical=False)
                .sign(self.key, hashes.SHA256()))
        cert_path, key_path = tmp / f"{stem}.crt", tmp / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_path, key_path


def make_ca(tmp: Path) -> Ca:
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "eduedge test CA")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=365)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    path = tmp / "ca.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Ca(key, cert, path)


def self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    """A certificate for `name` (and 127.0.0.1) signed by its own key, as `openssl req -x509` makes one."""
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    sans = [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address(ADDRESS))]
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "self-signed.crt", tmp / "self-signed.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


# -- the peers -------------------------------------------------------------------------------------------

async def _http_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """GET / -> 200; /slow -> 200 after 0.6 s; /missing -> 404; /close -> closed unanswered; /icy -> a status
    line that is not HTTP's (SHOUTcast's)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ", 2)[1]
        if path == b"/slow":
            await asyncio.sleep(0.6)
        if path == b"/icy":
            writer.write(b"ICY 200 OK\r\nicy-name: radio\r\n\r\n")
        elif path != b"/close":
            status = b"404 Not Found" if path == b"/missing" else b"200 OK"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def _ssh_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """What an SSH server does: its banner first, and a complaint to a client that is not SSH."""
    try:
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n")
        await writer.drain()
        await reader.read(4096)
        writer.write(b"Invalid SSH identification string.\r\n")
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


def dns_reply(data: bytes, over_udp: bool) -> tuple[bytes | None, float]:
    """The answer to the question in `data` and how long to hold it back (None: no answer), written by hand
    so that the probe's DNS library is checked against bytes it did not write:
    NAME and other.edu.test are 127.0.0.1; v6.edu.test has only ::1 (AAAA); slow-dns.edu.test answers after
    0.2 s; big.edu.test is truncated over UDP and answered over TCP; empty.edu.test has no address;
    broken.edu.test fails (SERVFAIL); silent.edu.test gets no answer; anything else does not exist."""
    qid = struct.unpack("!H", data[:2])[0]
    i, labels = 12, []
    while data[i]:
        labels.append(data[i + 1:i + 1 + data[i]].decode())
        i += 1 + data[i]
    question = data[12:i + 5]
    qtype = struct.unpack("!H", data[i + 1:i + 3])[0]
    name = ".".join(labels)

    def reply(flags: int, *answers: bytes) -> bytes:
        return struct.pack("!HHHHHH", qid, flags, 1, len(answers), 0, 0) + question + b"".join(answers)

    a = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(ADDRESS)
    aaaa = struct.pack("!HHHIH", 0xC00C, 28, 1, 60, 16) + socket.inet_pton(socket.AF_INET6, "::1")
    if name == "silent.edu.test":
        return None, 0
    if name == "broken.edu.test":
        return reply(0x8182), 0
    if name == "empty.edu.test":
        return reply(0x8180), 0
    if name == "v6.edu.test":
        return reply(0x8180, *([aaaa] if qtype == 28 else [])), 0
    if name == "big.edu.test" and over_udp:
        return reply(0x8380), 0                                  # TC: too big for a datagram, ask over TCP
    if name in (NAME, "other.edu.test", "slow-dns.edu.test", "big.edu.test"):
        return reply(0x8180, *([a] if qtype == 1 else [])), 0.2 if name == "slow-dns.edu.test" else 0
    return reply(0x8183), 0


class DnsResponder(asyncio.DatagramProtocol):
    """dns_reply over UDP; before each answer, two datagrams that are not it: one not DNS, one for another id."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        answer, delay = dns_reply(data, over_udp=True)
        if answer is None:
            return
        stray = struct.pack("!H", (struct.unpack("!H", answer[:2])[0] + 1) & 0xFFFF) + answer[2:]
        for d in (b"not dns", stray):
            self.transport.sendto(d, addr)
        asyncio.get_running_loop().call_later(delay, self.transport.sendto, answer, addr)


async def _dns_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """dns_reply over TCP (RFC 1035 4.2.2: each message after its two-byte length)."""
    try:
        size = struct.unpack("!H", await reader.readexactly(2))[0]
        answer, _ = dns_reply(await reader.readexactly(size), over_udp=False)
        if answer is not None:
            writer.write(struct.pack("!H", len(answer)) + answer)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


class Relay:
    """The path to the live-class server: TCP piped through; each UDP datagram toward the server delayed 20 ms,
    its echo back 20 or 30 ms in turn (so round trips alternate 40 and 50 ms: RFC 3550 jitter near 10 ms),
    every 20th one toward the server dropped; the sizes it carried are kept."""

    def __init__(self, upstream: int):
        self.upstream = upstream
        self.sizes: list[int] = []
        self.seen = 0
        self.back = 0
        self.client: Any = None
        self.front_transport: asyncio.DatagramTransport

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self.tcp = await asyncio.start_server(self._pipe, ADDRESS, 0)
        port = self.tcp.sockets[0].getsockname()[1]
        self.front, _ = await loop.create_datagram_endpoint(lambda: _Front(self), local_addr=(ADDRESS, port))
        self.up, _ = await loop.create_datagram_endpoint(lambda: _Back(self), remote_addr=(ADDRESS, self.upstream))
        return port

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(ADDRESS, self.upstream)

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
            dst.close()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer), return_exceptions=True)

    def close(self) -> None:
        self.tcp.close()
        self.front.close()
        self.up.close()


class _Front(asyncio.DatagramProtocol):
    def __init__(self, relay: Relay):
        self.relay = relay

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.relay.front_transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        r = self.relay
        r.client, r.seen = addr, r.seen + 1
        r.sizes.append(len(data))
        if r.seen % 20 == 0:
            return
        asyncio.get_running_loop().call_later(0.020, r.up.sendto, data)


class _Back(asyncio.DatagramProtocol):
    def __init__(self, relay: Relay):
        self.relay = relay

    def datagram_received(self, data: bytes, addr: Any) -> None:
        r = self.relay
        r.back += 1
        delay = 0.020 if r.back % 2 else 0.030
        asyncio.get_running_loop().call_later(delay, r.front_transport.sendto, data, r.client)


@dataclass
class Peers:
    ca: Ca
    https: int = 0                  # certificate valid for 30 more days
    expired: int = 0                # expired 3 days ago
    wrong_name: int = 0             # valid, but for other.edu.test only
    plain: int = 0                  # plain HTTP
    plain6: int = 0                 # plain HTTP on ::1
    ssh: int = 0                    # an SSH server: neither TLS nor HTTP
    self_signed: int = 0            # a certificate that signed itself (self_signed_cert)
    self_signed_cert: Path | None = None
    closed: int = 0                 # nothing listens here
    dns: int = 0
    echo: int = 0                   # the test server behind the relay
    relay: Relay | None = None
    servers: list[Any] = field(default_factory=list)


@contextmanager
def peers(tmp: Path) -> Iterator[Peers]:
    ca = make_ca(tmp)
    p = Peers(ca)
    loop = asyncio.new_event_loop()

    def tls(days: float, names: list[str], stem: str) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*ca.issue(tmp, stem, days, names))
        return ctx

    async def start() -> None:
        for attr, ctx in (("https", tls(30, [NAME], "good")), ("expired", tls(-3, [NAME], "expired")),
                          ("wrong_name", tls(30, ["other.edu.test"], "other")), ("plain", None)):
            server = await asyncio.start_server(_http_handler, ADDRESS, 0, ssl=ctx)
            p.servers.append(server)
            setattr(p, attr, server.sockets[0].getsockname()[1])
        server = await asyncio.start_server(_ssh_handler, ADDRESS, 0)
        p.servers.append(server)
        p.ssh = server.sockets[0].getsockname()[1]
        server = await asyncio.start_server(_http_handler, "::1", 0)
        p.servers.append(server)
        p.plain6 = server.sockets[0].getsockname()[1]
        p.self_signed_cert, key = self_signed(tmp, NAME)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(p.self_signed_cert, key)
        server = await asyncio.start_server(_http_handler, ADDRESS, 0, ssl=ctx)
        p.servers.append(server)
        p.self_signed = server.sockets[0].getsockname()[1]
        for _ in range(20):     # DNS over UDP and TCP on one port number: a TCP port whose UDP twin is free too
            tcp = await asyncio.start_server(_dns_tcp, ADDRESS, 0)
            p.dns = tcp.sockets[0].getsockname()[1]
            try:
                transport, _ = await loop.create_datagram_endpoint(DnsResponder, local_addr=(ADDRESS, p.dns))
            except OSError:
                tcp.close()
                continue
            p.servers += [tcp, transport]
            break
        else:
            raise RuntimeError("no port number free for both UDP and TCP")
        test_server = SpeedtestServer(ADDRESS, 0)
        await test_server.start()
        p.servers.append(test_server)
        p.relay = Relay(test_server.port)
        p.echo = await p.relay.start()
        p.servers.append(p.relay)

    loop.run_until_complete(start())
    with socket.socket() as s:            # a port that was free a moment ago: nothing listens there now
        s.bind((ADDRESS, 0))
        p.closed = s.getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield p
    finally:
        def close_all() -> None:
            for s in p.servers:
                s.close()
        loop.call_soon_threadsafe(close_all)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.fixture(scope="module")
def net(tmp_path_factory) -> Iterator[Peers]:
    with peers(tmp_path_factory.mktemp("probes")) as p:
        yield p


def probe(net: Peers, resolver: bool = True, **endpoint: Any) -> Any:
    ep = {"name": "live-1", "role": "live-class", "ca_file": str(net.ca.path), "timeout": 2, **endpoint}
    cfg = LiveClassConfig.model_validate({"resolver": f"{ADDRESS}:{net.dns}" if resolver else None,
                                          "endpoints": [ep],
                                          "video_probe": {"packets_per_second": 100, "seconds": 2}})
    return asyncio.run(probe_endpoint(cfg.endpoints[0], cfg))


# -- every stage timed -------------------------------------------------------------------------------------

def test_every_stage_is_timed_against_an_https_server_with_the_schools_ca(net):
    r = probe(net, url=f"https://{NAME}:{net.https}/")
    assert r.up, r.failures
    assert r.address == ADDRESS and r.http_status == 200
    for ms in (r.dns_ms, r.connect_ms, r.tls_ms, r.ttfb_ms):
        assert ms is not None and 0 < ms < 1000
    assert 29.9 < r.cert_days < 30.01 and r.cert_expires == (dt.date.today() + dt.timedelta(days=30)).isoformat()
    metrics = {s.metric: s for s in r.samples()}
    assert set(metrics) == {"service.up", "service.dns_ms", "service.connect_ms", "service.tls_ms", "service.cert_days",
                            "service.http_status", "service.ttfb_ms"}
    assert metrics["service.up"].value == 1 and metrics["service.up"].device == "live-1"
    assert metrics["service.cert_days"].unit == "d" and metrics["service.up"].tags == {"role": "live-class"}


def test_plain_http_has_no_tls_stage_and_an_address_needs_no_lookup(net):
    r = probe(net, url=f"http://{ADDRESS}:{net.plain}/index")
    assert r.up and r.http_status == 200
    assert r.dns_ms is None and r.tls_ms is None and r.cert_days is None and r.connect_ms is not None


def test_the_system_resolver_is_used_when_none_is_configured(net):
    r = probe(net, resolver=False, url=f"http://localhost:{net.plain}/")
    assert r.up and r.dns_ms is not None and r.address in (ADDRESS, "::1")


# -- each failure with its stage ---------------------------------------------------------------------------

def test_an_expired_certificate_fails_the_tls_stage_and_says_since_when(net):
    r = probe(net, url=f"https://{NAME}:{net.expired}/")
    assert not r.up and [f.stage for f in r.failures] == ["tls"]
    assert "certificate has expired" in r.failure and "3.0 days ago" in r.failure
    assert -3.01 < r.cert_days < -2.99 and r.http_status is None and r.connect_ms is not None
    values = {s.metric: s.value for s in r.samples()}
    assert values["service.up"] == 0 and values["service.failure"].startswith("tls: the certificate of live.edu.test")
    assert values["service.cert_days"] < 0


def test_a_certificate_for_another_name_fails_the_tls_stage(net):
    r = probe(net, url=f"https://{NAME}:{net.wrong_name}/")
    assert [f.stage for f in r.failures] == ["tls"] and "Hostname mismatch" in r.failure
    assert r.cert_days is not None and r.cert_days > 29


def test_a_server_the_schools_ca_did_not_sign_fails_the_tls_stage(net):
    r = probe(net, url=f"https://{NAME}:{net.https}/", ca_file=None)
    assert [f.stage for f in r.failures] == ["tls"] and "unable to get local issuer certificate" in r.failure


def test_a_slow_first_byte_is_timed_and_past_the_timeout_fails_the_http_stage(net):
    slow = probe(net, url=f"https://{NAME}:{net.https}/slow")
    # the server waits 0.6 s after it has read the request, which it may read a moment after we sent it
    assert slow.up and 550 <= slow.ttfb_ms < 1500
    late = probe(net, url=f"https://{NAME}:{net.https}/slow", timeout=0.3)
    assert [f.stage for f in late.failures] == ["http"] and "no answer from live.edu.test within 0.3 s" in late.failure
    assert late.tls_ms is not None and late.ttfb_ms is None


def test_an_error_status_fails_the_http_stage_with_the_status(net):
    r = probe(net, url=f"https://{NAME}:{net.https}/missing")
    assert r.http_status == 404 and [f.stage for f in r.failures] == ["http"]
    assert r.failure == "http: live.edu.test answered 404 Not Found"


def test_a_name_that_does_not_resolve_fails_the_dns_stage(net):
    r = probe(net, url=f"https://nowhere.edu.test:{net.https}/")
    assert [f.stage for f in r.failures] == ["dns"] and r.connect_ms is None
    assert r.failure == f"dns: nowhere.edu.test: the name does not exist (NXDOMAIN) at resolver {ADDRESS}:{net.dns}"
    silent = probe(net, url=f"https://silent.edu.test:{net.https}/", timeout=0.5)
    assert silent.failure == (f"dns: no answer from resolver {ADDRESS}:{net.dns} for silent.edu.test within 0.5 s")


def test_a_refused_connection_fails_the_connect_stage(net):
    r = probe(net, url=f"http://{ADDRESS}:{net.closed}/")
    assert [f.stage for f in r.failures] == ["connect"]
    assert r.failure == f"connect: {ADDRESS} refused the connection: nothing listens on port {net.closed}"


def test_the_dns_time_is_the_round_trip_of_the_question(net):
    r = probe(net, url=f"http://slow-dns.edu.test:{net.plain}/")
    assert r.up and 195 <= r.dns_ms < 1000                       # the responder holds its answer back 0.2 s


def test_a_name_with_only_an_ipv6_address_is_asked_for_aaaa_and_reached_over_ipv6(net):
    r = probe(net, url=f"http://v6.edu.test:{net.plain6}/")
    assert r.up, r.failures
    assert r.address == "::1" and r.http_status == 200 and r.dns_ms is not None and r.connect_ms is not None


def test_a_truncated_answer_is_asked_again_over_tcp(net):
    r = probe(net, url=f"http://big.edu.test:{net.plain}/")
    assert r.up and r.address == ADDRESS


def test_a_name_without_an_address_and_a_failing_resolver_fail_the_dns_stage(net):
    where = f"resolver {ADDRESS}:{net.dns}"
    empty = probe(net, url=f"http://empty.edu.test:{net.plain}/")
    assert empty.failure == f"dns: empty.edu.test has no address (no A or AAAA record) at {where}"
    broken = probe(net, url=f"http://broken.edu.test:{net.plain}/")
    assert broken.failure == f"dns: broken.edu.test: the resolver failed (SERVFAIL) at {where}"


def test_a_self_signed_certificate_passes_only_when_it_is_the_configured_ca(net):
    r = probe(net, url=f"https://{NAME}:{net.self_signed}/", ca_file=str(net.self_signed_cert))
    assert r.up, r.failures
    assert r.tls_ms is not None and 89.9 < r.cert_days < 90.01
    untrusted = probe(net, url=f"https://{NAME}:{net.self_signed}/", ca_file=None)
    assert [f.stage for f in untrusted.failures] == ["tls"]
    assert re.search(r"does not check out: self.signed certificate", untrusted.failure), untrusted.failure
    assert untrusted.cert_days is not None and untrusted.cert_days > 89


def test_https_to_a_server_that_speaks_no_tls_fails_the_tls_stage(net):
    r = probe(net, url=f"https://{NAME}:{net.ssh}/")
    assert [f.stage for f in r.failures] == ["tls"] and r.connect_ms is not None
    assert r.failure.startswith("tls: the TLS handshake with live.edu.test failed: "), r.failure


def test_a_server_that_hangs_up_or_does_not_speak_http_fails_the_http_stage(net):
    closed = probe(net, url=f"https://{NAME}:{net.https}/close")
    assert closed.failure == "http: live.edu.test closed the connection without answering"
    assert closed.tls_ms is not None and closed.cert_days is not None and closed.ttfb_ms is None
    ssh = probe(net, url=f"http://{NAME}:{net.ssh}/")         # its banner and complaint are no HTTP answer
    assert ssh.failure == "http: live.edu.test closed the connection without answering"
    icy = probe(net, url=f"http://{NAME}:{net.plain}/icy")
    assert icy.failure.startswith("http: the answer of live.edu.test is not HTTP"), icy.failure
    assert "ICY 200 OK" in icy.failure and icy.http_status is None


# -- the live-class server's media path ------------------------------------------------------------------

def test_the_video_like_burst_measures_rtt_jitter_and_loss_through_the_path(net):
    assert net.relay is not None
    before = len(net.relay.sizes)
    r = probe(net, echo=f"{NAME}:{net.echo}")
    assert r.up, r.failures
    sent = net.relay.sizes[before:]
    assert len(sent) == 200 and set(sent) == {1200}          # 100 a second for 2 s, each 1200 bytes
    u = r.udp
    assert u.sent == 200 and u.loss_percent == 5.0            # every 20th dropped on the way
    assert 44 <= u.median_ms <= 52                            # round trips of 40 and 50 ms in turn
    assert 7 <= u.jitter_ms <= 11                             # RFC 3550 jitter of a 10 ms alternation
    assert r.dns_ms is not None                               # the echo server's name was looked up too
    values = {s.metric: s.value for s in r.samples()}
    assert values["service.udp_loss_percent"] == 5.0 and values["service.up"] == 1


def test_a_live_class_server_whose_echo_port_is_closed_fails_the_udp_stage(net):
    r = probe(net, url=f"https://{NAME}:{net.https}/", echo=f"{ADDRESS}:{net.closed}")
    assert r.http_status == 200 and [f.stage for f in r.failures] == ["udp"]
    assert "connection refused" in r.failure


# -- the technician's one-shot check ---------------------------------------------------------------------

def test_eduedge_probe_times_every_stage_of_a_configured_endpoint_and_nothing_else(net, tmp_path):
    cfg = tmp_path / "eduedge.yaml"
    cfg.write_text(f"""school: {{id: s-1, name: S, city: yc, type: primary}}
agent: {{data_dir: {tmp_path / "data"}}}
live_class:
  resolver: "{ADDRESS}:{net.dns}"
  endpoints:
    - {{name: city-cloud, role: city-cloud, url: "https://{NAME}:{net.https}/", ca_file: {net.ca.path}}}
    - {{name: old-cert, role: provincial-platform, url: "https://{NAME}:{net.expired}/", ca_file: {net.ca.path}}}
""", encoding="utf-8")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([EDUEDGE, "probe", *args, "--config", str(cfg)], capture_output=True, text=True,
                              timeout=60)
    good = run("city-cloud")
    assert good.returncode == 0, good.stderr
    lines = [line.rstrip() for line in good.stdout.splitlines()]
    assert lines[0] == f"city-cloud (city-cloud): https://{NAME}:{net.https}/"
    assert lines[1].split() == ["stage", "time", "ms", "detail"]          # the unit is in the header
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in lines[3:-1]}
    assert list(rows) == ["dns", "connect", "tls", "http"]                # every stage, in order, nothing else
    assert all(float(row[0]) >= 0 for row in rows.values())
    assert rows["dns"][1] == ADDRESS
    assert "certificate expires" in rows["tls"][1] and "(in 30 days)" in rows["tls"][1]
    assert rows["http"][1] == "first byte, status 200"
    assert lines[-1] == "  up: every stage passed"
    bad = run("old-cert")
    said = " ".join(bad.stdout.split())                      # the table folds its detail column to the width
    assert bad.returncode == 1 and "FAILED: the certificate of live.edu.test does not check out" in said
    assert "certificate expired" in said
    other = run("www.example.com")
    assert other.returncode == 2 and "(configured: city-cloud, old-cert); only configured endpoints are probed" \
        in other.stderr
