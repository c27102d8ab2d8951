"""Live-class readiness on a simulated campus (started as `eduedge sim up` starts it), its test server behind the
campus's WAN link standing as the live-class server.

The campus is frozen in the third lesson of a Tuesday (clock speed 0), so every port carries its lesson-peak
traffic. Room R1 is healthy; R2's display panel hangs off a port that negotiated 10 Mbit/s; R3 is served by an
AP whose clients see a weak signal. The agent's side is real: SNMP polls of the switch and the Wi-Fi controller
(their drop loads and zone samples go into the store as the daemon's jobs put them), a capacity test through
the WAN relay, and rounds of the video-like UDP probe to the test server. Then the WAN is degraded (the
simulator's `wan_degraded` fault) and a new capacity test shows it: the uplink becomes every room's problem.
The same answers come out of `eduedge liveclass`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from eduedge.agent.compliance import evaluate, load_packs
from eduedge.agent.compliance.live_class import LoadSnapshots
from eduedge.agent.compliance.wifi_coverage import ZoneTracker
from eduedge.agent.config import AgentConfig, load_config
from eduedge.agent.samplestore import SampleStore
from eduedge.collectors.broadband.collector import result_samples
from eduedge.collectors.broadband.engine import Engine, MeasureOptions
from eduedge.collectors.broadband.probe import parse_server
from eduedge.collectors.service_probes import probe_all
from eduedge.collectors.snmp.client import SnmpAuth, SnmpClient
from eduedge.collectors.snmp.poller import DevicePoller, poll_many
from eduedge.collectors.snmp.profiles import load_profiles
from eduedge.collectors.wifi.collector import snapshot
from eduedge.core.netaddr import split_host_port
from eduedge.core.pseudonym import Pseudonymizer
from eduedge.simulator.campus import load_campus
from eduedge.simulator.launch import control, sim_down, sim_up
from eduedge.simulator.world import World

pytestmark = pytest.mark.integration

EDUEDGE = str(Path(sys.executable).with_name("eduedge"))
CAMPUS = """
school: {id: live-sim-school, name: Live Sim School, city: demo-city, type: primary}
clock: {start: "2025-03-11T10:05:00", speed: 0}
traffic: {panel: [8.0, 2.0], ap: [10.0, 2.0], pc: [2.0, 0.5]}
zones:
  - {name: classrooms, kind: teaching, rooms: [R1, R2], clients: {lesson: 20},
     rssi_dbm: {mean: -55, sd: 3, min: -62, max: -45}, snr_db: {mean: 36, sd: 3, min: 30, max: 45}}
  - {name: weak, kind: teaching, rooms: [R3], clients: {lesson: 20},
     rssi_dbm: {mean: -82, sd: 3, min: -90, max: -76}, snr_db: {mean: 14, sd: 3, min: 8, max: 19}}
switches:
  - {name: core, model: jetstream_sg2218p, role: core, zone: classrooms, port_count: 18,
     ports: [{ports: 1-6, use: classroom}, {ports: 7, use: classroom, speed_mbps: 10}, {ports: 18, use: uplink}],
     uplink: {port: 18, to: gateway}}
wireless:
  controller: {name: ac-1, model: vrp_ac6605-26, zone: classrooms, uplink: "core:1"}
  aps:
    - {name: ap-r1, model: AP7050DN-E, zone: classrooms, room: R1, uplink: "core:2"}
    - {name: ap-r3, model: AP7050DN-E, zone: weak, room: R3, uplink: "core:3"}
devices:
  - {name: panel-r1, kind: panel, zone: classrooms, room: R1, uplink: "core:4"}
  - {name: panel-r3, kind: panel, zone: weak, room: R3, uplink: "core:5"}
  - {name: panel-r2, kind: panel, zone: classrooms, room: R2, uplink: "core:7"}
wan: {down_mbps: 200, up_mbps: 100, latency_ms: 20}
"""
QUICK = MeasureOptions(streams=4, duration=2, warmup_max=1.5, idle_probes=10)


class School:
    """The running campus, and the agent's configuration and store for it."""

    def __init__(self, root: Path):
        (root / "campus.yaml").write_text(CAMPUS)
        self.root = root
        self.state = sim_up(root / "campus.yaml", root / "state")
        world = World(load_campus(root / "campus.yaml"), time.time())
        doc = yaml.safe_load(Path(self.state.agent_config).read_text())
        # what the school's technician writes down: the classroom drops (the panels speak no LLDP), the
        # live-class server and the city's test server, and (for a test at any hour) lessons all day
        doc["topology"]["classroom_drops"] = [
            {"device": "core", "port": world.nodes["core"].ports[n].name, "room": world.nodes[name].room}
            for n, name in ((4, "panel-r1"), (7, "panel-r2"), (5, "panel-r3"))]
        doc["standards"] = {"school_hours": {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                                             "start": "00:00", "end": "23:59"}}
        doc["live_class"] = {"enabled": True, "interval": "60s",
                             "endpoints": [{"name": "live-1", "role": "live-class", "echo": self.state.speedtest}],
                             "profiles": ["1080p-two-way"],
                             "video_probe": {"packets_per_second": 100, "seconds": 1}}
        self.config_path = root / "agent.yaml"
        self.config_path.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.cfg: AgentConfig = load_config(self.config_path)
        self.store = SampleStore.in_data_dir(self.cfg.agent.data_dir)
        self.loads = LoadSnapshots()

    def pollers(self, names: set[str]) -> list[DevicePoller]:
        profiles = load_profiles()
        auth = SnmpAuth.from_config(self.cfg.snmp.credentials["campus"], "campus")
        out = []
        for d in self.cfg.snmp.devices:
            if d.name in names:
                host, port = split_host_port(d.host)
                out.append(DevicePoller(SnmpClient(d.name, host, port, auth, timeout=2, retries=1), profiles,
                                        pseudonymizer=Pseudonymizer(b"live-sim-school-key-0123456789ab")))
        return out

    def collect(self) -> None:
        """What the daemon's jobs gather: switch polls (twice, for rates) and their drop loads, Wi-Fi zone samples
        for half an hour of one-minute rounds, a capacity test, three probe rounds to the live-class server."""
        switch = self.pollers({"core"})
        for _ in range(2):
            for poll in asyncio.run(poll_many(switch)):
                self.store.add_poll(poll.device, poll.time, poll.identity is not None, poll.samples,
                                    poll.identity.hostname if poll.identity else None, poll.errors)
            time.sleep(1.0)
        # the quarter hour's peak goes out once the quarter hour is over: as the daemon's next round would see it
        self.store.add(self.loads.samples(self.cfg, self.store, now=time.time() + 900))
        wifi = asyncio.run(poll_many(self.pollers({"ac-1"})))
        tracker, now = ZoneTracker(self.cfg), time.time()
        for k in range(30):
            self.store.add(tracker.samples(snapshot(wifi, self.cfg.wifi, self.cfg.snmp.devices,
                                                    now=now - 60 * (30 - k))))
        self.capacity_test()
        for _ in range(3):
            self.store.add([s for p in asyncio.run(probe_all(self.cfg.live_class)) for s in p.samples()])

    def capacity_test(self) -> Any:
        host, port = parse_server(self.state.speedtest)
        result = asyncio.run(Engine(host, port, options=QUICK).run())
        assert result.down is not None and result.down.mbps, result.to_dict()
        self.store.add(result_samples(result, "gateway"))
        return result

    def judge(self, rule: str = "live-class.1080p-two-way") -> Any:
        return next(f for f in evaluate(self.store, self.cfg, time.time(), load_packs(["live-class"]))
                    if f.rule == rule)

    def stop(self) -> None:
        self.store.close()
        assert sim_down(self.root / "state").left == []


@pytest.fixture(scope="module")
def school(tmp_path_factory) -> Any:
    s = School(tmp_path_factory.mktemp("live-class"))
    try:
        s.collect()
        yield s
    finally:
        s.stop()


def rooms(f: Any) -> dict[str, dict[str, Any]]:
    return {r["room"]: r for r in f.evidence["rooms"]}


def links(room: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {x["link"]: x for x in room["links"]}


def test_a_healthy_room_is_ready_for_a_1080p_two_way_class(school):
    r = rooms(school.judge())
    assert set(r) == {"R1", "R2", "R3"}
    r1 = r["R1"]
    assert r1["status"] == "pass", r1["words"]
    got = links(r1)
    assert got["drop"]["speed_mbps"] == 1000 and got["drop"]["duplex"] in (None, "full")
    assert got["wifi"]["good_share_percent"] == 100
    path = got["path"]
    assert path["rounds"] == 3 and 20 <= path["rtt_p95_ms"] < 60 and path["loss_mean_percent"] == 0
    up = got["uplink"]
    assert 170 < up["capacity_down_mbps"] <= 215 and up["capacity_down_from"].startswith("capacity tests")
    assert up["peak_down_from"] == "the uplink port's rates (p95)" and 0 < up["peak_down_mbps"] < 100
    assert r1["weakest_link"] in ("drop", "wifi", "uplink", "path") and r1["words"].startswith(
        "room R1 is ready for a 1080p two-way synchronous class; weakest link: ")


def test_a_room_behind_a_10_mbits_drop_is_not_ready_with_the_drop_named(school):
    r2 = rooms(school.judge())["R2"]
    assert r2["status"] == "fail" and r2["weakest_link"] == "drop"
    drop = links(r2)["drop"]
    assert drop["speed_mbps"] == 10 and drop["used"] > 1 and 4 < drop["peak_down_mbps"] <= 9.6
    assert "runs at 10 Mbit/s" in r2["words"] and "check the cable" in drop["hint"]
    assert links(r2)["wifi"]["status"] == "pass"                  # its Wi-Fi is the healthy zone's


def test_a_room_in_a_weak_wifi_zone_is_not_ready_with_the_wifi_named(school):
    f = school.judge()
    r3 = rooms(f)["R3"]
    assert r3["status"] == "fail" and r3["weakest_link"] == "wifi"
    assert links(r3)["wifi"]["good_share_percent"] == 0 and links(r3)["drop"]["status"] == "pass"
    assert f.status == "fail" and round(f.value, 2) == 33.33
    assert {p.what.split(" not ready")[0] for p in f.problems} == {"room R2", "room R3"}


def test_eduedge_liveclass_answers_per_room_in_plain_words(school):
    run = subprocess.run([EDUEDGE, "liveclass", "--config", str(school.config_path), "--json"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    out = json.loads(run.stdout)
    assert [p["id"] for p in out["profiles"]] == ["live-class.1080p-two-way"]       # live_class.profiles
    status = {r["room"]: r["status"] for r in out["profiles"][0]["rooms"]}
    assert status == {"R1": "pass", "R2": "fail", "R3": "fail"}
    assert [e["endpoint"] for e in out["endpoints"]] == ["live-1"] and out["endpoints"][0]["up"]
    one = subprocess.run([EDUEDGE, "liveclass", "R2", "--config", str(school.config_path), "--profile",
                          "720p-one-way"], capture_output=True, text=True, timeout=120)
    assert one.returncode == 1, one.stderr
    # one room: its own verdict (not the school's count of classrooms), then its links
    assert "(live-class.720p-one-way): R2 NOT READY: classroom drop" in " ".join(one.stdout.split()), one.stdout
    assert "classrooms ready" not in one.stdout, one.stdout
    assert "what to do: a drop below 100 Mbit/s" in " ".join(one.stdout.split()), one.stdout
    assert "live-1 (live-class) up; UDP rtt" in one.stdout
    probe = subprocess.run([EDUEDGE, "probe", "live-1", "--config", str(school.config_path)], capture_output=True,
                           text=True, timeout=60)
    assert probe.returncode == 0 and "100 echoes of 1200 B, 100/s" in probe.stdout, probe.stdout
    elsewhere = subprocess.run([EDUEDGE, "probe", "www.example.com", "--config", str(school.config_path)],
                               capture_output=True, text=True, timeout=60)
    assert elsewhere.returncode == 2 and "only configured endpoints are probed" in elsewhere.stderr


def test_a_degraded_wan_fails_every_room_on_the_uplink(school):
    reply = control(school.root / "state", {"cmd": "fault", "fault": {"kind": "wan_degraded", "down_mbps": 20,
                                                                      "up_mbps": 5}})
    assert reply["ok"], reply
    try:
        time.sleep(0.5)                            # the runner applies faults every 0.2 s
        result = school.capacity_test()
        assert result.down.mbps < 21
        f = school.judge()
        r1 = rooms(f)["R1"]
        assert r1["status"] == "fail" and r1["weakest_link"] == "uplink"
        up = links(r1)["uplink"]
        assert up["capacity_down_mbps"] < 22 and up["capacity_up_mbps"] < 6
        assert " Mbit/s of upload carries " in up["why"]          # the upload, shaped to 5 Mbit/s, is fuller
        assert rooms(f)["R2"]["weakest_link"] == "uplink" and f.value == 0     # further over than its drop
        r3 = rooms(f)["R3"]                             # a signal that reaches 0 % of what it must stays the worst
        assert r3["weakest_link"] == "wifi" and links(r3)["uplink"]["status"] == "fail"
    finally:
        control(school.root / "state", {"cmd": "clear", "kind": "wan_degraded"})
