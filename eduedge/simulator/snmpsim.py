"""Serve SNMP recordings (`.snmprec`) with snmpsim on loopback, for tests, demos and the campus.

Recordings from the field are not always servable as they are: some carry OIDs with a leading dot,
some hold their walk twice and unsorted (ZTE ZXR10), and snmpsim answers GETNEXT by file order. So
every recording is normalised (dot stripped, sorted by numeric arcs, de-duplicated) into a private
data directory before snmpsim sees it. The v2c community of a recording is its file stem, as in
snmpsim, Datadog's and LibreNMS's test rigs.

snmpsim refuses to run as root unless it drops privileges, so as root it runs as `nobody`; the data
and cache directories are made readable and writable for that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from eduedge.core.netaddr import free_udp_port


def oid_key(oid: str) -> tuple[int, ...]:
    """Sort key of a dotted OID by its numeric arcs (``"1.3.6.1.10" > "1.3.6.1.9"``)."""
    return tuple(int(a) for a in oid.strip(".").split(".") if a)


def normalise_snmprec(text: str) -> str:
    """Return a recording that snmpsim can serve in GETNEXT order.

    >>> normalise_snmprec(".1.3.6.1.2.1.1.2.0|6|.1.3.6.1.4.1.9\\n1.3.6.1.2.1.1.1.0|4|x\\n")
    '1.3.6.1.2.1.1.1.0|4|x\\n1.3.6.1.2.1.1.2.0|6|.1.3.6.1.4.1.9\\n'
    """
    records: dict[tuple[int, ...], str] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        oid, sep, rest = line.partition("|")
        if not sep:
            continue
        try:
            key = oid_key(oid)
        except ValueError:
            continue
        records.setdefault(key, ".".join(map(str, key)) + "|" + rest)
    return "".join(records[k] + "\n" for k in sorted(records))


class PeerProcess:
    """A real peer the tests or the simulator started: stopped by PID, its work directory removed."""

    host: str
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class SnmpsimServer(PeerProcess):
    """A running snmpsim responder; `community(name)` is how a recording is addressed."""

    host: str
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes]
    names: list[str] = field(default_factory=list)
    v3_user: str = ""
    v3_auth_key: str = ""
    v3_priv_key: str = ""



def _responder_command() -> str:
    exe = Path(sys.executable).with_name("snmpsim-command-responder")
    return str(exe) if exe.exists() else "snmpsim-command-responder"


def start_snmpsim(
    recordings: Iterable[Path | tuple[str, str]],
    host: str = "127.0.0.1",
    port: int | None = None,
    v3_user: str = "simuser",
    v3_auth_key: str = "authpass123",
    v3_priv_key: str = "privpass123",
    ready_timeout: float = 60.0,
) -> SnmpsimServer:
    """Start snmpsim serving `recordings` (paths, or (community, text) pairs) and wait until it answers.

    The v3 user (SHA/AES) selects a recording by context name, as snmpsim does.
    """
    workdir = Path(tempfile.mkdtemp(prefix="eduedge-snmpsim-"))
    data = workdir / "data"
    cache = workdir / "cache"
    data.mkdir()
    cache.mkdir()
    names = []
    for rec in recordings:
        if isinstance(rec, tuple):
            name, text = rec
        else:
            name, text = rec.stem, rec.read_text(encoding="utf-8", errors="surrogateescape")
        (data / f"{name}.snmprec").write_text(normalise_snmprec(text), encoding="utf-8", errors="surrogateescape")
        names.append(name)
    port = port or free_udp_port(host)
    cmd = [_responder_command(), f"--cache-dir={cache}", "--log-level=error",
           f"--logging-method=file:{workdir / 'responder.log'}"]
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chmod(workdir, 0o755)
        for p in (workdir, data, cache):
            os.chown(p, nobody.pw_uid, nobody.pw_gid)
        (workdir / "responder.log").touch()
        os.chown(workdir / "responder.log", nobody.pw_uid, nobody.pw_gid)
        cmd += ["--process-user=nobody", "--process-group=nogroup"]
    cmd += ["--v3-engine-id=auto", f"--v3-user={v3_user}", f"--v3-auth-key={v3_auth_key}", "--v3-auth-proto=SHA",
            f"--v3-priv-key={v3_priv_key}", "--v3-priv-proto=AES", f"--data-dir={data}",
            f"--agent-udpv4-endpoint={host}:{port}"]
    env = dict(os.environ, TMPDIR=str(workdir))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            start_new_session=True)
    server = SnmpsimServer(host, port, workdir, proc, names, v3_user, v3_auth_key, v3_priv_key)
    try:
        _wait_ready(server, names[0] if names else "public", ready_timeout)
    except Exception:
        log = (workdir / "responder.log").read_text(errors="replace")[-2000:]
        server.stop()
        raise RuntimeError(f"snmpsim on {host}:{port} did not come up: {log}") from None
    return server


def _wait_ready(server: SnmpsimServer, community: str, timeout: float) -> None:
    from gufo.snmp.sync.client import SnmpSession

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            err = server.proc.stderr.read().decode(errors="replace") if server.proc.stderr else ""
            raise RuntimeError(f"snmpsim exited with {server.proc.returncode}: {err[-2000:]}")
        try:
            with SnmpSession(addr=server.host, port=server.port, community=community, timeout=0.5) as s:
                s.get("1.3.6.1.2.1.1.2.0")
            return
        except Exception:  # not listening yet, or still indexing its data
            time.sleep(0.2)
    raise TimeoutError(f"snmpsim not answering on {server.address} after {timeout:.0f}s")
