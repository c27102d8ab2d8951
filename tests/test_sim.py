"""An agent pointed at the simulated campus (loopback mode) finds what the campus file describes.

The campus runs as `eduedge sim up` runs it (a runner process serving every device over real UDP);
the agent side is the production poller (collectors/snmp) built from the generated agent config.
The time of day is frozen at a Tuesday lesson (clock speed 0), so traffic rates and Wi-Fi clients are
exactly those described for a lesson.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import time
from pathlib import Path

import pytest
import yaml

from eduedge.agent.config import load_config
from eduedge.collectors.snmp.client import SnmpAuth, SnmpClient
from eduedge.collectors.snmp.poller import DevicePoller, as_text
from eduedge.collectors.snmp.profiles import load_profiles
from eduedge.core.netaddr import split_host_port
from eduedge.simulator.campus import load_campus
from eduedge.simulator.launch import control, sim_down, sim_up
from eduedge.simulator.state import SimState

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
CAMPUSES = REPO / "eduedge" / "simulator" / "campuses"
LESSON = "2025-03-11T10:05:00"        # a Tuesday, third lesson


def frozen_copy(src: Path, dst: Path, faults: list | None = None) -> Path:
    doc = yaml.safe_load(src.read_text())
    doc["clock"] = {"start": LESSON, "speed": 0}
    doc["faults"] = faults or []
    dst.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dst


def pids_of(state_dir: Path, state: SimState) -> list[int]:
    children = json.loads((state_dir / "children.json").read_text())
    return [state.pids["runner"], *children.values()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.fixture(scope="module")
def demo(tmp_path_factory, realdevices):
    d = tmp_path_factory.mktemp("demo")
    path = frozen_copy(REPO / "eduedge" / "simulator" / "campuses" / "campus-demo.yaml", d / "campus.yaml")
    state = sim_up(path, d / "state")
    pids = pids_of(d / "state", state)
    try:
        yield state, load_campus(path)
    finally:
        report = sim_down(d / "state")
        assert report.left == []
        assert [p for p in pids if alive(p)] == []


def test_sim_up_writes_a_configuration_that_judges_the_school(demo, tmp_path):
    """The packs for a secondary school, the campus's WAN test server for broadband and live classes, the
    learning SSID, the backbone roles of a two-tier campus; `eduedge diag` on it hears every device and judges
    the backbone (unknown with the default core+distribution roles: the demo campus has no distribution)."""
    import subprocess
    import sys

    state, _ = demo
    cfg = load_config(state.agent_config)
    assert cfg.standards.packs == ["yinchuan-2018", "hebei-2019", "moe-2019", "live-class"]
    assert cfg.broadband.enabled and cfg.broadband.server == state.speedtest
    assert cfg.live_class.enabled and [e.echo for e in cfg.live_class.endpoints] == [state.speedtest]
    assert cfg.topology.backbone_roles == ["core", "access"]
    assert cfg.discovery.enabled and cfg.discovery.learning.ssids == ["^Edu-Student$"]
    hours = cfg.standards.school_hours          # a frozen clock is in its lesson whenever the agent looks
    assert (len(hours.days), hours.start, hours.end) == (7, "00:00", "23:59")
    doc = yaml.safe_load(Path(state.agent_config).read_text(encoding="utf-8"))
    doc["agent"]["data_dir"] = str(tmp_path / "data")
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    eduedge = str(Path(sys.executable).with_name("eduedge"))
    r = subprocess.run([eduedge, "diag", "--json", "--config", str(tmp_path / "agent.yaml")], capture_output=True,
                       text=True, timeout=120)
    out = json.loads(r.stdout)
    assert [d["device"] for d in out["devices"] if not d["ok"]] == [], out["devices"]
    backbone = next(f for f in out["findings"] if f["rule"] == "yinchuan-2018.backbone")
    assert backbone["status"] == "pass" and len(backbone["evidence"]["links"]) == 5, backbone["evidence"]["why"]


def pollers(state: SimState) -> dict[str, DevicePoller]:
    cfg = load_config(state.agent_config)
    profiles = load_profiles(cfg.snmp.profile_dirs)
    auth = SnmpAuth.from_config(cfg.snmp.credentials["campus"], "campus")
    out = {}
    for d in cfg.snmp.devices:
        host, port = split_host_port(d.host)
        out[d.name] = DevicePoller(SnmpClient(d.name, host, port, auth, timeout=1.0, retries=1), profiles)
    return out


def client(state: SimState, name: str, timeout: float = 1.0) -> SnmpClient:
    ep = next(e for e in state.endpoints if e.name == name)
    return SnmpClient(name, ep.host, ep.snmp_port, SnmpAuth(community="public"), timeout=timeout, retries=0)


async def poll_all(ps: dict[str, DevicePoller]):
    results = await asyncio.gather(*(p.poll() for p in ps.values()))
    return {r.device: r for r in results}


def test_agent_finds_exactly_the_described_devices(demo):
    state, campus = demo
    described = {s.name for s in campus.switches} | {campus.wireless.controller.name}
    described |= {a.name for a in campus.wireless.aps if a.model == "unifi_nanohd"}
    described |= {d.name for d in campus.devices if d.model}
    ps = pollers(state)
    assert set(ps) == described
    results = asyncio.run(poll_all(ps))
    for name, r in results.items():
        assert r.errors == [], name
        assert r.identity.hostname == name
    models = {s.name: s.model for s in campus.switches}
    assert results["core"].identity.model == "S5720-56C-PWR-EI-AC"          # the recording's entity model
    assert results["sw-b1"].identity.model == "C9300-48P"
    assert models["sw-dorm"] == "ios_c3560" and results["sw-dorm"].identity.model == "WS-C3560-48TS-S"
    serials = [r.identity.serial for r in results.values() if r.identity.serial]
    assert len(serials) == len(set(serials)), "two simulated devices share a serial number"


def expected_lldp(campus) -> set[tuple[str, int, str]]:
    """(device, local port number, neighbour's sysName) for every cable between LLDP speakers."""
    speakers = ({s.name for s in campus.switches} | {campus.wireless.controller.name}
                | {a.name for a in campus.wireless.aps})
    # the UniFi nanoHD recording has no LLDP-MIB: such an AP is seen by its switch but shows no neighbours
    answers = {s.name for s in campus.switches} | {campus.wireless.controller.name}
    cables = [(s.name, s.uplink.port, *s.uplink.to.split(":")) for s in campus.switches if ":" in s.uplink.to]
    cables += [(x.name, 1, *x.uplink.split(":")) for x in [campus.wireless.controller, *campus.wireless.aps]]
    out = set()
    for a, a_port, b, b_port in cables:
        if a in speakers and b in speakers:
            if a in answers:
                out.add((a, a_port, b))
            if b in answers:
                out.add((b, int(b_port), a))
    return out


def test_lldp_neighbours_match_the_cabling(demo):
    state, campus = demo
    results = asyncio.run(poll_all(pollers(state)))
    seen = {(r.device, int(s.tags["local_port_num"]), s.value) for r in results.values() for s in r.samples
            if s.metric == "lldp.neighbor"}
    assert seen == expected_lldp(campus)


def test_link_speeds_are_the_described_ones(demo):
    state, campus = demo
    ps = pollers(state)

    async def speeds(name: str) -> dict[int, float]:
        r = await ps[name].poll()
        by_name = {s.tags["interface"]: s.value for s in r.samples if s.metric == "if.speed_mbps"}
        up = {s.tags["interface"] for s in r.samples if s.metric == "if.oper_status" and s.value == "up"}
        # the device's own LLDP local port table says which interface is which port number
        names = await client(state, name).walk("1.0.8802.1.1.2.1.3.7.1.3")
        return {int(i): by_name[as_text(v)] for i, v in names.items() if as_text(v) in up}

    for sw in campus.switches:
        got = asyncio.run(speeds(sw.name))
        groups = sw.port_groups()
        cabled = {p for p, g in groups.items() if g.use == "classroom"} | {sw.uplink.port}
        cabled |= {int(x.uplink.split(":")[1]) for x in [*campus.wireless.aps, *campus.devices,
                                                          campus.wireless.controller]
                   if x.uplink and x.uplink.split(":")[0] == sw.name}
        cabled |= {int(s.uplink.to.split(":")[1]) for s in campus.switches if s.uplink.to.startswith(sw.name + ":")}
        assert set(got) == cabled, sw.name
        assert got == {p: groups[p].speed_mbps for p in cabled}, sw.name


def expected_clients(campus, ap_name: str, period: str = "lesson") -> int:
    ap = next(a for a in campus.wireless.aps if a.name == ap_name)
    n = (ap.clients or campus.zone(ap.zone).clients).get(period, 0)
    first_ap_in_room = {}
    for a in campus.wireless.aps:
        first_ap_in_room.setdefault(a.room, a.name)
    tablets = [d for d in campus.devices if d.kind == "tablet" and first_ap_in_room.get(d.room) == ap_name]
    return n + len(tablets)


HW_VAP_STA = "1.3.6.1.4.1.2011.6.139.17.1.1.1.9"     # hwWlanVapStaOnlineCnt, index AP MAC . radio . WLAN
HW_AP_NAME = "1.3.6.1.4.1.2011.6.139.13.3.3.1.4"     # hwWlanApName, index AP MAC
HW_STA_AP_NAME = "1.3.6.1.4.1.2011.6.139.18.1.2.1.4"
HW_STA_RSSI = "1.3.6.1.4.1.2011.6.139.18.1.2.1.42"
UNIFI_VAP_STA = "1.3.6.1.4.1.41112.1.6.1.2.1.8"      # unifiVapNumStations


def huawei_clients(state) -> tuple[dict[str, int], dict[str, int], list[int]]:
    c = client(state, "ac-1")

    async def walk():
        return [await c.walk(o) for o in (HW_VAP_STA, HW_AP_NAME, HW_STA_AP_NAME, HW_STA_RSSI)]

    vap, names, sta_ap, rssi = asyncio.run(walk())
    per_ap: dict[str, int] = collections.Counter()
    for index, n in vap.items():
        mac = ".".join(index.split(".")[:6])
        per_ap[as_text(names[mac])] += n
    stations = collections.Counter(as_text(v) for v in sta_ap.values())
    return dict(per_ap), dict(stations), list(rssi.values())


def test_wireless_tables_hold_the_described_clients(demo):
    state, campus = demo
    per_ap, stations, rssi = huawei_clients(state)
    fit = [a for a in campus.wireless.aps if a.model != "unifi_nanohd"]
    assert per_ap == {a.name: expected_clients(campus, a.name) for a in fit}
    assert stations == {k: v for k, v in per_ap.items() if v}
    assert per_ap["ap-b01"] == 30 + 30          # the zone's lesson count plus the class set of tablets
    assert all(-92 <= r <= -30 for r in rssi)
    for ap in (a for a in campus.wireless.aps if a.model == "unifi_nanohd"):
        got = asyncio.run(client(state, ap.name).walk(UNIFI_VAP_STA))
        assert sum(got.values()) == expected_clients(campus, ap.name), ap.name


def test_an_ap_losing_its_clients_and_a_flapping_link(demo):
    state, campus = demo
    sd = Path(state.state_dir)
    assert control(sd, {"cmd": "fault", "fault": {"kind": "clients_lost", "device": "ap-a03", "for": "30s"}})["ok"]
    per_ap, stations, _ = huawei_clients(state)
    assert per_ap["ap-a03"] == 0 and "ap-a03" not in stations
    assert per_ap["ap-a04"] == expected_clients(campus, "ap-a04")
    reply = control(sd, {"cmd": "fault", "fault": {"kind": "link_flap", "device": "core", "port": 5,
                                                   "for": "30s", "period": "30s"}})
    assert reply["ok"]
    results = asyncio.run(poll_all({k: v for k, v in pollers(state).items() if k in ("core", "sw-lib")}))
    core_lldp = {s.value for s in results["core"].samples if s.metric == "lldp.neighbor"}
    assert "sw-lib" not in core_lldp and "sw-a1" in core_lldp
    lib_up = [s for s in results["sw-lib"].samples
              if s.metric == "if.oper_status" and s.tags.get("alias") == "uplink to core"]
    assert [s.value for s in lib_up] == ["down"]
    assert control(sd, {"cmd": "clear"})["cleared"] == 2
    per_ap, _, _ = huawei_clients(state)
    assert per_ap["ap-a03"] == expected_clients(campus, "ap-a03")


def rates(result, metric: str = "if.in_bps") -> dict[str, float]:
    return {s.tags["interface"]: s.value for s in result.samples if s.metric == metric}


def test_a_reboot_resets_counters_without_a_rate_spike(demo):
    """sw-dorm has 32-bit counters only: a counter reset looks like a wrap unless the reboot is seen."""
    state, _ = demo
    poller = pollers(state)["sw-dorm"]

    async def scenario():
        await poller.poll()
        await asyncio.sleep(1.0)
        before = await poller.poll()
        control(Path(state.state_dir), {"cmd": "fault", "fault": {"kind": "reboot", "device": "sw-dorm",
                                                                   "down_for": "1.5s"}})
        during = await poller.poll()
        await asyncio.sleep(1.6)
        after = await poller.poll()
        await asyncio.sleep(1.0)
        later = await poller.poll()
        return before, during, after, later

    before, during, after, later = asyncio.run(scenario())
    assert during.errors and not during.samples
    assert after.rebooted
    uptime = next(s.value for s in after.samples if s.metric == "device.uptime_s")
    assert uptime < 5
    assert rates(after) == {}                   # the deltas across the reboot are discarded, not invented
    base, now = rates(before), rates(later)
    assert set(now) == set(base)
    uplink = next(s.tags["interface"] for s in before.samples if s.tags.get("alias") == "uplink to core")
    assert base[uplink] > 1e6
    for name, value in now.items():
        assert value <= base[name] * 1.2 + 1000, name   # same traffic as before the reboot, no spike


def test_sim_down_stops_everything_it_started(tmp_path, realdevices):
    path = frozen_copy(REPO / "eduedge" / "simulator" / "campuses" / "campus-small.yaml", tmp_path / "campus.yaml")
    state = sim_up(path, tmp_path / "state", broker=True)
    pids = pids_of(tmp_path / "state", state)
    assert len(pids) == 3                                   # runner, test server, broker
    assert all(alive(p) for p in pids)
    ep = next(e for e in state.endpoints if e.snmp_port)
    assert asyncio.run(client(state, ep.name).get_many(["1.3.6.1.2.1.1.5.0"]))
    report = sim_down(tmp_path / "state")
    assert report.left == []
    assert [p for p in pids if alive(p)] == []
    assert not (tmp_path / "state" / "state.json").exists()
    with pytest.raises(Exception, match="no answer"):
        asyncio.run(client(state, ep.name, timeout=0.3).get_many(["1.3.6.1.2.1.1.5.0"]))
    assert sim_down(tmp_path / "state").stopped == []        # a second down finds nothing


def test_scripted_faults_outage_gap_and_a_32bit_wrap(tmp_path, realdevices):
    """Faults written in the campus file: an outage of the printer, and the projector's 32-bit
    counters passing 2^32, at known moments after start."""
    faults = [{"at": "3s", "kind": "down", "device": "prn-office", "for": "4s"},
              {"at": "6s", "kind": "counter_wrap", "device": "proj-c1"}]
    path = frozen_copy(CAMPUSES / "campus-small.yaml", tmp_path / "campus.yaml", faults)
    state = sim_up(path, tmp_path / "state")
    try:
        launch = state.launch
        printer = client(state, "prn-office", timeout=0.25)
        projector = pollers(state)["proj-c1"]
        in_octets = "1.3.6.1.2.1.2.2.1.10"

        async def scenario():
            asked, counters, polls = [], [], []
            while time.time() < launch + 9:
                t = time.time()
                try:
                    await printer.get_many(["1.3.6.1.2.1.1.3.0"])
                    asked.append((t - launch, True))
                except Exception:
                    asked.append((t - launch, False))
                counters.append((t - launch, await client(state, "proj-c1").walk(in_octets)))
                polls.append(await projector.poll())
                await asyncio.sleep(0.3)
            return asked, counters, polls

        asked, counters, polls = asyncio.run(scenario())
        # the scripted outage is exactly [3 s, 7 s): every question then goes unanswered, none other does
        for t, ok in asked:
            if 3.05 <= t <= 6.95:
                assert not ok, f"answered at {t:.2f}s, inside the outage"
            elif t <= 2.95 or t >= 7.05:
                assert ok, f"unanswered at {t:.2f}s, outside the outage"
        assert sum(1 for t, ok in asked if not ok) >= 4
        uplink = max(counters[0][1], key=lambda i: counters[-1][1][i] != counters[0][1][i])
        values = [(t, c[uplink]) for t, c in counters]
        wrapped = [i for i in range(1, len(values)) if values[i][1] < values[i - 1][1]]
        assert len(wrapped) == 1 and 5.5 <= values[wrapped[0]][0] <= 6.8        # it wrapped, once, at 6 s
        in_bps = [rates(p).get("eth0") for p in polls[1:]]
        steady = [r for r in in_bps if r is not None]
        assert len(steady) == len(polls) - 1                             # the wrap was read as a wrap
        assert max(steady) <= min(steady) * 1.3 + 1000
    finally:
        assert sim_down(tmp_path / "state").left == []


def test_slow_and_lossy_devices_do_not_hold_up_the_others(demo):
    state, _ = demo
    sd = Path(state.state_dir)
    control(sd, {"cmd": "fault", "fault": {"kind": "slow", "device": "prn-office", "delay": "0.8s", "for": "20s"}})
    control(sd, {"cmd": "fault", "fault": {"kind": "loss", "device": "prn-library", "percent": 50, "for": "20s"}})
    sysname = ["1.3.6.1.2.1.1.5.0"]

    async def scenario():
        slow_short = asyncio.create_task(client(state, "prn-office", timeout=0.4).get_many(sysname))
        slow_long = asyncio.create_task(client(state, "prn-office", timeout=2.0).get_many(sysname))
        others = await asyncio.gather(*(client(state, n, timeout=0.4).get_many(sysname)
                                        for n in ("core", "ac-1", "ups-core")))
        answered = 0
        lossy = client(state, "prn-library", timeout=0.2)
        for _ in range(40):
            try:
                await lossy.get_many(sysname)
                answered += 1
            except Exception:
                pass
        results = await asyncio.gather(slow_short, slow_long, return_exceptions=True)
        return others, answered, results

    others, answered, (short, long) = asyncio.run(scenario())
    assert [as_text(o["1.3.6.1.2.1.1.5.0"]) for o in others] == ["core", "ac-1", "ups-core"]
    assert isinstance(short, Exception) and as_text(long["1.3.6.1.2.1.1.5.0"]) == "prn-office"
    assert 8 <= answered <= 32                    # about half of 40 requests lost
    control(sd, {"cmd": "clear"})


def test_a_broker_outage_stops_and_restarts_the_campus_broker(tmp_path, realdevices):
    import socket

    path = frozen_copy(REPO / "eduedge" / "simulator" / "campuses" / "campus-small.yaml", tmp_path / "campus.yaml")
    state = sim_up(path, tmp_path / "state", broker=True)
    try:
        host, port = split_host_port(state.broker)
        socket.create_connection((host, port), timeout=2).close()
        sd = tmp_path / "state"
        assert control(sd, {"cmd": "fault", "fault": {"kind": "broker_outage", "for": "2s"}})["ok"]
        deadline = time.time() + 5
        while time.time() < deadline and control(sd, {"cmd": "status"})["broker_running"]:
            time.sleep(0.1)
        with pytest.raises(OSError):
            socket.create_connection((host, port), timeout=1).close()
        deadline = time.time() + 10
        while time.time() < deadline and not control(sd, {"cmd": "status"})["broker_running"]:
            time.sleep(0.1)
        socket.create_connection((host, port), timeout=2).close()       # back, on the same port
        events = [json.loads(line) for line in (sd / "events.jsonl").read_text().splitlines()]
        phases = [(e["phase"], e["applied"]) for e in events if e["event"] == "broker_outage"]
        assert phases == [("start", True), ("end", True)]
    finally:
        assert sim_down(tmp_path / "state").left == []


def test_the_eduedge_sim_commands(tmp_path, realdevices):
    import subprocess
    import sys

    eduedge = str(Path(sys.executable).with_name("eduedge"))
    sd = str(tmp_path / "state")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([eduedge, *args], capture_output=True, text=True, timeout=120)

    path = frozen_copy(REPO / "eduedge" / "simulator" / "campuses" / "campus-small.yaml", tmp_path / "campus.yaml")
    up = run("sim", "up", "--campus", str(path), "--state-dir", sd)
    assert up.returncode == 0, up.stderr
    assert "9 SNMP agents" in up.stdout and "point an agent at it:  eduedge run --config" in up.stdout
    assert run("config", "check", f"{sd}/agent.yaml").returncode == 0
    injected = run("sim", "fault", "down", "proj-c2", "--for", "1m", "--state-dir", sd)
    assert injected.returncode == 0 and '"device": "proj-c2"' in injected.stdout
    refused = run("sim", "fault", "slow", "proj-c2", "--state-dir", sd)
    assert refused.returncode == 2 and "a slow fault needs `delay`" in refused.stderr
    status = run("sim", "status", "--state-dir", sd)
    assert "(lesson)" in status.stdout and "fault ACTIVE" in status.stdout
    assert "cleared 1 active fault(s)" in run("sim", "clear", "--state-dir", sd).stdout
    down = run("sim", "down", "--state-dir", sd)
    assert down.returncode == 0 and "stopped runner" in down.stdout
    assert run("sim", "down", "--state-dir", sd).stdout.strip() == "nothing was running"
    bad = tmp_path / "bad.yaml"
    bad.write_text(path.read_text().replace("model: tplink_sg2008", "model: nosuch"))
    failed = run("sim", "up", "--campus", str(bad), "--state-dir", sd)
    assert failed.returncode == 2 and f"{bad}:" in failed.stderr and "no recording nosuch.snmprec" in failed.stderr
