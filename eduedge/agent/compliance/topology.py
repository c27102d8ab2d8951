"""The campus as links between ports: from LLDP and the configuration, never guessed.

Rules about links (campus backbone >= 1 Gbit/s, 100 Mbit/s into each classroom, the access link) need to
know which ports are which. That comes from two places only:

- LLDP and CDP: each polled switch reports `lldp.neighbor` samples (value = the neighbour's sysName, tags
  `local_port`, `local_port_num`, `remote_port`, `remote_chassis`; from LLDP-MIB, or the vendor's own LLDP
  table where the standard one is empty) and, where it speaks CDP, `cdp.neighbor` samples (value = the
  neighbour's device ID, tags `local_port`, `remote_port`). A neighbour that is a configured device makes
  a link (its `source` says which protocol saw it); one that is not is listed as unresolved, not turned
  into a link.
- the configuration: `topology.uplink` (where the school's access link lands), `topology.links` (links
  to devices without LLDP) and `topology.classroom_drops` (ports that feed a classroom).

A link is `backbone` when both ends have a role in `topology.backbone_roles` (core and distribution by
default), and `classroom` when exactly one end is a device placed in a room (or the configuration says
so). Each end carries the negotiated speed (`if.speed_mbps`) and state (`if.oper_status`) of its port.
A neighbour that LLDP reported before but not in the device's latest poll stays, marked `stale`: a
backbone link that went down is a finding, not a link that quietly disappeared (for a week; then it is
forgotten, as a link removed on purpose should be).

>>> normalise_port("GigabitEthernet0/0/1") == normalise_port("Gi0/0/1") == normalise_port("GE0/0/1")
True
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eduedge.agent.config import AgentConfig
from eduedge.agent.samplestore import PollRecord, SampleStore
from eduedge.collectors.snmp.config import SnmpDevice
from eduedge.core.samples import Sample

_PREFIXES = {"gigabitethernet": "gi", "ge": "gi", "tengigabitethernet": "te", "tengige": "te",
             "xgigabitethernet": "xge", "fastethernet": "fa", "ethernet": "eth"}
_NAME = re.compile(r"^([a-z]+)\s*(.*)$")
# An LLDP entry older than the device's last good poll by more than this was not in that poll.
_STALE_SLACK_S = 1.0
# A neighbour not reported for this long is forgotten: a link removed on purpose stops being a question.
FORGET_AFTER_S = 7 * 86400.0


def normalise_port(name: str) -> str:
    """A port name in a form that the long and short spellings share (`GigabitEthernet0/1` = `Gi0/1`)."""
    text = name.strip().lower().replace(" ", "")
    m = _NAME.match(text)
    if not m:
        return text
    return _PREFIXES.get(m.group(1), m.group(1)) + m.group(2)


@dataclass
class End:
    """One end of a link: a port on a configured device, with what its latest poll said."""

    device: str
    port: str
    if_index: str | None = None
    speed_mbps: float | None = None
    oper_status: str | None = None
    seen: float | None = None
    found: bool = False
    matched_by: str = ""

    def label(self) -> str:
        return f"{self.device} {self.port}"

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "port": self.port, "if_index": self.if_index, "speed_mbps": self.speed_mbps,
                "oper_status": self.oper_status, "seen": self.seen, "found": self.found,
                "matched_by": self.matched_by}


@dataclass
class Link:
    a: End
    b: End | None
    kinds: set[str]
    source: str
    room: str | None = None
    far_name: str = ""
    far_port: str = ""
    last_seen: float | None = None
    stale: bool = False

    @property
    def ends(self) -> list[End]:
        return [self.a] if self.b is None else [self.a, self.b]

    @property
    def speed_mbps(self) -> float | None:
        """The link's speed: the lower of what its ends negotiated (they differ only through a fault)."""
        speeds = [e.speed_mbps for e in self.ends if e.speed_mbps is not None]
        return min(speeds) if speeds else None

    @property
    def down(self) -> bool:
        return any(e.oper_status not in (None, "up") for e in self.ends)

    def label(self) -> str:
        far = self.b.label() if self.b is not None else " ".join(x for x in (self.far_name, self.far_port) if x)
        return f"{self.a.label()} ↔ {far}" if far else self.a.label()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"link": self.label(), "kinds": sorted(self.kinds), "source": self.source,
                               "speed_mbps": self.speed_mbps, "ends": [e.to_dict() for e in self.ends]}
        if self.room:
            out["room"] = self.room
        if self.last_seen is not None:
            out["lldp_last_seen"] = self.last_seen
        if self.stale:
            out["stale"] = True
        return out


@dataclass
class Topology:
    links: list[Link] = field(default_factory=list)
    uplink: End | None = None
    unresolved: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Link]:
        return [x for x in self.links if kind in x.kinds]


@dataclass
class _Port:
    if_index: str
    name: str
    alias: str = ""
    speed_mbps: float | None = None
    oper_status: str | None = None
    seen: float | None = None


def _interfaces(speeds: Iterable[Sample], opers: Iterable[Sample]) -> dict[str, dict[str, _Port]]:
    """{device: {if_index: port}} from the newest if.speed_mbps and if.oper_status samples."""
    out: dict[str, dict[str, _Port]] = {}
    for s in [*speeds, *opers]:
        idx = s.tags.get("if_index")
        if idx is None:
            continue
        port = out.setdefault(s.device, {}).setdefault(idx, _Port(idx, s.tags.get("interface", f"ifIndex {idx}"),
                                                                   s.tags.get("alias", "")))
        if s.metric == "if.speed_mbps" and isinstance(s.value, int | float):
            port.speed_mbps = float(s.value)
        elif s.metric == "if.oper_status":
            port.oper_status = str(s.value)
        port.seen = max(port.seen or s.time, s.time)
    return out


def _find_port(ports: Mapping[str, _Port], ref: str, port_num: str | None = None) -> tuple[_Port | None, str]:
    """The polled port that `ref` names (by ifName/ifDescr, alias, spelling, or ifIndex), and how."""
    for p in ports.values():
        if p.name == ref:
            return p, "interface name"
    for p in ports.values():
        if ref and p.alias == ref:
            return p, "interface alias"
    norm = normalise_port(ref)
    for p in ports.values():
        if normalise_port(p.name) == norm:
            return p, "interface name (other spelling)"
    if ref.isdigit() and ref in ports:
        return ports[ref], "ifIndex"
    if port_num is not None and port_num in ports:
        # LLDP's local port number is the ifIndex on most switches; used only when the name says nothing.
        return ports[port_num], "LLDP port number = ifIndex"
    return None, ""


def _end(device: str, ref: str, ports: Mapping[str, dict[str, _Port]], port_num: str | None = None) -> End:
    p, how = _find_port(ports.get(device, {}), ref, port_num)
    if p is None:
        return End(device, ref)
    return End(device, p.name, p.if_index, p.speed_mbps, p.oper_status, p.seen, True, how)


class _Names:
    """Resolves what LLDP calls a neighbour (its sysName, maybe with a domain) to a configured device."""

    def __init__(self, cfg: AgentConfig, polls: Mapping[str, PollRecord]):
        self.by_key: dict[str, str] = {}
        for d in cfg.snmp.devices:
            self.by_key[d.name.lower()] = d.name
            hostname = polls[d.name].hostname if d.name in polls else None
            if hostname:
                self.by_key.setdefault(hostname.lower(), d.name)
                self.by_key.setdefault(hostname.lower().split(".")[0], d.name)

    def resolve(self, sysname: str) -> str | None:
        key = sysname.strip().lower()
        return self.by_key.get(key) or self.by_key.get(key.split(".")[0])


def _same_port(x: End, y: End) -> bool:
    return x.device == y.device and (normalise_port(x.port) == normalise_port(y.port)
                                     or (x.if_index is not None and x.if_index == y.if_index))


def _matches(x: End, y: End) -> bool | None:
    """Whether two views of a link end are the same port: True, False, or None when one is not known."""
    if _same_port(x, y):
        return True
    return False if x.found and y.found else None


def _merge(links: list[Link], pairs: dict[frozenset[str], list[Link]], new: Link) -> None:
    """Add `new`, or fold it into the link it is the other view of (LLDP sees each link from both ends).

    Two views are one link when they join the same two devices, agree on at least one port and do not
    contradict each other on the other (two parallel links between the same switches stay two). `pairs`
    indexes the links by the devices they join, so a big campus is not compared link by link.
    """
    if new.b is None:
        links.append(new)
        return
    key = frozenset((new.a.device, new.b.device))
    for old in pairs.get(key, []):
        assert old.b is not None
        if (new.a.device, new.b.device) == (old.a.device, old.b.device):
            na, nb = new.a, new.b
        elif (new.b.device, new.a.device) == (old.a.device, old.b.device):
            na, nb = new.b, new.a
        else:
            continue
        ma, mb = _matches(old.a, na), _matches(old.b, nb)
        if False in (ma, mb) or (ma is None and mb is None):
            continue
        if na.found and not old.a.found:
            old.a = na
        if nb.found and not old.b.found:
            old.b = nb
        old.kinds |= new.kinds
        old.room = old.room or new.room
        if new.last_seen is not None:
            old.last_seen = max(old.last_seen or new.last_seen, new.last_seen)
        old.stale = old.stale and new.stale
        return
    links.append(new)
    pairs.setdefault(key, []).append(new)


def _kinds(cfg: AgentConfig, devices: Mapping[str, SnmpDevice], a: str, b: str | None) -> tuple[set[str], str | None]:
    kinds: set[str] = set()
    room = None
    da, db = devices.get(a), devices.get(b) if b else None
    if da is not None and db is not None:
        roles = set(cfg.topology.backbone_roles)
        if da.role in roles and db.role in roles:
            kinds.add("backbone")
        if (da.room is None) != (db.room is None):
            kinds.add("classroom")
            room = da.room or db.room
    return kinds, room


def build_topology(cfg: AgentConfig, speeds: Iterable[Sample], opers: Iterable[Sample],
                   neighbors: Iterable[Sample], polls: Mapping[str, PollRecord]) -> Topology:
    """The links of the campus from the newest interface, LLDP and CDP samples, the configuration and the
    record of each device's last poll."""
    ports = _interfaces(speeds, opers)
    names = _Names(cfg, polls)
    topo = Topology()
    devices = {d.name: d for d in cfg.snmp.devices}
    configured = set(devices)
    pairs: dict[frozenset[str], list[Link]] = {}
    for s in sorted(neighbors, key=lambda x: (x.device, x.tags.get("local_port", ""), x.time)):
        if s.device not in configured:
            continue
        local_ref = s.tags.get("local_port") or s.tags.get("local_port_num", "")
        a = _end(s.device, local_ref, ports, s.tags.get("local_port_num"))
        last_ok = polls[s.device].last_ok if s.device in polls else None
        stale = last_ok is not None and s.time < last_ok - _STALE_SLACK_S
        if stale and last_ok is not None and s.time < last_ok - FORGET_AFTER_S:
            continue
        far = names.resolve(str(s.value))
        if far is None:
            topo.unresolved.append({"device": s.device, "port": a.port, "neighbor": str(s.value),
                                    "neighbor_port": s.tags.get("remote_port", ""),
                                    "chassis": s.tags.get("remote_chassis", ""), "last_seen": s.time,
                                    "stale": stale})
            continue
        b = _end(far, s.tags.get("remote_port", ""), ports)
        kinds, room = _kinds(cfg, devices, s.device, far)
        source = "cdp" if s.metric == "cdp.neighbor" else "lldp"
        _merge(topo.links, pairs, Link(a, b, kinds, source, room, last_seen=s.time, stale=stale))
    # A port whose old neighbour was replaced by a new one: the old entry is history, not a link.
    live = {(e.device, normalise_port(e.port)) for x in topo.links if not x.stale for e in x.ends}
    topo.links = [x for x in topo.links
                  if not x.stale or not any((e.device, normalise_port(e.port)) in live for e in x.ends)]
    pairs = {}
    for x in topo.links:
        if x.b is not None:
            pairs.setdefault(frozenset((x.a.device, x.b.device)), []).append(x)
    for i, m in enumerate(cfg.topology.links):
        a = _end(m.device, m.port, ports)
        if not a.found:
            topo.notes.append(f"topology.links[{i}]: port {m.port} not found among the polled interfaces of "
                              f"{m.device}")
        far = m.neighbor if m.neighbor in configured else None
        b = _end(far, m.neighbor_port or "", ports) if far else None
        kinds, room = _kinds(cfg, devices, m.device, far)
        _merge(topo.links, pairs, Link(a, b, kinds, "config", room, far_name="" if far else m.neighbor,
                                       far_port=m.neighbor_port or ""))
    for i, drop in enumerate(cfg.topology.classroom_drops):
        a = _end(drop.device, drop.port, ports)
        if not a.found:
            topo.notes.append(f"topology.classroom_drops[{i}]: port {drop.port} not found among the polled "
                              f"interfaces of {drop.device}")
        same = next((x for x in topo.links if any(_same_port(e, a) for e in x.ends)), None)
        if same is not None:
            same.kinds.add("classroom")
            same.room = drop.room
        else:
            topo.links.append(Link(a, None, {"classroom"}, "config", drop.room, far_name=f"room {drop.room}"))
    if cfg.topology.uplink is not None:
        up = cfg.topology.uplink
        topo.uplink = _end(up.device, up.port, ports)
        if not topo.uplink.found:
            topo.notes.append(f"topology.uplink: port {up.port} not found among the polled interfaces of "
                              f"{up.device}")
    return topo


def topology_from_store(cfg: AgentConfig, store: SampleStore) -> Topology:
    """`build_topology` on what the store holds."""
    return build_topology(cfg, store.latest("if.speed_mbps"), store.latest("if.oper_status"),
                          [*store.latest("lldp.neighbor"), *store.latest("cdp.neighbor")], store.polls())
