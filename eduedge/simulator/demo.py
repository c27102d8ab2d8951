"""`eduedge demo` (what `make demo` runs): the main job, end to end, on a simulated campus, without root.

1. `eduedge sim up` the demo campus (real SNMP agents serving edited recordings of real switches, a
   wireless controller, printers, projectors) with its own MQTT broker, all on loopback.
2. `eduedge run` the agent against it, with the polling interval shortened so that a few cycles fit in a
   minute or two, and the standards judged every 30 s instead of every 5 minutes.
3. Listen on the broker as the city cloud would: every message is checked against the telemetry contract
   and shown as it arrives (birth, metrics batches, inventory, findings, events, and the agent's offline
   message when it stops).
4. Once the first findings are in, ask the agent - as the city may - for a broadband test now
   (`run-check broadband`, against the campus's test server behind its simulated 300/50 Mbit/s WAN); the
   next assessment judges the school's connection by it.
5. Stop the agent cleanly, print what the city now knows about the school, and `sim down` everything.
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
from eduedge.core.netaddr import split_host_port
from eduedge.simulator.launch import sim_down, sim_up

DEMO_CAMPUS = Path(__file__).resolve().parent / "campuses" / "campus-demo.yaml"
# The demo shows a school at work whenever it is run: its simulated day starts in the third lesson of a
# Tuesday (classrooms full, tablets on the learning SSID) and then runs in real time.
LESSON_TIME = "2025-03-11T10:05:00"


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
    birth: dict[str, Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _describe(kind: str, msg: dict[str, Any]) -> str:
    if kind == "metrics":
        devs = {s.get("device") for s in msg.get("samples", [])}
        return f"{len(msg.get('samples', []))} samples from {len(devs)} devices"
    if kind == "findings":
        return ", ".join(f"{f.get('rule')}={f.get('status')}" for f in msg.get("findings", [])[:6]) + (
            " ..." if len(msg.get("findings", [])) > 6 else "")
    if kind == "birth":
        return f"agent {msg.get('agent', {}).get('id')} bdSeq {msg.get('bdSeq')}, {len(msg.get('devices', []))} devices"
    if kind == "death":
        return f"bdSeq {msg.get('bdSeq')} ({msg.get('reason')})"
    if kind == "inventory":
        return f"{len(msg.get('devices', []))} devices"
    if kind == "events":
        return "; ".join(str(e.get("message", e.get("kind")))[:80] for e in msg.get("events", [])[:3])
    if kind == "cmd-result":
        result = msg.get("result") or {}
        return (f"{msg.get('command')} {result.get('check', '')}: {msg.get('status')}"
                + (f", {result['samples']} samples" if "samples" in result else "")
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
        # metrics batches arrive by the hundred: the main loop sums them up; everything else is shown
        if kind != "metrics" or problems:
            flag = "" if not problems else f"  CONTRACT VIOLATION: {problems[0]}"
            say(f"  {time.strftime('%H:%M:%S')}  {m.topic:<52} {_describe(kind, msg)}{flag}")

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(host, port, keepalive=30)
    client.loop_start()
    return client


def ask(client: Any, agent_config: Path, command: str, args: dict[str, Any]) -> None:
    """Send the agent a command as the city does (agent/commands.py), on the listener's connection."""
    school = yaml.safe_load(agent_config.read_text(encoding="utf-8"))["school"]
    body = {"schema": {"name": "cmd", "version": 1}, "request_id": f"demo-{uuid.uuid4().hex[:8]}", "args": args}
    client.publish(f"{contract.TOPIC_ROOT}/{school['city']}/{school['id']}/cmd/{command}",
                   json.dumps(body).encode(), qos=1)


def demo_config(agent_config: Path, out: Path, interval: str, speedtest: str = "") -> Path:
    """The simulator's agent configuration with the cadence shortened for a demo, and broadband tests against
    the campus's test server (`speedtest`, host:port) when it runs one - on request only, and short."""
    cfg = yaml.safe_load(agent_config.read_text(encoding="utf-8"))
    cfg.setdefault("snmp", {}).setdefault("defaults", {})["interval"] = interval
    cfg.setdefault("standards", {}).setdefault("packs", ["yinchuan-2018", "hebei-2019", "moe-2019"])
    cfg["standards"].setdefault("assess_interval", "30s")
    if speedtest:
        cfg.setdefault("broadband", {"enabled": True, "server": speedtest, "duration": "5s", "warmup_max": "2s",
                                     "streams": 4, "idle_probes": 20, "windows": []})
    out.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return out


def run_demo(campus: Path = DEMO_CAMPUS, seconds: float = 75.0, interval: str = "15s",
             say: Callable[[str], None] = print, keep: bool = False) -> int:
    """Run the demo; return 0 when telemetry arrived and all of it met the contract."""
    work = Path(tempfile.mkdtemp(prefix="eduedge-demo-"))
    state_dir = work / "sim"
    say(f"starting the simulated campus {campus.name} (loopback, with its own MQTT broker), "
        f"in a lesson: its day starts at {LESSON_TIME} ...")
    state = sim_up(campus_in_a_lesson(campus, work / campus.name), state_dir, use_netns=False, broker=True)
    agent: subprocess.Popen[bytes] | None = None
    listener = None
    heard = Heard()
    try:
        n_snmp = sum(1 for e in state.endpoints if e.snmp_port)
        say(f"campus up: {n_snmp} SNMP agents, broker {state.broker}, state in {state_dir}")
        cfg = demo_config(Path(state.agent_config), work / "agent.yaml", interval, state.speedtest)
        listener = listen(state.broker, heard, say)
        eduedge = str(Path(sys.executable).with_name("eduedge"))
        log = (work / "agent.log").open("wb")
        say(f"starting the agent: eduedge run --config {cfg}  (log: {work / 'agent.log'})")
        say("what the city receives:")
        agent = subprocess.Popen([eduedge, "run", "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        deadline = time.monotonic() + seconds
        shown = 0
        asked = not state.speedtest
        while time.monotonic() < deadline and agent.poll() is None:
            time.sleep(5.0)
            if not asked and heard.findings:
                asked = True
                say(f"  {time.strftime('%H:%M:%S')}  the city asks for a broadband test now (run-check broadband)")
                ask(listener, Path(state.agent_config), "run-check", {"check": "broadband"})
            with heard.lock:
                if heard.counts["metrics"] != shown:
                    shown = heard.counts["metrics"]
                    say(f"  {time.strftime('%H:%M:%S')}  metrics so far: {shown} messages, {heard.samples} samples "
                        f"of {len(heard.metrics)} metrics from {len(heard.devices)} devices")
        if agent.poll() is not None:
            say(f"the agent stopped by itself (exit {agent.returncode}); last lines of its log:")
            for line in (work / "agent.log").read_text(errors="replace").splitlines()[-15:]:
                say(f"  | {line}")
        else:
            say("stopping the agent (SIGTERM: it says goodbye and keeps its outbox) ...")
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=20)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
            time.sleep(1.0)
        _summary(heard, cfg, say, keep)
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
            agent.wait()
        if listener is not None:
            listener.loop_stop()
            listener.disconnect()
        report = sim_down(state_dir)
        say(f"campus stopped ({len(report.stopped)} processes)" + (
            f"; NOT REMOVED: {report.left}" if report.left else ""))
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    ok = heard.counts["metrics"] > 0 and not heard.invalid
    return 0 if ok else 1


def _summary(heard: Heard, cfg: Path, say: Callable[[str], None], keep: bool) -> None:
    say("")
    say("what the city now knows:")
    say(f"  messages: {dict(heard.counts)}")
    say(f"  {heard.samples} samples of {len(heard.metrics)} metrics from {len(heard.devices)} devices")
    if heard.findings:
        say("  findings:")
        for key, f in sorted(heard.findings.items()):
            why = (f.get("evidence") or {}).get("why", "")
            say(f"    {f.get('status', '?'):<12} {key}  {str(why)[:90]}")
    if heard.invalid:
        say(f"  {len(heard.invalid)} messages broke the contract, e.g. {heard.invalid[0]}")
    else:
        say("  every message met the telemetry contract (agent/contract/*.schema.json)")
    if keep:
        say(f"  the technician's view on the box: eduedge diag --cached --config {cfg}")
