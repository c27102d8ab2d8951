"""Can this classroom take a live class? Each classroom judged for a lesson profile, link by link.

The policies (Yinchuan's synchronous classes, Hebei's delivered classes, the national "three links and two
platforms") come down in a classroom to one question: will the live lesson from the base school work in
this room today? A lesson crosses four links, and each is judged against the profile's needs (a rule of the
`live-class` pack: the Mbit/s the room receives and sends, one-way delay, jitter, loss, and the share of a
link the lesson may fill at lesson peaks):

| link   | what decides it                                               | read from                                 |
|--------|---------------------------------------------------------------|-------------------------------------------|
| drop   | each switch port feeding the room: up, full duplex, no errors | topology (classroom drops), if.speed_mbps, |
|        | in > 5 % of lesson-time quarter hours, its speed x max_load   | if.oper_status, if.duplex (latest);        |
|        | carries the p95 lesson-time load plus the lesson, each way    | liveclass.drop_* (history)                 |
| wifi   | the room's zone covered as the Wi-Fi rules judge it (signal,  | wifi.zone_* (wifi_coverage.py)            |
|        | APs up, radios not busy or noisy) over lesson time            |                                            |
| uplink | the school's capacity x max_load carries the p95 lesson-time  | wan.down/up_mbps tests (p20), else         |
|        | load plus the lesson, each way                                | broadband.capacity_*, else the uplink's    |
|        |                                                               | port speed; wan.traffic_*_peak_mbps, else  |
|        |                                                               | liveclass.uplink_* (history)               |
| path   | the live-class server answered its last probe, and over the   | service.* of live_class.server             |
|        | lesson-time probe rounds p95 RTT <= one-way delay (the lesson |                                            |
|        | crosses two legs, the base school's and this one, so one      |                                            |
|        | round trip here stands for the one-way delay), p95 jitter and |                                            |
|        | mean loss within the profile's                                |                                            |

Every judged link says what share of its budget the lesson would use (`used`: 1.0 is all of it). The room is
ready when every link fits; not ready when one does not (the weakest link is the one furthest over); unknown,
with what is missing, when a link cannot be judged; a ready room still names its weakest link, the one with
the least to spare. A room with neither a known drop nor a Wi-Fi zone is unknown. "Lesson time" is
standards.school_hours.

The daemon keeps the history this needs: its `live-class` job probes the endpoints (collectors/service_probes.py)
every live_class.interval, and its `live-class:loads` job, at the SNMP cadence, has `LoadSnapshots.samples` turn
the newest rates of every classroom drop and of the uplink port into `liveclass.*` samples, one per port and
quarter hour: the peak of the rates polled in it (device = the switch; tags room, interface):

| metric                      | unit      | what (the quarter hour's peak)                            |
|-----------------------------|-----------|-----------------------------------------------------------|
| liveclass.drop_down_mbps    | Mbit/s    | a classroom drop's rate toward the room (the port's out)  |
| liveclass.drop_up_mbps      | Mbit/s    | its rate from the room (the port's in)                    |
| liveclass.drop_errors_pps   | packets/s | its receive and send errors                               |
| liveclass.uplink_down_mbps  | Mbit/s    | the uplink port's rate into the school (its in)           |
| liveclass.uplink_up_mbps    | Mbit/s    | its rate out of the school                                |

>>> expand_rooms(["A101-A103", "lab"])
['A101', 'A102', 'A103', 'lab']
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eduedge.agent.compliance.findings import Problem, Status, share_status, worst
from eduedge.agent.compliance.topology import End, Link, Topology, topology_from_store
from eduedge.agent.compliance.wifi_coverage import Judgement, judge_coverage
from eduedge.agent.config import AgentConfig
from eduedge.agent.samplestore import SampleStore
from eduedge.collectors.service_probes_config import LiveClassEndpoint
from eduedge.collectors.wifi.config import ZONE_TYPES
from eduedge.core.i18n import _, clauses
from eduedge.core.samples import Sample

ERROR_SHARE = 5.0            # % of lesson-time periods with errors a drop may show (a glitch, not a fault)
PERIOD_S = 900.0             # the drop and uplink loads are kept as the peak of each quarter hour
TCP_SHARE = 1448 / 1538      # what a capacity test's TCP goodput is of the line (kinds.EFFICIENCY["tcp"])
LINKS = ("drop", "wifi", "uplink", "path")


def num(v: float | None) -> str:
    """A number in words: `100`, `5.5`, `0.62`, `-`.

    >>> num(100.0), num(5.5), num(0.625), num(None)
    ('100', '5.5', '0.62', '-')
    """
    if v is None:
        return "-"
    if abs(v - round(v)) < 1e-9:
        return str(round(v))
    return f"{v:.1f}" if abs(v) >= 1 else f"{v:.2f}"


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile, as the compliance rules take it.

    >>> pct([1, 2, 3, 4, 100], 95), pct([5, 1], 20)
    (100, 1)
    """
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def expand_rooms(rooms: Sequence[str]) -> list[str]:
    """`A101-A112` in a zone's rooms stands for A101 ... A112 (as campus files write them)."""
    out: list[str] = []
    for text in rooms:
        m = re.fullmatch(r"(\D*?)(\d+)-\1(\d+)", text)
        if not m:
            out.append(text)
            continue
        width = len(m.group(2))
        out += [f"{m.group(1)}{i:0{width}d}" for i in range(int(m.group(2)), int(m.group(3)) + 1)]
    return out


def _natural(text: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


# -- where the classrooms are --------------------------------------------------------------------------

def _teaching(cfg: AgentConfig, zone: str | None) -> bool:
    z = cfg.wifi.zones.get(zone or "")
    return (z.type if z is not None else zone) == "teaching"


def classrooms(cfg: AgentConfig, topology: Topology) -> list[str]:
    """The rooms to judge: live_class.rooms, else the rooms of teaching zones, of classroom drops, and of APs
    and devices placed in teaching zones."""
    if cfg.live_class.rooms:
        return list(cfg.live_class.rooms)
    rooms = {r for z in cfg.wifi.zones.values() if z.type == "teaching" for r in expand_rooms(z.rooms)}
    rooms |= {x.room for x in topology.of_kind("classroom") if x.room}
    rooms |= {a.room for a in cfg.wifi.aps if a.room and _teaching(cfg, a.zone)}
    rooms |= {d.room for d in cfg.snmp.devices if d.room and _teaching(cfg, d.zone)}
    return sorted(rooms, key=_natural)


def room_zone(cfg: AgentConfig, room: str) -> str | None:
    """The Wi-Fi zone that serves `room`, as collectors/wifi/collector.py places APs: a declared zone listing the
    room, a wifi.aps entry or standalone AP in the room (a zone given only as a type makes the room its own zone)."""
    for name, z in cfg.wifi.zones.items():
        if room in expand_rooms(z.rooms):
            return name
    for a in cfg.wifi.aps:
        if a.room == room:
            return a.zone if a.zone in cfg.wifi.zones else room
    for d in cfg.snmp.devices:
        if d.role == "ap" and d.room == room and d.zone:
            return d.zone if d.zone in cfg.wifi.zones else room if d.zone in ZONE_TYPES else d.zone
    return None


def _feed_end(link: Link, rooms: dict[str, str | None]) -> End:
    """The switch's end of a classroom link: the end whose device is not in a room."""
    if link.b is not None and rooms.get(link.a.device) and not rooms.get(link.b.device):
        return link.b
    return link.a


def drops_of(cfg: AgentConfig, topology: Topology, room: str) -> list[tuple[Link, End]]:
    rooms = {d.name: d.room for d in cfg.snmp.devices}
    return [(x, _feed_end(x, rooms)) for x in topology.of_kind("classroom") if x.room == room]


def live_server(cfg: AgentConfig) -> LiveClassEndpoint | None:
    """live_class.server, else the first live-class endpoint with an echo server, else the first with one."""
    eps = cfg.live_class.endpoints
    if cfg.live_class.server:
        return next(e for e in eps if e.name == cfg.live_class.server)
    return (next((e for e in eps if e.echo and e.role == "live-class"), None)
            or next((e for e in eps if e.echo), None))


# -- the history the judgement reads ------------------------------------------------------------------

@dataclass
class _Peak:
    """One port's readings in one period, consolidated as an RRD keeps MAX."""

    period: int
    device: str
    names: tuple[str, str, str | None]      # (toward the room/school, away, errors or None)
    tags: dict[str, str]
    time: float = 0.0
    values: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])

    def add(self, t: float, values: Sequence[float]) -> None:
        self.time = max(self.time, t)
        self.values = [max(a, b) for a, b in zip(self.values, values, strict=True)]

    def samples(self) -> list[Sample]:
        units = ("Mbit/s", "Mbit/s", "packets/s")
        return [Sample(self.time, self.device, name, round(v, 4), unit, self.tags)
                for name, v, unit in zip(self.names, self.values, units, strict=True) if name is not None]


class LoadSnapshots:
    """The rates of every classroom drop and of the uplink port as `liveclass.*` samples: one per port and
    `period` (a quarter of an hour), the peak of the one-minute rates read in it, as SmokePing's RRDs keep
    MAX. A lesson is longer than the period, so its peak is kept; a week of them stays small enough to judge
    every few minutes (a reading per minute would be 15 times as many rows to read at every judgement).
    A period's samples go out once it has ended (`now` past it) or a reading of the next one arrives."""

    def __init__(self, period: float = PERIOD_S) -> None:
        self.period = period
        self._last: dict[tuple[str, str], float] = {}
        self._open: dict[tuple[str, str], _Peak] = {}

    def samples(self, cfg: AgentConfig, store: SampleStore, now: float | None = None,
                topology: Topology | None = None) -> list[Sample]:
        now = time.time() if now is None else now
        topo = topology if topology is not None else topology_from_store(cfg, store)
        rates: dict[str, dict[tuple[str, str], Sample]] = {}
        for metric in ("if.in_bps", "if.out_bps", "if.in_errors_pps", "if.out_errors_pps"):
            rates[metric] = {(s.device, s.tags.get("if_index", "")): s for s in store.latest(metric)
                             if isinstance(s.value, int | float)}
        out: list[Sample] = []
        rooms = {d.name: d.room for d in cfg.snmp.devices}
        for link in topo.of_kind("classroom"):
            end = _feed_end(link, rooms)
            out += self._read(end, rates, {"room": link.room or "", "interface": end.port},
                              ("liveclass.drop_down_mbps", "liveclass.drop_up_mbps", "liveclass.drop_errors_pps"))
        if topo.uplink is not None:
            out += self._read(topo.uplink, rates, {"interface": topo.uplink.port},
                              ("liveclass.uplink_down_mbps", "liveclass.uplink_up_mbps", None))
        for key, peak in list(self._open.items()):
            if (peak.period + 1) * self.period <= now:
                out += peak.samples()
                del self._open[key]
        return out

    def _read(self, end: End, rates: dict[str, dict[tuple[str, str], Sample]], tags: dict[str, str],
              names: tuple[str, str, str | None]) -> list[Sample]:
        key = (end.device, end.if_index or "")
        rx, tx = rates["if.in_bps"].get(key), rates["if.out_bps"].get(key)
        if end.if_index is None or rx is None or tx is None:
            return []
        t = max(rx.time, tx.time)
        if t <= self._last.get(key, -math.inf):
            return []
        self._last[key] = t
        # a drop sends toward the room what the room receives (out); at the port where the access link lands,
        # what comes in comes from the internet
        toward, away = (tx, rx) if names[2] is not None else (rx, tx)
        errs = [rates[m].get(key) for m in ("if.in_errors_pps", "if.out_errors_pps")]
        error = sum(float(e.value) for e in errs if e is not None)
        if names[2] is not None and any(e is None for e in errs):
            names = (names[0], names[1], None)     # the device reports no error counters for the port
        out: list[Sample] = []
        period = int(t // self.period)
        peak = self._open.get(key)
        if peak is not None and (peak.period != period or peak.names != names):
            out = peak.samples()
            peak = None
        if peak is None:
            peak = self._open[key] = _Peak(period, end.device, names, tags)
        peak.add(t, (float(toward.value) / 1e6, float(away.value) / 1e6, error))
        return out


# -- judging ------------------------------------------------------------------------------------------

@dataclass
class Inputs:
    """What a judgement reads: the configuration, the store, the topology, the time, and the rule's window."""

    cfg: AgentConfig
    store: SampleStore
    topology: Topology
    now: float
    window: float
    in_school_hours: Callable[[float], bool]
    hours_text: str                     # "school hours of the last 7 d"
    _cache: dict[tuple[str, bool], list[Sample]] = field(default_factory=dict, repr=False)
    _ports: dict[str, dict[tuple[str, str], list[float]]] = field(default_factory=dict, repr=False)
    _minutes: dict[int, bool] = field(default_factory=dict, repr=False)

    def history(self, metric: str, lesson_time: bool = True) -> list[Sample]:
        """The window's samples of `metric` (in lesson time), read once per judgement: every room asks."""
        key = (metric, lesson_time)
        if key not in self._cache:
            found = self.store.history(metric, self.now - self.window, self.now)
            self._cache[key] = [s for s in found if not lesson_time or self.in_school_hours(s.time)]
        return self._cache[key]

    def by_port(self, metric: str) -> dict[tuple[str, str], list[float]]:
        """The lesson-time values of a per-port metric, by (device, interface): a week of every drop's loads is
        read series by series, and whether a moment is lesson time is worked out once per minute."""
        if metric not in self._ports:
            out: dict[tuple[str, str], list[float]] = {}
            for device, tags, points in self.store.series(metric, self.now - self.window, self.now):
                values = out.setdefault((device, tags.get("interface", "")), [])
                values += [float(v) for t, v in points if isinstance(v, int | float) and self._lesson(t)]
            self._ports[metric] = out
        return self._ports[metric]

    def _lesson(self, t: float) -> bool:
        minute = int(t // 60)
        if minute not in self._minutes:
            self._minutes[minute] = self.in_school_hours(t)
        return self._minutes[minute]


@dataclass
class LinkVerdict:
    """One link of one room for one profile."""

    link: str                           # drop, wifi, uplink, path
    label: str                          # "classroom drop Gi0/8 on core"
    status: Status
    used: float | None                  # share of its budget the lesson would use; > 1 does not fit; inf: broken
    why: str
    hint: str = ""
    device: str | None = None
    missing: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        used = None if self.used is None else ("broken" if math.isinf(self.used) else round(self.used, 4))
        out = {"link": self.link, "label": self.label, "status": self.status, "used": used, "why": self.why,
               **self.evidence}
        if self.hint:
            out["hint"] = self.hint
        if self.device:
            out["device"] = self.device
        if self.missing:
            out["missing"] = self.missing
        return out


@dataclass
class RoomVerdict:
    room: str
    status: Status
    links: list[LinkVerdict]
    weakest: LinkVerdict | None
    notes: list[str] = field(default_factory=list)

    def words(self, profile: str) -> str:
        """The answer in plain words: ready or not for `profile`, and the weakest link."""
        w = self.weakest
        if self.status == "pass":
            if w is None:
                return _("room {room} is ready for a {profile}").format(room=self.room, profile=profile)
            return _("room {room} is ready for a {profile}; weakest link: {link} - {why}").format(
                room=self.room, profile=profile, link=w.label, why=w.why)
        if self.status == "fail":
            assert w is not None
            return _("room {room} is not ready for a {profile}: {link} - {why}").format(
                room=self.room, profile=profile, link=w.label, why=w.why)
        missing = clauses(m for x in self.links for m in x.missing) or (self.notes[0] if self.notes else "")
        return _("room {room}: cannot tell whether it is ready for a {profile}: missing {missing}").format(
            room=self.room, profile=profile, missing=missing)

    def to_dict(self, profile: str) -> dict[str, Any]:
        return {"room": self.room, "status": self.status, "ready": self.status == "pass",
                "weakest_link": self.weakest.link if self.weakest else None,
                "weakest": self.weakest.label if self.weakest else None, "words": self.words(profile),
                "links": [x.to_dict() for x in self.links], "notes": self.notes}


def _fits(link: str, label: str, used: float, why: str, hint: str, device: str | None,
          evidence: dict[str, Any]) -> LinkVerdict:
    status: Status = "pass" if used <= 1 else "fail"
    return LinkVerdict(link, label, status, used, why, hint if status == "fail" else "", device, [], evidence)


def _load_words(used: float, max_load: float) -> str:
    return _("it would be {full} % full (at most {max} %)").format(full=num(round(used * max_load, 1)),
                                                                  max=num(max_load))


def _directions(needs: dict[str, float], peaks: dict[str, float], capacity: dict[str, float],
                max_load: float) -> tuple[float, str]:
    """The most used direction: (share of its budget, which)."""
    best, which = 0.0, ""
    for d, need in needs.items():
        if need <= 0:
            continue
        budget = capacity[d] * max_load / 100
        used = (peaks[d] + need) / budget if budget > 0 else math.inf
        if used >= best:
            best, which = used, d
    return best, which




def judge_drop(rule: Any, inp: Inputs, link: Link, end: End) -> LinkVerdict:
    p = rule.profile
    label = _("classroom drop {port} on {device}").format(port=end.port, device=end.device)
    since = inp.now - inp.window
    fresh = [e for e in link.ends if e.seen is not None and e.seen >= since]
    if link.stale:
        return LinkVerdict("drop", label, "unknown", None, _("LLDP no longer sees the room's device on it"),
                           missing=[_("{link}: LLDP no longer reports the neighbour").format(link=label)],
                           device=end.device)
    if link.down and fresh:
        states = ", ".join(str(e.oper_status) for e in link.ends)
        return LinkVerdict("drop", label, "fail", math.inf, _("the port is down ({states})").format(states=states),
                           _("check the cable, the socket in the room and the device plugged into it"), end.device)
    speed = link.speed_mbps
    if speed is None or not fresh:
        return LinkVerdict("drop", label, "unknown", None, _("its speed is not known"),
                           missing=[_("the negotiated speed of {link} (no recent poll of {device} shows it)").format(
                               link=label, device=end.device)],
                           device=end.device)
    duplex = next((str(s.value) for s in inp.store.latest("if.duplex", end.device)
                   if s.tags.get("if_index") == end.if_index), None)
    evidence: dict[str, Any] = {"speed_mbps": speed, "duplex": duplex}
    if duplex == "half":
        return LinkVerdict("drop", label, "fail", math.inf,
                           _("it negotiated half duplex at {speed} Mbit/s: collisions lose video packets").format(
                               speed=num(speed)),
                           _("set both ends to auto-negotiate (a port forced to full duplex facing auto makes the "
                             "other end fall back to half) and check the cable"), end.device, [], evidence)
    def mine(metric: str) -> list[float]:
        return inp.by_port(metric).get((end.device, end.port), [])
    peaks: dict[str, float] = {}
    missing = []
    for d in ("down", "up"):
        values = mine(f"liveclass.drop_{d}_mbps")
        if values:
            peaks[d] = pct(values, 95)
            evidence[f"peak_{d}_mbps"], evidence["quarter_hours"] = round(peaks[d], 3), len(values)
        else:
            missing.append(_("the load of {link} in {hours}").format(link=label, hours=inp.hours_text))
    errors = mine("liveclass.drop_errors_pps")
    if errors:
        share = 100.0 * sum(1 for v in errors if v > 0) / len(errors)
        evidence["quarter_hours_with_errors_percent"] = round(share, 2)
        if share > ERROR_SHARE:
            return LinkVerdict("drop", label, "fail", math.inf,
                               _("errors in {share} % of the lesson-time quarter hours (up to {most} packets/s): "
                                 "packets of the lesson are lost on it").format(share=num(share),
                                                                                most=num(max(errors))),
                               _("a damaged cable or socket, or a duplex mismatch: test the cable, replace the patch "
                                 "lead"), end.device, [], evidence)
    if missing:
        return LinkVerdict("drop", label, "unknown", None, _("its load at lesson time is not known"), "", end.device,
                           missing[:1], evidence)
    needs = {"down": p.down_mbps, "up": p.up_mbps}
    used, d = _directions(needs, peaks, {"down": speed, "up": speed}, p.max_load_percent)
    why = (_("runs at {speed} Mbit/s and carries {peak} Mbit/s toward the room at lesson peaks (p95); with the "
             "lesson's {need} Mbit/s {load}") if d == "down" else
           _("runs at {speed} Mbit/s and carries {peak} Mbit/s from the room at lesson peaks (p95); with the "
             "lesson's {need} Mbit/s {load}")).format(speed=num(speed), peak=num(round(peaks[d], 1)),
                                                      need=num(needs[d]), load=_load_words(used, p.max_load_percent))
    hint = (_("a drop below 100 Mbit/s: check the cable (a damaged pair drops gigabit to 100 or 10 Mbit/s) and that "
              "both ends auto-negotiate") if speed < 100 else
            _("the room's own traffic fills the drop: move other devices off it or upgrade the port"))
    return _fits("drop", label, used, why, hint, end.device, evidence)


def judge_wifi(rule: Any, inp: Inputs, zone: str, rows: dict[str, dict[str, Any]]) -> LinkVerdict:
    row = rows.get(zone)
    label = _("Wi-Fi zone {zone}").format(zone=zone)
    if row is None or row["status"] == "unknown":
        reason = (row["reason"] if row is not None else
                  _("no Wi-Fi samples of the zone in {hours}").format(hours=inp.hours_text))
        return LinkVerdict("wifi", label, "unknown", None, reason,
                           missing=[_("{zone}: {reason}").format(zone=label, reason=reason)])
    allowance = 100.0 - rule.zone_share
    # as the coverage rule decides: measured client signal outranks the noise floor, which counts only without it
    if row["decided_by"] == "per-client signal":
        shares = [100.0 - (row["good_share_percent"] or 0.0), row["busy_radio_percent"] or 0.0]
    else:
        shares = [row["busy_radio_percent"] or 0.0, row["noisy_radio_percent"] or 0.0]
    used = max(shares) / allowance if allowance > 0 else (math.inf if max(shares) else 0.0)
    evidence = {k: row[k] for k in ("good_share_percent", "busy_radio_percent", "noisy_radio_percent",
                                    "presence_percent", "decided_by")}
    if row["status"] == "fail":
        # a zone with no AP up is broken; otherwise it failed on a share above its allowance (used > 1)
        down = row["presence_percent"] is not None and row["presence_percent"] < rule.presence
        return LinkVerdict("wifi", label, "fail", math.inf if down else used, row["reason"],
                           _("check the AP's power (PoE) and its switch port") if down else
                           _("a coverage hole or an overloaded AP: check the AP's power and channel, or add an AP"),
                           evidence=evidence)
    return LinkVerdict("wifi", label, "pass", used, row["reason"], evidence=evidence)


def _capacity(inp: Inputs, d: str) -> tuple[float | None, str]:
    tests = [float(s.value) for s in inp.history(f"wan.{d}_mbps", lesson_time=False)
             if isinstance(s.value, int | float) and s.tags.get("method", "tcp") == "tcp"]
    if tests:
        # TCP goodput is 94 % of the line: the line's rate is what the lesson's packets share
        return pct(tests, 20) / TCP_SHARE, _("capacity tests (p20 of {n}, TCP goodput / 0.9415)").format(n=len(tests))
    contract = getattr(inp.cfg.broadband, f"capacity_{d}_mbps")
    if contract:
        return float(contract), f"broadband.capacity_{d}_mbps"
    up = inp.topology.uplink
    if up is not None and up.speed_mbps is not None:
        return up.speed_mbps, _("the speed of the uplink port {port} on {device} (no capacity test or "
                                "contract)").format(port=up.port, device=up.device)
    return None, ""


def judge_uplink(rule: Any, inp: Inputs) -> LinkVerdict:
    p = rule.profile
    label = _("the school's uplink")
    capacity: dict[str, float] = {}
    peaks: dict[str, float] = {}
    evidence: dict[str, Any] = {}
    missing: list[str] = []
    for d in ("down", "up"):
        cap, source = _capacity(inp, d)
        if cap is None:
            missing.append(_("the uplink's download capacity (broadband tests, broadband.capacity_down_mbps or "
                              "topology.uplink)") if d == "down" else
                            _("the uplink's upload capacity (broadband tests, broadband.capacity_up_mbps or "
                              "topology.uplink)"))
        else:
            capacity[d] = cap
            evidence[f"capacity_{d}_mbps"], evidence[f"capacity_{d}_from"] = round(cap, 3), source
        load = [float(s.value) for s in inp.history(f"wan.traffic_{d}_peak_mbps") if isinstance(s.value, int | float)]
        source = _("the WAN port's traffic peaks (p95)")
        if not load:
            load = [float(s.value) for s in inp.history(f"liveclass.uplink_{d}_mbps")
                    if isinstance(s.value, int | float)]
            source = _("the uplink port's rates (p95)")
        if load:
            peaks[d] = pct(load, 95)
            evidence[f"peak_{d}_mbps"], evidence[f"peak_{d}_from"] = round(peaks[d], 3), source
        else:
            missing.append((_("the uplink's download load in {hours}") if d == "down" else
                            _("the uplink's upload load in {hours}")).format(hours=inp.hours_text))
    if missing:
        return LinkVerdict("uplink", label, "unknown", None, _("its capacity or load at lesson time is not known"),
                           missing=missing, evidence=evidence)
    needs = {"down": p.down_mbps, "up": p.up_mbps}
    used, d = _directions(needs, peaks, capacity, p.max_load_percent)
    why = (_("{capacity} Mbit/s of download carries {peak} Mbit/s at lesson peaks (p95); with the lesson's {need} "
             "Mbit/s {load}") if d == "down" else
           _("{capacity} Mbit/s of upload carries {peak} Mbit/s at lesson peaks (p95); with the lesson's {need} "
             "Mbit/s {load}")).format(capacity=num(round(capacity[d], 1)), peak=num(round(peaks[d], 1)),
                                      need=num(needs[d]), load=_load_words(used, p.max_load_percent))
    hint = _("the school's line is full at lesson time: ask the provider about the line (capacity tests show what "
             "it carries), or shift other traffic (updates, video) out of lesson time")
    return _fits("uplink", label, used, why, hint, None, evidence)


def judge_path(rule: Any, inp: Inputs) -> LinkVerdict:
    p = rule.profile
    server = live_server(inp.cfg)
    if server is None:
        what = _("a live-class server with an echo server (live_class.endpoints ... echo)")
        return LinkVerdict("path", _("the path to the live-class server"), "unknown", None,
                           _("no live-class server is configured"), missing=[what])
    label = _("the path to {server}").format(server=server.name)
    last = max(inp.store.latest("service.up", server.name), key=lambda s: s.time, default=None)
    evidence: dict[str, Any] = {"server": server.name, "echo": server.echo}
    if last is not None and last.value == 0 and last.time >= inp.now - inp.window:
        failure = next((str(s.value) for s in inp.store.latest("service.failure", server.name)
                        if s.time == last.time), _("no reason recorded"))
        evidence["last_probe"] = {"time": last.time, "failure": failure}
        return LinkVerdict("path", label, "fail", math.inf,
                           _("the server failed its last probe ({failure})").format(failure=failure),
                           _("check the school's firewall for the live-class server's ports, then ask the platform"),
                           server.name, [], evidence)

    def series(metric: str) -> list[float]:
        return [float(s.value) for s in inp.history(metric) if s.device == server.name
                and isinstance(s.value, int | float)]
    rtt, jitter, loss = (series(f"service.udp_{m}") for m in ("rtt_ms", "jitter_ms", "loss_percent"))
    if len(rtt) < rule.min_samples or len(loss) < rule.min_samples:
        what = _("probe rounds to {server} in {hours} (have {have}, need {need})").format(
            server=server.name, hours=inp.hours_text, have=min(len(rtt), len(loss)), need=rule.min_samples)
        return LinkVerdict("path", label, "unknown", None, _("too few probe rounds"), missing=[what],
                           evidence=evidence)
    delay, jit, lost = pct(rtt, 95), pct(jitter, 95) if jitter else 0.0, sum(loss) / len(loss)
    evidence.update(rounds=len(rtt), rtt_p95_ms=round(delay, 3), jitter_p95_ms=round(jit, 3),
                    loss_mean_percent=round(lost, 3))
    parts = {"delay": delay / p.one_way_delay_ms, "jitter": jit / p.jitter_ms, "loss": lost / p.loss_percent}
    used = max(parts.values())
    why = _("over {rounds} probe rounds in lesson time: round trip {delay} ms (p95; the lesson crosses two such legs, "
            "so about {delay} ms one way, needs <= {max_delay}), jitter {jitter} ms (<= {max_jitter}), loss {loss} % "
            "(<= {max_loss})").format(rounds=len(rtt), delay=num(delay), max_delay=num(p.one_way_delay_ms),
                                      jitter=num(jit), max_jitter=num(p.jitter_ms), loss=num(lost),
                                      max_loss=num(p.loss_percent))
    worst_part = max(parts, key=lambda k: parts[k])
    hint = {"delay": _("the route to the server is long or queues are full: ask the provider, enable SQM on the "
                       "gateway"),
            "jitter": _("queues fill and empty on the way: enable SQM (fq_codel/cake) on the gateway, or ask the "
                        "provider"),
            "loss": _("packets are lost on the way: check the WAN port for errors and ask the provider")}[worst_part]
    return _fits("path", label, used, why, hint, server.name, evidence)


def judge_room(rule: Any, inp: Inputs, room: str, wifi_rows: dict[str, dict[str, Any]],
               shared: list[LinkVerdict]) -> RoomVerdict:
    links = [judge_drop(rule, inp, x, e) for x, e in drops_of(inp.cfg, inp.topology, room)]
    zone = room_zone(inp.cfg, room)
    if zone is not None:
        links.append(judge_wifi(rule, inp, zone, wifi_rows))
    notes = []
    if not links:
        notes.append(_("no classroom drop (topology.classroom_drops, or a device placed in the room) and no Wi-Fi "
                       "zone (wifi.zones rooms) is known for room {room}").format(room=room))
    links += shared
    status = worst(x.status for x in links) if not notes else "unknown"
    failed = [x for x in links if x.status == "fail"]
    unknown = [x for x in links if x.status == "unknown"]
    if failed:
        weakest: LinkVerdict | None = max(failed, key=lambda x: x.used or 0.0)
    elif unknown:
        weakest = unknown[0]
    else:
        weakest = max(links, key=lambda x: x.used or 0.0) if links and not notes else None
    return RoomVerdict(room, status, links, weakest, notes)


def judge_rooms(rule: Any, inp: Inputs, rooms: Sequence[str] | None = None) -> list[RoomVerdict]:
    """Every classroom (or `rooms`) judged for the rule's profile."""
    coverage = judge_coverage(rule.model_copy(update={"zone_types": ["all"]}), "", lambda m: inp.history(m), inp.cfg,
                              inp.hours_text)
    wifi_rows = {r["zone"]: r for r in coverage.evidence.get("zones", [])}
    shared = [judge_uplink(rule, inp), judge_path(rule, inp)]
    return [judge_room(rule, inp, room, wifi_rows, shared)
            for room in (rooms if rooms is not None else classrooms(inp.cfg, inp.topology))]


def judge(rule: Any, rule_id: str, inp: Inputs) -> Judgement:
    """The `live-class` rule: the share of classrooms ready for its profile, every room's verdict as evidence."""
    p = rule.profile
    name = p.name.local()
    verdicts = judge_rooms(rule, inp)
    evidence: dict[str, Any] = {
        "profile": {"id": rule_id, **p.model_dump(exclude={"references"})},
        "rooms": [v.to_dict(name) for v in verdicts],
        "ready": [v.room for v in verdicts if v.status == "pass"],
        "not_ready": [v.room for v in verdicts if v.status == "fail"],
        "unknown": [v.room for v in verdicts if v.status == "unknown"]}
    if not verdicts:
        what = _("no classrooms in the configuration (wifi.zones of type teaching, topology.classroom_drops, rooms)")
        return Judgement("unknown", None, what, evidence, [what], [Problem(rule_id, "unknown", what, _(
                         "name the classrooms in live_class.rooms or in the teaching zones' rooms"), "school", 1.0)])
    problems, missing = [], []
    for v in verdicts:
        w = v.weakest
        if v.status == "fail" and w is not None:
            short = 1.0 if w.used is None or math.isinf(w.used) else min(1.0, w.used - 1)
            problems.append(Problem(rule_id, "fail", _("room {room} not ready for a {profile}: {link} - {why}").format(
                                    room=v.room, profile=name, link=w.label, why=w.why),
                                    w.hint, "room", short, w.device))
        elif v.status == "unknown":
            lacking = [m for x in v.links for m in x.missing] or v.notes
            missing += [_("room {room}: {what}").format(room=v.room, what=m) for m in lacking]
            problems.append(Problem(rule_id, "unknown", _("room {room}: readiness for a {profile} not known").format(
                                    room=v.room, profile=name),
                                    _("missing {what}").format(what=clauses(lacking)), "room", 1.0))
    statuses = [v.status for v in verdicts]
    status, ready = share_status(statuses, rule.threshold)
    why = _("{ready} of {n} classrooms ready for a {profile}; {failed} not, {unknown} unknown").format(
        ready=statuses.count("pass"), n=len(verdicts), profile=name, failed=statuses.count("fail"),
        unknown=statuses.count("unknown"))
    return Judgement(status, round(ready, 2), why, evidence, missing, problems)

