"""Service probes against real servers the tests start on loopback: an HTTPS server with certificates from
a CA the test makes (one valid for 30 days, one expired, one for another name), a DNS responder the probe
is pointed at (`live_class.resolver`), a port nothing listens on, a server slow to answer, and the project's
test server behind a relay that delays, alternates its delay and drops every 20th datagram - each result
with every stage timed, or the stage that failed and why."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
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
from eduedge.collectors.service_probes import dns_answer, dns_query, probe_endpoint
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


# -- the peers -------------------------------------------------------------------------------------------

async def _http_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """GET / -> 200; /slow -> 200 after 0.6 s; /missing -> 404."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ", 2)[1]
        if path == b"/slow":
            await asyncio.sleep(0.6)
        status = b"404 Not Found" if path == b"/missing" else b"200 OK"
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


class DnsResponder(asyncio.DatagramProtocol):
    """Answers A questions: NAME (and the other test names) is 127.0.0.1, `silent.edu.test` gets no answer,
    anything else does not exist."""

    KNOWN = (NAME, "other.edu.test")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        qid = struct.unpack("!H", data[:2])[0]
        i, labels = 12, []
        while data[i]:
            labels.append(data[i + 1:i + 1 + data[i]].decode())
            i += 1 + data[i]
        question = data[12:i + 5]
        qtype = struct.unpack("!H", data[i + 1:i + 3])[0]
        name = ".".join(labels)
        if name == "silent.edu.test":
            return
        if name not in self.KNOWN:
            self.transport.sendto(struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question, addr)
            return
        answer = b""
        if qtype == 1:
            answer = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(ADDRESS)
        self.transport.sendto(struct.pack("!HHHHHH", qid, 0x8180, 1, 1 if answer else 0, 0, 0) + question + answer,
                              addr)


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
        transport, _ = await loop.create_datagram_endpoint(DnsResponder, local_addr=(ADDRESS, 0))
        p.servers.append(transport)
        p.dns = transport.get_extra_info("sockname")[1]
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


def test_dns_messages_round_trip():
    q = dns_query("live.edu.test", 1, 4242)
    answer = (struct.pack("!HHHHHH", 4242, 0x8180, 1, 1, 0, 0) + q[12:]
              + struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton("198.18.0.7"))
    assert dns_answer(answer, 4242) == (0, ["198.18.0.7"])
    with pytest.raises(ValueError, match="not the answer"):
        dns_answer(answer, 4243)


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
    lines = good.stdout.splitlines()
    assert lines[0] == f"city-cloud (city-cloud): https://{NAME}:{net.https}/"
    assert lines[1].split()[0] == "dns" and lines[1].endswith(f"ms  {ADDRESS}")
    assert lines[3].split()[0] == "tls" and "certificate expires" in lines[3] and "(in 30 days)" in lines[3]
    assert lines[4].split()[0] == "http" and lines[4].endswith("first byte, status 200")
    assert lines[-1] == "  up: every stage passed"
    bad = run("old-cert")
    assert bad.returncode == 1 and "FAILED: the certificate of live.edu.test does not check out" in bad.stdout
    assert "certificate expired" in bad.stdout
    other = run("www.example.com")
    assert other.returncode == 2 and "(configured: city-cloud, old-cert); only configured endpoints are probed" \
        in other.stderr
