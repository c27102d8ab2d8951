"""Run a real net-snmp `snmpd` on a loopback port (or inside a network namespace), for tests and benches.

The agent must be proven against the SNMP agent most devices' firmware is built from, not only against
recordings: snmpd answers from the live kernel (its interfaces and counters), speaks v2c and v3 authPriv,
and is what `snmpbulkwalk` and prometheus-snmp-exporter are measured against in bench/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from eduedge.simulator.snmpsim import PeerProcess, free_udp_port


@dataclass(frozen=True)
class V3User:
    name: str
    auth_proto: str = "SHA"        # net-snmp spelling: MD5, SHA, SHA-256, SHA-512
    auth_key: str = "authpass123"
    priv_proto: str = "AES"        # DES, AES
    priv_key: str = "privpass123"


@dataclass
class SnmpdServer(PeerProcess):
    host: str
    port: int
    community: str
    users: list[V3User]
    workdir: Path
    proc: subprocess.Popen[bytes]
    netns: str | None = None


def snmpd_path() -> str:
    for p in ("/usr/sbin/snmpd", shutil.which("snmpd")):
        if p and os.access(p, os.X_OK):
            return p
    raise FileNotFoundError("net-snmp snmpd is not installed (make test installs it: apt-get install snmpd)")


def start_snmpd(host: str = "127.0.0.1", port: int | None = None, community: str = "public",
                users: list[V3User] | None = None, netns: str | None = None, extra_config: str = "",
                ready_timeout: float = 10.0) -> SnmpdServer:
    """Start snmpd with a v2c community and v3 authPriv users; return once it listens."""
    users = users if users is not None else [V3User("edgeuser")]
    if port is None:
        # inside a namespace the host's free ports say nothing; the namespace is ours and empty
        port = 11161 if netns else free_udp_port(host)
    workdir = Path(tempfile.mkdtemp(prefix="eduedge-snmpd-"))
    conf = workdir / "snmpd.conf"
    lines = [f"agentAddress udp:{host}:{port}", f"rocommunity {community} {host}",
             "sysLocation eduedge test rack", "sysContact noc@example.invalid", "sysServices 72"]
    for u in users:
        lines.append(f'createUser {u.name} {u.auth_proto} "{u.auth_key}" {u.priv_proto} "{u.priv_key}"')
        lines.append(f"rouser {u.name} priv")
    conf.write_text("\n".join(lines) + "\n" + extra_config, encoding="utf-8")
    cmd = [snmpd_path(), "-f", "-C", "-c", str(conf), "-Lf", str(workdir / "snmpd.log"),
           "-p", str(workdir / "snmpd.pid")]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    env = dict(os.environ, SNMP_PERSISTENT_DIR=str(workdir / "persist"), MIBS="")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    server = SnmpdServer(host, port, community, users, workdir, proc, netns)
    deadline = time.monotonic() + ready_timeout
    log = workdir / "snmpd.log"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = log.read_text(errors="replace") if log.exists() else ""
            server.stop()
            raise RuntimeError(f"snmpd exited with {proc.returncode}: {text[-1500:]}")
        if log.exists() and "NET-SNMP version" in log.read_text(errors="replace"):
            return server
        time.sleep(0.05)
    server.stop()
    raise TimeoutError(f"snmpd did not start on {host}:{port} within {ready_timeout}s")
