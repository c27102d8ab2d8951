"""Namespace mode: the campus as real network namespaces and veth cables on 198.18.0.0/15 (needs root).

Every switch is a namespace with a Linux bridge (`br0`) holding one veth per cabled port and the
switch's management address; every other device (controller, AP, printer, UPS, projector, panel) is a
namespace with `eth0` cabled to its switch port. So ARP and ICMP are real, along the described cabling.
The gateway namespace (`gw`) is where the eduedge agent belongs: `lan0` on the core switch's uplink port,
`wan0` to the ISP namespace (`isp`, where the WAN-side test server runs), and `host0` to the host (with
a route to the campus on the host side), so that tools on the host can reach the campus too. Addresses
come from the campus's slot (see `NetnsPlan`), so several campuses can run at once. The WAN cable is
shaped with `tc tbf` in both directions (this kernel has no netem; latency and loss are added in user
space by simulator/wanlink.py). Each device's veth carries the MAC its SNMP agent reports.

Names are `<prefix>-<short>`: all of them are recorded in the state file and deleted by name on `down`.
The simulated devices' sockets are opened inside their namespaces by the one runner process (`setns`
per socket), so one process still serves the whole campus.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

from eduedge.simulator.world import World

CLONE_NEWNET = 0x40000000
SLOTS = range(16)                  # campuses in namespace mode at once, each with its own addresses
_libc = ctypes.CDLL(None, use_errno=True)


class NetnsError(RuntimeError):
    pass


@contextlib.contextmanager
def in_netns(name: str | None) -> Iterator[None]:
    """Run the body with this thread in namespace `name` (sockets made there stay there)."""
    if name is None:
        yield
        return
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetnsError(f"cannot enter network namespace {name}: {os.strerror(err)}")
        try:
            yield
        finally:
            _libc.setns(own, CLONE_NEWNET)
    finally:
        os.close(own)
        os.close(target)


@dataclass
class NetnsPlan:
    """Slot k owns the campus LAN 198.18.16k.0/20 (gateway .1), the WAN 198.19.(100+k).0/30 (gateway .1,
    ISP .2) and the host link 198.19.(200+k).0/30 (gateway .1, host .2)."""

    prefix: str
    slot: int = 0
    namespaces: dict[str, str] = field(default_factory=dict)    # node name (or gw/isp) -> namespace
    addresses: dict[str, str] = field(default_factory=dict)     # node name -> IPv4
    host_iface: str = ""

    @property
    def gw(self) -> str:
        return self.namespaces["gw"]

    @property
    def isp(self) -> str:
        return self.namespaces["isp"]

    @property
    def lan(self) -> str:
        return f"198.18.{16 * self.slot}.0/20"

    @property
    def gw_lan(self) -> str:
        return f"198.18.{16 * self.slot}.1"

    @property
    def gw_wan(self) -> str:
        return f"198.19.{100 + self.slot}.1"

    @property
    def isp_wan(self) -> str:
        return f"198.19.{100 + self.slot}.2"

    @property
    def gw_host(self) -> str:
        return f"198.19.{200 + self.slot}.1"

    @property
    def host_side(self) -> str:
        return f"198.19.{200 + self.slot}.2"

    def node_address(self, n: int) -> str:
        """The n-th device's address (n from 0), 250 to a /24 after the gateway's."""
        return f"198.18.{16 * self.slot + 1 + n // 250}.{n % 250 + 1}"


def plan(world: World, prefix: str, slot: int) -> NetnsPlan:
    p = NetnsPlan(prefix, slot, host_iface=f"{prefix}h"[:15])
    p.namespaces["gw"] = f"{prefix}-gw"
    p.namespaces["isp"] = f"{prefix}-isp"
    n = 0
    for node in world.nodes.values():
        if node.kind == "tablet":
            continue
        if n >= 250 * 15:
            raise NetnsError(f"namespace mode holds at most {250 * 15} devices; this campus has more")
        p.namespaces[node.name] = f"{prefix}-{n}"
        p.addresses[node.name] = p.node_address(n)
        n += 1
    return p


def _ip(*args: str, netns: str | None = None, stdin: str | None = None) -> None:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if r.returncode != 0:
        raise NetnsError(f"{' '.join(cmd)}: {r.stderr.strip() or r.stdout.strip()}")


def create(world: World, p: NetnsPlan, wan_down_mbps: float, wan_up_mbps: float) -> None:
    """Build every namespace and cable of the campus; on failure the caller deletes `p.namespaces`."""
    for ns in p.namespaces.values():
        _ip("netns", "add", ns)
    links: dict[str, list[str]] = {ns: ["link set lo up"] for ns in p.namespaces.values()}
    addrs: dict[str, list[str]] = {ns: [] for ns in p.namespaces.values()}
    host_batch: list[str] = []
    for node in world.nodes.values():
        if node.name not in p.namespaces:
            continue
        ns = p.namespaces[node.name]
        dev = "br0" if node.kind == "switch" else "eth0"
        if node.kind == "switch":
            links[ns] += ["link add br0 type bridge", f"link set br0 address {_mac(node.mac, 0)}", "link set br0 up"]
        else:
            addrs[ns].append(f"link set eth0 address {_mac(node.mac, 1)}")   # what its ifPhysAddress says
        addrs[ns] += [f"addr add {p.addresses[node.name]}/20 dev {dev}", f"route add default via {p.gw_lan}"]
    cabled: set[tuple[str, int]] = set()
    for node in world.nodes.values():
        for port in node.ports.values():
            if port.peer is None or (node.name, port.number) in cabled or node.name not in p.namespaces:
                continue
            a_ns, a_if = _end(world, p, node.name, port.number)
            if port.peer == world.campus.gateway.name:
                b_ns, b_if = p.gw, "lan0"
            elif port.peer in p.namespaces and port.peer_port is not None:
                b_ns, b_if = _end(world, p, port.peer, port.peer_port)
                cabled.add((port.peer, port.peer_port))
            else:
                continue
            cabled.add((node.name, port.number))
            host_batch.append(f"link add {a_if} netns {a_ns} type veth peer name {b_if} netns {b_ns}")
            for ns, ifname in ((a_ns, a_if), (b_ns, b_if)):
                links[ns].append(f"link set {ifname} up")
                if ifname.startswith("p"):
                    links[ns].append(f"link set {ifname} master br0")
    host_batch.append(f"link add wan0 netns {p.gw} type veth peer name wan0 netns {p.isp}")
    host_batch.append(f"link add {p.host_iface} type veth peer name host0 netns {p.gw}")
    _ip("-batch", "-", stdin="\n".join(host_batch) + "\n")
    links[p.gw] += ["link set wan0 up", "link set host0 up"]
    links[p.isp] += ["link set wan0 up"]
    addrs[p.gw] += [f"addr add {p.gw_lan}/20 dev lan0", f"addr add {p.gw_wan}/30 dev wan0",
                    f"addr add {p.gw_host}/30 dev host0"]
    addrs[p.isp] += [f"addr add {p.isp_wan}/30 dev wan0", f"route add default via {p.gw_wan}"]
    for ns in p.namespaces.values():
        _ip("-batch", "-", netns=ns, stdin="\n".join(links[ns] + addrs[ns]) + "\n")
    subprocess.run(["ip", "netns", "exec", p.gw, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
    _ip("addr", "add", f"{p.host_side}/30", "dev", p.host_iface)
    _ip("link", "set", p.host_iface, "up")
    _ip("route", "add", p.lan, "via", p.gw_host, "dev", p.host_iface)
    _ip("route", "add", f"{p.isp_wan}/32", "via", p.gw_host, "dev", p.host_iface)
    shape(p, wan_down_mbps, wan_up_mbps)


def _mac(base: bytes, plus: int) -> str:
    return (int.from_bytes(base, "big") + plus).to_bytes(6, "big").hex(":")


def _end(world: World, p: NetnsPlan, name: str, number: int) -> tuple[str, str]:
    node = world.nodes[name]
    return p.namespaces[name], (f"p{number}" if node.kind == "switch" else "eth0")


def shape(p: NetnsPlan, down_mbps: float, up_mbps: float) -> None:
    """Shape the WAN cable: downloads leave the ISP side, uploads leave the gateway side."""
    for ns, mbps in ((p.isp, down_mbps), (p.gw, up_mbps)):
        rate_bps = mbps * 1e6
        burst = max(32 * 1024, int(rate_bps / 8 * 0.004))       # 4 ms of the rate, at least 32 KiB
        r = subprocess.run(["tc", "-n", ns, "qdisc", "replace", "dev", "wan0", "root", "tbf",
                            "rate", f"{int(rate_bps)}bit", "burst", str(burst), "latency", "50ms"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise NetnsError(f"tc in {ns}: {r.stderr.strip()}")


def delete(namespaces: list[str]) -> list[str]:
    """Delete these namespaces (their veths go with them); return the ones that could not be deleted."""
    left = []
    for ns in namespaces:
        if not os.path.exists(f"/run/netns/{ns}"):
            continue
        r = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True)
        if r.returncode != 0:
            left.append(f"{ns}: {r.stderr.strip()}")
    return left


def existing(namespaces: list[str]) -> list[str]:
    return [ns for ns in namespaces if os.path.exists(f"/run/netns/{ns}")]
