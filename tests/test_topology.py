"""The campus topology from LLDP samples and the configuration: links, their kinds and their ends."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from eduedge.agent.compliance.topology import Topology, build_topology
from eduedge.agent.config import AgentConfig
from eduedge.agent.samplestore import PollRecord
from eduedge.core.samples import Sample

T = 1_700_000_000.0


def config(**topology: Any) -> AgentConfig:
    devices = [("core", "core", None), ("dist-a", "distribution", None), ("dist-b", "distribution", None),
               ("acc-101", "access", "A101"), ("ap-101", "ap", "A101")]
    return AgentConfig.model_validate({
        "school": {"id": "t-school", "name": "T", "city": "yinchuan", "type": "primary"},
        "snmp": {"credentials": {"c": {"version": "2c", "community": {"env": "UNUSED"}}},
                 "devices": [{"name": n, "host": "127.0.0.1", "credentials": "c", "role": r, "room": room}
                             for n, r, room in devices]},
        "topology": topology})


def ports(device: str, *rows: tuple[int, str, float], t: float = T) -> list[Sample]:
    out = []
    for idx, name, mbps in rows:
        tags = {"if_index": str(idx), "interface": name}
        out += [Sample(t, device, "if.speed_mbps", mbps, "Mbit/s", tags),
                Sample(t, device, "if.oper_status", "up", "state", tags)]
    return out


def nb(device: str, local: str, num: int, neighbor: str, remote: str, t: float = T) -> Sample:
    return Sample(t, device, "lldp.neighbor", neighbor, "info", {"local_port": local, "local_port_num": str(num),
                                                                 "remote_port": remote})


def build(samples: list[Sample], cfg: AgentConfig | None = None, polls: dict[str, PollRecord] | None = None
          ) -> Topology:
    speeds = [s for s in samples if s.metric == "if.speed_mbps"]
    opers = [s for s in samples if s.metric == "if.oper_status"]
    neighbors = [s for s in samples if s.metric in ("lldp.neighbor", "cdp.neighbor")]
    if polls is None:
        polls = {d: PollRecord(d, T, True, T) for d in {s.device for s in samples}}
    return build_topology(cfg or config(), speeds, opers, neighbors, polls)


def test_cdp_makes_links_where_lldp_is_silent_and_folds_into_lldp_where_both_see_one():
    # a Cisco core that speaks only CDP to dist-a, and both protocols to dist-b (CDP samples carry the local
    # port and the neighbour's device ID, as _cdp.yaml reads them)
    cdp = [Sample(T, "core", "cdp.neighbor", far, "info", {"local_port": local, "local_if_index": str(i),
                                                          "remote_port": remote})
           for i, local, far, remote in ((1, "Gi0/1", "dist-a", "Gi1/0/49"), (2, "Gi0/2", "dist-b", "Gi1/0/50"))]
    topo = build([*ports("core", (1, "Gi0/1", 1000), (2, "Gi0/2", 1000)), *ports("dist-a", (49, "Gi1/0/49", 1000)),
                  *ports("dist-b", (50, "Gi1/0/50", 1000)), *cdp, nb("dist-b", "Gi1/0/50", 50, "core", "Gi0/2")])
    assert sorted((x.label(), x.source, sorted(x.kinds)) for x in topo.links) == [
        ("core Gi0/1 ↔ dist-a Gi1/0/49", "cdp", ["backbone"]),
        ("core Gi0/2 ↔ dist-b Gi1/0/50", "cdp", ["backbone"])]


def test_a_link_seen_from_both_ends_is_one_link_with_both_ports():
    topo = build([*ports("core", (1, "Gi0/1", 1000)), *ports("dist-a", (49, "Gi1/0/49", 1000)),
                  nb("core", "Gi0/1", 1, "dist-a", "Gi1/0/49"), nb("dist-a", "Gi1/0/49", 49, "core", "Gi0/1")])
    [link] = topo.links
    assert link.label() == "core Gi0/1 ↔ dist-a Gi1/0/49"
    assert link.kinds == {"backbone"} and link.speed_mbps == 1000 and link.source == "lldp"
    assert [e.matched_by for e in link.ends] == ["interface name", "interface name"]


def test_the_slower_end_decides_the_link_speed():
    topo = build([*ports("core", (1, "Gi0/1", 1000)), *ports("dist-a", (49, "Gi1/0/49", 100)),
                  nb("core", "Gi0/1", 1, "dist-a", "Gi1/0/49")])
    assert topo.links[0].speed_mbps == 100


def test_ports_are_found_by_other_spellings_and_by_the_lldp_port_number():
    topo = build([*ports("core", (1, "GigabitEthernet0/1", 1000)), *ports("dist-a", (49, "Gi1/0/49", 1000)),
                  # core's LLDP names its port by MAC; dist-a names core's port in the short spelling
                  nb("core", "00:1e:13:aa:0b:01", 1, "dist-a", "Gi1/0/49"),
                  nb("dist-a", "Gi1/0/49", 49, "core", "Gi0/1")])
    [link] = topo.links
    assert link.a.port == "GigabitEthernet0/1" and link.a.found


def test_a_neighbour_is_resolved_by_sysname_with_a_domain_or_by_its_polled_hostname():
    polls = {"core": PollRecord("core", T, True, T), "dist-a": PollRecord("dist-a", T, True, T),
             "dist-b": PollRecord("dist-b", T, True, T, hostname="SW-B-ROOM7")}
    topo = build([*ports("core", (1, "Gi0/1", 1000), (2, "Gi0/2", 1000)),
                  nb("core", "Gi0/1", 1, "DIST-A.school.local", "Gi1/0/49"),
                  nb("core", "Gi0/2", 2, "sw-b-room7", "Gi1/0/49")], polls=polls)
    assert sorted(x.b.device for x in topo.links if x.b) == ["dist-a", "dist-b"]


def test_a_neighbour_that_is_no_configured_device_is_listed_not_guessed():
    topo = build([*ports("core", (9, "Gi0/9", 1000)), nb("core", "Gi0/9", 9, "HP-LaserJet-3F", "eth0")])
    assert topo.links == []
    assert topo.unresolved == [{"device": "core", "port": "Gi0/9", "neighbor": "HP-LaserJet-3F",
                                "neighbor_port": "eth0", "chassis": "", "last_seen": T, "stale": False}]


def test_two_parallel_links_between_the_same_switches_stay_two():
    topo = build([*ports("core", (1, "Gi0/1", 1000), (2, "Gi0/2", 1000)),
                  *ports("dist-a", (49, "Gi1/0/49", 1000), (50, "Gi1/0/50", 1000)),
                  nb("core", "Gi0/1", 1, "dist-a", "Gi1/0/49"), nb("core", "Gi0/2", 2, "dist-a", "Gi1/0/50"),
                  nb("dist-a", "Gi1/0/49", 49, "core", "Gi0/1"), nb("dist-a", "Gi1/0/50", 50, "core", "Gi0/2")])
    assert sorted(x.label() for x in topo.links) == ["core Gi0/1 ↔ dist-a Gi1/0/49", "core Gi0/2 ↔ dist-a Gi1/0/50"]


def test_roles_decide_backbone_and_rooms_decide_classroom_links():
    topo = build([*ports("dist-a", (5, "Gi0/5", 100), (6, "Gi0/6", 1000)), *ports("acc-101", (1, "Gi0/1", 100)),
                  nb("dist-a", "Gi0/5", 5, "acc-101", "Gi0/1"), nb("dist-a", "Gi0/6", 6, "dist-b", "Gi0/1")])
    kinds = {x.label(): (x.kinds, x.room) for x in topo.links}
    assert kinds == {"dist-a Gi0/5 ↔ acc-101 Gi0/1": ({"classroom"}, "A101"),
                     "dist-a Gi0/6 ↔ dist-b Gi0/1": ({"backbone"}, None)}


def test_a_neighbour_missing_from_the_latest_poll_stays_as_stale_until_the_port_has_a_new_one():
    polls = {"core": PollRecord("core", T + 60, True, T + 60)}
    old = [*ports("core", (1, "Gi0/1", 1000), (2, "Gi0/2", 1000), t=T + 60),
           nb("core", "Gi0/1", 1, "dist-a", "Gi1/0/49"), nb("core", "Gi0/2", 2, "dist-b", "Gi1/0/49", t=T + 60)]
    topo = build(old, polls=polls)
    assert {x.label(): x.stale for x in topo.links} == {"core Gi0/1 ↔ dist-a Gi1/0/49": True,
                                                        "core Gi0/2 ↔ dist-b Gi1/0/49": False}
    moved = build([*old, nb("core", "Gi0/1", 1, "dist-b", "Gi1/0/50", t=T + 60)], polls=polls)
    assert sorted(x.label() for x in moved.links) == ["core Gi0/1 ↔ dist-b Gi1/0/50", "core Gi0/2 ↔ dist-b Gi1/0/49"]
    week = T + 60 + 7 * 86400 + 1
    forgotten = build([*old, nb("core", "Gi0/2", 2, "dist-b", "Gi1/0/49", t=week)],
                      polls={"core": PollRecord("core", week, True, week)})
    assert [x.label() for x in forgotten.links] == ["core Gi0/2 ↔ dist-b Gi1/0/49"]


def test_the_configuration_adds_links_lldp_cannot_see_drops_and_the_uplink():
    cfg = config(uplink={"device": "core", "port": "Gi0/24"},
                 links=[{"device": "core", "port": "Gi0/3", "neighbor": "dist-b", "neighbor_port": "Gi0/1"},
                        {"device": "core", "port": "Gi0/4", "neighbor": "old-hub-in-library"}],
                 classroom_drops=[{"device": "dist-a", "port": "Gi0/5", "room": "A101"},
                                  {"device": "dist-a", "port": "Gi0/8", "room": "B202"}])
    topo = build([*ports("core", (3, "Gi0/3", 1000), (4, "Gi0/4", 100), (24, "Gi0/24", 1000)),
                  *ports("dist-b", (1, "Gi0/1", 1000)), *ports("dist-a", (5, "Gi0/5", 100)),
                  *ports("acc-101", (1, "Gi0/1", 100)), nb("dist-a", "Gi0/5", 5, "acc-101", "Gi0/1")], cfg)
    by_label = {x.label(): x for x in topo.links}
    assert by_label["core Gi0/3 ↔ dist-b Gi0/1"].kinds == {"backbone"}
    assert by_label["core Gi0/3 ↔ dist-b Gi0/1"].source == "config"
    assert by_label["core Gi0/4 ↔ old-hub-in-library"].kinds == set()
    assert by_label["dist-a Gi0/5 ↔ acc-101 Gi0/1"].room == "A101"           # config and LLDP agree: one link
    assert by_label["dist-a Gi0/8 ↔ room B202"].a.found is False              # named, but not polled yet
    assert topo.notes == ["topology.classroom_drops[1]: port Gi0/8 not found among the polled interfaces of dist-a"]
    assert topo.uplink is not None and topo.uplink.speed_mbps == 1000 and topo.uplink.found
    assert [x.label() for x in topo.of_kind("classroom")] == ["dist-a Gi0/5 ↔ acc-101 Gi0/1",
                                                              "dist-a Gi0/8 ↔ room B202"]


def test_topology_references_to_unknown_devices_are_configuration_errors():
    with pytest.raises(ValidationError, match=r"topology\.uplink\.device: 'nope' is not a device under snmp\.devices"):
        config(uplink={"device": "nope", "port": "Gi0/1"})
