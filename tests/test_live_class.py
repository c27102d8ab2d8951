"""Live-class readiness judged on hand-made evidence: each classroom link by link (drop, Wi-Fi, uplink, path to
the live-class server) for each profile of the live-class pack, the weakest link named, `unknown` with what is
missing; the history the daemon's job keeps; the pack itself (sources quoted, numbers marked as proposals)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from eduedge.agent.compliance import evaluate, load_packs
from eduedge.agent.compliance.findings import Finding
from eduedge.agent.compliance.live_class import LoadSnapshots, classrooms, expand_rooms, room_zone
from eduedge.agent.compliance.topology import topology_from_store
from eduedge.agent.config import AgentConfig
from eduedge.agent.samplestore import SampleStore
from eduedge.collectors.service_probes_config import LiveClassConfig
from eduedge.core.samples import Sample

NOW = 1_741_658_400.0                    # any moment: the school's hours below are all week, all day
PORTS = {"Gi0/1": ("1", "A101"), "Gi0/2": ("2", "A102"), "Gi0/3": ("3", "B101")}
UPLINK = ("Gi0/24", "24")


def config(**changes: Any) -> AgentConfig:
    doc: dict[str, Any] = {
        "school": {"id": "east-primary", "name": "East Primary", "city": "yc", "type": "primary"},
        "snmp": {"credentials": {"c": {"version": "2c", "community": {"env": "NO_SUCH_ENV"}}},
                 "devices": [{"name": "core", "host": "198.18.0.2", "credentials": "c", "role": "core"}]},
        "standards": {"school_hours": {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00",
                                       "end": "23:59"}},
        "topology": {"uplink": {"device": "core", "port": UPLINK[0]},
                     "classroom_drops": [{"device": "core", "port": p, "room": r} for p, (_, r) in PORTS.items()]},
        "wifi": {"zones": {"teach-a": {"type": "teaching", "rooms": ["A101-A102"]},
                           "teach-b": {"type": "teaching", "rooms": ["B101"]},
                           "office": {"type": "office", "rooms": ["O1"]}}},
        "live_class": {"endpoints": [{"name": "live-1", "role": "live-class", "echo": "198.18.0.10:5201"},
                                     {"name": "national", "role": "national-platform",
                                      "url": "https://basic.smartedu.cn/"}]},
    }
    for key, value in changes.items():
        doc[key] = value
    return AgentConfig.model_validate(doc)


def s(metric: str, value: Any, t: float = NOW - 60, device: str = "core", unit: str = "", **tags: str) -> Sample:
    return Sample(t, device, metric, value, unit, tags)


def port_tags(port: str, index: str) -> dict[str, str]:
    return {"if_index": index, "interface": port}


def healthy(store: SampleStore, *, drop_mbps: dict[str, float] | None = None, speed: dict[str, float] | None = None,
            duplex: dict[str, str] | None = None, errors: dict[str, float] | None = None,
            good_share: dict[str, float] | None = None, uplink_load: float = 30.0, rtt: float = 20.0,
            last_up: int = 1, rounds: int = 5, loads: bool = True, noisy: float = 0.0) -> None:
    """A school where everything fits, with the given parts changed."""
    out: list[Sample] = []
    for port, (idx, room) in [*PORTS.items(), (UPLINK[0], (UPLINK[1], ""))]:
        tags = port_tags(port, idx)
        out += [s("if.speed_mbps", (speed or {}).get(port, 1000), **tags), s("if.oper_status", "up", **tags),
                s("if.duplex", (duplex or {}).get(port, "full"), **tags)]
        if room and loads:
            for k in range(10):
                down = (drop_mbps or {}).get(port, 3.0) * (0.5 + k / 18)
                lt = {"room": room, "interface": port}
                out += [s("liveclass.drop_down_mbps", down, NOW - 600 * (k + 1), **lt),
                        s("liveclass.drop_up_mbps", down / 4, NOW - 600 * (k + 1), **lt),
                        s("liveclass.drop_errors_pps", (errors or {}).get(port, 0.0) if k % 2 else 0.0,
                          NOW - 600 * (k + 1), **lt)]
    for k in range(10):
        t = NOW - 600 * (k + 1)
        out += [s("wan.traffic_down_peak_mbps", uplink_load * (0.5 + k / 18), t, device="gateway"),
                s("wan.traffic_up_peak_mbps", uplink_load / 5 * (0.5 + k / 18), t, device="gateway")]
    out += [s("wan.down_mbps", 188.3, NOW - 3600, device="gateway", method="tcp"),
            s("wan.up_mbps", 94.2, NOW - 3600, device="gateway", method="tcp")]
    for zone, share in {"teach-a": 99.0, "teach-b": 98.0, **(good_share or {})}.items():
        for k in range(6):
            zt = {"zone": zone, "zone_type": "teaching"}
            t = NOW - 300 * (k + 1)
            out += [s("wifi.zone_aps_up", 1, t, device="gateway", **zt),
                    s("wifi.zone_client_minutes", 100.0, t, device="gateway", **zt),
                    s("wifi.zone_good_client_minutes", share, t, device="gateway", **zt),
                    s("wifi.zone_radio_minutes", 10.0, t, device="gateway", **zt),
                    s("wifi.zone_busy_radio_minutes", 0.0, t, device="gateway", **zt),
                    s("wifi.zone_noisy_radio_minutes", noisy, t, device="gateway", **zt)]
    for k in range(rounds):
        t = NOW - 120 * (k + 1)
        out += [s("service.up", last_up if k == 0 else 1, t, device="live-1", role="live-class"),
                s("service.udp_rtt_ms", rtt + k % 3, t, device="live-1", role="live-class"),
                s("service.udp_jitter_ms", 2.0, t, device="live-1", role="live-class"),
                s("service.udp_loss_percent", 0.0, t, device="live-1", role="live-class")]
        if k == 0 and not last_up:
            out.append(s("service.failure", "udp: cannot reach the test server 198.18.0.10:5201: connection refused",
                         t, device="live-1", role="live-class"))
    store.add(out)


def judge(cfg: AgentConfig, store: SampleStore, rule: str = "live-class.1080p-two-way") -> Finding:
    return next(f for f in evaluate(store, cfg, NOW, load_packs(["live-class"])) if f.rule == rule)


def rooms(f: Finding) -> dict[str, dict[str, Any]]:
    return {r["room"]: r for r in f.evidence["rooms"]}


def links(room: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {x["link"]: x for x in room["links"]}


@pytest.fixture
def store() -> SampleStore:
    return SampleStore(":memory:")


# -- ready -------------------------------------------------------------------------------------------------

def test_a_healthy_school_has_every_classroom_ready_and_names_each_rooms_weakest_link(store):
    cfg = config()
    healthy(store)
    f = judge(cfg, store)
    assert f.status == "pass" and f.value == 100 and f.unit == "percent of classrooms"
    r = rooms(f)
    assert set(r) == {"A101", "A102", "B101"}                 # the office is no classroom
    a101 = r["A101"]
    assert a101["ready"] and set(links(a101)) == {"drop", "wifi", "uplink", "path"}
    assert all(x["status"] == "pass" and 0 <= x["used"] <= 1 for x in a101["links"])
    # the least to spare: the path (p95 RTT 22 ms of 150) vs uplink ((30 + 4) of 0.75 x 200 Mbit/s) ...
    used = {x["link"]: x["used"] for x in a101["links"]}
    assert a101["weakest_link"] == max(used, key=lambda k: used[k])
    assert a101["words"].startswith("room A101 is ready for a 1080p two-way synchronous class; weakest link: ")
    assert f.evidence["profile"]["one_way_delay_ms"] == 150 and f.evidence["rule"]["proposal"] is True
    assert f.problems == []


def test_rooms_and_zones_come_from_the_configuration():
    cfg = config()
    topo = topology_from_store(cfg, SampleStore(":memory:"))
    assert classrooms(cfg, topo) == ["A101", "A102", "B101"]
    assert room_zone(cfg, "A102") == "teach-a" and room_zone(cfg, "C1") is None
    assert classrooms(config(live_class={"rooms": ["A101"]}), topo) == ["A101"]
    assert expand_rooms(["C08-C10"]) == ["C08", "C09", "C10"]


# -- not ready, the weakest link named ---------------------------------------------------------------------

def test_a_drop_that_negotiated_10_mbits_is_the_weakest_link(store):
    cfg = config()
    healthy(store, speed={"Gi0/2": 10}, drop_mbps={"Gi0/2": 6.0})
    f = judge(cfg, store)
    a102 = rooms(f)["A102"]
    assert a102["status"] == "fail" and a102["weakest_link"] == "drop"
    drop = links(a102)["drop"]
    assert drop["speed_mbps"] == 10 and drop["used"] > 1 and drop["peak_down_mbps"] == 6.0
    assert "runs at 10 Mbit/s and carries 6 Mbit/s toward the room at lesson peaks" in drop["why"]
    assert "check the cable" in drop["hint"]
    assert f.status == "fail" and round(f.value, 2) == 66.67
    p = next(x for x in f.problems if "A102" in x.what)
    assert p.scope == "room" and p.device == "core" and p.what.startswith(
        "room A102 not ready for a 1080p two-way synchronous class: classroom drop Gi0/2 on core - runs at 10")
    # the same drop carries a 720p lesson's 2.5 Mbit/s? 6 + 2.5 > 7.5: no either
    assert rooms(judge(cfg, store, "live-class.720p-one-way"))["A102"]["status"] == "fail"


def test_a_100_mbits_drop_carries_the_lesson_but_becomes_the_rooms_weakest_link(store):
    cfg = config()
    healthy(store, speed={"Gi0/1": 100}, drop_mbps={"Gi0/1": 50.0})
    a101 = rooms(judge(cfg, store))["A101"]
    assert a101["status"] == "pass" and a101["weakest_link"] == "drop"
    assert links(a101)["drop"]["used"] == 0.72          # (50 + 4) Mbit/s of 75 % of 100


def test_a_half_duplex_drop_is_not_ready(store):
    cfg = config()
    healthy(store, duplex={"Gi0/3": "half"})
    b101 = rooms(judge(cfg, store))["B101"]
    assert b101["status"] == "fail" and b101["weakest_link"] == "drop"
    assert links(b101)["drop"]["used"] == "broken" and "half duplex" in b101["words"]


def test_a_drop_with_errors_at_lesson_time_is_not_ready(store):
    cfg = config()
    healthy(store, errors={"Gi0/1": 3.5})
    drop = links(rooms(judge(cfg, store))["A101"])["drop"]
    assert drop["status"] == "fail" and drop["quarter_hours_with_errors_percent"] == 50
    assert "errors in 50 % of the lesson-time quarter hours" in drop["why"]


def test_a_weak_wifi_zone_is_the_weakest_link_of_its_rooms(store):
    cfg = config()
    healthy(store, good_share={"teach-b": 40.0})
    f = judge(cfg, store)
    b101 = rooms(f)["B101"]
    assert b101["status"] == "fail" and b101["weakest_link"] == "wifi"
    assert links(b101)["wifi"]["good_share_percent"] == 40 and "usable signal" in links(b101)["wifi"]["why"]
    assert rooms(f)["A101"]["status"] == "pass"


def test_a_noisy_floor_does_not_weaken_a_zone_whose_clients_report_a_good_signal(store):
    cfg = config()
    healthy(store, noisy=10.0)                  # every radio-minute over the noise floor
    wifi = links(rooms(judge(cfg, store))["A101"])["wifi"]
    assert wifi["status"] == "pass" and wifi["noisy_radio_percent"] == 100 and wifi["used"] == 0.1   # 1 % of 10


def test_a_saturated_uplink_fails_every_room_with_the_uplink_named(store):
    cfg = config()
    healthy(store, uplink_load=185.0)
    f = judge(cfg, store)
    assert f.status == "fail" and f.value == 0
    for r in rooms(f).values():
        assert r["weakest_link"] == "uplink" and r["status"] == "fail"
    up = links(rooms(f)["A101"])["uplink"]
    assert up["capacity_down_from"].startswith("capacity tests (p20 of 1")
    assert round(up["capacity_down_mbps"]) == 200 and "of download carries 185 Mbit/s at lesson peaks" in up["why"]


def test_the_path_judges_delay_by_profile_and_a_failed_last_probe_fails_it(store):
    cfg = config()
    healthy(store, rtt=200.0)
    slow = links(rooms(judge(cfg, store))["A101"])["path"]
    assert slow["status"] == "fail" and slow["rtt_p95_ms"] == 202 and "needs <= 150" in slow["why"]
    # 200 ms of round trip is within the 400 ms a one-way lesson tolerates
    assert links(rooms(judge(cfg, store, "live-class.720p-one-way"))["A101"])["path"]["status"] == "pass"
    down = SampleStore(":memory:")
    healthy(down, last_up=0)
    path = links(rooms(judge(cfg, down))["A101"])["path"]
    assert path["status"] == "fail" and "connection refused" in path["why"]


# -- unknown, and what is missing --------------------------------------------------------------------------

def test_missing_inputs_make_a_room_unknown_with_what_is_missing(store):
    cfg = config()
    healthy(store, loads=False, rounds=2)
    f = judge(cfg, store)
    assert f.status == "unknown" and f.value == 0
    a101 = rooms(f)["A101"]
    assert a101["status"] == "unknown"
    assert links(a101)["drop"]["missing"] == [
        "the load of classroom drop Gi0/1 on core in school hours of the last 7 d"]
    assert links(a101)["path"]["missing"] == ["probe rounds to live-1 in school hours of the last 7 d (have 2, need 3)"]
    assert any(m.startswith("room A101: the load of classroom drop") for m in f.missing)
    assert a101["words"].startswith("room A101: cannot tell whether it is ready for a 1080p two-way synchronous class")


def test_no_live_class_server_and_a_room_with_no_drop_or_wifi_are_unknown(store):
    cfg = config(live_class={"rooms": ["A101", "Z9"]})
    healthy(store)
    r = rooms(judge(cfg, store))
    assert links(r["A101"])["path"]["missing"] == [
        "a live-class server with an echo server (live_class.endpoints ... echo)"]
    assert r["Z9"]["status"] == "unknown" and "no classroom drop" in r["Z9"]["notes"][0]


def test_a_school_without_classrooms_is_unknown(store):
    cfg = config(wifi={"zones": {}}, topology={})
    f = judge(cfg, store)
    assert f.status == "unknown" and f.why.startswith("no classrooms in the configuration")


# -- the history the daemon's job keeps ---------------------------------------------------------------------

def test_load_snapshots_keep_each_quarter_hours_peak_of_drops_and_uplink(store):
    cfg = config()
    start = 900.0 * (NOW // 900)                     # a quarter hour begins

    def poll(t: float, down_bps: float) -> None:
        rates: list[Sample] = []
        for port, (idx, _) in [*PORTS.items(), (UPLINK[0], (UPLINK[1], ""))]:
            tags = port_tags(port, idx)
            rates += [s("if.speed_mbps", 1000, t, **tags), s("if.oper_status", "up", t, **tags),
                      s("if.in_bps", 2e6, t, **tags), s("if.out_bps", down_bps, t, **tags),
                      s("if.in_errors_pps", 0.0, t, **tags), s("if.out_errors_pps", 0.0, t, **tags)]
        store.add(rates)

    snaps = LoadSnapshots()
    poll(start + 60, 8e6)
    assert snaps.samples(cfg, store, now=start + 61) == []               # the quarter hour is still open
    assert snaps.samples(cfg, store, now=start + 62) == []               # the same poll is read once
    poll_time = start + 180
    poll(poll_time, 9e6)
    assert snaps.samples(cfg, store, now=poll_time) == []
    got = {(x.metric, x.tags.get("room"), x.tags["interface"]): x for x in snaps.samples(cfg, store, now=start + 900)}
    assert len(got) == 3 * 3 + 2
    assert got[("liveclass.drop_down_mbps", "A101", "Gi0/1")].value == 9.0    # the switch sends toward the room
    assert got[("liveclass.drop_up_mbps", "A101", "Gi0/1")].value == 2.0
    assert got[("liveclass.drop_errors_pps", "A101", "Gi0/1")].value == 0.0
    assert got[("liveclass.uplink_down_mbps", None, "Gi0/24")].value == 2.0    # in from the internet
    assert got[("liveclass.uplink_up_mbps", None, "Gi0/24")].value == 9.0
    assert got[("liveclass.drop_down_mbps", "A101", "Gi0/1")].time == poll_time
    assert snaps.samples(cfg, store, now=start + 1800) == []             # nothing new polled since


def test_load_snapshots_read_after_every_poll_keep_the_peak(store):
    cfg = config(topology={"classroom_drops": [{"device": "core", "port": "Gi0/1", "room": "A101"}]})
    start = 900.0 * (NOW // 900)
    snaps = LoadSnapshots()
    out: list[Sample] = []
    for k, (down, errors) in enumerate([(8e6, 0.0), (12e6, 0.5), (9e6, 0.0), (3e6, 0.0)]):
        t = start + 300 * (k + 1) - 30                 # the fourth poll falls in the next quarter hour
        tags = port_tags("Gi0/1", "1")
        store.add([s("if.speed_mbps", 1000, t, **tags), s("if.in_bps", 1e6, t, **tags),
                   s("if.out_bps", down, t, **tags), s("if.in_errors_pps", errors, t, **tags),
                   s("if.out_errors_pps", 0.0, t, **tags)])
        out += snaps.samples(cfg, store, now=t)
    assert {(x.metric, x.value) for x in out} == {("liveclass.drop_down_mbps", 12.0), ("liveclass.drop_up_mbps", 1.0),
                                                  ("liveclass.drop_errors_pps", 0.5)}
    assert {x.time for x in out} == {start + 870}


# -- the pack ------------------------------------------------------------------------------------------------

def test_the_pack_quotes_its_seeds_and_says_its_numbers_are_the_projects_proposal():
    rs = load_packs(["live-class"])
    assert [r.id for r in rs.rules] == ["live-class.720p-one-way", "live-class.1080p-two-way"]
    for r in rs.rules:
        seeds = Path(__file__).resolve().parents[1] / "seeds"
        seed = next(seeds.glob(f"{r.source.seed}_*.txt")).read_text(encoding="utf-8")
        assert re.sub(r"\s+", "", r.source.quote) in re.sub(r"\s+", "", seed), r.id
        assert "The project's proposal" in (r.proposal or "") and r.hours == "school" and r.impact == "room"
        assert r.profile is not None and {x.url.split("/")[2] for x in r.profile.references} >= {"www.itu.int"}
    two_way = rs.rules[1].profile
    assert (two_way.down_mbps, two_way.up_mbps, two_way.one_way_delay_ms, two_way.jitter_ms, two_way.loss_percent,
            two_way.max_load_percent) == (4, 4, 150, 30, 1, 75)
    assert "G.114" in rs.rules[1].proposal and "150 ms" in rs.rules[1].proposal


def test_a_city_changes_the_share_of_classrooms_that_must_be_ready(store):
    cfg = config()
    healthy(store, speed={"Gi0/2": 10}, drop_mbps={"Gi0/2": 6.0})
    rules = load_packs(["live-class"], overrides={"live-class.1080p-two-way": 60})
    f = next(x for x in evaluate(store, cfg, NOW, rules) if x.rule == "live-class.1080p-two-way")
    assert f.status == "pass" and f.threshold == 60 and "city override" in f.evidence["rule"]["threshold_from"]


def test_the_example_configurations_live_class_block_is_complete_and_loads():
    example = Path(__file__).resolve().parents[1] / "eduedge" / "config" / "example-school.yaml"
    text = example.read_text(encoding="utf-8")
    block = text[text.index("# live_class:"):].split("\n\n")[0].splitlines()   # to the next section
    doc = yaml.safe_load("\n".join(line[2:] for line in block if line.startswith("#")))["live_class"]
    lc = LiveClassConfig.model_validate(doc)
    assert set(doc) == set(LiveClassConfig.model_fields)          # every option shown
    assert {e.role for e in lc.endpoints} == {"national-platform", "provincial-platform", "city-cloud", "live-class"}
    assert set(lc.profiles) == {r.id.split(".", 1)[1] for r in load_packs(["live-class"]).rules}
