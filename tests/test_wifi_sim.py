"""Wi-Fi coverage judged on a simulated campus (started as `eduedge sim up` starts it), zone by zone.

The campus below has a Huawei AC managing four fit APs and a standalone UniFi AP, each in its own zone:
good signal, only weak clients, an overloaded radio, an AP that is down, and a dormitory whose clients come
at night. The time of day is frozen (clock speed 0), so what the APs report is exactly what the campus
describes for that moment; each real poll is then counted as the minutes of a school day (the zone
samples carry those times), and the Yinchuan rules judge the day. A second campus, frozen at night, shows
that night hours do not count. Privacy: the clients' MACs, which the controller serves in clear, appear
nowhere in what the agent stores to send (the outbox database) or logs, and their pseudonyms are stable
within a school and differ between schools.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from eduedge.agent.cli import app
from eduedge.agent.compliance import evaluate, load_packs
from eduedge.agent.compliance.wifi_coverage import ZoneTracker
from eduedge.agent.config import load_config
from eduedge.agent.envelope import Envelope
from eduedge.agent.outbox import Outbox
from eduedge.agent.samplestore import SampleStore
from eduedge.collectors.snmp.client import SnmpAuth, SnmpClient
from eduedge.collectors.snmp.poller import DevicePoll, DevicePoller, poll_many
from eduedge.collectors.snmp.profiles import load_profiles
from eduedge.collectors.wifi.collector import snapshot, wireless_devices
from eduedge.core.netaddr import split_host_port
from eduedge.core.pseudonym import Pseudonymizer
from eduedge.simulator.agentconfig import campus_day_hours
from eduedge.simulator.campus import load_campus
from eduedge.simulator.launch import sim_down, sim_up

pytestmark = pytest.mark.integration

TZ = ZoneInfo("Asia/Shanghai")
LESSON = "2025-03-11T10:05:00"           # a Tuesday, third lesson
NIGHT = "2025-03-11T02:00:00"
DAY_START = datetime(2025, 3, 11, 10, 5, tzinfo=TZ).timestamp()
STATION_RSSI = "1.3.6.1.4.1.2011.6.139.18.1.2.1.42"   # hwWlanStaRssi: its index is the client's MAC

CAMPUS = """
school: {id: wifi-sim-school, name: Wifi Sim School, city: demo-city, type: primary,
         enrolment: {students: 300, teachers: 20}}
clock: {start: "START", speed: 0}
zones:
  - {name: teaching-ok, kind: teaching, rooms: [A101], clients: {lesson: 20},
     rssi_dbm: {mean: -55, sd: 3, min: -62, max: -45}, snr_db: {mean: 36, sd: 3, min: 30, max: 45}}
  - {name: teaching-weak, kind: teaching, rooms: [B101], clients: {lesson: 20},
     rssi_dbm: {mean: -82, sd: 3, min: -90, max: -76}, snr_db: {mean: 14, sd: 3, min: 8, max: 19}}
  - {name: office-busy, kind: office, rooms: [O1], clients: {lesson: 120},
     rssi_dbm: {mean: -58, sd: 3, min: -64, max: -50}, snr_db: {mean: 33, sd: 3, min: 28, max: 40}}
  - {name: hall, kind: public, rooms: [hall], clients: {lesson: 20}}
  - {name: dorm, kind: dormitory, rooms: [D1], clients: {night: 8}}
switches:
  - {name: core, model: jetstream_sg2218p, role: core, zone: teaching-ok, room: A101, port_count: 18,
     ports: [{ports: 1-16, use: classroom}, {ports: 18, use: uplink}], uplink: {port: 18, to: gateway}}
wireless:
  controller: {name: ac-1, model: vrp_ac6605-26, zone: teaching-ok, room: A101, uplink: "core:1",
               ssids: [{name: Edu-Student, share: 3}, {name: Edu-Staff, share: 1}]}
  aps:
    - {name: ap-ok, model: AP7050DN-E, zone: teaching-ok, room: A101, uplink: "core:2"}
    - {name: ap-weak, model: AP7050DN-E, zone: teaching-weak, room: B101, uplink: "core:3"}
    - {name: ap-busy, model: AP7050DN-E, zone: office-busy, room: O1, uplink: "core:4"}
    - {name: ap-hall, model: AP7050DN-E, zone: hall, room: hall, uplink: "core:5"}
    - {name: ap-dorm, model: unifi_nanohd, zone: dorm, room: D1, uplink: "core:6"}
wan: {down_mbps: 100, up_mbps: 20}
faults:
  - {kind: down, device: ap-hall, at: 0}
"""


class Campus:
    """A running simulated campus and the agent's view of it."""

    def __init__(self, root: Path, start: str):
        (root / "campus.yaml").write_text(CAMPUS.replace("START", start))
        self.root = root
        self.state = sim_up(root / "campus.yaml", root / "state")
        # The campus clock is pinned, so `sim up` makes every hour a school hour; these tests judge a lesson
        # and a night of the campus's own day, so the agent keeps that day's hours.
        doc = yaml.safe_load(Path(self.state.agent_config).read_text(encoding="utf-8"))
        doc["standards"]["school_hours"] = {**campus_day_hours(load_campus(root / "campus.yaml")), "timezone": TZ.key}
        Path(self.state.agent_config).write_text(yaml.safe_dump(doc), encoding="utf-8")
        self.cfg = load_config(self.state.agent_config)

    def pollers(self, key: bytes) -> list[DevicePoller]:
        profiles = load_profiles()
        auth = SnmpAuth.from_config(self.cfg.snmp.credentials["campus"], "campus")
        out = []
        for d in wireless_devices(self.cfg.snmp.devices):
            host, port = split_host_port(d.host)
            out.append(DevicePoller(SnmpClient(d.name, host, port, auth, timeout=2, retries=1), profiles,
                                    pseudonymizer=Pseudonymizer(key)))
        return out

    def poll(self, key: bytes = b"wifi-sim-school-key-0123456789ab") -> list[DevicePoll]:
        return asyncio.run(poll_many(self.pollers(key)))

    def stop(self) -> None:
        report = sim_down(self.root / "state")
        assert report.left == []


@pytest.fixture(scope="module")
def lesson(tmp_path_factory) -> Any:
    c = Campus(tmp_path_factory.mktemp("lesson"), LESSON)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> Any:
    c = Campus(tmp_path_factory.mktemp("night"), NIGHT)
    try:
        yield c
    finally:
        c.stop()


def day_of(campus: Campus, polls: int, start: float, minutes: int) -> SampleStore:
    """Poll the campus `polls` times and count the rounds as `minutes` one-minute rounds from `start`."""
    tracker, store = ZoneTracker(campus.cfg), SampleStore(":memory:")
    rounds = [campus.poll() for _ in range(polls)]
    for k in range(minutes):
        store.add(tracker.samples(snapshot(rounds[k % polls], campus.cfg.wifi, campus.cfg.snmp.devices,
                                           now=start + 60 * k)))
    return store


def judge(store: SampleStore, campus: Campus, now: float, rule: str = "yinchuan-2018.wifi-areas") -> Any:
    rules = load_packs(["yinchuan-2018"])
    return next(f for f in evaluate(store, campus.cfg, now, rules) if f.rule == rule)


def zones(finding: Any) -> dict[str, dict[str, Any]]:
    return {z["zone"]: z for z in finding.evidence["zones"]}


def test_each_zone_is_judged_as_the_rules_say_with_evidence(lesson):
    store = day_of(lesson, polls=3, start=DAY_START, minutes=30)
    f = judge(store, lesson, DAY_START + 30 * 60)
    z = zones(f)
    assert set(z) == {"teaching-ok", "teaching-weak", "office-busy", "hall"}      # the dormitory is not required
    assert z["teaching-ok"]["status"] == "pass" and z["teaching-ok"]["good_share_percent"] == 100
    assert z["teaching-ok"]["decided_by"] == "per-client signal" and z["teaching-ok"]["client_minutes"] == 600
    weak = z["teaching-weak"]
    assert weak["status"] == "fail" and weak["good_share_percent"] == 0 and "usable signal" in weak["reason"]
    busy = z["office-busy"]
    assert busy["status"] == "fail" and busy["good_share_percent"] == 100 and "over capacity" in busy["reason"]
    assert z["hall"]["status"] == "fail" and z["hall"]["presence_percent"] == 0
    assert f.status == "fail" and f.value == 25
    problems = {p.what.split(":")[0] for p in f.problems}
    assert problems == {"teaching zone teaching-weak", "office zone office-busy", "public zone hall"}


def test_the_dormitory_only_a_vocational_college_must_cover_has_no_clients_in_school_hours(lesson):
    store = day_of(lesson, polls=1, start=DAY_START, minutes=30)
    lesson.cfg.school.type = "vocational-college"
    try:
        f = judge(store, lesson, DAY_START + 30 * 60, "yinchuan-2018.wifi-full")
    finally:
        lesson.cfg.school.type = "primary"
    dorm = zones(f)["dorm"]
    assert dorm["status"] == "unknown" and dorm["reason"] == "no clients in school hours of the last 7 d"
    assert dorm["presence_percent"] == 100            # the standalone UniFi AP answered every poll


def test_night_hours_do_not_count(lesson, night):
    night_start = datetime(2025, 3, 11, 2, 0, tzinfo=TZ).timestamp()
    night_store = day_of(night, polls=1, start=night_start, minutes=60)
    f = judge(night_store, night, night_start + 3600)
    assert f.status == "unknown" and all(z["reason"].startswith("no AP state") for z in f.evidence["zones"])
    # the same night followed by a school morning: judged on the morning alone
    tracker = ZoneTracker(lesson.cfg)
    night_polls, day_polls = night.poll(), lesson.poll()
    store = SampleStore(":memory:")
    for k in range(60):
        store.add(tracker.samples(snapshot(night_polls, night.cfg.wifi, night.cfg.snmp.devices,
                                           now=night_start + 60 * k)))
    tracker = ZoneTracker(lesson.cfg)             # the agent polled all along; the hours between are not here
    for k in range(30):
        store.add(tracker.samples(snapshot(day_polls, lesson.cfg.wifi, lesson.cfg.snmp.devices,
                                           now=DAY_START + 60 * k)))
    z = zones(judge(store, lesson, DAY_START + 30 * 60))
    assert z["teaching-ok"]["status"] == "pass" and z["teaching-ok"]["client_minutes"] == 600


def test_wireless_access_is_judged_on_the_clients_phy_rates(lesson):
    store = day_of(lesson, polls=1, start=DAY_START, minutes=5)
    f = judge(store, lesson, DAY_START + 300, "yinchuan-2018.wifi-access")
    assert f.evidence["decided_by"] == "negotiated PHY rate (proxy)"
    # the weak zone's clients reach only low MCS rates (the simulator's rate follows SNR)
    assert f.status == "fail" and f.evidence["zones"]["teaching-weak"] < 200 <= f.evidence["zones"]["teaching-ok"]


def _clear_macs(campus: Campus) -> list[str]:
    """The client MACs the controller serves in clear, as the index of its station table."""
    d = next(d for d in campus.cfg.snmp.devices if d.name == "ac-1")
    host, port = split_host_port(d.host)
    client = SnmpClient("ac-1", host, port, SnmpAuth.from_config(campus.cfg.snmp.credentials["campus"], "campus"))
    rows = asyncio.run(client.walk(STATION_RSSI))
    return [":".join(f"{int(a):02x}" for a in index.split(".")) for index in rows]


def _spellings(mac: str) -> list[str]:
    bare = mac.replace(":", "")
    return [mac, mac.upper(), mac.replace(":", "-"), bare, bare.upper(), f"{bare[:4]}.{bare[4:8]}.{bare[8:]}",
            ".".join(str(int(x, 16)) for x in mac.split(":"))]


def test_client_macs_never_reach_the_outbox_or_the_logs(lesson, tmp_path, caplog):
    macs = _clear_macs(lesson)
    assert len(macs) == 160                         # ap-ok 20, ap-weak 20, ap-busy 120; ap-hall is down
    caplog.set_level(logging.DEBUG)
    polls = lesson.poll()
    outbox = Outbox(tmp_path / "outbox.db", Envelope("wifi-sim-school", "demo-city", "gw", "0.1", "ab" * 16),
                    max_bytes=64 * 2**20)
    for p in polls:
        outbox.add_samples(p.samples)
    outbox.add_samples(ZoneTracker(lesson.cfg).samples(snapshot(polls, lesson.cfg.wifi, lesson.cfg.snmp.devices)))
    outbox.close()
    clients = [s for p in polls for s in p.samples if s.metric.startswith("wifi.client_")]
    assert len({s.tags["client"] for s in clients}) == 160 and all(re.fullmatch(r"p-[0-9a-f]{16}", s.tags["client"])
                                                                   for s in clients)
    stored = b"".join(f.read_bytes() for f in tmp_path.iterdir() if f.name.startswith("outbox.db"))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    leaks = [s for m in macs for s in _spellings(m) if s.encode() in stored or s in logged]
    assert leaks == []
    assert b"p-" in stored                           # the pseudonyms are what was stored


def test_pseudonyms_are_stable_within_a_school_and_differ_between_schools(lesson):
    def pseudonyms(key: bytes) -> dict[tuple[str, str], str]:
        polls = lesson.poll(key)
        return {(s.tags["ap"], str(s.value)): s.tags["client"] for p in polls for s in p.samples
                if s.metric == "wifi.client_rssi_dbm"}

    first, again = pseudonyms(b"wifi-sim-school-key-0123456789ab"), pseudonyms(b"wifi-sim-school-key-0123456789ab")
    other = pseudonyms(b"another-school-key-0123456789abc")
    assert set(first.values()) == set(again.values())
    assert not set(first.values()) & set(other.values())


def test_eduedge_wifi_shows_zones_aps_radios_clients_and_what_is_weak(lesson, tmp_path):
    from typer.testing import CliRunner

    cfg_path = tmp_path / "agent.yaml"
    doc = yaml.safe_load(Path(lesson.state.agent_config).read_text())
    doc["agent"]["data_dir"] = str(tmp_path / "data")
    cfg_path.write_text(yaml.safe_dump(doc))
    shutil.copy(Path(lesson.state.agent_config).parent / "snmp-community", tmp_path / "snmp-community")
    result = CliRunner().invoke(app, ["wifi", "--config", str(cfg_path), "--json"])
    assert result.exit_code == 0, result.output
    rep = json.loads(result.output)
    z = {x["zone"]: x for x in rep["zones"]}
    assert (z["hall"]["aps_up"], z["teaching-ok"]["clients"], z["office-busy"]["clients"]) == (0, 20, 120)
    assert z["teaching-weak"]["good_signal_percent"] == 0
    radios = {r["band"]: r for r in z["office-busy"]["aps"][0]["radios"]}
    assert radios["5"]["channel"] == 36 and radios["5"]["clients"] == 80 and radios["5"]["utilization_percent"] == 95
    assert z["dorm"]["aps"][0]["placed_by"] == "snmp.devices ap-dorm: zone dorm"
    weak = "\n".join(rep["weak"])
    assert "ap-hall (room hall), zone hall: down" not in weak       # a controller AP has no room of its own
    assert "ap-hall, zone hall: down (its controller says down)" in weak
    assert "ap-weak, zone teaching-weak: 20 of 20 clients below -67 dBm / SNR 25 dB" in weak
    assert "ap-busy, zone office-busy radio 1 (5 GHz): 80 clients (limit 50)" in weak
    assert not any(m in result.output for m in _clear_macs(lesson))
    # the same as tables for a person: a row per radio, the units in the headers, no MAC in clear either
    text = CliRunner().invoke(app, ["wifi", "--config", str(cfg_path)], env={"COLUMNS": "100"})
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    radio1 = lines[next(i for i, ln in enumerate(lines) if ln.startswith("ap-busy")) + 1].split()
    assert radio1[:3] == ["1", "5", "36"] and radio1[-2:] == ["95", "80"], text.output
    assert all(u in text.output for u in ("GHz", "MHz", "dBm", "%")) and "What is weak and where" in text.output
    assert not any(m in text.output for m in _clear_macs(lesson))


def test_the_daemon_sends_zone_samples_and_never_a_client_mac(lesson, tmp_path):
    """`eduedge run` on the campus (outbox only, debug logging): zone samples are stored to send, the per-client
    samples are not (kept in memory only: agent/jobs.py); the clients' MACs are in neither the outbox nor the
    sample store (with their WALs) nor the log."""
    doc = yaml.safe_load(Path(lesson.state.agent_config).read_text())
    doc["agent"].update({"data_dir": str(tmp_path / "data"), "log_level": "debug"})
    for d in doc["snmp"]["devices"]:
        d["interval"] = "2s"
    cfg_path = tmp_path / "agent.yaml"
    cfg_path.write_text(yaml.safe_dump(doc))
    log = tmp_path / "agent.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("eduedge")), "run", "--config", str(cfg_path)],
                                stdout=subprocess.DEVNULL, stderr=err, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and b"wifi.zone_good_client_minutes" not in _outbox_bytes(tmp_path):
            time.sleep(0.5)
        time.sleep(4)                                 # a few more rounds
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    stored, logged = _outbox_bytes(tmp_path), log.read_text()
    assert b"wifi.zone_good_client_minutes" in stored and b"wifi.client_rssi_dbm" not in stored
    kept = b"".join(f.read_bytes() for f in (tmp_path / "data").glob("compliance.sqlite*"))
    assert b"wifi.zone_good_client_minutes" in kept
    leaks = [s for m in _clear_macs(lesson) for s in _spellings(m)
             if s.encode() in stored or s.encode() in kept or s in logged]
    assert leaks == [] and "DEBUG" in logged


def _outbox_bytes(root: Path) -> bytes:
    return b"".join(f.read_bytes() for f in (root / "data").glob("outbox.db*")) if (root / "data").is_dir() else b""
