"""A real mosquitto on loopback, for tests, the simulator, `make demo` and the benchmarks.

`start_broker()` writes a config into a private directory, starts mosquitto on a free loopback port
(plus, optionally, a TLS listener that requires client certificates), and waits until it accepts
connections. The broker can be stopped cleanly (SIGTERM: it saves its persistence file), killed
(SIGKILL: it does not) and restarted on the same ports with the same persistence directory.

`make_pki()` makes a throw-away CA with a server certificate for localhost/127.0.0.1 and client
certificates, with the cryptography package.

Note (measured, research/DEPENDENCIES.md 4.4): mosquitto sends PUBACK before it has written a message to
disk; a SIGKILLed broker loses what it had not autosaved. `autosave_interval` is 1 s here.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from eduedge.core.netaddr import free_tcp_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


@dataclass
class Pki:
    """Paths of a throw-away CA, a server certificate, and client certificates by common name."""

    dir: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    clients: dict[str, tuple[Path, Path]] = field(default_factory=dict)


def make_pki(directory: Path, clients: tuple[str, ...] = ("eduedge-agent",), days: int = 30) -> Pki:
    """A CA, a server certificate valid for localhost and 127.0.0.1, and one client certificate per name."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def write(name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> tuple[Path, Path]:
        cp, kp = directory / f"{name}.crt", directory / f"{name}.key"
        cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        kp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
        kp.chmod(0o640)
        return cp, kp

    def issue(cn: str, ca: tuple[ec.EllipticCurvePrivateKey, x509.Name] | None, server: bool = False,
              ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        signer, issuer = (key, name) if ca is None else ca
        b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=days)))
        if ca is None:
            b = b.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            b = b.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), True)
        else:
            b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
            b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            if server:
                b = b.add_extension(x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        return key, b.sign(signer, hashes.SHA256())

    ca_key, ca_cert = issue("eduedge test CA", None)
    ca_paths = write("ca", ca_key, ca_cert)
    server = write("server", *issue("localhost", (ca_key, ca_cert.subject), server=True))
    pki = Pki(directory, ca_paths[0], ca_paths[1], server[0], server[1])
    for cn in clients:
        pki.clients[cn] = write(f"client-{cn}", *issue(cn, (ca_key, ca_cert.subject)))
    return pki


@dataclass
class Broker:
    """A running mosquitto; `port` is plain MQTT, `tls_port` (if any) needs a client certificate."""

    host: str
    port: int
    workdir: Path
    tls_port: int | None = None
    pki: Pki | None = None
    proc: subprocess.Popen[bytes] | None = None
    own_workdir: bool = True

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, ready_timeout: float = 10.0) -> None:
        """Start (or restart) mosquitto on the same ports and persistence directory."""
        if self.running():
            return
        conf = self.workdir / "mosquitto.conf"
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}; see {self.log_path}:\n"
                                   + _tail(self.log_path))
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on {self.address} within {ready_timeout:g}s")

    def stop(self) -> None:
        """Clean stop (SIGTERM): mosquitto saves its persistence file."""
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL: whatever mosquitto had not autosaved is lost, as on a crash."""
        if self.running():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=10)

    def close(self) -> None:
        """Stop for good and remove the working directory (if this object made it)."""
        self.kill()
        if self.own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start_broker(workdir: Path | None = None, host: str = "127.0.0.1", port: int | None = None,
                 tls: bool = False, tls_clients: tuple[str, ...] = ("eduedge-agent",),
                 persistence: bool = True, extra_conf: str = "") -> Broker:
    """Write a mosquitto config and start it; `tls=True` adds a listener that requires client certificates.

    Only loopback addresses are accepted: the tests and the simulator never open a broker to the network.
    """
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"{host} is not a loopback address; the test broker listens on loopback only")
    own = workdir is None
    wd = Path(tempfile.mkdtemp(prefix="eduedge-broker-")) if workdir is None else workdir
    wd.mkdir(parents=True, exist_ok=True)
    (wd / "persist").mkdir(exist_ok=True)
    port = port or free_tcp_port(host)
    # As root, mosquitto would drop to the `mosquitto` user, which cannot reach a private (0700) test
    # directory; a loopback-only test broker may stay root.
    lines = ["user root"] if os.geteuid() == 0 else []
    lines += ["per_listener_settings false", "allow_anonymous true", f"log_dest file {wd / 'mosquitto.log'}",
              "log_type error", "log_type warning", "log_type notice", "log_type information",
              "connection_messages true", "max_queued_messages 0", "max_inflight_messages 0",
              f"listener {port} {host}"]
    if persistence:
        lines += ["persistence true", f"persistence_location {wd / 'persist'}/", "autosave_interval 1"]
    broker = Broker(host, port, wd, own_workdir=own)
    if tls:
        broker.pki = make_pki(wd / "pki", tls_clients)
        broker.tls_port = free_tcp_port(host)
        lines += [f"listener {broker.tls_port} {host}", f"cafile {broker.pki.ca_cert}",
                  f"certfile {broker.pki.server_cert}", f"keyfile {broker.pki.server_key}",
                  "require_certificate true", "use_identity_as_username true"]
    if extra_conf:
        lines.append(extra_conf)
    (wd / "mosquitto.conf").write_text("\n".join(lines) + "\n")
    broker.start()
    return broker
