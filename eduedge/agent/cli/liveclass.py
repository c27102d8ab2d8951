"""`eduedge liveclass [ROOM]`: can this classroom take a live class today?

`eduedge liveclass` probes the configured endpoints now (collectors/service_probes.py; only those), keeps the
results with the agent's history in data_dir, and judges every classroom (or ROOM) for the profiles of the
`live-class` rule pack (agent/compliance/live_class.py): ready or not, the weakest link and why, or what is missing. The
lesson-time loads of the drops and the uplink come from the history the running agent keeps. `--cached`
probes nothing and judges what is stored. `eduedge probe ENDPOINT` (probe.py) checks one endpoint.

Exit status: 0 every room shown is ready, 1 one is not, 2 the configuration or the pack is broken, 3 none
is not ready but some cannot be judged.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import RenderableType
from rich.padding import Padding

from eduedge.agent.cli._options import config_option, config_or_exit
from eduedge.agent.cli._progress import Activity, activity
from eduedge.agent.compliance import PackError, RuleSet, evaluate, load_packs
from eduedge.agent.compliance.findings import Finding, status_word
from eduedge.agent.compliance.kinds import Context, duration
from eduedge.agent.config import AgentConfig
from eduedge.agent.samplestore import SampleStore
from eduedge.core.i18n import N_, _, clauses, language
from eduedge.core.tables import add, key, table, terminal

if TYPE_CHECKING:    # the probes (DNS, HTTP, TLS libraries) load when a command probes, not for every `eduedge`
    from eduedge.collectors.service_probes import ServiceProbe

EXIT_READY, EXIT_NOT_READY, EXIT_CONFIG, EXIT_UNKNOWN = 0, 1, 2, 3
PACK = "live-class"
_LABELS = {"pass": N_("READY"), "fail": N_("NOT READY"), "unknown": N_("UNKNOWN")}   # translated where shown


def profile_rules(cfg: AgentConfig, wanted: str | None) -> RuleSet:
    """The live-class pack's rules to judge: `wanted` (`1080p-two-way` or its full id), else live_class.profiles,
    else all. Raises PackError naming what exists."""
    overrides = {k: v for k, v in cfg.standards.overrides.items() if k.startswith(PACK + ".")}
    rs = load_packs([PACK], cfg.standards.pack_dirs, overrides)
    names = [wanted] if wanted else list(cfg.live_class.profiles)
    if not names:
        return rs
    by_name = {r.id.split(".", 1)[1]: r for r in rs.rules} | {r.id: r for r in rs.rules}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        where = "--profile" if wanted else "live_class.profiles"
        raise PackError(PACK, [_("{where}: no profile {names} in the {pack} pack (profiles: {profiles})").format(
            where=where, names=", ".join(map(repr, unknown)), pack=PACK,
            profiles=", ".join(r.id.split(".", 1)[1] for r in rs.rules))])
    return RuleSet(rs.packs, [by_name[n] for n in names], rs.overrides)


def open_store(cfg: AgentConfig, cached: bool) -> tuple[SampleStore, list[str]]:
    """The agent's store: read-only for --cached; else writable, or in memory (with a note) when it cannot be."""
    if cached:
        return SampleStore.in_data_dir(cfg.agent.data_dir, readonly=True), []
    try:
        return SampleStore.in_data_dir(cfg.agent.data_dir), []
    except (OSError, sqlite3.Error) as e:
        return SampleStore(":memory:"), [_("the agent's history is not used: cannot write {dir} ({error})").format(
            dir=cfg.agent.data_dir, error=e)]


def check(cfg: AgentConfig, rules: RuleSet, cached: bool = False,
          act: Activity | None = None) -> tuple[list[Finding], list[ServiceProbe], list[str]]:
    """Probe the endpoints now (unless `cached`), then judge the classrooms for each profile; `act` shows
    the stages."""
    act = act or Activity()
    store, notes = open_store(cfg, cached)
    try:
        probes: list[ServiceProbe] = []
        if not cached and cfg.live_class.endpoints:
            from eduedge.collectors.service_probes import probe_all

            act.stage(_("probing the live-class endpoints"), total=len(cfg.live_class.endpoints))
            probes = asyncio.run(probe_all(cfg.live_class, on_done=lambda _p: act.advance()))
            store.add([x for p in probes for x in p.samples()])
        act.stage(_("judging the classrooms"))
        if probes:
            notes.append(probes_counted(cfg, probes[0].time))
        if not cfg.live_class.endpoints:
            notes.append(_("no endpoints under live_class.endpoints: the path to a live-class server is not known"))
        findings = evaluate(store, cfg, time.time(), rules)
    finally:
        store.close()
    return findings, probes, notes


def probes_counted(cfg: AgentConfig, t: float) -> str:
    """Whether the probes made now count toward the path's judgement: only rounds in school hours do."""
    if Context(cfg, None, None, t).in_school_hours(t):  # type: ignore[arg-type]   # reads only the hours
        return _("the probes made now are one more round of the path's, in school hours")
    h = cfg.standards.school_hours
    return _("the probes made now are outside school hours ({days} {start}-{end}, {timezone}), so the path's "
             "judgement does not count them: the running agent probes every {interval} in school hours").format(
        days=",".join(h.days), start=h.start, end=h.end, timezone=h.timezone,
        interval=duration(cfg.live_class.interval))


def _rooms(f: Finding, room: str | None) -> list[dict[str, Any]]:
    return [r for r in f.evidence.get("rooms", []) if room is None or r["room"] == room]


def exit_code(findings: list[Finding], room: str | None) -> int:
    statuses = {r["status"] for f in findings for r in _rooms(f, room)}
    return EXIT_NOT_READY if "fail" in statuses else EXIT_UNKNOWN if "unknown" in statuses or not statuses \
        else EXIT_READY


def room_line(r: dict[str, Any]) -> str:
    """A room's verdict after its status: the weakest link and why, or what is missing."""
    if r["status"] == "unknown":     # what the room's words say is missing (its links', else its notes)
        missing = clauses(m for x in r["links"] for m in x.get("missing", [])) or (r["notes"] or [""])[0]
        return _("missing {what}").format(what=missing)
    w = next((x for x in r["links"] if x["label"] == r["weakest"]), None)
    if w is None:
        return ""
    return (_("weakest link: {link} - {why}") if r["status"] == "pass" else "{link} - {why}").format(
        link=w["label"], why=w["why"])


def _label(status: str) -> str:
    return _(_LABELS[status])


def room_verdict(r: dict[str, Any]) -> str:
    """One room's verdict in a line, for `eduedge liveclass ROOM` (its links follow, each with its why)."""
    if r["status"] == "unknown":
        n = sum(1 for x in r["links"] if x["status"] == "unknown")
        return _("{room} {status}: {n} of {links} links cannot be judged").format(
            room=r["room"], status=_label(r["status"]), n=n, links=len(r["links"]))
    return _("{room} {status}: {line}").format(room=r["room"], status=_label(r["status"]), line=room_line(r))


def _own_missing(x: dict[str, Any]) -> list[str]:
    """What a link misses that its `why` does not already say."""
    return [m for m in x.get("missing", []) if x["why"] not in m and m not in x["why"]]


def render(cfg: AgentConfig, findings: list[Finding], probes: list[ServiceProbe], notes: list[str],
           room: str | None) -> list[RenderableType]:
    """What `eduedge liveclass` prints: per profile a table of the rooms (and, for one ROOM, every link)."""
    shown: list[RenderableType] = [_("Live classes at {school} ({id})").format(school=cfg.school.name,
                                                                              id=cfg.school.id)]
    for f in findings:
        p = f.evidence.get("profile", {})
        name = f"{p.get('name', {}).get('zh' if language() == 'zh' else 'en', f.rule)} ({f.rule})"
        rooms = _rooms(f, room)
        if room is not None:
            # one room: its own verdict (not the school's "0 of 24 classrooms"), then its links, each said once
            shown += [""] + [f"{name}: {room_verdict(r)}" for r in rooms]
        else:
            shown += ["", f"{name}: {f.why}"]
            if rooms:
                t = table(key(_("room")), key(_("status")), _("weakest link, or what is missing"))
                for r in rooms:
                    add(t, r["room"], _label(r["status"]), room_line(r))
                shown.append(Padding(t, (0, 0, 0, 2), expand=False))
        if room is not None:
            for r in rooms:
                links = table(key(_("status")), _("link"), _("why, and what to do"))
                for x in r["links"]:
                    why = [x["why"], *(_("missing: {what}").format(what=m) for m in _own_missing(x))]
                    if x.get("hint") and x["status"] == "fail":
                        why.append(_("what to do: {hint}").format(hint=x["hint"]))
                    add(links, status_word(x["status"]), x["label"], "\n".join(why))
                shown.append(Padding(links, (0, 0, 0, 4), expand=False))
                shown += [Padding(n, (0, 0, 0, 4)) for n in r["notes"]]
        if f.evidence.get("rule", {}).get("proposal"):
            shown.append(Padding(_("(the profile's numbers are the project's proposal: "
                                   "`eduedge rules --pack live-class`)"), (0, 0, 0, 2)))
    if probes:
        up = sum(1 for p in probes if p.up)
        shown += ["", _("Endpoints, probed now: {up} of {n} up").format(up=up, n=len(probes))]
        shown += [Padding(probe_line(p), (0, 0, 0, 2)) for p in probes]
    for n in notes:
        shown.append(_("note: {note}").format(note=n))
    return shown


def probe_line(p: ServiceProbe) -> str:
    """One line per endpoint: up or the stage that failed, and the times."""
    from eduedge.collectors.service_probes import expires_in_words

    parts = []
    for label, v in (("dns", p.dns_ms), ("connect", p.connect_ms), ("tls", p.tls_ms), (_("first byte"), p.ttfb_ms)):
        if v is not None:
            parts.append(f"{label} {v:.1f} ms")
    if p.http_status is not None:
        parts.append(f"HTTP {p.http_status}")
    if p.cert_days is not None:
        parts.append(_("certificate {expires}").format(expires=expires_in_words(p.cert_days, p.time)))
    if p.udp is not None and p.udp.answered:
        parts.append(_("UDP rtt {rtt} ms, jitter {jitter} ms, loss {loss} %").format(
            rtt=f"{p.udp.median_ms:.1f}", jitter=f"{p.udp.jitter_ms or 0:.1f}", loss=f"{p.udp.loss_percent:.1f}"))
    state = _("up") if p.up else _("FAILED {reason}").format(reason=p.failure or "")
    head = f"{p.endpoint} ({p.role}) {state}"
    return head + ("; " + ", ".join(parts) if parts else "")


def register(app: typer.Typer) -> None:
    config_opt = config_option()

    @app.command("liveclass")
    def liveclass_cmd(room: str | None = typer.Argument(None, help="only this classroom, link by link"),
                      profile: str | None = typer.Option(None, "--profile", help="a profile of the live-class pack, "
                                                         "e.g. 1080p-two-way (default: live_class.profiles, or all)"),
                      cached: bool = typer.Option(False, "--cached", help="probe nothing; judge what is stored"),
                      as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
                      config: Path = config_opt) -> None:
        """Can each classroom take a live class? Ready or not per profile, the weakest link, and why."""
        cfg = config_or_exit(config, "error: ")
        try:
            rules = profile_rules(cfg, profile)
        except PackError as e:
            for line in e.problems:
                typer.echo(_("error: {problem}").format(problem=line), err=True)
            raise typer.Exit(EXIT_CONFIG) from None
        if cached and not (cfg.agent.data_dir / "compliance.sqlite").is_file():
            typer.echo(_("no stored results in {dir}: run without --cached, or start the agent").format(
                dir=cfg.agent.data_dir), err=True)
            raise typer.Exit(EXIT_UNKNOWN)
        with activity(as_json) as act:
            findings, probes, notes = check(cfg, rules, cached, act)
        known = sorted({r["room"] for f in findings for r in f.evidence.get("rooms", [])})
        if room is not None and room not in known:
            typer.echo(_("error: no classroom {room} (classrooms: {known}; see live_class.rooms)").format(
                room=repr(room), known=", ".join(known) or _("none")), err=True)
            raise typer.Exit(EXIT_CONFIG)
        if as_json:
            out = {"school": {"id": cfg.school.id, "name": cfg.school.name}, "time": time.time(),
                   "profiles": [{"id": f.rule, "name": f.evidence.get("profile", {}).get("name"), "status": f.status,
                                 "ready_percent": f.value, "why": f.why, "rooms": _rooms(f, room)} for f in findings],
                   "endpoints": [p.to_dict() for p in probes], "notes": notes}
            typer.echo(json.dumps(out, ensure_ascii=False, default=str))
        else:
            console = terminal()
            for part in render(cfg, findings, probes, notes, room):
                console.print(part, markup=False)
        raise typer.Exit(exit_code(findings, room))
