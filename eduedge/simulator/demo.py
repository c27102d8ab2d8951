"""`eduedge demo` (what `make demo` runs): the main job, end to end, on a simulated campus, without root, ending
with the school judged.

1. `eduedge sim up` the demo campus (real SNMP agents serving edited recordings of real switches, a
   wireless controller, printers, projectors) with its own MQTT broker, all on loopback. Its clock starts in
   the third lesson of a Tuesday, whenever the demo is run, and then runs in real time.
2. `eduedge run` the agent against it with the configuration `sim up` wrote (the packs for the school's type,
   broadband against the campus's WAN test server, live-class probes, discovery of the learning SSID's
   devices), its cadence shortened so that the evidence every rule needs gathers within the run: polls and
   Wi-Fi rounds every 15 s, the standards judged every 15 s, WAN echo probes every 2 s (the availability
   and loss rules need 30 in school hours), short capacity tests on request.
3. Listen on the broker as the city cloud would: every message is checked against the telemetry contract
   and shown as it arrives (birth, metrics batches, inventory, findings, events, and the agent's offline
   message when it stops).
4. Once the first findings are in, ask the agent - as the city may - for a broadband test now
   (`run-check broadband`, against the campus's test server behind its simulated 300/50 Mbit/s WAN), and
   inject a fault: the library's switch loses power, so its backbone link on the core goes down.
5. When every seed rule that applies to the school is judged (pass or fail, from what the agent measured in
   this run) and the fault has failed its rule, or at the deadline: stop the agent cleanly, print what the
   city now knows - each rule's status and why, and the fault's cause - and `sim down` everything.

All the demo says is in eduedge/simulator/demo_text.py, to be translated.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from eduedge.agent import contract
from eduedge.agent.compliance import load_packs
from eduedge.agent.config import school_type_word
from eduedge.core.i18n import language
from eduedge.core.netaddr import split_host_port
from eduedge.simulator.agentconfig import SEED_PACKS
from eduedge.simulator.demo_text import status as status_text
from eduedge.simulator.demo_text import text
from eduedge.simulator.launch import control, sim_down, sim_up

DEMO_CAMPUS = Path(__file__).resolve().parent / "campuses" / "campus-demo.yaml"
# The demo shows a school at work whenever it is run: its simulated day starts in the third lesson of a
# Tuesday (classrooms full, tablets on the learning SSID) and then runs in real time.
LESSON_TIME = "2025-03-11T10:05:00"
# The fault the demo injects once the first findings are in, and the rule it must fail, naming the device.
FAULT = {"kind": "down", "device": "sw-lib"}
FAULT_RULE = "yinchuan-2018.backbone"
JUDGED = ("pass", "fail", "port-limited")
PROGRESS_EVERY_S = 10.0
MAX_CAUSES = 3                # problem lines shown under a failing rule


def campus_in_a_lesson(campus: Path, out: Path, start: str = LESSON_TIME, speed: float = 1.0) -> Path:
    """A copy of the campus file whose simulated clock starts at `start` (local time)."""
    doc = yaml.safe_load(campus.read_text(encoding="utf-8"))
    doc["clock"] = {"start": start, "speed": speed}
    out.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return out


@dataclass
class Heard:
    """What a city-side listener has received, by message type."""

    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    invalid: list[str] = field(default_factory=list)
    samples: int = 0
    devices: set[str] = field(default_factory=set)
    metrics: set[str] = field(default_factory=set)
    findings: dict[str, dict[str, Any]] = field(default_factory=dict)
    answered: set[str] = field(default_factory=set)        # request ids of the city's commands answered
    birth: dict[str, Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _describe(kind: str, msg: dict[str, Any]) -> str:
    if kind == "metrics":
        devs = {s.get("device") for s in msg.get("samples", [])}
        return text("heard_metrics", samples=len(msg.get("samples", [])), devices=len(devs))
    if kind == "findings":
        return ", ".join(f"{f.get('rule')}={f.get('status')}" for f in msg.get("findings", [])[:6]) + (
            " ..." if len(msg.get("findings", [])) > 6 else "")
    if kind == "birth":
        return text("heard_birth", agent=msg.get("agent", {}).get("id"), bd_seq=msg.get("bdSeq"),
                    devices=len(msg.get("devices", [])))
    if kind == "death":
        return f"bdSeq {msg.get('bdSeq')} ({msg.get('reason')})"
    if kind == "inventory":
        return text("heard_inventory", devices=len(msg.get("devices", [])))
    if kind == "events":
        return "; ".join(str(e.get("message", e.get("kind")))[:80] for e in msg.get("events", [])[:3])
    if kind == "cmd-result":
        result = msg.get("result") or {}
        return (f"{msg.get('command')} {result.get('check', '')}: {msg.get('status')}"
                + (text("heard_samples", samples=result["samples"]) if "samples" in result else "")
                + (f" ({msg['reason']})" if msg.get("reason") else ""))
    return ""


def listen(broker: str, heard: Heard, say: Callable[[str], None]) -> Any:
    """Subscribe to every school's telemetry on `broker` and record (and show) what arrives."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    host, port = split_host_port(broker, 1883)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"eduedge-demo-city-{os.getpid()}")

    def on_connect(c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if not rc.is_failure:
            c.subscribe(f"{contract.TOPIC_ROOT}/#", qos=1)

    def on_message(_c: Any, _u: Any, m: Any) -> None:
        if "/cmd/" in m.topic:      # the city's own commands (see `ask`), not the agent's telemetry
            return
        kind = m.topic.rsplit("/", 1)[-1]
        try:
            msg = contract.decode(m.payload)
            problems = contract.problems(msg)
        except (ValueError, contract.ContractError) as e:
            msg, problems = {}, [str(e)]
        with heard.lock:
            heard.counts[kind] += 1
            if problems:
                heard.invalid.append(f"{m.topic}: {problems[0]}")
            if kind == "metrics":
                for s in msg.get("samples", []):
                    heard.samples += 1
                    heard.devices.add(s.get("device", ""))
                    heard.metrics.add(s.get("metric", ""))
            elif kind == "findings":
                for f in msg.get("findings", []):
                    heard.findings[f"{f.get('rule')} {f.get('subject', '')}".strip()] = f
            elif kind == "birth":
                heard.birth = msg
            elif kind == "cmd-result":
                heard.answered.add(str(msg.get("request_id")))
        # metrics batches arrive by the hundred: the main loop sums them up; everything else is shown
        if kind != "metrics" or problems:
            flag = "" if not problems else f"  CONTRACT VIOLATION: {problems[0]}"
            say(f"  {time.strftime('%H:%M:%S')}  {m.topic:<52} {_describe(kind, msg)}{flag}")

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(host, port, keepalive=30)
    client.loop_start()
    return client


def ask(client: Any, agent_config: Path, command: str, args: dict[str, Any]) -> str:
    """Send the agent a command as the city does (agent/commands.py), on the listener's connection; return
    its request id."""
    school = yaml.safe_load(agent_config.read_text(encoding="utf-8"))["school"]
    request_id = f"demo-{uuid.uuid4().hex[:8]}"
    body = {"schema": {"name": "cmd", "version": 1}, "request_id": request_id, "args": args}
    client.publish(f"{contract.TOPIC_ROOT}/{school['city']}/{school['id']}/cmd/{command}",
                   json.dumps(body).encode(), qos=1)
    return request_id


def demo_config(agent_config: Path, out: Path, interval: str) -> Path:
    """The configuration `sim up` wrote, with the cadence shortened so that every rule's evidence gathers
    within the demo: polls, Wi-Fi rounds, discovery and reachability every `interval`, judging every 15 s,
    WAN echo probes every 2 s, live-class probe rounds every 10 s, and short capacity tests on request only."""
    cfg = yaml.safe_load(agent_config.read_text(encoding="utf-8"))
    cfg.setdefault("snmp", {}).setdefault("defaults", {})["interval"] = interval
    cfg.setdefault("standards", {})["assess_interval"] = "15s"
    if "discovery" in cfg:
        cfg["discovery"].update({"interval": interval, "sweep_timeout": "0.5s"})
    cfg["reachability"] = {**cfg.get("reachability", {}), "interval": interval, "count": 2, "timeout": "0.5s"}
    if "live_class" in cfg:
        cfg["live_class"]["interval"] = "10s"
    if "broadband" in cfg:
        cfg["broadband"].update({"duration": "4s", "warmup_max": "2s", "streams": 4, "idle_probes": 20, "windows": [],
                                 "monitor_interval": "2s", "monitor_probes": 3, "utilisation_interval": "1s"})
    cfg["commands"] = {"rate_per_minute": 60, "burst": 5}
    out.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return out


def seed_rules(agent_config: Path) -> list[str]:
    """The seed documents' rules the agent judges for this school (docs/STANDARDS.md's first table)."""
    school = yaml.safe_load(agent_config.read_text(encoding="utf-8"))["school"]
    return [r.id for r in load_packs(SEED_PACKS).for_school(school["type"])]


def latest(heard: Heard, rule: str) -> dict[str, Any] | None:
    with heard.lock:
        return next((f for f in heard.findings.values() if f.get("rule") == rule), None)


def decided(finding: dict[str, Any] | None) -> bool:
    """Judged, and - for a rule over zones - every zone judged: a fail that some zones could still turn is
    a verdict, but the demo waits for each zone's own."""
    if finding is None or finding.get("status") not in JUDGED:
        return False
    zones = (finding.get("evidence") or {}).get("zones", [])       # wifi-coverage's rows (wifi-access: names)
    return all(z.get("status") in JUDGED for z in zones if isinstance(z, dict))


def fault_cause(heard: Heard) -> str | None:
    """The problem line of the fault's rule that names the faulty device, once the rule fails."""
    f = latest(heard, FAULT_RULE)
    if f is None or f.get("status") != "fail":
        return None
    for p in (f.get("evidence") or {}).get("problems", []):
        if p.get("status") == "fail" and FAULT["device"] in p.get("what", ""):
            return f"{p['what']} — {p.get('hint', '')}".rstrip(" —")
    return None


def run_demo(campus: Path = DEMO_CAMPUS, seconds: float = 150.0, interval: str = "15s",
             say: Callable[[str], None] = print, keep: bool = False, work: Path | None = None) -> int:
    """Run the demo; return 0 when telemetry arrived, all of it met the contract, every seed rule that applies
    was judged and the injected fault failed its rule. `seconds` bounds the agent's run; `work` is the
    directory for the campus's state and the agent's (a new temporary one by default)."""
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="eduedge-demo-")) if work is None else work
    state_dir = work / "sim"
    say(text("starting", campus=campus.name, start=LESSON_TIME))
    state = sim_up(campus_in_a_lesson(campus, work / campus.name), state_dir, use_netns=False, broker=True)
    agent: subprocess.Popen[bytes] | None = None
    listener = None
    heard = Heard()
    rules = seed_rules(Path(state.agent_config))
    fault_what = text("fault_what", device=FAULT["device"])
    done = False
    try:
        n_snmp = sum(1 for e in state.endpoints if e.snmp_port)
        say(text("campus_up", snmp=n_snmp, broker=state.broker, state_dir=state_dir))
        cfg = demo_config(Path(state.agent_config), work / "agent.yaml", interval)
        listener = listen(state.broker, heard, say)
        eduedge = str(Path(sys.executable).with_name("eduedge"))
        log = (work / "agent.log").open("wb")
        say(text("agent_start", config=cfg, log=work / "agent.log"))
        say(text("city_receives"))
        # the agent speaks the demo's language: the findings' reasons and hints in the summary are its words
        agent = subprocess.Popen([eduedge, "--lang", language(), "run", "--config", str(cfg)], stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + seconds
        shown, next_progress = 0, 0.0
        asked: str | None = None
        faulted = False
        while time.monotonic() < deadline and agent.poll() is None:
            time.sleep(2.0)
            stamp = time.strftime("%H:%M:%S")
            if asked is None and state.speedtest and heard.findings:
                say(f"  {stamp}  {text('ask_broadband')}")
                asked = ask(listener, Path(state.agent_config), "run-check", {"check": "broadband"})
            if not faulted and latest(heard, FAULT_RULE) is not None:
                faulted = True
                control(state_dir, {"cmd": "fault", "fault": FAULT})
                say(f"  {stamp}  {text('fault', what=fault_what, kind=FAULT['kind'], device=FAULT['device'])}")
            with heard.lock:
                if heard.counts["metrics"] != shown and time.monotonic() >= next_progress:
                    shown, next_progress = heard.counts["metrics"], time.monotonic() + PROGRESS_EVERY_S
                    say(f"  {stamp}  " + text("metrics_so_far", messages=shown, samples=heard.samples,
                                              metrics=len(heard.metrics), devices=len(heard.devices)))
            judged = all(decided(latest(heard, r)) for r in rules)
            tested = asked is None or asked in heard.answered
            if faulted and judged and tested and fault_cause(heard) is not None:
                done = True
                say(f"  {stamp}  {text('all_judged')}")
                break
        if agent.poll() is not None:
            say(text("agent_died", code=agent.returncode))
            for line in (work / "agent.log").read_text(errors="replace").splitlines()[-15:]:
                say(f"  | {line}")
        else:
            say(text("stopping"))
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=20)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
            time.sleep(1.0)
        _summary(heard, cfg, rules, fault_what, time.monotonic() - started, say, keep)
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
            agent.wait()
        if listener is not None:
            listener.loop_stop()
            listener.disconnect()
        report = sim_down(state_dir)
        say(text("campus_stopped", n=len(report.stopped)) + (text("not_removed", left=report.left)
                                                              if report.left else ""))
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    ok = heard.counts["metrics"] > 0 and not heard.invalid and done
    return 0 if ok else 1


def _status(status: str | None, width: int = 12) -> str:
    return status_text(f"status_{status or 'missing'}", width)


def _summary(heard: Heard, cfg: Path, rules: list[str], fault_what: str, seconds: float,
             say: Callable[[str], None], keep: bool) -> None:
    school = yaml.safe_load(cfg.read_text(encoding="utf-8"))["school"]
    say("")
    say(text("summary_title", school=school["name"], type=school_type_word(school["type"])))
    say("  " + text("summary_messages", counts=dict(heard.counts)))
    say("  " + text("summary_samples", samples=heard.samples, metrics=len(heard.metrics), devices=len(heard.devices)))
    say("  " + text("summary_seed"))
    statuses = []
    for rule in rules:
        f = latest(heard, rule) or {}
        statuses.append(f.get("status"))
        evidence = f.get("evidence") or {}
        say("    " + text("summary_rule", status=_status(f.get("status")), rule=rule, why=evidence.get("why", "")))
        for part in evidence.get("parts", []):
            say("    " + text("summary_part", status=_status(part.get("status"), 10),
                             part=part["rule"].rsplit(".", 1)[-1], why=(part.get("evidence") or {}).get("why", "")))
        if f.get("status") == "fail":       # what failed it, as diag would rank it for the technician
            causes = [p for p in evidence.get("problems", []) if p.get("status") == "fail"]
            for p in causes[:MAX_CAUSES]:
                say("    " + text("summary_cause", what=p.get("what", ""), hint=p.get("hint", "")))
            if len(causes) > MAX_CAUSES:
                say("    " + text("summary_more", n=len(causes) - MAX_CAUSES))
    with heard.lock:
        others = sorted((k, f) for k, f in heard.findings.items() if f.get("rule") not in rules)
    if others:
        say("  " + text("summary_other"))
        for key, f in others:
            why = (f.get("evidence") or {}).get("why", "")
            say("    " + text("summary_rule", status=_status(f.get("status")), rule=key, why=why))
    judged = [s for s in statuses if s in JUDGED]
    say("  " + text("summary_counts", judged=len(judged), total=len(rules), passed=statuses.count("pass"),
                    failed=statuses.count("fail"), unknown=len(rules) - len(judged), seconds=seconds))
    cause = fault_cause(heard)
    say("  " + (text("summary_fault", what=fault_what, rule=FAULT_RULE, cause=cause) if cause else
                text("summary_fault_missed", what=fault_what, rule=FAULT_RULE)))
    if heard.invalid:
        say("  " + text("summary_invalid", n=len(heard.invalid), example=heard.invalid[0]))
    else:
        say("  " + text("summary_contract"))
    if keep:
        say("  " + text("summary_keep", config=cfg))
