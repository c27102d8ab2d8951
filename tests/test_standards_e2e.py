"""Issue 7, shown by: the standards judged end to end on the simulated campus.

Two campuses derived from config/campus-demo.yaml, up side by side (loopback, each with its own broker): a
healthy one, and a faulty one with four faults — the library switch's uplink to the core negotiated at
100 Mbit/s (a backbone link), a teaching zone (teaching-b) whose clients hear their APs at about -80 dBm, the
WAN degraded to 40 Mbit/s down, and an enrolment far above the learning devices the campus has. Both are
pinned to a Tuesday lesson so that the Wi-Fi zones have clients, with enough clients per AP that a minute of
5 s rounds gives each teaching/office/public zone the 300 client-minutes the coverage rule needs to decide.

`eduedge diag` polls the switches live, but the Wi-Fi zone aggregates, the learning-device count and the WAN
capacity come from the agent's own jobs (Wi-Fi rounds, discovery fed by the learning SSID's clients, a
broadband test). So each campus's agent runs (`eduedge run`, short intervals) until the coverage and device
ratio rules are decided, is asked for a capacity test over MQTT (`run-check broadband`, as the city would),
and stops; then `eduedge diag --json` runs live against the same data_dir, polls the campus once more and
judges every rule. The healthy campus fails nothing; the faulty one fails exactly the backbone, Wi-Fi
coverage, egress and device-ratio rules, with a problem line naming the link, the zone, the WAN rate and the
count against the enrolment; every other rule has the same status on both campuses.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from agent.config import load_config, split_host_port
from simulator.launch import sim_down, sim_up
from simulator.state import SimState
from tests.mqtt_helpers import Receiver
from tests.test_main_job import EDUEDGE, _free_udp_port, agent_config, command

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
LESSON = "2025-03-11T10:05:00"          # a Tuesday, the third lesson (08:00 + 2 x 55 min)
FAULTY_RULES = {"yinchuan-2018.backbone", "yinchuan-2018.wifi-areas", "hebei-2019.egress",
                "yinchuan-2018.device-ratio"}
GOOD_SIGNAL = {"rssi_dbm": {"mean": -52, "sd": 4, "min": -70, "max": -32},
               "snr_db": {"mean": 40, "sd": 4, "min": 26, "max": 55}}


def campus_doc(faulty: bool) -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "config" / "campus-demo.yaml").read_text(encoding="utf-8"))
    doc["clock"] = {"start": LESSON, "speed": 0}      # the time of day stays in the lesson
    doc.pop("faults", None)
    doc["school"]["enrolment"] = {"students": 100000 if faulty else 50, "teachers": 10}
    # enough clients that 5 s rounds add up to the 300 client-minutes a zone needs within a minute
    per_ap = {"teaching-a": 60, "teaching-b": 90, "library": 300}
    for zone in doc["zones"]:
        if zone["name"] in per_ap:
            zone["clients"]["lesson"] = per_ap[zone["name"]]
        if zone["kind"] in ("teaching", "office", "public"):
            zone.update(GOOD_SIGNAL)
        if faulty and zone["name"] == "teaching-b":
            zone["rssi_dbm"] = {"mean": -80, "sd": 3, "min": -92, "max": -70}
    for switch in doc["switches"]:          # the links from the core to these are the backbone the rule judges
        switch.setdefault("role", "distribution")
    if faulty:
        core = next(s for s in doc["switches"] if s["name"] == "core")
        core["ports"][0] = {"ports": "1-4", "use": "backbone", "speed_mbps": 1000}
        core["ports"][1:1] = [{"ports": 5, "use": "backbone", "speed_mbps": 100},
                              {"ports": "6-8", "use": "backbone", "speed_mbps": 1000}]
        lib = next(s for s in doc["switches"] if s["name"] == "sw-lib")
        lib["ports"][1] = {"ports": 8, "use": "uplink", "speed_mbps": 100}
        doc["wan"]["down_mbps"] = 40
    return doc


@dataclass
class Run:
    diag: dict[str, Any]
    code: int
    text: str
    agent_log: str


def campus_up(doc: dict[str, Any], tmp: Path) -> SimState:
    tmp.mkdir(parents=True)
    campus_path = tmp / "campus.yaml"
    campus_path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return sim_up(campus_path, tmp / "sim", broker=True)


def exercise(name: str, state: SimState, tmp: Path) -> Run:
    """Let the campus's agent gather a minute of evidence and one capacity test, then diag."""
    cfg_path = agent_config(state, tmp / "agent.yaml", tmp / "data", _free_udp_port())
    cfg = load_config(cfg_path)
    rx = Receiver(*split_host_port(state.broker))
    log = tmp / "agent.log"
    with open(log, "w") as err:
        agent = subprocess.Popen([EDUEDGE, "run", "--config", str(cfg_path)], stdout=subprocess.DEVNULL,
                                 stderr=err, start_new_session=True)
    try:
        def decided(r: Receiver) -> bool:
            last = {f["rule"]: f["status"] for m in r.of("findings") for f in m["findings"]}
            return all(last.get(rule) in ("pass", "fail") for rule in
                       ("yinchuan-2018.wifi-areas", "yinchuan-2018.device-ratio"))
        try:
            rx.wait_for(decided, 75, f"{name}: the coverage and device-ratio rules decided")
        except AssertionError as e:
            last = {f["rule"]: f["evidence"]["why"] for m in rx.of("findings") for f in m["findings"]}
            raise AssertionError(f"{e}; last findings: {last}") from None
        command(state.broker, cfg.school.city, cfg.school.id, "run-check", "bb", check="broadband")
        rx.wait_for(lambda r: any(a["request_id"] == "bb" for a in r.of("cmd-result")), 30,
                    f"{name}: the capacity test's answer")
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(30)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        rx.close()
    out = subprocess.run([EDUEDGE, "diag", "--json", "--config", str(cfg_path)], capture_output=True,
                         text=True, timeout=60)
    text = subprocess.run([EDUEDGE, "diag", "--cached", "--config", str(cfg_path)], capture_output=True,
                          text=True, timeout=60).stdout
    return Run(json.loads(out.stdout), out.returncode, text, log.read_text()[-3000:])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    base = tmp_path_factory.mktemp("standards-e2e")
    states: dict[str, SimState] = {}
    try:
        # one after the other: two campuses starting at once can race for a loopback slot
        for name in ("healthy", "faulty"):
            states[name] = campus_up(campus_doc(name == "faulty"), base / name)
        with ThreadPoolExecutor(2) as pool:
            futures = {name: pool.submit(exercise, name, state, base / name) for name, state in states.items()}
            results = {name: f.result() for name, f in futures.items()}
    finally:
        for state in states.values():
            report = sim_down(state.dir)
            assert report.left == [], report
            assert not [pid for pid in state.pids.values() if psutil.pid_exists(pid)], state.pids
    yield results


def statuses(run: Run) -> dict[str, str]:
    return {f["rule"]: f["status"] for f in run.diag["findings"]}


def problem(run: Run, rule: str) -> str:
    lines = [p for p in run.diag["problems"] if p["rule"] == rule]
    assert lines, (rule, run.diag["problems"])
    return json.dumps(lines, ensure_ascii=False)


def test_the_healthy_campus_fails_no_rule(runs: dict[str, Run]) -> None:
    healthy = runs["healthy"]
    got = statuses(healthy)
    assert [r for r, s in got.items() if s == "fail"] == [], (got, healthy.text)
    assert healthy.code == 0, healthy.text
    for rule in FAULTY_RULES:                 # the inputs of the four rules exist on the healthy campus too
        assert got[rule] == "pass", (rule, got[rule], healthy.text)
    assert all(d["ok"] for d in healthy.diag["devices"]), healthy.diag["devices"]


def test_the_faulty_campus_fails_exactly_its_four_faults_and_diag_names_each_cause(runs: dict[str, Run]) -> None:
    healthy, faulty = statuses(runs["healthy"]), statuses(runs["faulty"])
    text = runs["faulty"].text
    assert {r for r, s in faulty.items() if s == "fail"} == FAULTY_RULES, (faulty, text)
    assert {r: s for r, s in faulty.items() if r not in FAULTY_RULES} == \
           {r: s for r, s in healthy.items() if r not in FAULTY_RULES}, text
    assert runs["faulty"].code == 1

    backbone = problem(runs["faulty"], "yinchuan-2018.backbone")
    assert "sw-lib" in backbone and "100" in backbone, backbone
    coverage = problem(runs["faulty"], "yinchuan-2018.wifi-areas")
    assert "teaching-b" in coverage and "teaching-a" not in coverage, coverage
    egress = problem(runs["faulty"], "hebei-2019.egress")
    ratio = problem(runs["faulty"], "yinchuan-2018.device-ratio")
    assert "100010" in ratio or "100,010" in ratio, ratio
    print(backbone, coverage, egress, ratio, sep="\n")
