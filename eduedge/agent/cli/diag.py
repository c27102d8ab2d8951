"""`eduedge diag`: the technician's view of which standards the school meets.

`eduedge diag` polls every configured device once, reads the gateway's own ports, judges every rule of
the school's packs and prints: the school, each rule with its status and one line of why, then the
problems ranked by impact with what to look at. It needs no WAN, no broker and no cloud: only the
devices on the campus. `--cached` prints the latest results the agent (or an earlier diag) stored in
data_dir instead, without touching the network. `--json` prints the same as one object; `--html FILE`
also writes a self-contained report with charts (agent/compliance/html.py).

Exit status: 0 no rule fails (some may be unknown or port-limited), 1 at least one rule fails,
2 the configuration or a rule pack is broken, 3 `--cached` found no results, 4 nothing could be checked (no
rule fails, and no configured device answered or no rule could be judged). A device that did not answer is
a problem of its own, beside the rules it leaves unknown.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import typer
from rich.console import RenderableType
from rich.padding import Padding
from rich.text import Text

from eduedge.agent.cli._options import config_option, config_or_exit
from eduedge.agent.cli._progress import Activity, activity
from eduedge.agent.compliance import PackError, RuleSet, assess, load_rules
from eduedge.agent.compliance.findings import Finding, Problem, problem_order, rank_problems, status_label
from eduedge.agent.compliance.html import ChartData, chart_data, render_html
from eduedge.agent.config import AgentConfig, role_word, school_type_word
from eduedge.agent.jobs import HOST_DEVICE
from eduedge.agent.samplestore import SampleStore
from eduedge.collectors.host import HostCollector
from eduedge.collectors.snmp.build import poller_for
from eduedge.collectors.snmp.poller import DevicePoll, DevicePoller, poll_many
from eduedge.collectors.snmp.profiles import load_profiles
from eduedge.core.i18n import N_, _, language
from eduedge.core.secrets import SecretError
from eduedge.core.tables import add, key, num, table, terminal

EXIT_OK, EXIT_FAIL, EXIT_CONFIG, EXIT_NO_CACHE, EXIT_NOTHING = 0, 1, 2, 3, 4
NO_ANSWER = "snmp.poll"             # the `rule` of a device's problem: its poll, not a standard
_SWITCH_ROLES = ("core", "distribution", "access", "wlc")    # a building's network hangs off these
_COLOUR = {"pass": "green", "fail": "red", "unknown": "yellow", "port-limited": "magenta"}


@dataclass
class DeviceState:
    device: str
    role: str
    ok: bool
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class DiagResult:
    cfg: AgentConfig
    rules: RuleSet
    findings: list[Finding]
    time: float
    source: str                       # "live" or "cached (<who> at <time>)"
    devices: list[DeviceState] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    charts: ChartData | None = None
    stored_by: str | None = None      # cached: who judged and stored the results ("diag", "daemon")

    @property
    def problems(self) -> list[Problem]:
        ranked = rank_problems(self.findings)
        ranked += [Problem(NO_ANSWER, "unknown", _("{device} ({role}) did not answer").format(
                               device=d.device, role=role_word(d.role)),
                           d.errors[0] if d.errors else _("check that it is up, and its address and SNMP credentials"),
                           "building" if d.role in _SWITCH_ROLES else "room", 1.0, d.device)
                   for d in self.devices if not d.ok]
        return sorted(ranked, key=problem_order)

    @property
    def checked_nothing(self) -> bool:
        """No configured device answered, or no rule could be judged: nothing here says the school is fine."""
        none_answered = bool(self.devices) and not any(d.ok for d in self.devices)
        return none_answered or all(f.status == "unknown" for f in self.findings)

    @property
    def exit_code(self) -> int:
        if any(f.status == "fail" for f in self.findings):
            return EXIT_FAIL
        return EXIT_NOTHING if self.checked_nothing else EXIT_OK

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "fail": 0, "unknown": 0, "port-limited": 0}
        for f in self.findings:
            out[f.status] += 1
        return out


# -- running the checks ------------------------------------------------------------------------------

def _pollers(cfg: AgentConfig) -> tuple[list[DevicePoller], list[DeviceState]]:
    """A poller per configured device; devices that cannot even be asked (a secret that cannot be read,
    an address that is no address) come back as failed states instead."""
    profiles = load_profiles(cfg.snmp.profile_dirs)
    pollers, failed = [], []
    for d in cfg.snmp.devices:
        try:
            # no pseudonymizer: diag keeps its polls in the store, where no per-client line belongs
            pollers.append(poller_for(d, cfg.snmp, profiles))
        except (SecretError, ValueError, OSError) as e:
            failed.append(DeviceState(d.name, d.role, False, [f"{d.name}: {e}"]))
    return pollers, failed


def poll_campus(cfg: AgentConfig, store: SampleStore, act: Activity | None = None) -> list[DeviceState]:
    """Poll every configured device once (and read the gateway's own ports) into the store; `act` shows how
    many have answered so far."""
    act = act or Activity()
    pollers, states = _pollers(cfg)
    now = time.time()
    for s in states:
        store.add_poll(s.device, now, False, errors=s.errors)
    roles = {d.name: d.role for d in cfg.snmp.devices}
    if pollers:
        act.stage(_("polling the devices"), total=len(pollers))
        silent = []

        def done(poll: DevicePoll) -> None:
            if poll.identity is None:
                silent.append(poll.device)
            act.advance(note=_("{n} did not answer").format(n=len(silent)) if silent else None)

        for poll in asyncio.run(poll_many(pollers, cfg.snmp.defaults.concurrency, on_done=done)):
            ok = poll.identity is not None
            store.add_poll(poll.device, poll.time, ok, poll.samples,
                           poll.identity.hostname if poll.identity else None, poll.errors)
            states.append(DeviceState(poll.device, roles.get(poll.device, ""), ok, poll.errors, poll.duration_s))
    if cfg.host.enabled:
        act.stage(_("reading the gateway's own ports"))
        data_dir = cfg.agent.data_dir if cfg.agent.data_dir.is_dir() else Path("/")
        store.add(HostCollector(HOST_DEVICE, data_dir, cfg.host.wan_interface).collect())
    order = {d.name: i for i, d in enumerate(cfg.snmp.devices)}
    return sorted(states, key=lambda s: order.get(s.device, len(order)))


def run_live(cfg: AgentConfig, rules: RuleSet, act: Activity | None = None) -> DiagResult:
    """Poll now, judge now; keep the results in data_dir when it can be written. `act` shows the stages."""
    act = act or Activity()
    notes = []
    try:
        store = SampleStore.in_data_dir(cfg.agent.data_dir)
    except (OSError, sqlite3.Error) as e:
        notes.append(_("results not kept: cannot write {dir} ({error})").format(dir=cfg.agent.data_dir, error=e))
        store = SampleStore(":memory:")
    try:
        devices = poll_campus(cfg, store, act)
        act.stage(_("judging the rules"))
        now = time.time()
        findings = assess(store, cfg, now, rules, source="diag").findings
        charts = chart_data(store, now, findings)
    finally:
        store.close()
    return DiagResult(cfg, rules, findings, now, "live", devices, notes, charts)


def read_cached(cfg: AgentConfig, rules: RuleSet) -> DiagResult | None:
    """The latest results stored in data_dir, or None when there are none."""
    path = cfg.agent.data_dir / "compliance.sqlite"
    if not path.is_file():
        return None
    try:
        store = SampleStore(path, readonly=True)
        try:
            meta = store.last_evaluation()
            findings = store.findings()
            polls = store.polls()
            charts = chart_data(store, meta["time"], findings) if meta else None
        finally:
            store.close()
    except sqlite3.Error:
        return None
    if meta is None:
        return None
    roles = {d.name: d.role for d in cfg.snmp.devices}
    devices = [DeviceState(p.device, roles.get(p.device, ""), p.ok, p.errors) for p in polls.values()
               if p.device in roles]
    when = _clock(cfg, meta["time"])
    source = _("cached ({who} at {when})").format(who=meta["source"], when=when)
    return DiagResult(cfg, rules, findings, meta["time"], source, devices, [], charts, stored_by=meta["source"])


# -- showing the results -----------------------------------------------------------------------------

def _clock(cfg: AgentConfig, t: float) -> str:
    return datetime.fromtimestamp(t, ZoneInfo(cfg.standards.school_hours.timezone)).strftime("%Y-%m-%d %H:%M:%S %Z")


def _status(status: str) -> Text:
    return Text(status_label(status), style=f"bold {_COLOUR[status]}")


def render(r: DiagResult) -> list[RenderableType]:
    """What `eduedge diag` prints: the school, a table of rules per pack, and the problems, most important first."""
    cfg, s = r.cfg, r.cfg.school
    where = s.city + ("/" + s.district if s.district else "")
    shown: list[RenderableType] = [
        _("eduedge diag — {school}").format(school=s.name),
        _("school {id} · {type} · {where} · checked {when} (live)").format(
            id=s.id, type=school_type_word(s.type), where=where, when=_clock(cfg, r.time))
        if r.stored_by is None else
        # the time once, and who judged it: not "(cached (diag at ...))"
        _("school {id} · {type} · {where} · stored results: {who} judged at {when}").format(
            id=s.id, type=school_type_word(s.type), where=where, when=_clock(cfg, r.time),
            who=_("an earlier `eduedge diag`") if r.stored_by == "diag" else
            _("the agent") if r.stored_by == "daemon" else r.stored_by)]
    if r.devices:
        answered = sum(1 for d in r.devices if d.ok)
        shown.append(_("devices: {answered} of {total} answered").format(answered=answered, total=len(r.devices)))
    shown += [_("note: {note}").format(note=n) for n in r.notes]
    if not r.rules.packs:
        shown.append(_("note: no standards apply: name the school's rule packs in standards.packs "
                       "(`eduedge rules` lists them)"))
    by_rule = {f.rule: f for f in r.findings}
    proposal = " " + _("(proposal)")
    for pack in r.rules.packs:
        shown += ["", f"{pack.pack}  {pack.title.zh}"]
        if language() != "zh":      # the Chinese title is the source document's; its English gloss is for others
            shown.append(f"{' ' * len(pack.pack)}  {pack.title.en}")
        t = table(key(_("status")), key(_("rule")), _("why"))
        elsewhere, not_here = [], []
        for rule in pack.rules:
            f = by_rule.get(rule.id)
            if f is not None:
                add(t, _status(f.status), rule.id + (proposal if rule.proposal else ""), f.why)
                for part in f.evidence.get("parts", []):
                    add(t, _status(part["status"]), "  ." + part["rule"].rsplit(".", 1)[-1],
                        part["evidence"].get("why", ""))
            elif rule.scope == "region":
                elsewhere.append(rule.id)
            else:
                not_here.append(rule.id)
        if t.row_count:
            shown.append(Padding(t, (0, 0, 0, 2), expand=False))
        if elsewhere:
            shown.append(Padding(_("judged by the city cloud across schools: {rules}").format(
                rules=", ".join(elsewhere)), (0, 0, 0, 2)))
        if not_here:
            shown.append(Padding(_("not for a {type} school: {rules}").format(
                type=school_type_word(s.type), rules=", ".join(not_here)), (0, 0, 0, 2)))
    problems = r.problems
    nothing = _("Nothing could be checked.") if r.checked_nothing else _("No problems found.")
    shown += ["", _("Problems, most important first") if problems else nothing]
    if problems:
        t = table(num("#"), key(_("status")), _("problem, what to look at, and its rule"))
        for i, p in enumerate(problems, 1):
            add(t, f"{i}.", _status(p.status), Text(p.line() + "\n") + Text(p.rule, style="dim"))
        shown.append(Padding(t, (0, 0, 0, 2), expand=False))
    c = r.counts()
    shown += ["", _("{fail} fail, {limited} port-limited, {unknown} unknown, {passed} pass  ((proposal): the threshold "
                    "is the project's proposal; `eduedge rules` shows each rule's source)").format(
        fail=c["fail"], limited=c["port-limited"], unknown=c["unknown"], passed=c["pass"])]
    return shown


def to_json(r: DiagResult) -> dict[str, Any]:
    s = r.cfg.school
    region = [{"rule": x.id, "judged_by": "city cloud"} for p in r.rules.packs for x in p.rules
              if x.scope == "region"]
    return {"school": {"id": s.id, "name": s.name, "city": s.city, "district": s.district, "type": s.type},
            "time": round(r.time, 3), "source": r.source,
            "packs": [{"pack": p.pack, "title": p.title.model_dump(), "rules": [x.id for x in p.rules]}
                      for p in r.rules.packs],
            "findings": [f.to_dict() for f in r.findings],
            "problems": [p.to_dict() for p in r.problems],
            "not_judged_here": region,
            "devices": [{"device": d.device, "role": d.role, "ok": d.ok, "errors": d.errors} for d in r.devices],
            "notes": r.notes, "summary": r.counts(), "exit_code": r.exit_code}


def write_html(r: DiagResult, path: Path) -> None:
    charts = r.charts or ChartData(r.time - 86400, r.time)
    devices = [{"device": d.device, "ok": d.ok} for d in r.devices]
    path.write_text(render_html(r.cfg, r.rules, r.findings, r.problems, r.time, r.source, devices, charts),
                    encoding="utf-8")


# -- the command -------------------------------------------------------------------------------------

def _rules(cfg: AgentConfig) -> RuleSet:
    try:
        return load_rules(cfg)
    except PackError as e:
        for line in e.problems:
            typer.echo(_("error: {problem}").format(problem=line), err=True)
        raise typer.Exit(EXIT_CONFIG) from None


def register(app: typer.Typer) -> None:
    config_opt = config_option()

    @app.command("diag", help=N_("Check the school against its standards now and say what is wrong, most important "
                                 "first."))
    def diag_cmd(config: Path = config_opt,
                 cached: bool = typer.Option(False, "--cached", help=N_("print the latest stored results; no polling")),
                 as_json: bool = typer.Option(False, "--json", help=N_("print one JSON object")),
                 html: Path | None = typer.Option(None, "--html", help=N_("also write a self-contained HTML report "
                                                                          "with charts to this file"))) -> None:
        cfg = config_or_exit(config, "error: ")
        rules = _rules(cfg)
        if cached:
            result = read_cached(cfg, rules)
            if result is None:
                typer.echo(_("no stored results in {dir}: run `eduedge diag` without --cached, or start the "
                             "agent").format(dir=cfg.agent.data_dir), err=True)
                raise typer.Exit(EXIT_NO_CACHE)
        else:
            with activity(as_json) as act:
                result = run_live(cfg, rules, act)
        if html is not None:
            write_html(result, html)
        if as_json:
            typer.echo(json.dumps(to_json(result), ensure_ascii=False, default=str))
        else:
            console = terminal()
            for part in render(result):
                console.print(part, markup=False)
        raise typer.Exit(result.exit_code)
