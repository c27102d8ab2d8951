"""Discovery in a classroom subnet made of network namespaces: hosts with chosen MACs answering ARP and
ICMP, a projector answering PJLink (the simulator's responder), and one host outside the configured
subnet on the same wire, on which tcpdump checks that the sweep never asks for it.

Layout (all 198.18.0.0/15, all created here and deleted by name, also on failure):
  <p>lan  bridge br0 ── <p>scan  eth0 198.18.10.1/24 + 198.18.11.1/24 (the agent: `eduedge scan` runs here)
                    ├── <p>h1 .10.11 00:26:ab:..  Epson OUI, PJLink class 2 with a password: projector
                    ├── <p>h2 .10.12 3c:5a:b4:..  in discovery.learning.oui: a learning device
                    ├── <p>h3 .10.13 4c:11:bf:..  Dahua OUI: a camera (weak, vendor only)
                    ├── <p>h4 .10.14 0a:..        randomised MAC: personal, unidentified
                    └── <p>out .11.5              outside discovery.subnets: never asked for
Needs root (namespaces, raw sockets); skipped otherwise.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.test_pjlink import _world

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and raw sockets need root"),
              pytest.mark.skipif(shutil.which("tcpdump") is None,
                                 reason="tcpdump missing (run scripts/install-system-deps)")]

REPO = Path(__file__).resolve().parents[1]
EDUEDGE = str(Path(sys.executable).with_name("eduedge"))
P = f"edd{os.getpid() % 100000}-"
SUBNET = "198.18.10.0/24"
HOSTS = {  # short name: (address/prefix, MAC)
    "h1": ("198.18.10.11/24", "00:26:ab:00:10:11"),
    "h2": ("198.18.10.12/24", "3c:5a:b4:00:10:12"),
    "h3": ("198.18.10.13/24", "4c:11:bf:00:10:13"),
    "h4": ("198.18.10.14/24", "0a:11:22:00:10:14"),
    "out": ("198.18.11.5/24", "00:16:3e:00:11:05"),
}
OUTSIDE_IP = "198.18.11.5"


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=60)


def _names() -> list[str]:
    return [f"{P}{n}" for n in ("lan", "scan", *HOSTS)]


def _cleanup() -> None:
    for ns in _names():
        sh("ip", "netns", "del", ns, check=False)


def _cable(ns: str, i: int, mac: str, addrs: list[str]) -> None:
    a, b = f"v{os.getpid() % 100000}a{i}", f"v{os.getpid() % 100000}b{i}"
    sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
    sh("ip", "link", "set", a, "netns", f"{P}lan")
    sh("ip", "link", "set", b, "netns", ns)
    sh("ip", "-n", f"{P}lan", "link", "set", a, "master", "br0", "up")
    sh("ip", "-n", ns, "link", "set", b, "name", "eth0")
    sh("ip", "-n", ns, "link", "set", "eth0", "address", mac, "up")
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    for addr in addrs:
        sh("ip", "-n", ns, "addr", "add", addr, "dev", "eth0")


@pytest.fixture(scope="module")
def lan():
    _cleanup()
    try:
        for ns in _names():
            sh("ip", "netns", "add", ns)
        sh("ip", "-n", f"{P}lan", "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", f"{P}lan", "link", "set", "br0", "up")
        _cable(f"{P}scan", 0, "00:16:3e:00:10:01", ["198.18.10.1/24", "198.18.11.1/24"])
        for i, (name, (addr, mac)) in enumerate(HOSTS.items(), start=1):
            _cable(f"{P}{name}", i, mac, [addr])
        with _pjlink_projector(f"{P}h1", "198.18.10.11"):
            yield SimpleNamespace(scan=f"{P}scan", out=f"{P}out", h2=f"{P}h2", h3=f"{P}h3")
    finally:
        _cleanup()


class _pjlink_projector:
    """The simulator's PJLink responder, listening inside the projector's namespace (class 2, password)."""

    def __init__(self, ns: str, ip: str):
        self.ns, self.ip = ns, ip

    def __enter__(self):
        from eduedge.simulator.campus import PJLinkSpec
        from eduedge.simulator.netns import in_netns
        from eduedge.simulator.pjlink import PJLinkDevice, serve_pjlink

        with in_netns(self.ns):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.ip, 4352))
            sock.listen()
            sock.setblocking(False)
        self.loop = asyncio.new_event_loop()
        device = PJLinkDevice(_world(), "proj-a101", PJLinkSpec(password="hillside", lamp_hours=1500), "projector")
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(serve_pjlink(device, sock), self.loop).result(5)
        return self

    def __exit__(self, *exc):
        async def close():
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "pjlink").write_text("hillside\n")
    (tmp_path / "key").write_text("a-per-school-secret-for-tests-only\n")
    path = tmp_path / "agent.yaml"
    path.write_text(f"""
school: {{id: test-school, name: Test School, city: testcity, type: primary, enrolment: {{students: 3, teachers: 1}}}}
agent: {{data_dir: {tmp_path / 'data'}}}
privacy: {{pseudonym_key: {{file: {tmp_path / 'key'}}}}}
discovery:
  enabled: true
  subnets: [{SUBNET}]
  sweep_timeout: 1s
  learning: {{oui: ["3c:5a:b4"]}}
  pjlink: {{password: {{file: {tmp_path / 'pjlink'}}}, timeout: 3s}}
reachability: {{count: 2, timeout: 1s}}
""")
    return path


class Capture:
    """tcpdump on the outside host's wire: every frame that reaches it."""

    def __init__(self, ns: str, out: Path):
        self.ns, self.out = ns, out

    def __enter__(self):
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, "tcpdump", "-i", "eth0", "-nn", "-e", "-U",
                                      "-w", str(self.out)], stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()     # "listening on eth0 ..." once the capture is live
        assert "listening" in line, line
        return self

    def __exit__(self, *exc):
        time.sleep(0.3)
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(10)

    def lines(self) -> list[str]:
        return sh("tcpdump", "-r", str(self.out), "-nn", "-e").stdout.splitlines()


def _arp_targets(lines: list[str]) -> list[str]:
    return [ln.split("who-has ")[1].split()[0] for ln in lines if "who-has" in ln]


def _scan(ns: str, config: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, EDUEDGE, "scan", "-c", str(config), "--json", *extra],
                          capture_output=True, text=True, timeout=120)


def test_scan_finds_exactly_the_hosts_of_the_subnet_with_class_vendor_pjlink_and_ping(lan, config, tmp_path):
    with Capture(lan.out, tmp_path / "out.pcap") as cap:
        run = _scan(lan.scan, config)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    found = {d["ip"]: d for d in result["devices"]}
    assert sorted(found) == ["198.18.10.11", "198.18.10.12", "198.18.10.13", "198.18.10.14"]
    assert {ip: found[ip]["mac"] for ip in found} == {a.split("/")[0]: m for a, m in HOSTS.values()
                                                       if a.startswith("198.18.10.")}
    proj, tablet, cam, phone = (found[f"198.18.10.1{i}"] for i in (1, 2, 3, 4))
    assert proj["class"] == "projector" and not proj["personal"] and proj["vendor"] == "Seiko Epson Corporation"
    assert proj["evidence"][0].startswith("answers PJLink on TCP 4352")
    assert proj["pjlink"]["status"] == "ok" and proj["pjlink"]["power"] == "on" and proj["pjlink"]["lamps"] == [1500]
    assert proj["reachability"]["reachable"] and proj["reachability"]["method"] == "icmp"
    assert tablet["class"] == "learning" and tablet["personal"] and tablet["name"].startswith("p-")
    assert "discovery.learning.oui" in tablet["evidence"][0]
    assert cam["class"] == "camera" and cam["evidence"][0].startswith("weak:")
    assert cam["reachability"]["reachable"]
    assert phone["class"] == "other" and phone["personal"] and "randomised" in phone["evidence"][0]
    print(f"sweep of {SUBNET} with identification: {result['seconds']} s")
    # what the sweep sent, as the host outside the subnet saw it: broadcasts for the /24 only, none for it
    lines = cap.lines()
    targets = _arp_targets(lines)
    assert len(set(targets)) >= 250
    assert all(ipaddress.IPv4Address(t) in ipaddress.IPv4Network(SUBNET) for t in targets)
    assert not [ln for ln in lines if OUTSIDE_IP in ln or HOSTS["out"][1] in ln.split(">")[-1]]


def test_a_subnet_outside_the_configuration_is_refused_before_any_packet(lan, config, tmp_path):
    with Capture(lan.out, tmp_path / "out.pcap") as cap:
        run = _scan(lan.scan, config, "--subnet", "198.18.11.0/24")
    assert run.returncode == 2 and "refused" in run.stderr and "198.18.11.0/24" in run.stderr
    assert _arp_targets(cap.lines()) == []


def test_i_own_this_network_lets_the_technician_sweep_another_subnet(lan, config, tmp_path):
    run = _scan(lan.scan, config, "--subnet", "198.18.11.0/29", "--i-own-this-network")
    assert run.returncode == 0, run.stderr
    assert [d["ip"] for d in json.loads(run.stdout)["devices"]] == [OUTSIDE_IP]


PASSIVE = """
import ipaddress, json, subprocess, sys, time
from eduedge.collectors.discovery.discovery import PassiveListener, Scope
listener = PassiveListener("eth0", Scope((ipaddress.ip_network("198.18.10.0/24"),)))
listener.start()
for cmd in json.loads(sys.argv[1]):     # h3 talks to us (ARP from h3), then h2 sends a DHCP request
    subprocess.run(cmd, check=True, capture_output=True)
time.sleep(0.5)
listener.stop()
print(json.dumps([s.__dict__ for s in listener.drain()]))
"""

DHCP = """
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.sendrecv import sendp
mac = bytes.fromhex("3c5ab4001012")
sendp(Ether(src="3c:5a:b4:00:10:12", dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
      / UDP(sport=68, dport=67) / BOOTP(op=1, chaddr=mac + bytes(10), xid=7)
      / DHCP(options=[("message-type", "request"), ("requested_addr", "198.18.10.12"),
                      ("hostname", b"stu-tab-042"), ("vendor_class_id", b"android-dhcp-13"), "end"]),
      iface="eth0", verbose=0)
"""


def test_passive_listening_learns_arp_senders_and_dhcp_host_names(lan):
    py = sys.executable
    # a datagram from h3 to the gateway makes h3's kernel ask for our MAC (ARP); no ping binary needed
    udp = "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('198.18.10.1', 9))"
    cmds = [["ip", "-n", lan.h3, "neigh", "flush", "all"],     # the scan tests taught h3 our MAC already
            ["ip", "netns", "exec", lan.h3, py, "-c", udp],
            ["ip", "netns", "exec", lan.h2, py, "-c", DHCP]]
    run = subprocess.run(["ip", "netns", "exec", lan.scan, py, "-c", PASSIVE, json.dumps(cmds)],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert run.returncode == 0, run.stderr
    heard = json.loads(run.stdout.strip().splitlines()[-1])
    arp = [s for s in heard if s["source"] == "passive-arp"]
    dhcp = [s for s in heard if s["source"] == "dhcp"]
    assert ("4c:11:bf:00:10:13", "198.18.10.13") in {(s["mac"], s["ip"]) for s in arp}, heard
    assert dhcp and dhcp[0]["mac"] == "3c:5a:b4:00:10:12" and dhcp[0]["ip"] == "198.18.10.12"
    assert dhcp[0]["hostname"] == "stu-tab-042" and dhcp[0]["dhcp_vendor"] == "android-dhcp-13"
