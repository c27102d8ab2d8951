"""The simulated campus as a running model: nodes, cables, traffic, Wi-Fi clients, uptimes, faults.

Built once from a `Campus`; every question the simulated devices answer (a counter, an uptime, a port
state, how many clients an AP has) is a pure function of this model and the request time, so two
readings are always consistent with each other and with what the campus file says.

Traffic: every leaf (a classroom PC drop, an AP, a projector...) has a peak rate in each direction
(`traffic:` in the campus file, times a fixed per-port weight); a switch's uplink carries the sum of
what hangs below it, capped at 95 % of the link speed. Each direction's rate is the peak times the
school-day factor, and a counter is the exact integral of that rate since the device last booted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
import re
from dataclasses import dataclass, field

from eduedge.simulator.campus import AccessPoint, Campus, ClassroomDevice, Spread, recording_path, split_endpoint
from eduedge.simulator.faults import FaultBook
from eduedge.simulator.schoolday import SchoolDay, SimClock
from eduedge.simulator.snmprec import column, int_of, load_snmprec, text_of

IF_TYPE = (1, 3, 6, 1, 2, 1, 2, 2, 1, 3)
IF_DESCR = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)
IF_PHYS = (1, 3, 6, 1, 2, 1, 2, 2, 1, 6)
IF_NAME = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1)
_PHYSICAL_TYPES = {6, 62, 69, 117}
# interfaces that are ifType ethernet but not front-panel ports: management, VLAN, LAG, wireless, bridges
_NOT_A_PORT = re.compile(r"(?i)^(vlan|port-channel|eth-trunk|meth|m-gigabit|mg\b|mgmt|management|null|inloop|"
                         r"loopback|br\d|bridge|wifi|ra\d|rai\d|apcli|wds|ath|wlan|bond|gi0/0$)")
_SPEED_BY_NAME = [(re.compile(r"(?i)^(fa|fastethernet)"), 100), (re.compile(r"(?i)^(fo|forty)"), 40000),
                  (re.compile(r"(?i)^(hu|hundred)"), 100000), (re.compile(r"(?i)^(xg|te|ten|xge|xgigabit)"), 10000),
                  (re.compile(r"(?i)^(gi|ge|gigabit|port \d+: gigabit)"), 1000)]
SNMP_KINDS = {"switch", "controller", "ap", "projector", "printer", "ups"}
LLDP_KINDS = {"switch", "controller", "ap"}
OCTETS_PER_PACKET = 700


def seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "big")


def draw(rng: random.Random, s: Spread) -> float:
    v = rng.gauss(s.mean, s.sd) if s.sd else s.mean
    if s.min is not None:
        v = max(s.min, v)
    if s.max is not None:
        v = min(s.max, v)
    return v


@dataclass
class Port:
    number: int              # campus port number (1-based; the node's uplink is port 1 on leaves)
    if_index: int
    name: str
    use: str                 # uplink / backbone / classroom / unused
    speed_mbps: int
    peer: str | None = None  # the node at the other end of the cable
    peer_port: int | None = None
    pc: bool = False         # a classroom drop with a desktop PC (no described device)
    out_Bps: float = 0.0     # peak bytes/s sent out of this port (day factor 1.0)
    in_Bps: float = 0.0
    alias: str = ""


@dataclass
class Station:
    mac: bytes
    ap: str
    radio: int
    ssid: int
    rssi_dbm: int
    snr_db: int
    since: float
    tablet: bool


@dataclass
class Node:
    name: str
    kind: str                # switch / controller / ap / projector / panel / printer / ups / tablet
    model: str | None        # recording stem, or a fit-AP type for controller-managed APs
    zone: str
    room: str | None
    mac: bytes
    ports: dict[int, Port] = field(default_factory=dict)
    uplink_port: int | None = None
    controller: str | None = None      # fit APs: the controller that manages them
    spec: object = None                # the campus entry (Switch, AccessPoint, ClassroomDevice, Controller)
    address: tuple[str, int] | None = None
    initial_uptime: float = 0.0
    recorded: bool = False             # the model is a recording: the device answers from it

    @property
    def answers_snmp(self) -> bool:
        return self.kind in SNMP_KINDS and self.recorded

    @property
    def speaks_lldp(self) -> bool:
        return self.kind in LLDP_KINDS


def base_mac(records: dict | None, name: str, campus_id: str) -> bytes:
    """A per-device MAC with the vendor OUI of its recording (so the agent sees a real vendor)."""
    oui = b"\x02\xee\x00"
    if records:
        for v in column(records, IF_PHYS).values():
            raw = v[2:]
            if len(raw) == 6 and raw[:3] != b"\x00\x00\x00":
                oui = raw[:3]
                break
    return oui + seed(campus_id, name).to_bytes(8, "big")[:3]


def physical_ports(records: dict, regex: str | None) -> list[tuple[int, str]]:
    """(ifIndex, name) of the recording's front-panel ports, in ifIndex order."""
    types = column(records, IF_TYPE)
    names = column(records, IF_NAME)
    descrs = column(records, IF_DESCR)
    out = []
    for idx in sorted(types):
        if len(idx) != 1:
            continue
        name = (text_of(names.get(idx)) or text_of(descrs.get(idx))).strip()
        if regex is not None:
            if re.search(regex, name):
                out.append((idx[0], name))
        elif int_of(types[idx]) in _PHYSICAL_TYPES and not _NOT_A_PORT.match(name):
            out.append((idx[0], name))
    return out


def max_speed(port_name: str) -> int | None:
    for rx, speed in _SPEED_BY_NAME:
        if rx.match(port_name):
            return speed
    return None


class WorldError(ValueError):
    pass


class World:
    def __init__(self, campus: Campus, launch: float, start: dt.datetime | None = None):
        self.campus = campus
        self.launch = launch
        start_time = campus.clock.start if isinstance(campus.clock.start, dt.datetime) else (
            start or dt.datetime.now().replace(microsecond=0))
        self.clock = SimClock(launch, start_time.replace(tzinfo=None), campus.clock.speed,
                              SchoolDay.from_campus(campus.day))
        self.faults = FaultBook(launch, campus.faults)
        self.nodes: dict[str, Node] = {}
        self.records: dict[str, dict] = {}
        self._build_nodes()
        self._wire()
        self._traffic()
        self._tablets: dict[str, list[Node]] = {}
        for t in self.nodes.values():
            if t.kind == "tablet":
                ap = self._serving_ap(t)
                if ap is not None:
                    self._tablets.setdefault(ap, []).append(t)
        self._wrap_offsets: dict[tuple[str, int], int] = {}
        self._stations_key: object = None
        self._stations: dict[str, list[Station]] = {}

    # -- building -----------------------------------------------------------------------------------

    def _recording(self, model: str) -> dict:
        if model not in self.records:
            self.records[model] = load_snmprec(recording_path(model))
        return self.records[model]

    def _node(self, name: str, kind: str, model: str | None, zone: str, room: str | None, spec: object) -> Node:
        recs = self._recording(model) if model and recording_path(model).exists() else None
        node = Node(name, kind, model, zone, room, base_mac(recs, name, self.campus.school.id), spec=spec,
                    recorded=recs is not None)
        node.initial_uptime = 86400 * (3 + seed(self.campus.school.id, name, "uptime") % 60) + \
            seed(name) % 86400
        self.nodes[name] = node
        return node

    def _build_nodes(self) -> None:
        c = self.campus
        for s in c.switches:
            node = self._node(s.name, "switch", s.model, s.zone, s.room, s)
            phys = physical_ports(self._recording(s.model), s.port_names)
            if len(phys) < s.port_count:
                raise WorldError(f"switch {s.name}: recording {s.model} has {len(phys)} front-panel ports "
                                 f"({', '.join(n for _, n in phys[:4])}...), fewer than port_count {s.port_count}")
            groups = s.port_groups()
            for n in range(1, s.port_count + 1):
                if_index, pname = phys[n - 1]
                g = groups.get(n)
                speed = g.speed_mbps if g else 1000
                cap = max_speed(pname)
                if g and g.use != "unused" and cap is not None and speed > cap:
                    raise WorldError(f"switch {s.name} port {n} ({pname}) cannot run at {speed} Mbit/s "
                                     f"(at most {cap})")
                node.ports[n] = Port(n, if_index, pname, g.use if g else "unused", speed)
            node.uplink_port = s.uplink.port
        ctl = c.wireless.controller
        if ctl is not None:
            self._leaf(self._node(ctl.name, "controller", ctl.model, ctl.zone, ctl.room, ctl))
        for ap in c.wireless.aps:
            node = self._node(ap.name, "ap", ap.model, ap.zone, ap.room, ap)
            if not node.recorded:
                node.controller = ctl.name if ctl else None
            self._leaf(node)
        for d in c.devices:
            node = self._node(d.name, d.kind, d.model, d.zone, d.room, d)
            if d.kind != "tablet":
                self._leaf(node)

    def _leaf(self, node: Node) -> None:
        """Non-switch nodes: port 1 is the cable to the switch; a recording's other ports are unused."""
        if node.recorded:
            phys = physical_ports(self._recording(node.model or ""), None)
            phys = phys or [(1, "eth0")]
        else:
            phys = [(1, "GigabitEthernet0/0/0" if node.kind == "ap" else "eth0")]
        for n, (if_index, pname) in enumerate(phys, 1):
            node.ports[n] = Port(n, if_index, pname, "uplink" if n == 1 else "unused", 1000)
        node.uplink_port = 1

    def _wire(self) -> None:
        c = self.campus
        for s in c.switches:
            if s.uplink.to in ("gateway", c.gateway.name):
                self.nodes[s.name].ports[s.uplink.port].alias = f"uplink to {c.gateway.name}"
                self.nodes[s.name].ports[s.uplink.port].peer = c.gateway.name
                continue
            peer, pport = split_endpoint(s.uplink.to)
            self._cable(s.name, s.uplink.port, peer, pport)
        for node in self.nodes.values():
            spec = node.spec
            if node.kind in ("switch", "tablet") or spec is None:
                continue
            uplink = getattr(spec, "uplink", None)
            if uplink:
                sw, p = split_endpoint(uplink)
                self._cable(node.name, 1, sw, p)
                node.ports[1].speed_mbps = self.nodes[sw].ports[p].speed_mbps
        for node in self.nodes.values():
            for port in node.ports.values():
                if node.kind == "switch" and port.use == "classroom" and port.peer is None:
                    port.pc = True
                    port.alias = "classroom drop (PC)"

    def _cable(self, a: str, ap: int, b: str, bp: int) -> None:
        pa, pb = self.nodes[a].ports[ap], self.nodes[b].ports[bp]
        pa.peer, pa.peer_port, pb.peer, pb.peer_port = b, bp, a, ap
        where = f" ({self.nodes[a].room})" if self.nodes[a].room else ""
        pa.alias = f"uplink to {b}"
        pb.alias = f"{a}{where}"

    def _traffic(self) -> None:
        t = self.campus.traffic
        peak = {"ap": t.ap, "controller": t.controller, "projector": t.projector, "panel": t.panel,
                "printer": t.printer, "ups": t.ups}

        def weight(*key: object) -> float:
            return 0.6 + 0.8 * (seed(self.campus.school.id, *key) % 1000) / 1000

        scale = [1.0, 1.0]

        def subtree(name: str) -> tuple[float, float]:
            """(down, up) peak bytes/s of everything below `name`'s uplink, and set its ports' rates."""
            node = self.nodes[name]
            if node.kind != "switch":
                down, up = peak.get(node.kind, (0.0, 0.0))
                w = weight(name)
                return down * w * 125000 * scale[0], up * w * 125000 * scale[1]
            total_down = total_up = 0.0
            for port in node.ports.values():
                if port.number == node.uplink_port:
                    continue
                if port.pc:
                    w = weight(name, port.number)
                    d, u = t.pc[0] * w * 125000 * scale[0], t.pc[1] * w * 125000 * scale[1]
                elif port.peer is not None:
                    d, u = subtree(port.peer)
                else:
                    continue
                cap = port.speed_mbps * 125000 * 0.95
                d, u = min(d, cap), min(u, cap)
                port.out_Bps, port.in_Bps = d, u
                peer = self.nodes.get(port.peer or "")
                if peer is not None and port.peer_port is not None:
                    peer.ports[port.peer_port].in_Bps, peer.ports[port.peer_port].out_Bps = d, u
                total_down += d
                total_up += u
            return total_down, total_up

        root = next(s for s in self.campus.switches if s.uplink.to in ("gateway", self.campus.gateway.name))
        # most school traffic goes to the Internet: at the peak, the campus fills 90 % of its WAN link
        d, u = subtree(root.name)
        wan = self.campus.wan
        scale[0] = min(1.0, 0.9 * wan.down_mbps * 125000 / d) if d else 1.0
        scale[1] = min(1.0, 0.9 * wan.up_mbps * 125000 / u) if u else 1.0
        d, u = subtree(root.name)
        port = self.nodes[root.name].ports[root.uplink.port]
        cap = port.speed_mbps * 125000 * 0.95
        port.in_Bps, port.out_Bps = min(d, cap), min(u, cap)

    # -- state at a moment --------------------------------------------------------------------------

    def boot_time(self, name: str, now: float) -> float:
        boots = [b for b in self.faults.boot_times(name) if b <= now]
        return boots[-1] if boots else self.launch - self.nodes[name].initial_uptime

    def boots(self, name: str, now: float) -> int:
        """How many times the device has booted (snmpEngineBoots)."""
        return 7 + sum(1 for b in self.faults.boot_times(name) if b <= now)

    def is_down(self, name: str, now: float) -> bool:
        return self.faults.down(name, now)

    def port_up(self, name: str, number: int, now: float) -> bool:
        node = self.nodes[name]
        port = node.ports[number]
        if port.use == "unused" or (port.peer is None and not port.pc):
            return False
        if self.is_down(name, now) or self.faults.port_flapped_down(name, number, now):
            return False
        if port.peer in self.nodes:
            if self.is_down(port.peer, now):
                return False
            if port.peer_port is not None and self.faults.port_flapped_down(port.peer, port.peer_port, now):
                return False
        return True

    def last_change(self, name: str, number: int, now: float) -> float:
        """Real time of the port's last state change (at the latest, when the device booted)."""
        boot = self.boot_time(name, now)
        changes = [t for t in self.faults.flap_changes(name, number, now) if t >= boot]
        port = self.nodes[name].ports[number]
        if port.peer in self.nodes and port.peer_port is not None:
            changes += [t for t in self.faults.flap_changes(port.peer, port.peer_port, now) if t >= boot]
            changes += [t for t in self.faults.boot_times(port.peer) if boot <= t <= now]
        return max(changes, default=boot)

    def octets(self, name: str, number: int, now: float) -> tuple[int, int]:
        """(in, out) octets counted by the port since the device booted (plus a scheduled wrap offset)."""
        port = self.nodes[name].ports[number]
        boot = self.boot_time(name, now)
        flow = self.clock.traffic(boot, now)
        off = self._wrap_offset(name, number, boot)
        return off + int(port.in_Bps * flow), off + int(port.out_Bps * flow)

    def _wrap_offset(self, name: str, number: int, boot: float) -> int:
        wrap = self.faults.wrap_time(name)
        if wrap is None or self.boot_time(name, wrap) != boot:
            return 0
        key = (name, number)
        if key not in self._wrap_offsets:
            port = self.nodes[name].ports[number]
            at = self.clock.traffic(boot, wrap)
            # both directions' 32-bit counters read 2^32 - 1 just before `wrap`: the larger flow decides
            self._wrap_offsets[key] = (-int(max(port.in_Bps, port.out_Bps) * at)) % (1 << 32)
        return self._wrap_offsets[key]

    # -- Wi-Fi --------------------------------------------------------------------------------------

    def ap_clients(self, name: str, now: float) -> int:
        node = self.nodes[name]
        if self.is_down(name, now) or self.faults.clients_lost(name, now):
            return 0
        if node.controller and self.is_down(node.controller, now):
            return 0
        spec: AccessPoint = node.spec  # type: ignore[assignment]
        period = self.clock.period(now)
        table = spec.clients if spec.clients is not None else self.campus.zone(node.zone).clients
        return table.get(period, 0) + len(self._tablets_at(name, period))  # type: ignore[call-overload]

    def _tablets_at(self, ap: str, period: str) -> list[Node]:
        """Tablets are on the Wi-Fi in lessons and breaks, on the AP of their room (or of their zone)."""
        return self._tablets.get(ap, []) if period in ("lesson", "break") else []

    def _serving_ap(self, tablet: Node) -> str | None:
        aps = [n for n in self.nodes.values() if n.kind == "ap"]
        same_room = [a.name for a in aps if a.room == tablet.room]
        if same_room:
            return same_room[0]
        same_zone = [a.name for a in aps if a.zone == tablet.zone]
        return same_zone[0] if same_zone else None

    def radio_split(self, name: str, clients: int) -> list[int]:
        """Clients per radio: a third on 2.4 GHz where there is also a 5/6 GHz radio."""
        radios = self.nodes[name].spec.radios  # type: ignore[union-attr]
        if len(radios) == 1 or clients == 0:
            return [clients] + [0] * (len(radios) - 1)
        low = [i for i, r in enumerate(radios) if r.band == "2.4"]
        high = [i for i, r in enumerate(radios) if r.band != "2.4"]
        out = [0] * len(radios)
        n_low = round(clients / 3) if low and high else (clients if low else 0)
        for k in range(n_low):
            out[low[k % len(low)]] += 1
        for k in range(clients - n_low):
            out[high[k % len(high)]] += 1
        return out

    def ssid_split(self, count: int) -> list[int]:
        """Clients of one radio spread over the SSIDs by their shares (largest remainder)."""
        ssids = self.campus.wireless.controller.ssids if self.campus.wireless.controller else []
        if not ssids:
            return [count]
        total = sum(s.share for s in ssids)
        exact = [count * s.share / total for s in ssids]
        out = [math.floor(x) for x in exact]
        for i in sorted(range(len(ssids)), key=lambda i: exact[i] - out[i], reverse=True)[:count - sum(out)]:
            out[i] += 1
        return out

    def shape(self, now: float) -> tuple:
        """Changes whenever anything that decides table rows (clients, links) may have changed."""
        return self.clock.period(now), self.faults.version(now)

    def stations(self, now: float) -> dict[str, list[Station]]:
        """Wi-Fi stations per AP now: stable MACs and signal for as long as the shape stays the same."""
        key = self.shape(now)
        if key == self._stations_key:
            return self._stations
        out: dict[str, list[Station]] = {}
        for node in self.nodes.values():
            if node.kind != "ap":
                continue
            n = self.ap_clients(node.name, now)
            zone = self.campus.zone(node.zone)
            period = self.clock.period(now)
            tablets = self._tablets_at(node.name, period)
            per_radio = self.radio_split(node.name, n)
            stations: list[Station] = []
            k = 0
            for radio, count in enumerate(per_radio):
                ssid_counts = self.ssid_split(count)
                for ssid, c in enumerate(ssid_counts):
                    for _ in range(c):
                        rng = random.Random(seed(self.campus.school.id, node.name, k))
                        tablet = k < len(tablets)
                        oui = b"\x3c\x28\x6d" if tablet else bytes([0x02 | (rng.getrandbits(8) & 0xFC), 0x1a, 0x11])
                        mac = oui + rng.getrandbits(24).to_bytes(3, "big")
                        since = now - rng.uniform(60, 3000)
                        stations.append(Station(mac, node.name, radio, ssid, round(draw(rng, zone.rssi_dbm)),
                                                round(draw(rng, zone.snr_db)), since, tablet))
                        k += 1
            out[node.name] = stations
        self._stations_key, self._stations = key, out
        return out

    # -- naming -------------------------------------------------------------------------------------

    def snmp_nodes(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.answers_snmp]

    def pjlink_nodes(self) -> list[Node]:
        return [n for n in self.nodes.values()
                if isinstance(n.spec, ClassroomDevice) and n.spec.pjlink is not None]

    def managed_aps(self, controller: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == "ap" and n.controller == controller]
