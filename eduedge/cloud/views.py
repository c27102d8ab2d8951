"""What the city sees, read from the database as plain dicts: for the web page, the JSON API and the CLI.

- `schools`: every school (those that reported, and those on the roster that never did) with its
  connection state and its status per rule - the worst status over the rule's subjects in the school's
  newest findings, or `none` when a rule that applies to the school's type has no finding yet;
- `school_detail`: one school - what it is, its findings with their evidence, each rule's history (the
  changes of status), recent events, its devices, its gaps, the commands sent to it;
- `offline`: every school that is not online (`state`, the one definition), longest first;
- `gaps`: per school and agent, the holes in its seq (open, missing, session seqs) and the gaps it declared;
- `ingest_stats`: what the receivers counted, and the latest refused messages with their reasons.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from eduedge.agent.compliance.findings import worst
from eduedge.agent.compliance.packs import RuleSet, load_packs
from eduedge.cloud.config import CloudConfig
from eduedge.cloud.db import Db

NONE = "none"        # a rule that applies to the school, with no finding received


def rules_of(cfg: CloudConfig) -> RuleSet:
    s = cfg.standards
    return _packs(tuple(s.packs), tuple(s.pack_dirs), tuple(sorted(s.overrides.items())))


@functools.lru_cache(maxsize=8)
def _packs(packs: tuple[str, ...], dirs: tuple[Any, ...], overrides: tuple[tuple[str, float], ...]) -> RuleSet:
    # Read once per process: a page asks for the rules on every request, and the packs do not change under it.
    return load_packs(list(packs), list(dirs), dict(overrides))


def state(row: dict[str, Any], now: float, offline_after: float) -> str:
    """The one definition of a school's connection state, for every page, the API and `cloud judge`:

    `online` (its agent's session is up and it was heard from within `city.offline_after`), `offline` (the
    session ended: a death, a last will), `silent` (the session looks up, but nothing came for longer than
    `offline_after`: a broker outage, a cut link), `never` (known only from the roster). Only `online` is
    online; every other state is on the offline list.

    >>> state({"online": 1, "last_seen": 100.0, "birth_seq": 1}, 200.0, 3600), state({"online": 1, "last_seen": 1.0,
    ...     "birth_seq": 1}, 4000.0, 3600), state({"online": 0, "last_seen": 1.0}, 2.0, 3600), state({}, 0, 1)
    ('online', 'silent', 'offline', 'never')
    """
    if row.get("last_seen") is None and row.get("birth_seq") is None:
        return "never"
    if not row.get("online"):
        return "offline"
    if row.get("last_seen") is not None and now - row["last_seen"] > offline_after:
        return "silent"
    return "online"


def _roster_rows(cfg: CloudConfig, known: set[str]) -> list[dict[str, Any]]:
    return [{"school": s.id, "city": s.city, "name": s.name, "type": s.type, "district": s.district, "online": 0,
             "last_seen": None, "birth_seq": None, "offline_since": None, "offline_reason": None, "agent": None,
             "births": 0}
            for s in cfg.schools if s.id not in known]


def school_list(db: Db, cfg: CloudConfig, now: float) -> list[dict[str, Any]]:
    """Every school with its state; the roster's name, type and district fill what a school's birth did not say."""
    rows = db.dicts("SELECT school, city, name, type, district, students, teachers, agent, agent_version, online, "
                    "online_since, offline_since, offline_reason, birth_seq, bd_seq, births, first_seen, last_seen, "
                    "stale_deaths FROM schools ORDER BY school")
    roster = {s.id: s for s in cfg.schools}
    for r in rows:
        listed = roster.get(r["school"])
        if listed is not None:
            for k in ("name", "type", "district"):
                r[k] = r[k] or getattr(listed, k)
    rows += _roster_rows(cfg, {r["school"] for r in rows})
    for r in rows:
        r["state"] = state(r, now, cfg.city.offline_after)
        r["online"] = r["state"] == "online"
    return sorted(rows, key=lambda r: r["school"])


def rule_status(db: Db) -> dict[str, dict[str, str]]:
    """{school: {rule: worst status over the rule's subjects}} from the newest findings."""
    found: dict[str, dict[str, list[str]]] = {}
    for school, rule, status in db.query("SELECT school, rule, status FROM current_findings"):
        found.setdefault(school, {}).setdefault(rule, []).append(status)
    return {s: {r: worst(v) for r, v in rules.items()} for s, rules in found.items()}  # type: ignore[arg-type]


def schools(db: Db, cfg: CloudConfig, now: float, district: str | None = None, school_type: str | None = None
            ) -> dict[str, Any]:
    """The city's schools with status per rule, filtered by district and type; and the rule columns."""
    rules = rules_of(cfg)
    status = rule_status(db)
    rows = school_list(db, cfg, now)
    districts = sorted({r["district"] for r in rows if r["district"]})
    types = sorted({r["type"] for r in rows if r["type"]})
    if district:
        rows = [r for r in rows if r["district"] == district]
    if school_type:
        rows = [r for r in rows if r["type"] == school_type]
    for r in rows:
        got = status.get(r["school"], {})
        expected = {x.id for x in rules.for_school(r["type"])} if r["type"] else set()
        r["rules"] = {c: got.get(c, NONE) for c in sorted(set(got) | expected)}
    columns = sorted({c for r in rows for c in r["rules"]})     # the rules that concern the schools shown
    return {"columns": columns, "districts": districts, "types": types, "schools": rows}


def _history(db: Db, school: str) -> dict[str, list[dict[str, Any]]]:
    """Per rule: each change of the rule's (worst over subjects) status, oldest first."""
    by_time: dict[str, dict[float, list[str]]] = {}
    for rule, t, status in db.query("SELECT rule, t, status FROM findings WHERE school = ? ORDER BY t", [school]):
        by_time.setdefault(rule, {}).setdefault(t, []).append(status)
    out: dict[str, list[dict[str, Any]]] = {}
    for rule, times in by_time.items():
        changes: list[dict[str, Any]] = []
        for t in sorted(times):
            s = worst(times[t])  # type: ignore[arg-type]
            if not changes or changes[-1]["status"] != s:
                changes.append({"t": t, "status": s})
            changes[-1]["last"] = t
        out[rule] = changes
    return out


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def school_detail(db: Db, cfg: CloudConfig, school: str, now: float) -> dict[str, Any] | None:
    """One school: what it is, state, findings with evidence, history per rule, events, devices, gaps, commands."""
    info = next((r for r in school_list(db, cfg, now) if r["school"] == school), None)
    if info is None:
        return None
    findings = db.dicts("SELECT rule, subject, t, status, value, threshold, unit, evidence FROM current_findings "
                        "WHERE school = ? ORDER BY rule, subject", [school])
    for f in findings:
        for k in ("value", "threshold", "evidence"):
            f[k] = _loads(f[k])
    events = db.dicts("SELECT t, kind, severity, device, message, data FROM events WHERE school = ? "
                      "ORDER BY t DESC LIMIT 50", [school])
    for e in events:
        e["data"] = _loads(e["data"])
    seen = {d: (last, restarts) for d, last, restarts in db.query(
        "SELECT device, last, restarts FROM device_seen WHERE school = ?", [school])}
    devices = [{"scope": s, **json.loads(d)} for s, d in db.query(
        "SELECT scope, data FROM inventory WHERE school = ? ORDER BY scope, device", [school])]
    for x in devices:      # when each device was last heard from, and its restarts (cloud/rollups.py)
        x["last_heard"], x["restarts"] = seen.get(x["device"], (None, 0))
    commands = db.dicts("SELECT request_id, command, args, sent, status, reason, result, answered FROM commands "
                        "WHERE school = ? ORDER BY COALESCE(sent, answered) DESC LIMIT 20", [school])
    for c in commands:
        c["args"], c["result"] = _loads(c["args"]), _loads(c["result"])
    return {**info, "findings": findings, "history": _history(db, school), "events": events, "devices": devices,
            "gaps": gaps(db, cfg, now, school), "commands": commands}


def offline(db: Db, cfg: CloudConfig, now: float, rows: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every school that is not online (`state`), with since when and why; never heard from first, then longest."""
    out = []
    for r in school_list(db, cfg, now) if rows is None else rows:
        if r["state"] == "online":
            continue
        since = {"offline": r["offline_since"] or r["last_seen"], "silent": r["last_seen"]}.get(r["state"])
        reason = r["offline_reason"] if r["state"] == "offline" else r["state"]
        out.append({**r, "since": since, "for_s": None if since is None else round(now - since, 1),
                    "why": reason})
    return sorted(out, key=lambda r: (r["since"] is not None, r["since"] or 0))


def gaps(db: Db, cfg: CloudConfig, now: float, school: str | None = None) -> list[dict[str, Any]]:
    """Per (school, agent): seq range, late arrivals, holes (open or missing), and the gaps the agent declared.

    `session_seqs` are single-seq holes explained by connect attempts whose last will was never sent (one
    per bdSeq not followed by a delivered will); `missing` counts the seqs beyond those, older than the
    reorder timeout: messages that were lost without the agent saying so.
    """
    where, params = ("WHERE school = ?", [school]) if school else ("", [])
    streams = db.dicts(f"SELECT school, agent, floor, hwm, messages, late, min_bd_seq, max_bd_seq, wills FROM streams "
                       f"{where} ORDER BY school, agent", params)
    holes: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s, a, first, last, opened in db.query(f"SELECT school, agent, first_seq, last_seq, opened FROM holes {where} "
                                              f"ORDER BY school, agent, first_seq", params):
        state = "open" if now - opened < cfg.ingest.reorder_timeout else "missing"
        holes.setdefault((s, a), []).append({"first": first, "last": last, "seqs": last - first + 1,
                                             "opened": opened, "state": state})
    declared: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for g in db.dicts(f"SELECT school, agent, seq, received, dropped, reason, detail, messages, samples, seqs, "
                      f"first_time, last_time FROM gaps {where} ORDER BY received", params):
        g["seqs"] = json.loads(g["seqs"])
        declared.setdefault((g.pop("school"), g.pop("agent")), []).append(g)
    out = []
    for st in streams:
        key = (st["school"], st["agent"])
        hs = holes.get(key, [])
        attempts = (st["max_bd_seq"] - st["min_bd_seq"] + 1) if st["max_bd_seq"] is not None else 0
        unsent_wills = max(0, attempts - st["wills"])
        singles = sum(1 for h in hs if h["seqs"] == 1 and h["state"] == "missing")
        session = min(singles, unsent_wills)
        missing = sum(h["seqs"] for h in hs if h["state"] == "missing") - session
        st.update(holes=hs, declared=declared.get(key, []), session_seqs=session, missing_seqs=missing,
                  open_seqs=sum(h["seqs"] for h in hs if h["state"] == "open"),
                  declared_messages=sum(g["messages"] for g in declared.get(key, [])))
        out.append(st)
    return out


def ingest_stats(db: Db, recent: int = 20) -> dict[str, Any]:
    """Counters summed over the receivers (and per receiver), and the newest refused messages."""
    totals: dict[str, int] = {}
    per: dict[str, dict[str, int]] = {}
    for receiver, name, value in db.query("SELECT receiver, name, value FROM counters ORDER BY receiver, name"):
        totals[name] = totals.get(name, 0) + value
        per.setdefault(receiver, {})[name] = value
    rejects = db.dicts("SELECT received, topic, reason, detail, size FROM rejects ORDER BY id DESC LIMIT ?", [recent])
    return {"totals": totals, "receivers": per, "recent_rejects": rejects}
