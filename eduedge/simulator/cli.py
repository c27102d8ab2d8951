"""`eduedge sim ...`: a simulated campus (and a fleet of schools) for demos, tests and benchmarks."""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path
from typing import Any

import typer

from eduedge.simulator.campus import CampusError
from eduedge.simulator.launch import SimError, control, sim_down, sim_up
from eduedge.simulator.state import SimState, default_state_dir

STATE_DIR = typer.Option(None, "--state-dir", help="where the running campus keeps its state "
                                                    f"(default {default_state_dir()})")


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(2)


def describe(state: SimState) -> list[str]:
    """What an operator needs to point an agent at the campus, one line each."""
    snmp = [e for e in state.endpoints if e.snmp_port]
    pj = [e for e in state.endpoints if e.pjlink_port]
    lines = [f"campus {state.campus} is up ({state.mode} mode, state in {state.state_dir})",
             f"  {len(snmp)} SNMP agents, community in {Path(state.state_dir) / 'snmp-community'}:"]
    lines += [f"    {e.name:<14} {e.kind:<10} {e.host}:{e.snmp_port}" for e in snmp]
    if pj:
        lines.append(f"  {len(pj)} PJLink devices (TCP):")
        lines += [f"    {e.name:<14} {e.kind:<10} {e.host}:{e.pjlink_port}" for e in pj]
    lines.append(f"  WAN-side test server (through the simulated WAN link): {state.speedtest}")
    if state.broker:
        lines.append(f"  MQTT broker: {state.broker}")
    if state.namespaces:
        lines.append(f"  namespaces: {state.namespaces[0]} (gateway: run the agent here, or on the host), "
                     f"{state.namespaces[1]} (ISP side), {len(state.namespaces) - 2} device namespaces")
    lines.append(f"  agent configuration: {state.agent_config}")
    lines.append(f"  point an agent at it:  eduedge run --config {state.agent_config}")
    return lines


def register(app: typer.Typer) -> None:
    sim = typer.Typer(help="A simulated school campus (real SNMP/PJLink/WAN peers) and a fleet of schools.",
                      no_args_is_help=True)
    app.add_typer(sim, name="sim")
    register_fleet(sim)

    @sim.command("up")
    def up(campus: Path = typer.Option(..., "--campus",
                                           help="the campus file, e.g. eduedge/simulator/campuses/campus-demo.yaml"),
           use_netns: bool = typer.Option(False, "--netns", help="each device in its own network namespace "
                                                                  "on 198.18.0.0/15 (root)"),
           broker: bool = typer.Option(False, "--broker", help="also run an MQTT broker for the agent "
                                                                "(and for broker-outage faults)"),
           state_dir: Path | None = STATE_DIR) -> None:
        """Start the campus, write the agent's configuration, and print how to point an agent at it."""
        try:
            state = sim_up(campus, state_dir, use_netns, broker)
        except CampusError as e:
            for line in e.problems:
                typer.echo(line, err=True)
            raise typer.Exit(2) from None
        except SimError as e:
            raise _fail(str(e)) from None
        for line in describe(state):
            typer.echo(line)

    @sim.command("down")
    def down(state_dir: Path | None = STATE_DIR) -> None:
        """Stop everything the campus started (by PID) and delete its namespaces (by name)."""
        report = sim_down(state_dir)
        for what in report.stopped:
            typer.echo(f"stopped {what}")
        for ns in report.deleted:
            typer.echo(f"deleted namespace {ns}")
        for what in report.left:
            typer.echo(f"NOT REMOVED: {what}", err=True)
        if report.left:
            raise typer.Exit(1)
        if not report.stopped and not report.deleted:
            typer.echo("nothing was running")

    @sim.command("status")
    def status(state_dir: Path | None = STATE_DIR) -> None:
        """What runs, where, what time of the school day it is, and which faults are on."""
        state = SimState.load((state_dir or default_state_dir()).resolve())
        if state is None:
            raise _fail("no simulated campus is running")
        for line in describe(state):
            typer.echo(line)
        try:
            st = control(state_dir, {"cmd": "status"})
            faults = control(state_dir, {"cmd": "faults"})["faults"]
        except SimError as e:
            raise _fail(str(e)) from None
        typer.echo(f"  simulated time {st['sim_time']} ({st['period']}); SNMP requests {st['requests']}, "
                   f"answered {st['answered']}, dropped {st['dropped']}")
        for f in faults:
            typer.echo(f"  fault {'ACTIVE ' if f['active'] else ''}{json.dumps(f)}")

    @sim.command("fault")
    def fault(kind: str = typer.Argument(..., help="down, slow, loss, reboot, link_flap, clients_lost, "
                                                   "broker_outage, wan_degraded"),
              device: str | None = typer.Argument(None, help="the device (not for broker_outage/wan_degraded)"),
              duration: str | None = typer.Option(None, "--for", help="how long (e.g. 2m); default: until cleared"),
              at: str = typer.Option("0s", "--in", help="start after this long"),
              delay: str | None = typer.Option(None, "--delay", help="slow: answer this late (e.g. 1.5s)"),
              percent: float | None = typer.Option(None, "--percent", help="loss: share of requests dropped"),
              port: int | None = typer.Option(None, "--port", help="link_flap: the port number"),
              period: str = typer.Option("10s", "--period", help="link_flap: down/up this long each"),
              down_for: str = typer.Option("20s", "--down-for", help="reboot: silent this long"),
              down_mbps: float | None = typer.Option(None, "--down-mbps"),
              up_mbps: float | None = typer.Option(None, "--up-mbps"),
              state_dir: Path | None = STATE_DIR) -> None:
        """Inject a fault into the running campus, now (or `--in` a while)."""
        spec = {"kind": kind, "device": device, "for": duration, "at": at, "delay": delay, "percent": percent,
                "port": port, "period": period, "down_for": down_for, "down_mbps": down_mbps, "up_mbps": up_mbps}
        try:
            reply = control(state_dir, {"cmd": "fault", "fault": {k: v for k, v in spec.items() if v is not None}})
        except SimError as e:
            raise _fail(str(e)) from None
        if not reply.get("ok"):
            raise _fail(f"refused: {reply.get('error')}")
        typer.echo(f"fault injected: {json.dumps(reply['fault'])}")

    @sim.command("clear")
    def clear(device: str | None = typer.Argument(None), kind: str | None = typer.Option(None, "--kind"),
              state_dir: Path | None = STATE_DIR) -> None:
        """End active faults now (all, or of one device, or of one kind)."""
        try:
            reply = control(state_dir, {"cmd": "clear", "device": device, "kind": kind})
        except SimError as e:
            raise _fail(str(e)) from None
        typer.echo(f"cleared {reply['cleared']} active fault(s)")


def _running(st: Any, elapsed: float, duration: float) -> str:
    """The fleet's run in a line: time left, schools connected, what was sent and acknowledged."""
    left = max(0.0, duration - elapsed)
    return (f"{left // 60:.0f}:{left % 60:02.0f} left · {st.connected}/{st.schools} connected · "
            f"{st.messages} sent, {st.acked} acked")


def register_fleet(sim: typer.Typer) -> None:
    @sim.command("fleet")
    def fleet(schools: int = typer.Option(10, "--schools", min=1, help="how many simulated schools"),
              broker: str | None = typer.Option(None, "--broker", help="HOST:PORT of the city's broker; default: "
                                                                        "start one on loopback for the run"),
              interval: str = typer.Option("60s", "--interval", help="each school reports this often"),
              duration: str = typer.Option("5m", "--duration", help="run this long, then shut down cleanly"),
              city: str = typer.Option("demo-city", "--city"),
              seed: int = typer.Option(1, "--seed", help="the same seed gives the same fleet"),
              history_days: int = typer.Option(30, "--history-days", min=0, max=60,
                                               help="days of hourly history (and findings) each school sends first"),
              faults: bool = typer.Option(True, "--faults/--no-faults",
                                          help="some schools flap, go offline for good, lose or drop messages"),
              ) -> None:
        """Stream N simulated schools' telemetry to one broker (each school its own type, size, WAN, faults)."""
        from eduedge.agent.cli._progress import activity
        from eduedge.core.model import parse_duration
        from eduedge.simulator.broker import start_broker
        from eduedge.simulator.fleet import Fleet

        own = None if broker else start_broker()
        address = broker or own.address  # type: ignore[union-attr]
        run_for = parse_duration(duration)
        try:
            with activity() as act:
                # on a terminal a live line (schools prepared of N, then the run as it goes); elsewhere, as
                # before, a line on stderr every 25 schools and every 10 s, for a log
                act.stage(f"preparing the schools ({history_days} d of history each)",
                          total=schools)
                f = Fleet(address, schools, parse_duration(interval), city, seed, history_days,
                          progress=None if act.shown else lambda line: typer.echo(line, err=True), faults=faults,
                          prepared=lambda i, n: act.advance())
                kinds = collections.Counter(s.campus.school.type for s in f.schools)
                typer.echo(f"{schools} schools -> {address}: " + ", ".join(f"{v} {k}" for k, v in kinds.items()))
                started = time.monotonic()
                act.stage(f"streaming for {duration}", watch=lambda: _running(f.stats, time.monotonic() - started,
                                                                              run_for))
                stats = f.run(run_for)
        finally:
            if own is not None:
                own.close()
        typer.echo(f"births {stats.births}, metrics messages {stats.messages} ({stats.samples} samples, "
                   f"{stats.bytes / 1e6:.1f} MB), history {stats.history_samples} samples, {stats.findings} findings, "
                   f"acknowledged {stats.acked}, simulated connection losses {stats.drops} ({stats.cut} for good), "
                   f"reconnects {stats.reconnects}, seqs lost {stats.lost}, declared dropped {stats.declared}")
