"""The evaluator, one rule kind at a time: hand-made samples at, just under and just over each threshold,
missing inputs (unknown, saying what is missing), port limits, school types, several packs, city overrides."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from eduedge.agent.compliance import assess, evaluate, load_packs
from eduedge.agent.compliance.findings import Finding, rank_problems
from eduedge.agent.compliance.kinds import EFFICIENCY
from eduedge.agent.config import AgentConfig
from eduedge.agent.contract import problems as contract_problems
from eduedge.agent.envelope import Envelope
from eduedge.agent.samplestore import SampleStore
from eduedge.core.samples import Sample

# A Wednesday, 10:00 in Yinchuan: inside the default school hours.
NOW = datetime(2024, 5, 15, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
HOUR = 3600.0
ALL_PACKS = ["yinchuan-2018", "hebei-2019", "moe-2019", "national-2019", "ningxia-2019", "ningxia-2025"]


def config(school_type: str = "primary", packs: list[str] | None = None, **extra: Any) -> AgentConfig:
    data: dict[str, Any] = {
        "school": {"id": "test-school", "name": "Test", "city": "yinchuan", "type": school_type,
                   "enrolment": {"students": 90, "teachers": 10}},
        "snmp": {"credentials": {"c": {"version": "2c", "community": {"env": "UNUSED"}}}, "devices": [
            {"name": "core", "host": "127.0.0.1", "credentials": "c", "role": "core"},
            {"name": "dist-a", "host": "127.0.0.1", "credentials": "c", "role": "distribution"},
            {"name": "dist-b", "host": "127.0.0.1", "credentials": "c", "role": "distribution"},
            {"name": "acc-101", "host": "127.0.0.1", "credentials": "c", "role": "access", "room": "A101"},
            {"name": "ap-101", "host": "127.0.0.1", "credentials": "c", "role": "ap", "zone": "teaching",
             "room": "A101"},
            {"name": "ap-office", "host": "127.0.0.1", "credentials": "c", "role": "ap", "zone": "office",
             "room": "O1"}]},
        "standards": {"packs": packs if packs is not None else ALL_PACKS},
    }
    data.update(extra)
    return AgentConfig.model_validate(data)


def port(device: str, idx: int, name: str, mbps: float, oper: str = "up", t: float = NOW) -> list[Sample]:
    tags = {"if_index": str(idx), "interface": name}
    return [Sample(t, device, "if.speed_mbps", mbps, "Mbit/s", tags), Sample(t, device, "if.oper_status", oper, "state",
                                                                             tags)]


def lldp(device: str, local: str, num: int, neighbor: str, remote: str, t: float = NOW) -> Sample:
    return Sample(t, device, "lldp.neighbor", neighbor, "info",
                  {"local_port": local, "local_port_num": str(num), "remote_port": remote})


def campus(core_b: float = 1000, dist_b: float | None = None, oper: str = "up") -> list[Sample]:
    """core Gi0/1 <-> dist-a Gi0/49 (1 Gbit/s); core Gi0/2 <-> dist-b Gi0/49 (`core_b`); dist-a Gi0/5 <-> acc-101."""
    return [*port("core", 1, "Gi0/1", 1000), *port("core", 2, "Gi0/2", core_b, oper),
            *port("dist-a", 49, "Gi0/49", 1000), *port("dist-b", 49, "Gi0/49", core_b if dist_b is None else dist_b),
            *port("dist-a", 5, "Gi0/5", 100), *port("acc-101", 1, "Gi0/1", 100),
            lldp("core", "Gi0/1", 1, "dist-a", "Gi0/49"), lldp("core", "Gi0/2", 2, "dist-b", "Gi0/49"),
            lldp("dist-a", "Gi0/49", 49, "core", "Gi0/1"), lldp("dist-b", "Gi0/49", 49, "core", "Gi0/2"),
            lldp("dist-a", "Gi0/5", 5, "acc-101", "Gi0/1")]


def store_with(samples: list[Sample], polled: dict[str, bool] | None = None) -> SampleStore:
    st = SampleStore(":memory:")
    devices = polled or {d: True for d in {s.device for s in samples if s.metric.startswith(("if.", "lldp."))}}
    for device, ok in devices.items():
        st.add_poll(device, NOW, ok, [s for s in samples if s.device == device],
                    errors=[] if ok else [f"{device} (127.0.0.1:161): no answer"])
    st.add([s for s in samples if s.device not in devices])
    return st


def judge(rule: str, samples: list[Sample], cfg: AgentConfig | None = None, polled: dict[str, bool] | None = None,
          ) -> Finding:
    cfg = cfg or config()
    found = {f.rule: f for f in evaluate(store_with(samples, polled), cfg, NOW)}
    assert rule in found, f"{rule} not judged; judged: {sorted(found)}"
    return found[rule]


def speedtests(values: list[float], metric: str = "wan.down_mbps", method: str = "tcp") -> list[Sample]:
    return [Sample(NOW - i * HOUR, "gw", metric, v, "Mbit/s", {"method": method}) for i, v in enumerate(values)]


def gateway_port(mbps: float) -> Sample:
    return Sample(NOW, "gw", "host.if_speed_mbps", mbps, "Mbit/s", {"interface": "eth0", "role": "wan"})


# -- link speed -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("speed", "status"), [(1000, "pass"), (999, "fail"), (10000, "pass"), (100, "fail")])
def test_backbone_at_just_under_and_over_one_gigabit(speed, status):
    f = judge("yinchuan-2018.backbone", campus(core_b=speed))
    assert (f.status, f.threshold, f.unit) == (status, 1000, "Mbit/s")
    assert f.value == min(speed, 1000)


def test_every_backbone_link_below_the_threshold_is_named_with_its_ports_and_neighbour():
    f = judge("yinchuan-2018.backbone", [*campus(core_b=100), *port("dist-a", 49, "Gi0/49", 100),
                                         *port("core", 1, "Gi0/1", 100)])
    assert f.status == "fail"
    assert f.evidence["below_threshold"] == ["core Gi0/1 ↔ dist-a Gi0/49 at 100 Mbit/s",
                                             "core Gi0/2 ↔ dist-b Gi0/49 at 100 Mbit/s"]
    assert [p.what for p in f.problems] == ["backbone link Gi0/1 on core (to dist-a Gi0/49) negotiated 100 Mbit/s",
                                            "backbone link Gi0/2 on core (to dist-b Gi0/49) negotiated 100 Mbit/s"]
    assert all("check the cable" in p.hint for p in f.problems)


def test_a_link_that_is_down_fails_and_says_so():
    f = judge("yinchuan-2018.backbone", campus(oper="down"))
    assert f.status == "fail" and f.evidence["down"] == ["core Gi0/2 ↔ dist-b Gi0/49"]
    assert "is down" in f.problems[0].what


def test_a_switch_that_did_not_answer_leaves_its_link_unknown_not_passed():
    samples = [s for s in campus() if s.device != "dist-b"]
    samples = [s for s in samples if not (s.device == "core" and s.tags.get("interface") == "Gi0/2")]
    f = judge("yinchuan-2018.backbone", samples, polled={"core": True, "dist-a": True, "dist-b": False,
                                                         "acc-101": True})
    assert f.status == "unknown"
    assert any("dist-b did not answer its last poll" in m for m in f.missing)


def test_without_any_backbone_link_the_rule_is_unknown_and_says_what_is_missing():
    f = judge("yinchuan-2018.backbone", [*port("core", 1, "Gi0/1", 1000)])
    assert f.status == "unknown" and f.value is None
    assert "no backbone links known" in f.missing[0]


def test_a_neighbour_lldp_stopped_reporting_is_not_silently_dropped():
    st = store_with(campus())
    later = NOW + 600
    # the next poll of core finds only dist-a (dist-b's link is gone from LLDP and its port is down)
    st.add_poll("core", later, True, [*port("core", 1, "Gi0/1", 1000, t=later), *port("core", 2, "Gi0/2", 1000,
                "down", t=later), lldp("core", "Gi0/1", 1, "dist-a", "Gi0/49", t=later)])
    st.add_poll("dist-b", later, False, errors=["dist-b: no answer"])
    f = {x.rule: x for x in evaluate(st, config(), later)}["yinchuan-2018.backbone"]
    assert f.status == "fail" and f.evidence["down"] == ["core Gi0/2 ↔ dist-b Gi0/49"]


def test_backbone_roles_make_a_two_tier_campus_judge_core_to_access_links():
    cfg = config(topology={"backbone_roles": ["core", "access"]})
    samples = [*port("core", 3, "Gi0/3", 100), *port("acc-101", 1, "Gi0/1", 100),
               lldp("core", "Gi0/3", 3, "acc-101", "Gi0/1")]
    f = judge("yinchuan-2018.backbone", samples, cfg)
    assert f.status == "fail" and f.evidence["below_threshold"] == ["core Gi0/3 ↔ acc-101 Gi0/1 at 100 Mbit/s"]


@pytest.mark.parametrize(("speed", "status"), [(100, "pass"), (99, "fail"), (1000, "pass"), (10, "fail")])
def test_classroom_drops_from_lldp_and_from_the_configuration(speed, status):
    cfg = config(topology={"classroom_drops": [{"device": "dist-b", "port": "Gi0/7", "room": "B202"}]})
    f = judge("ningxia-2025.class", [*campus(), *port("dist-b", 7, "Gi0/7", speed)], cfg)
    assert f.status == status
    rooms = {x["room"]: x["status"] for x in f.evidence["links"]}
    assert rooms == {"A101": "pass", "B202": status}


def test_vocational_backbone_needs_ten_gigabit_and_ordinary_rules_do_not_apply():
    cfg = config("vocational-college", ["yinchuan-2018"])
    found = {f.rule: f for f in evaluate(store_with(campus(core_b=10000, dist_b=10000)), cfg, NOW)}
    assert "yinchuan-2018.backbone" not in found and "yinchuan-2018.wifi-areas" not in found
    assert found["yinchuan-2018.backbone-vocational"].status == "fail"   # the 1 Gbit/s link to dist-a
    assert found["yinchuan-2018.backbone-vocational"].evidence["below_threshold"] == [
        "core Gi0/1 ↔ dist-a Gi0/49 at 1000 Mbit/s"]
    assert "faster ports" in found["yinchuan-2018.backbone-vocational"].problems[0].hint


def test_kindergarten_is_judged_by_yinchuan_but_not_by_the_egress_campaigns():
    rules = {f.rule for f in evaluate(store_with([]), config("kindergarten"), NOW)}
    assert "yinchuan-2018.backbone" in rules and "moe-2019.fast-stable" in rules
    assert not rules & {"hebei-2019.egress", "national-2019.egress", "ningxia-2019.egress"}
    assert not rules & {"hebei-2019.access-rate", "ningxia-2025.county"}   # the cloud's, never the school's


# -- capacity -------------------------------------------------------------------------------------------

def test_egress_without_tests_is_unknown_and_names_what_is_missing():
    f = judge("hebei-2019.egress", [])
    assert f.status == "unknown" and f.value is None
    assert f.missing == ["capacity tests (wan.down_mbps) in the last 30 d",
                         "the speed of the gateway's WAN port (host.wan_interface in the configuration)"]


@pytest.mark.parametrize(("value", "status"), [(90.0, "pass"), (89.9, "fail"), (94.0, "pass"), (40.0, "fail")])
def test_egress_tcp_tests_pass_at_ninety_percent_of_the_threshold(value, status):
    f = judge("hebei-2019.egress", [*speedtests([value] * 5), gateway_port(1000)])
    assert f.status == status and f.value == value
    assert f.evidence["pass_at_mbps"] == 90.0 and f.evidence["decided_by"] == "capacity tests"


def test_egress_ip_layer_tests_pass_at_ninety_five_percent():
    assert judge("hebei-2019.egress", speedtests([95.0], method="ip")).status == "pass"
    assert judge("hebei-2019.egress", speedtests([94.9], method="ip")).status == "fail"


def test_capacity_is_the_rate_reached_in_eighty_percent_of_tests():
    f = judge("hebei-2019.egress", speedtests([95, 95, 95, 95, 95, 95, 95, 95, 20, 20]))
    assert f.status == "fail" and f.value == 20       # two slow tests in ten pull the p20 down
    f = judge("hebei-2019.egress", speedtests([95, 95, 95, 95, 95, 95, 95, 95, 95, 20]))
    assert f.status == "pass" and f.value == 95


def test_gigabit_through_a_gigabit_gateway_port_is_port_limited():
    f = judge("ningxia-2025.campus", [*speedtests([930.0] * 3), gateway_port(1000)])
    assert f.status == "port-limited"
    assert f.evidence["gateway_port"]["ceiling_mbps"] == pytest.approx(1000 * 1448 / 1538, abs=0.01)
    assert f.problems[0].status == "port-limited" and "941.5" in f.problems[0].what
    assert judge("ningxia-2025.campus", [gateway_port(1000)]).status == "port-limited"   # a test could never show it


def test_a_line_far_below_what_the_gateway_port_carries_fails_even_when_port_limited():
    f = judge("ningxia-2025.campus", [*speedtests([300.0] * 3), gateway_port(1000)])
    assert f.status == "fail" and f.value == 300


def test_a_hundred_megabit_gateway_port_limits_the_hundred_megabit_egress():
    assert EFFICIENCY["tcp"] * 100 == pytest.approx(94.15, abs=0.01)
    assert judge("hebei-2019.egress", [*speedtests([94.0]), gateway_port(100)]).status == "port-limited"
    assert judge("hebei-2019.egress", [*speedtests([94.0]), gateway_port(1000)]).status == "pass"


def test_an_uplink_port_slower_than_the_threshold_fails_whatever_the_tests_say():
    cfg = config(topology={"uplink": {"device": "core", "port": "Gi0/24"}})
    f = judge("yinchuan-2018.uplink", [*port("core", 24, "Gi0/24", 1000), *speedtests([2400.0]), gateway_port(10000)],
              cfg)
    assert f.status == "fail" and f.evidence["decided_by"] == "uplink port"
    assert f.problems[0].what == "uplink Gi0/24 on core negotiated 1000 Mbit/s"
    assert judge("yinchuan-2018.uplink", [*port("core", 24, "Gi0/24", 10000), *speedtests([2400.0]),
                                          gateway_port(10000)], cfg).status == "pass"


def test_old_tests_outside_the_window_do_not_count():
    old = [Sample(NOW - 31 * 86400, "gw", "wan.down_mbps", 95.0, "Mbit/s", {"method": "tcp"})]
    assert judge("hebei-2019.egress", old).status == "unknown"


# -- several packs, overrides ---------------------------------------------------------------------------

def test_several_packs_judge_the_same_tests_each_with_its_own_threshold():
    found = {f.rule: f for f in evaluate(store_with([*speedtests([150.0] * 4), gateway_port(1000)]), config(), NOW)}
    assert found["national-2019.egress"].status == "pass"
    assert found["hebei-2019.egress"].status == "pass"
    assert found["ningxia-2019.egress"].status == "fail" and found["ningxia-2019.egress"].threshold == 200
    assert found["moe-2019.fast-stable"].evidence["parts"][0]["status"] == "pass"


def test_a_city_override_changes_the_threshold_and_the_finding_says_so():
    cfg = config(standards={"packs": ["ningxia-2019"], "overrides": {"ningxia-2019.egress": 120}})
    f = judge("ningxia-2019.egress", [*speedtests([150.0] * 4), gateway_port(1000)], cfg)
    assert f.status == "pass" and f.threshold == 120
    assert f.evidence["rule"]["threshold_from"].startswith("city override") and "200" in \
        f.evidence["rule"]["threshold_from"]


def test_a_part_of_a_rule_can_be_overridden():
    loss = [Sample(NOW - i * 60, "gw", "wan.loss_percent", 0.6, "percent") for i in range(40)]
    plain = judge("moe-2019.fast-stable", loss, config(standards={"packs": ["moe-2019"]}))
    strict = judge("moe-2019.fast-stable", loss,
                   config(standards={"packs": ["moe-2019"], "overrides": {"moe-2019.fast-stable.loss": 0.5}}))
    part = {p["rule"]: p for p in plain.evidence["parts"]}["moe-2019.fast-stable.loss"]
    assert part["status"] == "pass"
    part = {p["rule"]: p for p in strict.evidence["parts"]}["moe-2019.fast-stable.loss"]
    assert part["status"] == "fail" and part["threshold"] == 0.5 and strict.status == "fail"


def test_overrides_of_unknown_rules_are_refused():
    from eduedge.agent.compliance import PackError
    with pytest.raises(PackError) as e:
        load_packs(["hebei-2019"], overrides={"hebei-2019.egres": 10})
    assert "'hebei-2019.egres' is no rule" in e.value.problems[0]


# -- statistics ("fast and stable") ---------------------------------------------------------------------

def _probes(values: list[float], metric: str, step: float = 60.0, start: float = NOW) -> list[Sample]:
    return [Sample(start - i * step, "gw", metric, v, "") for i, v in enumerate(values)]


def _part(f: Finding, name: str) -> dict[str, Any]:
    return {p["rule"].rsplit(".", 1)[-1]: p for p in f.evidence["parts"]}[name]


@pytest.mark.parametrize(("up", "status"), [(99, "pass"), (98, "fail"), (100, "pass")])
def test_availability_counts_probes_in_school_hours_only(up, status):
    in_hours = _probes([1] * up + [0] * (100 - up), "wan.reachable", step=30)
    night = _probes([0] * 200, "wan.reachable", step=30, start=NOW - 12 * HOUR)   # 22:00: outside school hours
    f = judge("moe-2019.fast-stable", [*in_hours, *night], config(standards={"packs": ["moe-2019"]}))
    part = _part(f, "availability")
    assert part["status"] == status and part["value"] == up


def test_too_few_probes_are_unknown_with_the_count():
    f = judge("moe-2019.fast-stable", _probes([1] * 29, "wan.reachable"), config(standards={"packs": ["moe-2019"]}))
    part = _part(f, "availability")
    assert part["status"] == "unknown" and "have 29, need 30" in part["evidence"]["missing"][0]


@pytest.mark.parametrize(("loss", "status"), [(0.99, "pass"), (1.0, "fail"), (0.0, "pass")])
def test_loss_must_stay_under_one_percent(loss, status):
    f = judge("moe-2019.fast-stable", _probes([loss] * 40, "wan.loss_percent"),
              config(standards={"packs": ["moe-2019"]}))
    assert _part(f, "loss")["status"] == status


@pytest.mark.parametrize(("loaded", "status"), [(60.0, "pass"), (60.3, "fail"), (25.0, "pass")])
def test_latency_under_load_at_most_three_times_idle(loaded, status):
    samples = [*_probes([20.0] * 10, "wan.rtt_ms"), *_probes([loaded] * 3, "wan.rtt_loaded_ms")]
    f = judge("moe-2019.fast-stable", samples, config(standards={"packs": ["moe-2019"]}))
    part = _part(f, "latency-under-load")
    assert part["status"] == status and part["value"] == pytest.approx(loaded / 20)


def test_latency_under_load_without_an_idle_baseline_is_unknown():
    f = judge("moe-2019.fast-stable", _probes([60.0] * 3, "wan.rtt_loaded_ms"),
              config(standards={"packs": ["moe-2019"]}))
    part = _part(f, "latency-under-load")
    assert part["status"] == "unknown" and part["evidence"]["missing"] == ["wan.rtt_ms in the last 30 d"]


def test_fast_stable_passes_only_when_every_part_passes():
    good = [*speedtests([95.0] * 3), gateway_port(1000), *_probes([1] * 40, "wan.reachable"),
            *_probes([0.1] * 40, "wan.loss_percent"), *_probes([20.0] * 10, "wan.rtt_ms"),
            *_probes([30.0] * 3, "wan.rtt_loaded_ms")]
    cfg = config(standards={"packs": ["moe-2019"]})
    assert judge("moe-2019.fast-stable", good, cfg).status == "pass"
    without_loss = [s for s in good if s.metric != "wan.loss_percent"]
    assert judge("moe-2019.fast-stable", without_loss, cfg).status == "unknown"


# -- Wi-Fi ----------------------------------------------------------------------------------------------

def zone(name: str, ztype: str, minutes: float, good: float, aps_up: list[int] | None = None) -> list[Sample]:
    tags = {"zone": name, "zone_type": ztype}
    out = [Sample(NOW - HOUR, "ac-1", "wifi.zone_client_minutes", minutes, "", tags),
           Sample(NOW - HOUR, "ac-1", "wifi.zone_good_client_minutes", good, "", tags)]
    return out + [Sample(NOW - i * 60, "ac-1", "wifi.zone_aps_up", v, "", tags)
                  for i, v in enumerate(aps_up if aps_up is not None else [1] * 100)]


@pytest.mark.parametrize(("good", "status"), [(900, "pass"), (899, "fail"), (1000, "pass")])
def test_a_zone_is_covered_at_ninety_percent_of_client_minutes(good, status):
    f = judge("yinchuan-2018.wifi-areas", [*zone("A101", "teaching", 1000, good), *zone("O1", "office", 400, 400)])
    assert f.status == status
    rows = {z["zone"]: z["status"] for z in f.evidence["zones"]}
    assert rows == {"A101": status, "O1": "pass"}


def test_a_zone_with_too_few_client_minutes_is_unknown_not_covered():
    f = judge("yinchuan-2018.wifi-areas", [*zone("A101", "teaching", 299, 299), *zone("O1", "office", 400, 400)])
    assert f.status == "unknown" and "A101" in f.missing[0]


def test_a_configured_zone_without_any_data_is_unknown():
    f = judge("yinchuan-2018.wifi-areas", zone("A101", "teaching", 1000, 1000))
    assert f.status == "unknown"
    assert {z["zone"]: z["status"] for z in f.evidence["zones"]} == {"A101": "pass", "O1": "unknown"}


def test_a_zone_whose_aps_are_down_fails_even_with_happy_clients():
    f = judge("yinchuan-2018.wifi-areas", [*zone("A101", "teaching", 1000, 1000, [1] * 98 + [0] * 2),
                                           *zone("O1", "office", 400, 400)])
    assert f.status == "fail" and "no AP up" in f.problems[0].what


def test_required_zone_types_differ_for_ordinary_schools_and_vocational_colleges():
    samples = [*zone("A101", "teaching", 1000, 1000), *zone("O1", "office", 400, 400),
               *zone("Dorm-3", "dorm", 1000, 100)]
    assert judge("yinchuan-2018.wifi-areas", samples).status == "pass"             # dorms are not required
    f = judge("yinchuan-2018.wifi-full", samples, config("vocational-college"))
    assert f.status == "fail" and f.value == pytest.approx(200 / 3, abs=0.01)


def test_wifi_access_is_decided_by_a_probe_when_there_is_one():
    probes = [Sample(NOW - i * HOUR, "probe-1", "wifi.probe_down_mbps", v, "Mbit/s", {"zone": "A101"})
              for i, v in enumerate([120.0] * 5)]
    f = judge("yinchuan-2018.wifi-access", probes)
    assert f.status == "pass" and f.evidence["decided_by"] == "active probe"
    slow = [Sample(NOW, "probe-1", "wifi.probe_down_mbps", 99.0, "Mbit/s", {"zone": "A101"})]
    assert judge("yinchuan-2018.wifi-access", slow).status == "fail"


@pytest.mark.parametrize(("phy", "status"), [(200.0, "pass"), (199.0, "fail")])
def test_wifi_access_falls_back_to_twice_the_threshold_in_phy_rate(phy, status):
    rates = [Sample(NOW - HOUR, "ac-1", "wifi.zone_phy_median_mbps", phy, "Mbit/s", {"zone": "A101"})]
    f = judge("yinchuan-2018.wifi-access", rates)
    assert f.status == status and f.evidence["decided_by"] == "negotiated PHY rate (proxy)"


def test_wifi_access_without_data_is_unknown():
    f = judge("yinchuan-2018.wifi-access", [])
    assert f.status == "unknown" and len(f.missing) == 2


# -- devices --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("count", "status"), [(100, "pass"), (99, "fail"), (150, "pass")])
def test_one_learning_device_per_student_and_teacher(count, status):
    f = judge("yinchuan-2018.device-ratio", [Sample(NOW, "gw", "inventory.learning_devices", count, "devices")])
    assert f.status == status and f.value == count / 100


def test_no_learning_device_seen_is_unknown_not_a_count_of_zero():
    f = judge("yinchuan-2018.device-ratio", [Sample(NOW, "gw", "inventory.learning_devices", 0, "devices")])
    assert f.status == "unknown" and f.value is None and "found none" in f.missing[0]
    assert "0 learning devices" not in f.why


def test_device_ratio_without_enrolment_is_unknown():
    cfg = config()
    cfg.school.enrolment = None
    f = judge("yinchuan-2018.device-ratio", [Sample(NOW, "gw", "inventory.learning_devices", 100, "devices")], cfg)
    assert f.status == "unknown" and "school.enrolment" in f.missing[0]


# -- findings, events, the store ------------------------------------------------------------------------

def test_findings_survive_the_store_and_a_change_of_status_is_an_event():
    cfg = config(standards={"packs": ["yinchuan-2018"]})
    st = store_with(campus())
    first = assess(st, cfg, NOW)
    assert {e.details["rule"] for e in first.events} == {f.rule for f in first.findings}   # first judgements
    assert assess(st, cfg, NOW + 60).events == []
    st.add(port("core", 2, "Gi0/2", 100, t=NOW + 120) + port("dist-b", 49, "Gi0/49", 100, t=NOW + 120))
    # a technician's diag sees the change but does not report it: the daemon still must
    assert assess(st, cfg, NOW + 130, source="diag").events[0].details["to"] == "fail"
    third = assess(st, cfg, NOW + 180)
    [event] = third.events
    assert event.kind == "compliance.status_changed" and event.details["from"] == "pass"
    assert event.device == "core" and "core Gi0/2 ↔ dist-b Gi0/49 at 100 Mbit/s" in event.message
    restored = {f.rule: f for f in st.findings()}
    live = {f.rule: f for f in third.findings}
    assert restored.keys() == live.keys()
    assert restored["yinchuan-2018.backbone"].to_dict() == live["yinchuan-2018.backbone"].to_dict()
    assert [(c.old, c.new) for c in st.status_log(NOW + 150) if c.rule == "yinchuan-2018.backbone"] == [
        ("pass", "fail")]


def test_problems_are_ranked_school_before_building_before_room_and_failures_first():
    cfg = config(topology={"uplink": {"device": "core", "port": "Gi0/24"}})
    samples = [*campus(core_b=100), *port("core", 24, "Gi0/24", 1000), *port("dist-a", 5, "Gi0/5", 10),
               *port("acc-101", 1, "Gi0/1", 10)]
    problems = rank_problems(evaluate(store_with(samples), cfg, NOW))
    fails = [p for p in problems if p.status == "fail"]
    assert [p.scope for p in fails] == ["school", "building", "room"]
    assert fails[0].rule == "yinchuan-2018.uplink"     # 1 Gbit/s against 2.5 (ningxia's 1 Gbit/s passes)
    assert problems.index(fails[-1]) < min(problems.index(p) for p in problems if p.status != "fail")


def test_a_finding_dict_has_the_contract_fields_and_the_explanation_in_evidence():
    f = judge("hebei-2019.egress", [])
    d = f.to_dict()
    assert set(d) == {"t", "rule", "subject", "status", "value", "threshold", "unit", "evidence"}
    assert d["evidence"]["why"] and d["evidence"]["missing"] and d["evidence"]["window"]["to"] == NOW
    quote = "全省中小学(含教学点)宽带接入率达到98%以上,出口带宽达到100Mbps以上"
    assert d["evidence"]["rule"]["source"]["quote"] == quote
    assert Finding.from_dict(d).to_dict() == d


def test_findings_and_status_events_of_every_status_meet_the_telemetry_contract():
    cfg = config(topology={"uplink": {"device": "core", "port": "Gi0/24"}})
    samples = [*campus(core_b=100), *port("core", 24, "Gi0/24", 10000), *speedtests([930.0] * 3),
               gateway_port(1000)]
    a = assess(store_with(samples), cfg, NOW)
    assert {f.status for f in a.findings} == {"pass", "fail", "unknown", "port-limited"}
    env = Envelope("test-school", "yinchuan", "test-gw", "0.1.0", "0" * 32)
    for kind, items in (("findings", [f.to_dict() for f in a.findings]), ("events", [e.to_dict() for e in a.events])):
        message = json.loads(env.encode_batch(kind, 7, items, now=NOW))
        assert contract_problems(message) == [], kind
