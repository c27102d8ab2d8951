"""The campus file: one school described in YAML, validated with every error at its file and line.

`campuses/campus-demo.yaml` is the commented reference. A campus says what the school is, its zones and
rooms, its switches (each a real recording from realdevices/, cut to the described ports),
its wireless controller and APs, its classroom devices, its WAN link, and the faults to play.

Repetition is written once: an entry with `count: N` stands for N entries whose `{n}` (1..N; with a
format spec `{n:02d}`, or an offset `{n+48}`) is filled in; an AP or classroom device without `uplink` is plugged into
the next free classroom port of a switch in its zone, and without `room` gets the zone's rooms in turn.

>>> c = parse_campus(EXAMPLE)
>>> [s.name for s in c.switches], [a.name for a in c.wireless.aps]
(['core'], ['ap-1', 'ap-2'])
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from eduedge.agent.config import School
from eduedge.core.model import Duration
from eduedge.core.yamlfile import YamlDoc, YamlFileError, dotted, load_yaml, parse_yaml, validation_errors
from eduedge.simulator.shared import realdevices_dir

# the recorded real devices live beside the checkout (never copied into it); tests may point elsewhere
REALDEVICES = realdevices_dir() / "snmprec"

NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
ZoneKind = Literal["teaching", "office", "public", "dormitory", "outdoor"]
Period = Literal["night", "morning", "lesson", "break", "lunch", "after_school", "evening", "weekend"]
PERIODS: tuple[str, ...] = Period.__args__  # type: ignore[attr-defined]
PortUse = Literal["uplink", "backbone", "classroom", "unused"]
DeviceKind = Literal["projector", "panel", "printer", "ups", "tablet"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _hhmm(value: object) -> int:
    """Minutes after midnight from "HH:MM" (YAML may hand us an int for 08:00 written unquoted)."""
    if isinstance(value, int):
        return value // 60 if value >= 60 * 24 else value
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", str(value).strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError(f"{value!r} is not a time of day HH:MM")
    return int(m.group(1)) * 60 + int(m.group(2))


TimeOfDay = Annotated[int, BeforeValidator(_hhmm)]


class Clock(Strict):
    """Simulated local time. Traffic and Wi-Fi clients follow its time of day; counters and uptimes
    always advance in real seconds, so rates stay true whatever the speed."""

    start: dt.datetime | Literal["now"] = "now"
    speed: float = Field(1.0, ge=0, le=10000)


class Day(Strict):
    """The school day: lessons and breaks, lunch, after school; other hours are morning/evening/night."""

    first_lesson: TimeOfDay = 8 * 60
    lesson_min: int = Field(45, ge=10, le=120)
    break_min: int = Field(10, ge=0, le=60)
    lessons: int = Field(8, ge=1, le=14)
    lunch_after_lesson: int = Field(4, ge=0, le=14)
    lunch_min: int = Field(90, ge=0, le=180)
    after_school_until: TimeOfDay = 18 * 60
    night_from: TimeOfDay = 22 * 60 + 30
    morning_from: TimeOfDay = 6 * 60 + 30
    school_days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = ["mon", "tue", "wed", "thu", "fri"]
    traffic: dict[Period, float] = Field(default_factory=lambda: {
        "night": 0.03, "morning": 0.2, "lesson": 1.0, "break": 0.6, "lunch": 0.5, "after_school": 0.35,
        "evening": 0.15, "weekend": 0.05})


class Spread(Strict):
    """A normal distribution, clipped to [min, max]."""

    mean: float
    sd: float = Field(0, ge=0)
    min: float | None = None
    max: float | None = None


class Zone(Strict):
    name: str = Field(pattern=NAME)
    kind: ZoneKind
    rooms: list[str] = Field(min_length=1)
    clients: dict[Period, int] = {}      # Wi-Fi clients on each AP of the zone, by period of the day
    rssi_dbm: Spread = Spread(mean=-62, sd=6, min=-90, max=-30)
    snr_db: Spread = Spread(mean=30, sd=6, min=3, max=60)

    @model_validator(mode="before")
    @classmethod
    def _room_ranges(cls, data: Any) -> Any:
        # "A101-A108" stands for A101, A102, ... A108
        if isinstance(data, dict) and isinstance(data.get("rooms"), list):
            data = {**data, "rooms": [r for item in data["rooms"] for r in expand_range(str(item))]}
        return data


def expand_range(text: str) -> list[str]:
    """`A101-A104` -> A101..A104; anything else is one name.

    >>> expand_range("A101-A103"), expand_range("lab")
    (['A101', 'A102', 'A103'], ['lab'])
    """
    m = re.fullmatch(r"(\D*?)(\d+)-\1(\d+)", text)
    if not m:
        return [text]
    lo, hi = int(m.group(2)), int(m.group(3))
    width = len(m.group(2))
    return [f"{m.group(1)}{i:0{width}d}" for i in range(lo, hi + 1)]


def parse_ports(text: str | int) -> list[int]:
    """`"1-4,7"` -> [1, 2, 3, 4, 7].

    >>> parse_ports("1-3,8"), parse_ports(5)
    ([1, 2, 3, 8], [5])
    """
    out: list[int] = []
    for part in str(text).split(","):
        lo, _, hi = part.strip().partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise ValueError(f"{text!r} is not a port list like 1-24,26")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


class PortGroup(Strict):
    ports: str | int
    use: PortUse
    speed_mbps: int = Field(1000, gt=0)

    @model_validator(mode="after")
    def _ports(self) -> PortGroup:
        parse_ports(self.ports)
        return self


class SwitchUplink(Strict):
    port: int = Field(ge=1)
    to: str          # "SWITCH:PORT", or "gateway" (the eduedge box)


class Switch(Strict):
    name: str = Field(pattern=NAME)
    model: str                            # recording stem in eduedge/simulator/realdevices/snmprec
    role: Literal["core", "distribution", "access"] = "access"
    zone: str
    room: str | None = None
    port_count: int = Field(ge=1, le=512)
    port_names: str | None = None         # regex picking the recording's ports, when the default guess is wrong
    ports: list[PortGroup] = Field(min_length=1)
    uplink: SwitchUplink

    def port_groups(self) -> dict[int, PortGroup]:
        out: dict[int, PortGroup] = {}
        for g in self.ports:
            for p in parse_ports(g.ports):
                out[p] = g
        return out


class Radio(Strict):
    band: Literal["2.4", "5", "6"]
    channel: int = Field(ge=1, le=233)
    eirp_dbm: int = Field(20, ge=0, le=36)

    @model_validator(mode="before")
    @classmethod
    def _band_str(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("band"), int | float):
            data = {**data, "band": {2.4: "2.4", 5: "5", 6: "6"}.get(data["band"], str(data["band"]))}
        return data


DEFAULT_RADIOS = [Radio(band="2.4", channel=1), Radio(band="5", channel=36)]


class Ssid(Strict):
    name: str = Field(min_length=1, max_length=32)
    share: float = Field(1.0, gt=0)       # relative share of the clients
    learning: bool = False                # the students' learning devices use it (the 1:1 count's source)


class Controller(Strict):
    name: str = Field(pattern=NAME)
    model: str                            # recording stem (e.g. vrp_ac6605-26)
    zone: str
    room: str | None = None
    uplink: str                           # "SWITCH:PORT"
    ssids: list[Ssid] = [Ssid(name="School")]


class AccessPoint(Strict):
    name: str = Field(pattern=NAME)
    count: int | None = Field(None, ge=1)
    model: str                            # a recording stem (the AP answers SNMP itself) or a fit-AP type
    zone: str
    room: str | None = None
    uplink: str | None = None             # "SWITCH:PORT"; default: next free classroom port in the zone
    radios: list[Radio] = DEFAULT_RADIOS
    clients: dict[Period, int] | None = None   # overrides the zone's


class PJLinkSpec(Strict):
    pjlink_class: Literal[1, 2] = Field(2, alias="class")
    password: str | None = None           # PJLink authentication; the device's own setting
    lamp_hours: int = Field(1200, ge=0)
    inputs: list[str] = ["31", "11", "32"]   # PJLink input codes (3x digital, 1x RGB)


class ClassroomDevice(Strict):
    name: str = Field(pattern=NAME)
    count: int | None = Field(None, ge=1)
    kind: DeviceKind
    model: str | None = None              # recording stem when it answers SNMP (projector, printer, ups)
    zone: str
    room: str | None = None
    uplink: str | None = None
    pjlink: PJLinkSpec | None = None      # projectors and panels answer PJLink when given


class Wireless(Strict):
    controller: Controller | None = None
    aps: list[AccessPoint] = []


class Wan(Strict):
    down_mbps: float = Field(gt=0)
    up_mbps: float = Field(gt=0)
    latency_ms: float = Field(0, ge=0)
    loss_percent: float = Field(0, ge=0, le=100)


class Traffic(Strict):
    """Peak traffic (at lesson time, day factor 1.0) per attached thing, Mbit/s [down, up]."""

    pc: tuple[float, float] = (6.0, 1.5)
    ap: tuple[float, float] = (40.0, 8.0)
    controller: tuple[float, float] = (1.0, 1.0)
    projector: tuple[float, float] = (0.2, 0.05)
    panel: tuple[float, float] = (4.0, 1.0)
    printer: tuple[float, float] = (0.5, 0.5)
    ups: tuple[float, float] = (0.01, 0.01)


FaultKind = Literal["down", "slow", "loss", "reboot", "counter_wrap", "link_flap", "clients_lost",
                    "broker_outage", "wan_degraded"]


class Fault(Strict):
    """A fault to play: `at` after the campus starts (or now, when injected live), for `for`."""

    kind: FaultKind
    at: Duration = 0.0
    duration: Duration | None = Field(None, alias="for")
    device: str | None = None
    port: int | None = None
    delay: Duration | None = None          # slow
    percent: float | None = Field(None, ge=0, le=100)   # loss
    down_for: Duration = 20.0              # reboot: how long it stays silent before coming back
    period: Duration = 10.0                # link_flap: down and up this long each
    down_mbps: float | None = Field(None, gt=0)   # wan_degraded
    up_mbps: float | None = Field(None, gt=0)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _complete(self) -> Fault:
        needs_device = self.kind not in ("broker_outage", "wan_degraded")
        if needs_device and not self.device:
            raise ValueError(f"a {self.kind} fault needs `device`")
        if self.kind == "slow" and self.delay is None:
            raise ValueError("a slow fault needs `delay` (e.g. 1.5s)")
        if self.kind == "loss" and self.percent is None:
            raise ValueError("a loss fault needs `percent`")
        if self.kind == "link_flap" and self.port is None:
            raise ValueError("a link_flap fault needs `port`")
        if self.kind == "wan_degraded" and self.down_mbps is None and self.up_mbps is None:
            raise ValueError("a wan_degraded fault needs `down_mbps` and/or `up_mbps`")
        return self


class Gateway(Strict):
    name: str = Field("eduedge-gw", pattern=NAME)


class Campus(Strict):
    school: School
    clock: Clock = Clock()
    day: Day = Day()
    traffic: Traffic = Traffic()
    gateway: Gateway = Gateway()
    zones: list[Zone] = Field(min_length=1)
    switches: list[Switch] = Field(min_length=1)
    wireless: Wireless = Wireless()
    devices: list[ClassroomDevice] = []
    wan: Wan
    faults: list[Fault] = []
    snmp_community: str = "public"

    def zone(self, name: str) -> Zone:
        return next(z for z in self.zones if z.name == name)

    def all_names(self) -> list[str]:
        names = [s.name for s in self.switches] + [a.name for a in self.wireless.aps] + [d.name for d in self.devices]
        if self.wireless.controller:
            names.append(self.wireless.controller.name)
        return names


class CampusError(YamlFileError):
    pass


def _expand_counts(items: list[Any]) -> list[Any]:
    """Entries with `count: N` become N entries with `{n}` filled in (in every string value)."""
    out: list[Any] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("count"), int):
            out.append(item)
            continue
        for n in range(1, item["count"] + 1):
            out.append({k: _fill(v, n) for k, v in item.items() if k != "count"})
    return out


_TEMPLATE = re.compile(r"\{n([+-]\d+)?(:[^}]*)?\}")


def _fill(value: Any, n: int) -> Any:
    """`{n}`, `{n:02d}`, `{n+48}` in strings become the entry's number.

    >>> _fill("ap-{n:02d} on sw:{n+48}", 3)
    'ap-03 on sw:51'
    """
    if isinstance(value, str) and "{n" in value:
        return _TEMPLATE.sub(lambda m: format(n + int(m.group(1) or 0), (m.group(2) or ":")[1:]), value)
    if isinstance(value, dict):
        return {k: _fill(v, n) for k, v in value.items()}
    return value


def _expanded(doc: YamlDoc) -> YamlDoc:
    """Expand `count` entries; the expanded document keeps the line of the entry each came from."""
    data = dict(doc.data)
    lines = dict(doc.lines)
    for path in (("switches",), ("devices",), ("wireless", "aps")):
        parent: Any = data
        for p in path[:-1]:
            parent = parent.get(p) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or not isinstance(parent.get(path[-1]), list):
            continue
        expanded: list[Any] = []
        for i, item in enumerate(parent[path[-1]]):
            for e in _expand_counts([item]):
                src, dst = (*path, i), (*path, len(expanded))
                for loc, line in doc.lines.items():
                    if loc[:len(src)] == src:
                        lines[(*dst, *loc[len(src):])] = line
                expanded.append(e)
        if len(path) > 1:
            parent = data[path[0]] = dict(parent)
        parent[path[-1]] = expanded
    return YamlDoc(doc.path, data, lines)


def campus_from_doc(doc: YamlDoc) -> Campus:
    if not isinstance(doc.data, dict):
        raise CampusError(doc.path, [f"{doc.path}:1: a campus file must be a YAML mapping"])
    try:
        doc = _expanded(doc)
    except (KeyError, ValueError, IndexError) as e:
        raise CampusError(doc.path, [f"{doc.path}: a `count` entry has a bad {{n}} template: {e}"]) from None
    try:
        campus = Campus.model_validate(doc.data)
    except ValidationError as e:
        raise CampusError(doc.path, validation_errors(doc, e)) from None
    problems = []
    for loc, msg in check_references(campus):
        line = doc.line_of(loc)
        problems.append(f"{doc.path}:{line}: {dotted(loc)}: {msg}" if line else f"{doc.path}: {dotted(loc)}: {msg}")
    if problems:
        raise CampusError(doc.path, problems)
    return campus


def load_campus(path: Path | str) -> Campus:
    """Read and validate a campus file; raise `CampusError` listing every problem with file and line."""
    try:
        doc = load_yaml(path)
    except YamlFileError as e:
        raise CampusError(path, e.problems) from None
    return campus_from_doc(doc)


def parse_campus(text: str, path: str = "<campus>") -> Campus:
    try:
        doc = parse_yaml(text, path)
    except YamlFileError as e:
        raise CampusError(path, e.problems) from None
    return campus_from_doc(doc)


def recording_path(model: str) -> Path:
    return REALDEVICES / f"{model}.snmprec"


def split_endpoint(text: str) -> tuple[str, int]:
    """`"sw-a:12"` -> ("sw-a", 12)."""
    name, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{text!r} is not SWITCH:PORT")
    return name, int(port)


# -- cross-references ------------------------------------------------------------------------------

def check_references(c: Campus) -> list[tuple[tuple, str]]:
    """Everything pydantic cannot see: names that must exist, ports that must be free and wired
    consistently, recordings that must be there. Fills in automatic rooms and uplinks."""
    problems: list[tuple[tuple, str]] = []
    zones = {z.name: z for z in c.zones}
    seen: dict[str, tuple] = {}

    def name_once(name: str, loc: tuple) -> None:
        if name in seen or name == c.gateway.name:
            problems.append(((*loc, "name"), f"name {name!r} is used twice"))
        seen[name] = loc

    def zone_room(zone: str, room: str | None, loc: tuple, any_room: bool = False) -> None:
        # switches and controllers may sit in rooms the zone does not list (a comms cupboard)
        if zone not in zones:
            problems.append(((*loc, "zone"), f"zone {zone!r} is not described under zones "
                                             f"({', '.join(zones)})"))
        elif room is not None and not any_room and room not in zones[zone].rooms:
            problems.append(((*loc, "room"), f"room {room!r} is not in zone {zone}"))

    switches = {s.name: s for s in c.switches}
    used: dict[tuple[str, int], str] = {}
    for i, s in enumerate(c.switches):
        loc = ("switches", i)
        name_once(s.name, loc)
        zone_room(s.zone, s.room, loc, any_room=True)
        if not recording_path(s.model).exists():
            problems.append(((*loc, "model"), f"no recording {s.model}.snmprec in {REALDEVICES}"))
        groups = s.port_groups()
        for p in groups:
            if p > s.port_count:
                problems.append(((*loc, "ports"), f"port {p} is beyond port_count {s.port_count}"))
        if s.uplink.port not in groups or groups[s.uplink.port].use not in ("uplink", "backbone"):
            problems.append(((*loc, "uplink", "port"), f"port {s.uplink.port} is not in an uplink/backbone port group"))
    # switch-to-switch uplinks
    for i, s in enumerate(c.switches):
        loc = ("switches", i, "uplink", "to")
        if s.uplink.to == c.gateway.name or s.uplink.to == "gateway":
            continue
        try:
            peer, port = split_endpoint(s.uplink.to)
        except ValueError as e:
            problems.append((loc, str(e)))
            continue
        problems += _plug(switches, used, peer, port, s.name, loc, {"backbone", "uplink"})
        if peer in switches and port in switches[peer].port_groups():
            mine = s.port_groups().get(s.uplink.port)
            theirs = switches[peer].port_groups()[port]
            if mine and mine.speed_mbps != theirs.speed_mbps:
                problems.append((loc, f"{s.name} port {s.uplink.port} runs at {mine.speed_mbps} Mbit/s but "
                                      f"{peer} port {port} at {theirs.speed_mbps} Mbit/s"))
    roots = [s.name for s in c.switches if s.uplink.to in (c.gateway.name, "gateway")]
    if len(roots) != 1:
        problems.append((("switches",), f"exactly one switch must have `uplink.to: gateway` (found {len(roots)})"))
    problems += _no_loops(c)

    def plug(loc: tuple, item: AccessPoint | ClassroomDevice | Controller) -> None:
        try:
            peer, port = split_endpoint(item.uplink or "")
        except ValueError as e:
            problems.append(((*loc, "uplink"), str(e)))
            return
        problems.extend(_plug(switches, used, peer, port, item.name, (*loc, "uplink"), {"classroom", "backbone"}))

    ctl = c.wireless.controller
    placed: list[tuple[tuple, AccessPoint | ClassroomDevice | Controller]] = []
    if ctl is not None:
        name_once(ctl.name, ("wireless", "controller"))
        zone_room(ctl.zone, ctl.room, ("wireless", "controller"), any_room=True)
        if not recording_path(ctl.model).exists():
            problems.append((("wireless", "controller", "model"), f"no recording {ctl.model}.snmprec"))
        placed.append((("wireless", "controller"), ctl))
    for i, ap in enumerate(c.wireless.aps):
        loc = ("wireless", "aps", i)
        name_once(ap.name, loc)
        zone_room(ap.zone, ap.room, loc)
        if not recording_path(ap.model).exists() and ctl is None:
            problems.append(((*loc, "model"), f"{ap.model!r} is not a recording, so this AP must be managed by a "
                                              "wireless controller, and none is described"))
        placed.append((loc, ap))
    for i, d in enumerate(c.devices):
        loc = ("devices", i)
        name_once(d.name, loc)
        zone_room(d.zone, d.room, loc)
        if d.model is not None and not recording_path(d.model).exists():
            problems.append(((*loc, "model"), f"no recording {d.model}.snmprec"))
        if d.kind == "tablet" and (d.model or d.pjlink or d.uplink):
            problems.append((loc, "a tablet is a Wi-Fi client: no model, pjlink or uplink"))
        if d.pjlink is not None and d.kind not in ("projector", "panel"):
            problems.append(((*loc, "pjlink"), "only projectors and panels speak PJLink"))
        placed.append((loc, d))
    # rooms in turn; explicit uplinks take their ports before the automatic ones are handed out
    room_turn: dict[str, int] = {}
    for _, item in placed:
        if item.zone in zones and item.room is None:
            rooms = zones[item.zone].rooms
            k = room_turn.get(item.zone, 0)
            item.room = rooms[k % len(rooms)]
            room_turn[item.zone] = k + 1
    for loc, item in placed:
        if item.uplink is not None:
            plug(loc, item)
    for loc, item in placed:
        if item.uplink is None and not (isinstance(item, ClassroomDevice) and item.kind == "tablet"):
            item.uplink = _free_port(c, used, item.zone)
            if item.uplink is None:
                problems.append(((*loc, "uplink"), f"no free classroom port left on the switches of zone "
                                                   f"{item.zone} for {item.name}; add switches or ports"))
                continue
            plug(loc, item)

    names = set(seen)
    for i, f in enumerate(c.faults):
        loc = ("faults", i)
        if f.device is not None and f.device not in names:
            problems.append(((*loc, "device"), f"no device named {f.device!r} in this campus"))
        if (f.kind == "link_flap" and f.device in switches and f.port is not None
                and f.port > switches[f.device].port_count):
            problems.append(((*loc, "port"), f"{f.device} has no port {f.port}"))
    return problems


def _plug(switches: dict[str, Switch], used: dict[tuple[str, int], str], peer: str, port: int, who: str,
          loc: tuple, allowed: set[str]) -> list[tuple[tuple, str]]:
    if peer not in switches:
        return [(loc, f"{peer!r} is not a switch of this campus")]
    groups = switches[peer].port_groups()
    if port not in groups or groups[port].use == "unused":
        return [(loc, f"{peer} port {port} is not a used port (see its `ports` groups)")]
    if groups[port].use not in allowed:
        return [(loc, f"{peer} port {port} is a {groups[port].use} port; {who} needs one of {sorted(allowed)}")]
    if (peer, port) in used:
        return [(loc, f"{peer} port {port} is already taken by {used[(peer, port)]}")]
    used[(peer, port)] = who
    return []


def _free_port(c: Campus, used: dict[tuple[str, int], str], zone: str) -> str | None:
    for s in c.switches:
        if s.zone != zone:
            continue
        for p, g in sorted(s.port_groups().items()):
            if g.use == "classroom" and (s.name, p) not in used:
                return f"{s.name}:{p}"
    return None


def _no_loops(c: Campus) -> list[tuple[tuple, str]]:
    parent = {s.name: split_endpoint(s.uplink.to)[0] for s in c.switches
              if s.uplink.to not in ("gateway", c.gateway.name) and ":" in s.uplink.to}
    for i, s in enumerate(c.switches):
        seen = {s.name}
        cur = s.name
        while cur in parent:
            cur = parent[cur]
            if cur in seen:
                return [(("switches", i, "uplink", "to"), f"switch uplinks form a loop through {cur}")]
            seen.add(cur)
    return []


EXAMPLE = """
school: {id: example-school, name: Example, city: demo-city, type: primary}
zones: [{name: t, kind: teaching, rooms: [R1, R2]}]
switches:
  - name: core
    model: tplink_sg2008
    zone: t
    port_count: 8
    ports: [{ports: 1-7, use: classroom}, {ports: 8, use: uplink}]
    uplink: {port: 8, to: gateway}
wireless:
  aps: [{name: "ap-{n}", count: 2, model: unifi_nanohd, zone: t}]
wan: {down_mbps: 100, up_mbps: 20}
"""
