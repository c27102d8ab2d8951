"""The agent configuration that points an eduedge agent at a running simulated campus, and judges it.

It is an ordinary agent configuration (agent/config.py; `eduedge config check` accepts it): the school
from the campus file, one SNMP device per simulated agent with its `host:port`, zone and room, the
campus's zones with their types (wifi.zones), a community read from a file in the state directory, the
campus's uplink, and the MQTT broker when the campus runs one. So that the school is judged, not only
polled, it also names:

- the rule packs for the school's type: the seed documents' packs (docs/STANDARDS.md) and the live-class
  pack, each where one of its rules applies to a school of this type;
- the school hours the campus keeps (its day, in this machine's time zone), or every hour of every day when
  its clock is pinned or sped up: the agent judges by the wall clock, and such a campus is not on it;
- the backbone roles that fit the campus: the core and the roles of the switches cabled to it (a two-tier
  campus's access switches, a three-tier campus's distribution switches);
- broadband tests against the campus's WAN test server (behind its simulated WAN link), which also stands
  as the live-class server whose path the live-class probes time;
- discovery of the campus's subnets, with the learning SSIDs (`learning: true` in the campus file) as the
  learning devices' source for the 1:1 rule; reachability of every device.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from eduedge.agent.compliance import load_packs
from eduedge.agent.config import load_config
from eduedge.core.netaddr import split_host_port
from eduedge.simulator.campus import Campus
from eduedge.simulator.state import SimState
from eduedge.simulator.world import World

ROLE = {"controller": "wlc", "ap": "ap", "printer": "printer", "ups": "ups", "projector": "projector"}
# The packs of the seed documents (docs/STANDARDS.md), then the project's live-class readiness.
SEED_PACKS = ("yinchuan-2018", "hebei-2019", "moe-2019")
PACKS = (*SEED_PACKS, "live-class")
ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def packs_for(school_type: str) -> list[str]:
    """The bundled packs with a rule the agent judges for a school of this type.

    >>> packs_for("secondary"), packs_for("vocational-college")
    (['yinchuan-2018', 'hebei-2019', 'moe-2019', 'live-class'], ['yinchuan-2018', 'moe-2019', 'live-class'])
    """
    rules = load_packs(PACKS)
    return [p.pack for p in rules.packs if any(r.scope == "school" and r.applies_to_type(school_type)
                                               for r in p.rules)]


def backbone_roles(campus: Campus) -> list[str]:
    """The core's role and those of the switches cabled to a core switch.

    A two-tier campus (access switches on the core) gives ["core", "access"]; a three-tier one ["core",
    "distribution"]. Without a switch below the core the default pair stays."""
    core = {s.name for s in campus.switches if s.role == "core"}
    below = {s.role for s in campus.switches if s.uplink.to.split(":")[0] in core and s.role != "core"}
    return ["core", *sorted(below)] if below else ["core", "distribution"]


def _local_zone() -> str:
    """This machine's IANA time zone (TZ, else /etc/localtime's target), else its UTC offset as Etc/GMT-N."""
    for name in (os.environ.get("TZ", "").lstrip(":"), _etc_localtime()):
        if name:
            try:
                ZoneInfo(name)
                return name
            except (ZoneInfoNotFoundError, ValueError):
                continue
    hours = round(time.localtime().tm_gmtoff / 3600)
    return f"Etc/GMT{-hours:+d}" if hours else "UTC"


def _etc_localtime() -> str:
    try:
        target = os.path.realpath("/etc/localtime")
    except OSError:
        return ""
    return target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else ""


def campus_day_hours(campus: Campus) -> dict:
    """The school hours of the campus's own day (its lessons to its after-school end), in this machine's zone."""
    day = campus.day
    return {"days": list(day.school_days), "start": f"{day.first_lesson // 60:02d}:{day.first_lesson % 60:02d}",
            "end": f"{day.after_school_until // 60:02d}:{day.after_school_until % 60:02d}",
            "timezone": _local_zone()}


def school_hours(campus: Campus) -> dict:
    if campus.clock.start == "now" and campus.clock.speed == 1:
        return campus_day_hours(campus)
    # the campus's day is not the wall clock's: it is in school whenever the agent looks (to 23:59; the
    # configuration's hours end before midnight)
    return {"days": ALL_DAYS, "start": "00:00", "end": "23:59", "timezone": _local_zone()}


def _subnets(hosts: list[str]) -> list[str]:
    """The /24s the campus's devices sit in: where discovery may sweep."""
    return sorted({str(ipaddress.ip_network(f"{h}/24", strict=False)) for h in hosts},
                  key=lambda n: ipaddress.ip_network(n))


def agent_config(world: World, state: SimState) -> dict:
    c = world.campus
    school = c.school.model_dump(exclude_none=True)
    community_file = Path(state.state_dir) / "snmp-community"
    devices = []
    for ep in state.endpoints:
        if ep.snmp_port is None:
            continue
        node = world.nodes[ep.name]
        role = node.spec.role if node.kind == "switch" else ROLE.get(node.kind, "other")  # type: ignore[union-attr]
        d = {"name": node.name, "host": f"{ep.host}:{ep.snmp_port}", "credentials": "campus", "role": role,
             "zone": node.zone}
        if node.room:
            d["room"] = node.room
        if role == "wlc":     # as eduedge/config/example-school.yaml: a controller's station table takes many requests
            d["deadline"] = "45s"
            d["max_repetitions"] = 50
        devices.append(d)
    cfg: dict = {
        "school": school,
        "agent": {"id": f"{c.school.id}-sim", "data_dir": str(Path(state.state_dir) / "agent-data")},
        "snmp": {"credentials": {"campus": {"version": "2c", "community": {"file": str(community_file)}}},
                 "devices": devices},
        "host": {"enabled": False},
        "standards": {"packs": packs_for(c.school.type), "school_hours": school_hours(c)},
    }
    # the campus's zones, typed; the controller's APs are placed by their AP group, which is their zone
    cfg["wifi"] = {"zones": {z.name: {"type": z.kind, "rooms": z.rooms} for z in c.zones}}
    root = next(s for s in c.switches if s.uplink.to in ("gateway", c.gateway.name))
    cfg["topology"] = {"uplink": {"device": root.name, "port": world.nodes[root.name].ports[root.uplink.port].name},
                       "backbone_roles": backbone_roles(c)}
    learning = [f"^{s.name}$" for s in (c.wireless.controller.ssids if c.wireless.controller else []) if s.learning]
    hosts = [split_host_port(d["host"])[0] for d in devices]
    if hosts:
        cfg["discovery"] = {"enabled": True, "subnets": _subnets(hosts), "learning": {"ssids": learning}}
    cfg["reachability"] = {"enabled": True}
    if state.speedtest:
        cfg["broadband"] = {"enabled": True, "server": state.speedtest}
        cfg["live_class"] = {"enabled": True, "endpoints": [{"name": "live-class", "role": "live-class",
                                                             "echo": state.speedtest}]}
    if state.broker:
        cfg["mqtt"] = {"broker": state.broker}
    return cfg


def write_agent_config(world: World, state: SimState) -> Path:
    """Write the configuration (and the community file it names) into the state directory; check it."""
    d = Path(state.state_dir)
    (d / "snmp-community").write_text(world.campus.snmp_community + "\n")
    path = d / "agent.yaml"
    header = (f"# Generated by `eduedge sim up` from {state.campus} at {dt.datetime.now():%Y-%m-%d %H:%M:%S}.\n"
              f"# The simulated campus runs in {state.mode} mode; `eduedge sim down` stops it.\n")
    path.write_text(header + yaml.safe_dump(agent_config(world, state), sort_keys=False, allow_unicode=True))
    load_config(path)
    return path
