"""The main job end to end: `eduedge run` against the simulated demo campus polls, judges, buffers and reports.

One campus (sim_up with its own broker, loopback) and one agent with short intervals (5 s polls, a 5 s
assessment), traps, discovery, reachability and broadband (against the campus's test server behind its
simulated WAN) on. The test listens on the broker as the city would and checks that what the design promises
arrives and meets the contract: metrics (device polls, Wi-Fi zone aggregates, reachability, the learning-device
count, the WAN), the inventory with identities, findings for every rule of the configured packs (status and
evidence), status-change events, a trap turned into an event, and the answers to `run-check broadband` (a
capacity test now, which the next assessment judges) and `run-check compliance`. Afterwards
`eduedge diag --cached` shows the statuses of the daemon's last assessment, and nothing of the campus or the
agent is left running.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from eduedge.agent.compliance import evaluate
from eduedge.agent.config import load_config
from eduedge.agent.samplestore import SampleStore
from eduedge.core.netaddr import split_host_port
from eduedge.simulator.demo import campus_in_a_lesson
from eduedge.simulator.launch import sim_down, sim_up
from eduedge.simulator.state import SimState
from tests.mqtt_helpers import Receiver, stop_agent

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
CAMPUSES = REPO / "eduedge" / "simulator" / "campuses"
EDUEDGE = str(Path(sys.executable).with_name("eduedge"))
PACKS = ["yinchuan-2018", "hebei-2019", "moe-2019"]
LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def campus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimState]:
    work = tmp_path_factory.mktemp("main-job")
    state_dir = work / "sim"
    # in a lesson whatever the hour the test runs: the 1:1 count needs tablets on the learning SSID
    state = sim_up(campus_in_a_lesson(CAMPUSES / "campus-demo.yaml", work / "campus.yaml"), state_dir,
                   broker=True)
    try:
        yield state
    finally:
        report = sim_down(state_dir)
        assert report.left == [], report
        assert not [pid for pid in state.pids.values() if psutil.pid_exists(pid)], state.pids


def agent_config(state: SimState, path: Path, data_dir: Path, trap_port: int) -> Path:
    """The simulator's agent configuration with every part of the main job on and short intervals."""
    doc = yaml.safe_load(Path(state.agent_config).read_text(encoding="utf-8"))
    hosts = [split_host_port(d["host"])[0] for d in doc["snmp"]["devices"]]
    subnet = ".".join(hosts[0].split(".")[:3]) + ".0/24"        # the campus's loopback addresses
    doc["agent"].update({"data_dir": str(data_dir), "log_level": "info"})
    doc["snmp"]["defaults"] = {"interval": "5s"}
    doc["snmp"]["traps"] = {"enabled": True, "listen": f"127.0.0.1:{trap_port}"}
    doc["standards"] = {"packs": PACKS, "assess_interval": "5s"}
    # every switch's bridge table is read (the default); the ARP sweep goes over loopback, where nothing
    # answers ARP
    doc["discovery"] = {"enabled": True, "subnets": [subnet], "interval": "10s", "sweep_timeout": "0.5s",
                        "learning": {"ssids": ["^Edu-Student$"]}}
    doc["reachability"] = {"enabled": True, "interval": "10s", "count": 2, "timeout": "0.5s"}
    # no scheduled tests (their times are random within the windows): `run-check broadband` runs one
    doc["broadband"] = {"enabled": True, "server": state.speedtest, "duration": "3s", "warmup_max": "1s",
                        "streams": 2, "idle_probes": 10, "monitor_interval": "5s", "windows": []}
    doc["commands"] = {"rate_per_minute": 60, "burst": 5}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def command(broker: str, city: str, school: str, name: str, request_id: str, **args: Any) -> None:
    host, port = split_host_port(broker)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"city-{uuid.uuid4().hex[:6]}")
    c.connect(host, port)
    c.loop_start()
    body = {"schema": {"name": "cmd", "version": 1}, "request_id": request_id, "args": args}
    c.publish(f"edu/v1/{city}/{school}/cmd/{name}", json.dumps(body).encode(), qos=1).wait_for_publish(5)
    c.loop_stop()
    c.disconnect()


def samples(rx: Receiver) -> list[dict[str, Any]]:
    return [s for m in rx.of("metrics") for s in m["samples"]]


def events(rx: Receiver) -> list[dict[str, Any]]:
    return [e for m in rx.of("events") for e in m["events"]]


def send_trap(state: SimState, device_host: str, port: int, tmp: Path) -> None:
    """A v2c linkDown from the device's own address, as the switch would send it (net-snmp's snmptrap)."""
    community = (state.dir / "snmp-community").read_text().strip()
    env = dict(os.environ, MIBS="", SNMP_PERSISTENT_DIR=str(tmp / "netsnmp"))
    subprocess.run(["snmptrap", "-v2c", "-c", community, f"--clientaddr={device_host}", f"127.0.0.1:{port}", "",
                    LINK_DOWN, "1.3.6.1.2.1.2.2.1.1.7", "i", "7", "1.3.6.1.2.1.31.1.1.1.1.7", "s", "GE0/0/7"],
                   env=env, check=True, capture_output=True, timeout=30)


@pytest.mark.skipif(not shutil.which("snmptrap"), reason="net-snmp tools not installed")
def test_eduedge_run_polls_judges_buffers_and_reports_the_whole_campus(campus: SimState, tmp_path: Path) -> None:
    trap_port = _free_udp_port()
    cfg_path = agent_config(campus, tmp_path / "agent.yaml", tmp_path / "data", trap_port)
    cfg = load_config(cfg_path)
    expected_rules = {f.rule for f in evaluate(SampleStore(":memory:"), cfg)}
    devices = {d.name for d in cfg.snmp.devices}
    rx = Receiver(*split_host_port(campus.broker))
    log = tmp_path / "agent.log"
    with open(log, "w") as err:
        agent = subprocess.Popen([EDUEDGE, "run", "--config", str(cfg_path)], stdout=subprocess.DEVNULL, stderr=err,
                                 start_new_session=True)
    try:
        # polls: every device's samples, the Wi-Fi zones of each round, reachability, the 1:1 count
        rx.wait_for(lambda r: devices <= {s["device"] for s in samples(r)}, 30, "samples from every device")
        wanted = {"wifi.zone_clients", "wifi.zone_good_client_minutes", "device.reachable",
                  "inventory.learning_devices", "wan.rtt_ms"}
        rx.wait_for(lambda r: wanted <= {s["metric"] for s in samples(r)}, 30, f"the metrics {wanted}")
        # the Wi-Fi rounds hand discovery their Edu-Student clients; its next cycle counts them
        rx.wait_for(lambda r: any(s["metric"] == "inventory.learning_devices" and s["value"] > 0 for s in samples(r)),
                    30, "learning devices counted from Wi-Fi")
        # judging: one finding per rule of the packs, then status events
        rx.wait_for(lambda r: expected_rules <= {f["rule"] for m in r.of("findings") for f in m["findings"]},
                    30, "findings for every rule")
        rx.wait_for(lambda r: any(e["kind"] == "compliance.status_changed" for e in events(r)), 10, "status events")
        # a trap of a listed device becomes an event
        core = next(d for d in cfg.snmp.devices if d.name == "core")
        send_trap(campus, split_host_port(core.host)[0], trap_port, tmp_path)
        rx.wait_for(lambda r: any(e["kind"] == "link.down" for e in events(r)), 10, "the trap's event")
        # a capacity test now; the next assessment judges the school's egress by it
        command(campus.broker, cfg.school.city, cfg.school.id, "run-check", "bb-1", check="broadband")
        rx.wait_for(lambda r: any(a["request_id"] == "bb-1" for a in r.of("cmd-result")), 30, "the test's answer")
        command(campus.broker, cfg.school.city, cfg.school.id, "run-check", "rc-1", check="compliance")
        rx.wait_for(lambda r: any(a["request_id"] == "rc-1" for a in r.of("cmd-result")), 15, "run-check's answer")
        status = subprocess.run([EDUEDGE, "status", "--config", str(cfg_path)], capture_output=True, text=True,
                                timeout=30)
        # stop right after an assessment reached the city, so that its findings are the store's last
        n = len(rx.of("findings"))
        rx.wait_for(lambda r: len(r.of("findings")) > n, 15, "the next assessment")
    finally:
        code = stop_agent(agent)
    rx.wait_for(lambda r: r.of("death"), 10, "the death message")
    rx.close()
    assert code == 0, log.read_text()[-3000:]
    left = [p.pid for p in psutil.process_iter() if _pgid(p.pid) == agent.pid]
    assert left == [], f"processes of the agent's session still run: {left}"
    assert rx.problems == [], rx.problems[:5]

    # metrics: the zone aggregates and radios go to the city; the per-client samples stay on the box
    metrics = {s["metric"] for s in samples(rx)}
    assert {"wifi.radio_clients", "wifi.zone_client_minutes", "device.rtt_ms", "if.in_bps"} <= metrics
    assert not [m for m in metrics if m.startswith("wifi.client_")]

    # inventory: the configured devices with the identities their polls found
    inventory = [m for m in rx.of("inventory") if m.get("scope", "configured") == "configured"]
    last = {d["device"]: d for d in inventory[-1]["devices"]}
    assert devices <= set(last) and last["core"]["identity"] is not None
    assert len(inventory) < len(devices)              # identities of the campus coalesced, not a list per device

    # findings: every rule, each with a status and its evidence
    findings = [f for m in rx.of("findings") for f in m["findings"]]
    assert {f["status"] for f in findings} <= {"pass", "fail", "unknown", "port-limited"}
    assert all(f["evidence"].get("why") for f in findings)
    ratio_finding = next(f for f in reversed(findings) if f["rule"] == "yinchuan-2018.device-ratio")
    assert ratio_finding["status"] in ("pass", "fail") and ratio_finding["value"] > 0

    # events: status changes say from what to what and why; the trap names the device and its port
    changes = [e for e in events(rx) if e["kind"] == "compliance.status_changed"]
    assert {e["data"]["rule"] for e in changes} == expected_rules
    assert all(e["data"]["from"] is None for e in changes[:len(expected_rules)])
    trap = next(e for e in events(rx) if e["kind"] == "link.down")
    assert trap["device"] == "core" and "GE0/0/7" in trap["message"]

    tested = next(a for a in rx.of("cmd-result") if a["request_id"] == "bb-1")
    assert tested["status"] == "ok" and tested["result"]["samples"] > 0, tested
    down = [s for s in samples(rx) if s["metric"] == "wan.down_mbps"]
    assert len(down) == 1 and down[0]["tags"]["window"] == "command" and down[0]["value"] > 100   # a 300 Mbit/s WAN
    egress = [f for m in rx.of("findings") for f in m["findings"] if f["rule"] == "hebei-2019.egress"]
    assert egress[0]["status"] == "unknown" and egress[-1]["status"] == "pass"

    answer = next(a for a in rx.of("cmd-result") if a["request_id"] == "rc-1")
    assert answer["status"] == "ok" and answer["result"]["ran"] == ["compliance"]
    assert sum(answer["result"]["summary"]["compliance"]["findings"].values()) == len(expected_rules)

    # eduedge status: every job with its last success, and the trap receiver
    assert status.returncode == 0, status.stdout + status.stderr
    jobs = [f"snmp:{d}" for d in devices] + ["compliance", "discovery", "reachability", "traps", "broadband",
                                             "broadband:tick"]
    for job in jobs:
        line = next((ln for ln in status.stdout.splitlines() if ln.split()[:1] == [job]), None)
        assert line is not None and line.split()[1] != "never" and "ERROR" not in line, (job, status.stdout)

    # eduedge diag --cached: the statuses of the daemon's last assessment, as the city received them
    diag = subprocess.run([EDUEDGE, "diag", "--cached", "--json", "--config", str(cfg_path)], capture_output=True,
                          text=True, timeout=60)
    cached = json.loads(diag.stdout)
    assert cached["source"].startswith("cached (daemon at ")
    last_sent = {f["rule"]: f["status"] for f in rx.of("findings")[-1]["findings"]}
    assert {f["rule"]: f["status"] for f in cached["findings"]} == last_sent
    assert diag.returncode == (1 if "fail" in last_sent.values() else 0)



def _trap_events(daemon: Any) -> list[dict[str, Any]]:
    from eduedge.agent import contract

    rows = daemon.outbox.take(1000)
    return [e for r in rows if r.kind == "events" for e in contract.decode(r.payload)["events"]
            if e["kind"] == "link.down"]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.skipif(not shutil.which("snmptrap"), reason="net-snmp tools not installed")
def test_a_reload_moves_the_trap_receiver_and_shutdown_closes_it(tmp_path: Path) -> None:
    """In-process: the receiver listens from start(), is kept by a reload that does not touch it, moves to a
    new port when snmp.traps.listen changes (the old port is free again) and is closed at shutdown."""
    from eduedge.agent.daemon import Daemon
    from tests.mqtt_helpers import write_config

    first, second = _free_udp_port(), _free_udp_port()
    (tmp_path / "community").write_text("trapcomm\n")

    def config(port: int, interval: str = "1h") -> Path:
        return write_config(tmp_path / "agent.yaml", None, tmp_path / "data", snmp={
            "credentials": {"c": {"version": "2c", "community": {"file": str(tmp_path / "community")}}},
            "devices": [{"name": "sw-1", "host": "127.0.0.1:9", "credentials": "c", "interval": interval}],
            "traps": {"enabled": True, "listen": f"127.0.0.1:{port}"}})

    def trap_to(port: int) -> None:
        env = dict(os.environ, MIBS="", SNMP_PERSISTENT_DIR=str(tmp_path / "netsnmp"))
        subprocess.run(["snmptrap", "-v2c", "-c", "trapcomm", f"127.0.0.1:{port}", "", LINK_DOWN,
                        "1.3.6.1.2.1.2.2.1.1.7", "i", "7"], env=env, check=True, capture_output=True, timeout=30)

    def wait_events(n: int) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + 10
        while len(got) < n and time.monotonic() < deadline:
            time.sleep(0.1)
            got += _trap_events(daemon)
        return got

    daemon = Daemon(config(first))
    try:
        daemon.collectors.start()
        trap_to(first)
        assert [e["device"] for e in wait_events(1)] == ["sw-1"]
        receiver = daemon.collectors.listeners["traps"].receiver
        config(first, interval="2h")
        # traps untouched: the same receiver
        assert daemon.reload() and daemon.collectors.listeners["traps"].receiver is receiver
        config(second)
        assert daemon.reload() and daemon.collectors.listeners["traps"].receiver is not receiver
        assert _port_free(first)
        trap_to(second)
        assert len(wait_events(1)) == 1
        state = daemon.state()["collectors"]["traps"]
        assert state["listen"] == f"127.0.0.1:{second}" and state["events"] == 1 and state["last_error"] is None
    finally:
        daemon.shutdown()
    assert _port_free(second)
