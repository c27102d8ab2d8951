"""What is on the campus network: ARP sweeps of the configured subnets, passive ARP/DHCP, switch tables.

Three sources, each giving `Sighting`s (a MAC, maybe its IP, host name, and where it was seen):

- **ARP sweep** (`arp_sweep`): one broadcast ARP request per address of each subnet in
  `discovery.subnets`, answered by every live host whatever its firewall says. A /24 takes the timeout
  plus ~0.2 s. Only those subnets: `Scope.check_subnet` refuses anything else before a packet is built,
  and the sender re-checks every target address (`OutOfScope`). Needs CAP_NET_RAW (AF_PACKET).
- **Passive** (`PassiveListener`): ARP and DHCP seen on the gateway's interface; DHCP adds the host name
  (option 12) and the vendor class (option 60: `android-dhcp-13`, `MSFT 5.0`). Listening only; nothing
  is sent. Needs CAP_NET_RAW and tcpdump (scapy compiles the BPF filter with it).
- **Switch tables** (`poll_bridge_tables`, `bridge_sightings`): the forwarding and ARP tables of the
  switches and routers, read through the firmware-profile engine with the `_bridge` mixin forced
  (BRIDGE-MIB/Q-BRIDGE-MIB dot1d/dot1qTpFdbTable, dot1dBasePortTable, IP-MIB ipNetToMedia/Physical):
  which port each MAC sits behind, hence which classroom. A MAC is learned on every switch between it and
  the poller; the edge port is the one with the fewest MACs behind it (uplinks carry hundreds).

`merge` folds sightings into one `Observed` per MAC. A device is in the inventory only with an address
inside the configured subnets; a switch-table entry alone only says where a known device sits.

scapy is imported inside the functions that use it (0.4 s), never at agent start-up.

>>> scope = Scope((ipaddress.ip_network("198.18.10.0/29"),))
>>> sweep_targets([ipaddress.ip_network("198.18.10.0/30")], scope)
['198.18.10.1', '198.18.10.2']
>>> sweep_targets([ipaddress.ip_network("198.18.11.0/30")], scope)
Traceback (most recent call last):
eduedge.collectors.discovery.discovery.OutOfScope: 198.18.11.0/30 is not inside the configured subnets (198.18.10.0/29)
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eduedge.collectors.discovery.config import DiscoveryConfig
from eduedge.collectors.snmp.config import SnmpConfig, SnmpDevice
from eduedge.core import memory
from eduedge.core.netaddr import split_host_port
from eduedge.core.pseudonym import normalise_mac
from eduedge.core.samples import Sample

log = logging.getLogger("eduedge.discovery")

IPNet = ipaddress.IPv4Network
BRIDGE_PROFILE = "_bridge"
BRIDGE_ROLES = ("core", "distribution", "access", "router")
MAX_SWEEP_ADDRESSES = 65536


class OutOfScope(ValueError):
    """A probe aimed outside the configured subnets and listed devices: always a bug or a typo."""


@dataclass(frozen=True)
class Scope:
    """Where the agent may send probes: the configured subnets and the hosts it is told about by name."""

    subnets: tuple[IPNet, ...]
    hosts: frozenset[ipaddress.IPv4Address] = frozenset()

    @classmethod
    def from_config(cls, cfg: DiscoveryConfig, listed: Iterable[str] = ()) -> Scope:
        """`discovery.subnets`, and the `listed` hosts (HOST or HOST:PORT: the configured SNMP devices and
        reachability targets) that may be probed wherever they are."""
        hosts = set()
        for h in (split_host_port(x)[0] for x in listed):
            try:
                hosts.add(ipaddress.IPv4Address(h))
            except ValueError:
                continue    # a name: resolved and checked where it is probed
        return cls(tuple(cfg.subnets), frozenset(hosts))

    def allows(self, ip: str | ipaddress.IPv4Address) -> bool:
        try:
            addr = ipaddress.IPv4Address(ip)
        except ValueError:
            return False
        return addr in self.hosts or any(addr in n for n in self.subnets)

    def in_subnets(self, ip: str | ipaddress.IPv4Address | None) -> bool:
        try:
            addr = ipaddress.IPv4Address(ip or "")
        except ValueError:
            return False
        return any(addr in n for n in self.subnets)

    def check_subnet(self, net: IPNet) -> None:
        if not any(net.subnet_of(n) for n in self.subnets):
            listed = ", ".join(map(str, self.subnets)) or "none"
            raise OutOfScope(f"{net} is not inside the configured subnets ({listed})")

    def check_host(self, ip: str) -> None:
        if not self.allows(ip):
            raise OutOfScope(f"{ip} is neither in the configured subnets nor a listed device")


@dataclass
class Sighting:
    """One source saw one MAC (maybe with its IP) at one time."""

    mac: str
    ip: str | None
    source: str                      # arp-sweep, passive-arp, dhcp, switch-fdb, switch-arp
    time: float
    hostname: str | None = None      # DHCP option 12
    dhcp_vendor: str | None = None   # DHCP option 60
    switch: str | None = None        # switch-fdb: which switch, port and VLAN
    interface: str | None = None
    vlan: str | None = None
    macs_on_port: int = 0


@dataclass
class Observed:
    """Everything the sources say about one MAC."""

    mac: str
    ip: str | None = None
    hostname: str | None = None
    dhcp_vendor: str | None = None
    sources: set[str] = field(default_factory=set)
    last_seen: float = 0.0
    switch: str | None = None
    interface: str | None = None
    vlan: str | None = None


# -- active ARP sweep ----------------------------------------------------------------------------------

def sweep_targets(subnets: Iterable[IPNet], scope: Scope) -> list[str]:
    """Every address an ARP sweep of `subnets` asks for; `OutOfScope` for a subnet outside `scope`."""
    out: list[str] = []
    for net in subnets:
        scope.check_subnet(net)
        hosts = list(net.hosts()) if net.prefixlen < 31 else list(net)
        out += [str(h) for h in hosts]
        if len(out) > MAX_SWEEP_ADDRESSES:
            raise OutOfScope(f"a sweep of more than {MAX_SWEEP_ADDRESSES} addresses is refused")
    return out


def arp_sweep(subnets: Sequence[IPNet], scope: Scope, iface: str | None = None, timeout: float = 1.0,
              now: float | None = None) -> list[Sighting]:
    """ARP-sweep `subnets` (each inside `scope`) and return who answered. Blocking; run it in a thread.

    Raises `OutOfScope` before anything is sent, and `PermissionError` without CAP_NET_RAW.
    """
    targets = sweep_targets(subnets, scope)
    if not targets:
        return []
    _scapy_layers()
    from scapy.config import conf
    from scapy.layers.l2 import ARP, Ether
    from scapy.sendrecv import srp

    conf.verb = 0
    by_iface: dict[str, list[str]] = defaultdict(list)
    for ip in targets:
        by_iface[iface or conf.route.route(ip)[0]].append(ip)
    out: list[Sighting] = []
    t = time.time() if now is None else now
    for dev, ips in by_iface.items():
        packets = [Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=ip) for ip in ips]
        # the last line of defence: no packet leaves for an address the configuration does not list
        for p in packets:
            if not scope.in_subnets(p[ARP].pdst):
                raise OutOfScope(f"refusing to send an ARP request for {p[ARP].pdst}")
        answered, _ = srp(packets, iface=dev, timeout=timeout, verbose=0)
        for _, reply in answered:
            ip, mac = reply[ARP].psrc, reply[ARP].hwsrc
            if scope.in_subnets(ip):
                out.append(Sighting(normalise_mac(mac), ip, "arp-sweep", t))
    return out


@functools.cache
def _scapy_layers() -> None:
    """Import the layers the sweep and the listener use (Ethernet, ARP, DHCP). With them scapy loads its own
    copy of the MAC vendor database (~11 MB resident), which it reads only to print addresses; the agent names
    vendors with oui.py, so scapy's copy is replaced by an empty one."""
    import scapy.data
    import scapy.layers.dhcp
    import scapy.layers.l2

    scapy.data.MANUFDB = scapy.data.ManufDA(_name="manufdb")
    memory.give_back()


# -- passive ARP and DHCP --------------------------------------------------------------------------------

PASSIVE_FILTER = "arp or (udp and (port 67 or port 68))"


class PassiveListener:
    """Listens for ARP and DHCP on one interface in a background thread; `drain()` returns what it heard.

    Only addresses inside the configured subnets are kept (DHCP may carry no address yet: then the MAC,
    host name and vendor class are kept, to be joined with an address from another source).
    """

    def __init__(self, iface: str | None, scope: Scope, max_pending: int = 50_000):
        self.iface = iface
        self.scope = scope
        self.max_pending = max_pending
        self._pending: list[Sighting] = []
        self._lock = threading.Lock()
        self._sniffer: Any = None
        self.dropped = 0

    def start(self) -> None:
        # the layers must be imported before the socket opens: they register Ethernet as the link type, and
        # without them every frame is decoded as Raw
        _scapy_layers()
        from scapy.sendrecv import AsyncSniffer

        live = threading.Event()
        self._sniffer = AsyncSniffer(iface=self.iface, filter=PASSIVE_FILTER, store=False, prn=self.handle,
                                     started_callback=live.set)
        self._sniffer.start()
        # the socket is opened in the sniffer's thread: wait until it listens, or say why it could not
        deadline = time.monotonic() + 5
        while not live.wait(0.05):
            if not self._sniffer.thread.is_alive() or time.monotonic() > deadline:
                self._sniffer = None
                raise PermissionError(f"passive discovery on {self.iface or 'the default interface'} could not "
                                      "start (needs CAP_NET_RAW, and tcpdump for its filter)")

    def stop(self) -> None:
        if self._sniffer is not None and getattr(self._sniffer, "running", False):
            self._sniffer.stop()
        self._sniffer = None

    def drain(self) -> list[Sighting]:
        with self._lock:
            out, self._pending = self._pending, []
        return out

    def _add(self, s: Sighting) -> None:
        with self._lock:
            if len(self._pending) >= self.max_pending:
                self.dropped += 1
                return
            self._pending.append(s)

    def handle(self, pkt: Any) -> None:
        """One captured packet (a scapy packet); public so that tests can feed crafted packets."""
        from scapy.layers.dhcp import BOOTP, DHCP
        from scapy.layers.l2 import ARP

        now = float(getattr(pkt, "time", time.time()))
        if ARP in pkt:
            arp = pkt[ARP]
            if arp.hwsrc and self.scope.in_subnets(arp.psrc):
                self._add(Sighting(normalise_mac(arp.hwsrc), arp.psrc, "passive-arp", now))
            return
        if BOOTP not in pkt or DHCP not in pkt:
            return
        boot = pkt[BOOTP]
        if boot.op != 1:        # requests carry the client's own name; replies only the server's view
            return
        opts = {o[0]: o[1] for o in pkt[DHCP].options if isinstance(o, tuple) and len(o) >= 2}
        mac = normalise_mac(bytes(boot.chaddr[:6]).hex(":"))
        ip = next((str(a) for a in (opts.get("requested_addr"), boot.ciaddr)
                   if a and str(a) != "0.0.0.0" and self.scope.in_subnets(str(a))), None)
        name = _text(opts.get("hostname"))
        vendor = _text(opts.get("vendor_class_id"))
        self._add(Sighting(mac, ip, "dhcp", now, hostname=name, dhcp_vendor=vendor))


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = str(value).strip("\x00 ") if value is not None else ""
    return text or None


# -- switch tables ------------------------------------------------------------------------------------

def bridge_devices(cfg: DiscoveryConfig, devices: Iterable[SnmpDevice]) -> list[str]:
    """The SNMP devices whose forwarding and ARP tables discovery reads."""
    if cfg.bridge_devices:
        return list(cfg.bridge_devices)
    return [d.name for d in devices if d.role in BRIDGE_ROLES]


async def poll_bridge_tables(snmp: SnmpConfig, names: Sequence[str]) -> list[Any]:
    """Read the `_bridge` tables of these snmp.devices (each with its own deadline); returns `DevicePoll`s."""
    from eduedge.collectors.snmp.build import poller_for
    from eduedge.collectors.snmp.poller import poll_many
    from eduedge.collectors.snmp.profiles import load_profiles

    if not names:
        return []
    profiles = load_profiles(snmp.profile_dirs)
    devices = {d.name: d for d in snmp.devices}
    pollers = [poller_for(devices[n], snmp, profiles, profile=BRIDGE_PROFILE, static_refresh=0) for n in names]
    return await poll_many(pollers, snmp.defaults.concurrency)


def bridge_sightings(samples: Iterable[Sample], scope: Scope, now: float | None = None) -> list[Sighting]:
    """Sightings from `_bridge` samples: each learned MAC with the switch port it sits behind (and how many
    MACs share that port), and each ARP entry inside the configured subnets."""
    t = time.time() if now is None else now
    port_names: dict[tuple[str, str], str] = {}
    fdb: list[tuple[str, str, str, str | None]] = []      # switch, bridge port, mac, vlan
    out: list[Sighting] = []
    for s in samples:
        if s.metric == "bridge.port_if_index" and "interface" in s.tags:
            port_names[(s.device, s.tags["bridge_port"])] = s.tags["interface"]
        elif s.metric == "bridge.fdb_port":
            if s.tags.get("status", "learned") not in ("learned", "other") or "mac" not in s.tags:
                continue
            fdb.append((s.device, str(int(s.value)), s.tags["mac"], s.tags.get("vlan")))
        elif s.metric == "arp.mac" and s.tags.get("addr_type", "1") == "1":
            if s.tags.get("type") in ("invalid", "local"):
                continue
            if scope.in_subnets(s.tags.get("ip")):
                out.append(Sighting(str(s.value), s.tags["ip"], "switch-arp", t, switch=s.device))
    per_port: dict[tuple[str, str], set[str]] = defaultdict(set)
    for switch, port, mac, _ in fdb:
        per_port[(switch, port)].add(mac)
    for switch, port, mac, vlan in fdb:
        if int(port) <= 0:       # 0 or -1: learned, but the switch cannot say where (its CPU, a stale entry)
            continue
        out.append(Sighting(mac, None, "switch-fdb", t, switch=switch,
                            interface=port_names.get((switch, port), f"bridge port {port}"), vlan=vlan,
                            macs_on_port=len(per_port[(switch, port)])))
    return out


def merge(sightings: Iterable[Sighting]) -> dict[str, Observed]:
    """One `Observed` per MAC that has an address inside the subnets (see the module's docstring)."""
    by_mac: dict[str, Observed] = {}
    edges: dict[str, Sighting] = {}
    extra: dict[str, list[Sighting]] = defaultdict(list)
    for s in sorted(sightings, key=lambda x: x.time):
        if s.source == "switch-fdb":
            best = edges.get(s.mac)
            if best is None or (s.macs_on_port, s.switch or "", s.interface or "") < (
                    best.macs_on_port, best.switch or "", best.interface or ""):
                edges[s.mac] = s
            continue
        if s.ip is None:
            extra[s.mac].append(s)
            continue
        o = by_mac.setdefault(s.mac, Observed(s.mac))
        _fold(o, s)
    for mac, o in by_mac.items():
        for s in extra.get(mac, ()):
            _fold(o, s)
        edge = edges.get(mac)
        if edge is not None:
            o.switch, o.interface, o.vlan = edge.switch, edge.interface, edge.vlan
            o.sources.add(edge.source)
    return by_mac


def _fold(o: Observed, s: Sighting) -> None:
    o.sources.add(s.source)
    if s.ip and (s.time >= o.last_seen or o.ip is None):
        o.ip = s.ip
    o.hostname = s.hostname or o.hostname
    o.dhcp_vendor = s.dhcp_vendor or o.dhcp_vendor
    o.last_seen = max(o.last_seen, s.time)


async def sweep_async(subnets: Sequence[IPNet], scope: Scope, iface: str | None, timeout: float) -> list[Sighting]:
    """`arp_sweep` off the event loop (scapy blocks)."""
    return await asyncio.to_thread(arp_sweep, subnets, scope, iface, timeout)
