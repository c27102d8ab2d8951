"""What each page shows, built from the views (cloud/views.py, city.py, trends.py) in the request's language.

Each builder returns the template's context: `tables` (cloud/tables.py: drawn by the page, exported by
/export/...), `charts` (ECharts options, drawn by static/app.js from data embedded in the page - nothing
is fetched), and the words around them. The same tables and numbers back the JSON API.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from eduedge.agent.compliance.packs import Rule
from eduedge.cloud import agent_words, audit
from eduedge.cloud.city import STATUS_ORDER, access_why, city_report
from eduedge.cloud.config import CloudConfig
from eduedge.cloud.db import Db
from eduedge.cloud.fmt import Fmt
from eduedge.cloud.i18n import MESSAGES
from eduedge.cloud.tables import Cell, Column, Table
from eduedge.cloud.trends import access_trend, school_trends
from eduedge.cloud.views import NONE, gaps, ingest_stats, offline, rules_of, school_detail, school_list

COLOURS = {"pass": "#1a7f37", "fail": "#cf222e", "unknown": "#bf8700", "port-limited": "#8250df", "none": "#8c959f"}
RANK = {s: i for i, s in enumerate(STATUS_ORDER)}


def school_href(school: str) -> str:
    return f"school/{quote(school)}"


def rule_title(rule: Rule | None, rule_id: str, lang: str) -> str:
    return getattr(rule.title, lang) if rule is not None else rule_id


def overall(rules: dict[str, str]) -> str:
    """A school's status over its rules: any fail fails; all pass passes; else unknown (no data counts so)."""
    found = set(rules.values())
    if not found:
        return "unknown"
    if "fail" in found:
        return "fail"
    return "pass" if found == {"pass"} else "unknown"


def _base_chart(title: str | None = None) -> dict[str, Any]:
    return {"animation": False, "textStyle": {"fontFamily": "Noto Sans CJK SC, sans-serif"},
            "tooltip": {"trigger": "axis"}, "legend": {"top": 0}, "grid": {"left": 8, "right": 24, "top": 36,
                                                                           "bottom": 8, "containLabel": True}}


def _stacked(categories: list[str], series: dict[str, list[float]], f: Fmt, percent: bool) -> dict[str, Any]:
    opt = _base_chart()
    opt["tooltip"] = {"trigger": "axis", "axisPointer": {"type": "shadow"}}
    opt["xAxis"] = {"type": "value", "max": 100 if percent else None, "name": f._("chart.share" if percent else
                                                                                  "chart.schools")}
    opt["yAxis"] = {"type": "category", "data": categories, "inverse": True,
                    "axisLabel": {"width": 260, "overflow": "truncate"}}
    opt["series"] = [{"name": f.status(s), "type": "bar", "stack": "all", "data": vals,
                      "itemStyle": {"color": COLOURS.get(s)}, "barMaxWidth": 22} for s, vals in series.items()]
    return opt


def _lines(days: list[str], series: dict[str, list[float | None]], unit: str, threshold: float | None = None,
           f: Fmt | None = None) -> dict[str, Any]:
    opt = _base_chart()
    opt["xAxis"] = {"type": "category", "data": [d[5:] for d in days], "boundaryGap": False}
    opt["yAxis"] = {"type": "value", "name": unit, "scale": True, **({"max": 100} if unit == "%" else {})}
    opt["series"] = [{"name": name, "type": "line", "data": vals, "connectNulls": False, "showSymbol": False}
                     for name, vals in series.items()]
    if threshold is not None and opt["series"] and f is not None:
        opt["series"][0]["markLine"] = {"silent": True, "symbol": "none", "lineStyle": {"color": "#cf222e"},
                                        "data": [{"yAxis": threshold, "name": f._("chart.threshold")}],
                                        "label": {"formatter": f"{f._('chart.threshold')} {threshold:g}"}}
    return opt


def city(db: Db, cfg: CloudConfig, f: Fmt, now: float, district: str | None, school_type: str | None,
         state: str | None, status: str | None, q: str | None) -> dict[str, Any]:
    rep = city_report(db, cfg, now, district, school_type)
    rules = {r.id: r for r in rules_of(cfg).rules}
    counts = rep["status_counts"]
    order = sorted(counts, key=lambda r: (-counts[r].get("fail", 0) / max(1, sum(counts[r].values())), r))
    shown = [s for s in STATUS_ORDER if any(counts[r].get(s) for r in order)]
    share = {s: [round(100.0 * counts[r].get(s, 0) / max(1, sum(counts[r].values())), 1) for r in order]
             for s in shown}
    by_rule = _stacked([rule_title(rules.get(r), r, f.lang) for r in order], share, f, percent=True)

    districts = sorted({r["district"] or "-" for r in rep["schools"]})
    per_district: dict[str, Counter[str]] = {d: Counter() for d in districts}
    for r in rep["schools"]:
        per_district[r["district"] or "-"][overall(r["rules"])] += 1
    by_district = _stacked(districts, {s: [per_district[d].get(s, 0) for d in districts]
                                       for s in ("fail", "unknown", "pass")}, f, percent=False)

    region_rows = []
    region_rules = sorted({x["rule"] for x in rep["region_findings"]})
    for x in rep["region_findings"]:
        ev = x["evidence"]
        counted = (f"{ev['with_access']} / {ev['schools']}" if "schools" in ev and "with_access" in ev
                   else region_why(ev, f))
        row = [Cell(x["region"].split("/", 1)[-1] if "/" in x["region"] else f._("chart.city")),
               Cell(x["status"], f.status(x["status"]), status=x["status"]),
               Cell(x["value"], f.number(x["value"], "%")),
               Cell(x["threshold"], f"{f.op(rules[x['rule']].op if x['rule'] in rules else None)} "
                                    f"{f.number(x['threshold'], '%')}"), Cell(counted)]
        if len(region_rules) > 1:
            row.insert(0, Cell(rule_title(rules.get(x["rule"]), x["rule"], f.lang), href=f"rule/{quote(x['rule'])}"))
        region_rows.append(row)
    columns = [Column("region", f._("col.region")), Column("status", f._("col.status")),
               Column("value", f._("col.value"), True), Column("threshold", f._("col.threshold"), True),
               Column("counted", f._("col.counted"))]
    if len(region_rules) > 1:
        columns.insert(0, Column("rule", f._("col.rule")))
    title = f._("city.region") + ("：" if f.lang == "zh" else ": ") + rule_title(
        rules.get(region_rules[0]), region_rules[0], f.lang) if len(region_rules) == 1 else f._("city.region")
    region = Table("region", title, columns, region_rows)

    access_rules = [r for r in rules.values()
                    if r.scope == "region" and r.measures == "cloud.schools_connected_percent"]
    trend_chart = None
    if access_rules:
        rule = access_rules[0]
        counted = {r["school"] for r in rep["schools"] if r["type"] and rule.applies_to_type(r["type"])}
        trend = access_trend(db, rep["schools"], counted, cfg.city.access_window, now, f.zone)
        if trend:
            day_names = [d for d, _ in next(iter(trend.values()))]
            trend_chart = _lines(day_names, {(k or f._("chart.city")): [v for _, v in vals]
                                             for k, vals in trend.items()}, "%", rule.threshold, f)

    table = schools(rep, f, rules, district, school_type, state, status, q)
    return {"rep": rep, "tables": {"region": region, "schools": table},
            "charts": {"by_rule": by_rule, "by_district": by_district, "access": trend_chart},
            "districts": rep["districts"], "types": rep["types"],
            "chosen": {"district": district, "type": school_type, "state": state, "status": status, "q": q}}


def schools(rep: dict[str, Any], f: Fmt, rules: dict[str, Rule], district: str | None, school_type: str | None,
            state: str | None, status: str | None, q: str | None) -> Table:
    """The schools with what they fail, failing first (most fails first); filtered as the query says."""
    out = []
    for r in rep["schools"]:
        verdict = overall(r["rules"])
        if (state and r["state"] != state) or (status and verdict != status):
            continue
        if q and q.lower() not in f"{r['name'] or ''} {r['school']}".lower():
            continue
        failed = sorted(k for k, v in r["rules"].items() if v == "fail")
        unknown = sum(1 for v in r["rules"].values() if v in ("unknown", NONE, "port-limited"))
        out.append((-len(failed), r["school"], [
            Cell(r["name"] or r["school"], href=school_href(r["school"])), Cell(r["school"]),
            Cell(r["district"] or "-"), Cell(r["type"], f.school_type(r["type"])),
            Cell(r["state"], f.state(r["state"]), status=r["state"]),
            Cell(verdict, f.status(verdict), status=verdict, sort=RANK.get(verdict)),
            Cell(len(failed)), Cell(unknown),
            Cell("; ".join(rule_title(rules.get(x), x, f.lang) for x in failed))]))
    out.sort(key=lambda x: (x[0], x[1]))
    return Table("schools", f._("city.failing"), [
        Column("school", f._("col.school")), Column("id", f._("col.id")), Column("district", f._("col.district")),
        Column("type", f._("col.type")), Column("state", f._("col.state")), Column("status", f._("col.status")),
        Column("fails", f._("col.fails"), True), Column("unknowns", f._("col.unknowns"), True),
        Column("failed", f._("col.failed_rules"))], [row for _, _, row in out],
        filters={"district": rep["districts"], "type": rep["types"]})


def _shortfall(rule: Rule | None, value: Any, threshold: Any) -> float | None:
    """How far from the threshold, as a share of it (positive: short of it)."""
    if not isinstance(value, int | float) or not isinstance(threshold, int | float) or not threshold:
        return None
    op = rule.op if rule is not None else ">="
    gap = (threshold - value) / threshold if op in (">=", ">") else (value - threshold) / threshold
    return round(100.0 * gap, 1)


def rule_page(db: Db, cfg: CloudConfig, f: Fmt, now: float, rule_id: str) -> dict[str, Any] | None:
    rules = {r.id: r for r in rules_of(cfg).rules}
    rule = rules.get(rule_id)
    if rule is None:
        return None
    if rule.scope == "region":
        rep = city_report(db, cfg, now)
        rows = [[Cell(x["region"]), Cell(x["status"], f.status(x["status"]), status=x["status"],
                                         sort=RANK.get(x["status"])),
                 Cell(x["value"], f.number(x["value"], "%")), Cell(x["threshold"], f.number(x["threshold"], "%")),
                 Cell(region_why(x["evidence"], f))] for x in rep["region_findings"] if x["rule"] == rule_id]
        table = Table("rule", f._("rule.schools"), [
            Column("region", f._("col.region")), Column("status", f._("col.status")),
            Column("value", f._("col.value"), True), Column("threshold", f._("col.threshold"), True),
            Column("why", f._("col.why"))], rows)
        return {"rule": rule, "title": rule_title(rule, rule_id, f.lang), "tables": {"rule": table}}
    found: dict[str, list[dict[str, Any]]] = {}
    for school, status, value, threshold, unit, t in db.query(
            "SELECT school, status, value, threshold, unit, t FROM current_findings WHERE rule = ?", [rule_id]):
        found.setdefault(school, []).append({"status": status, "value": json.loads(value) if value else None,
                                             "threshold": json.loads(threshold) if threshold else None,
                                             "unit": unit, "t": t})
    rows = []
    for r in school_list(db, cfg, now):
        if not r["type"] or not rule.applies_to_type(r["type"]):
            continue
        subjects = found.get(r["school"], [])
        worst = min(subjects, key=lambda x: (RANK.get(x["status"], 9),
                                             -(_shortfall(rule, x["value"], x["threshold"]) or 0)), default=None)
        status = worst["status"] if worst else NONE
        value = worst["value"] if worst else None
        threshold = worst["threshold"] if worst and worst["threshold"] is not None else rule.threshold
        short = _shortfall(rule, value, threshold)
        rows.append(((RANK.get(status, 9), -(short or -1e9)), [
            Cell(r["name"] or r["school"], href=school_href(r["school"])), Cell(r["district"] or "-"),
            Cell(r["type"], f.school_type(r["type"])), Cell(status, f.status(status), status=status,
                                                            sort=RANK.get(status)),
            Cell(value, f.number(value, rule.unit) if isinstance(value, int | float) else (value or "-")),
            Cell(threshold, f"{f.op(rule.op)} {f.number(threshold, rule.unit)}"),
            Cell(short, "-" if short is None else f"{short:g} %"),
            Cell(worst["t"] if worst else None, f.time(worst["t"]) if worst else "-")]))
    rows.sort(key=lambda x: x[0])
    table = Table("rule", f._("rule.schools"), [
        Column("school", f._("col.school")), Column("district", f._("col.district")),
        Column("type", f._("col.type")), Column("status", f._("col.status")), Column("value", f._("col.value"), True),
        Column("threshold", f._("col.threshold"), True), Column("shortfall", f._("col.shortfall"), True),
        Column("judged", f._("col.judged"))], [row for _, row in rows])
    counts = Counter(row[3].value for row in table.rows)
    return {"rule": rule, "title": rule_title(rule, rule_id, f.lang), "tables": {"rule": table},
            "counts": {s: counts[s] for s in STATUS_ORDER if counts[s]}}


def region_why(ev: dict[str, Any], f: Fmt) -> str:
    """A region finding's explanation in the page's language: the access rule's from its counts, any other's as
    the city judged it."""
    return access_why(ev, f.lang) if "with_access" in ev else str(ev.get("why", ""))


def offline_why(reason: str | None, f: Fmt) -> str:
    """Why a school is not online: its last death's reason, or its state (silent, never heard from)."""
    if reason in ("silent", "never"):
        return f.state(reason)
    key = f"reason.{reason}"
    return f._(key) if key in MESSAGES[f.lang] else (reason or "")


def school(db: Db, cfg: CloudConfig, f: Fmt, now: float, school_id: str) -> dict[str, Any] | None:
    d = school_detail(db, cfg, school_id, now)
    if d is None:
        return None
    rules = {r.id: r for r in rules_of(cfg).rules}
    cards = []
    for x in sorted(d["findings"], key=lambda x: (RANK.get(x["status"], 9), x["rule"], x["subject"])):
        rule = rules.get(x["rule"])
        ev = x["evidence"] or {}
        value = x["value"]
        measured = (f._("school.measured", value=f.number(value, x["unit"])) if isinstance(value, int | float)
                    else f._("school.not_measured") if value is None else f._("school.measured", value=value))
        required = f._("school.required", op=f.op(rule.op if rule else None), threshold=f.number(x["threshold"],
                                                                                                   x["unit"]))
        cards.append({"rule": x["rule"], "title": rule_title(rule, x["rule"], f.lang), "status": x["status"],
                      "subject": x["subject"], "measured": measured, "required": required, "t": f.time(x["t"]),
                      "problems": agent_words.problems(ev.get("problems", []), f.lang),
                      "lines": f.evidence(ev), "quote": (rule.source.quote if rule and rule.source else None)})
    tr = school_trends(db, school_id, now, f.zone)
    charts: dict[str, Any] = {}
    cap = tr["capacity"]
    if any(v is not None for v in cap["mean"]):
        need = max((rules[r].threshold or 0 for r in rules if rules[r].measures == "wan.down_mbps"
                    and d["type"] and rules[r].applies_to_type(d["type"])), default=None)
        charts["capacity"] = _lines(tr["days"], {f._(f"trend.{k}"): v for k, v in cap.items()}, "Mbit/s", need, f)
    if tr["wan"]:
        charts["wan"] = _lines(tr["days"], {f._(f"trend.{k.split()[0]}") + " " + k.split(" ", 1)[1]: v
                                            for k, v in tr["wan"].items()}, "%")
    if tr["wifi"]:
        charts["wifi"] = _lines(tr["days"], tr["wifi"], "%")
    if any(v is not None for v in tr["availability"]):
        charts["availability"] = _lines(tr["days"], {f._("trend.availability"): tr["availability"]}, "%")

    last_school = d["last_seen"] or now
    devices = []
    for x in d["devices"]:
        seen = x.get("last_heard")
        down = seen is None or seen < last_school - 300
        devices.append((not down, x["device"], [
            Cell(x["device"]), Cell(x.get("collector") or x.get("kind") or "-"), Cell(x.get("zone") or "-"),
            Cell(x.get("room") or "-"), Cell("down" if down else "up", f.state("down" if down else "up"),
                                             status="fail" if down else "pass"),
            Cell(seen, f.time(seen)), Cell(x.get("restarts") or 0)]))
    devices.sort(key=lambda x: (x[0], x[1]))
    dev_table = Table("devices", f._("school.devices"), [
        Column("device", f._("col.device")), Column("kind", f._("col.kind")), Column("zone", f._("col.zone")),
        Column("room", f._("col.room")), Column("state", f._("col.state")), Column("last", f._("col.last_seen")),
        Column("restarts", f._("col.restarts"), True)], [row for *_, row in devices], empty=f._("school.no_devices"))
    gap_table = _gap_table(d["gaps"], f, f._("school.gaps"))
    events = Table("events", f._("school.events"), [
        Column("t", f._("col.time")), Column("severity", f._("col.severity")), Column("kind", f._("col.kind")),
        Column("device", f._("col.device")), Column("message", f._("col.message"))],
        [[Cell(e["t"], f.time(e["t"])), Cell(e["severity"]), Cell(e["kind"]), Cell(e["device"] or "-"),
          Cell(e["message"], agent_words.translate(e["message"], f.lang))] for e in d["events"]])
    cmds = Table("commands", f._("school.commands"), [
        Column("t", f._("col.time")), Column("user", f._("col.user")), Column("command", f._("col.command")),
        Column("status", f._("col.status")), Column("answer", f._("col.answer"))],
        [[Cell(a["t"], f.time(a["t"])), Cell(a["user"]), Cell(" ".join([a["command"], *map(str, a["args"].values())])),
          Cell(a["status"], f.status(a["status"]), status=a["status"]), Cell(a["reason"] or "")]
         for a in audit.recent(db, school_id, 20)])
    return {"d": d, "cards": cards, "charts": charts, "trends": tr,
            "tables": {"devices": dev_table, "gaps": gap_table, "events": events, "commands": cmds},
            "restarts": sum(x.get("restarts") or 0 for x in d["devices"])}


def _gap_table(rows: list[dict[str, Any]], f: Fmt, title: str) -> Table:
    out = []
    for g in rows:
        declared = "; ".join(f"{x['reason']}: {x['messages']} ({f.time(x['first_time'])} – {f.time(x['last_time'])})"
                             for x in g["declared"])
        out.append([Cell(g["school"], href=school_href(g["school"])), Cell(g["agent"]),
                    Cell(f"{g['floor']} – {g['hwm']}"), Cell(g["late"]), Cell(g["open_seqs"]),
                    Cell(g["missing_seqs"], status="fail" if g["missing_seqs"] else None), Cell(declared)])
    return Table("gaps", title, [
        Column("school", f._("col.school")), Column("agent", f._("col.agent")), Column("seqs", f._("col.seq_range")),
        Column("late", f._("col.late"), True), Column("open", f._("col.open"), True),
        Column("missing", f._("col.missing"), True), Column("declared", f._("col.declared"))], out,
        empty=f._("school.no_gaps"))


def offline_page(db: Db, cfg: CloudConfig, f: Fmt, now: float) -> dict[str, Any]:
    rows = offline(db, cfg, now)
    table = Table("offline", f._("offline.title"), [
        Column("school", f._("col.school")), Column("district", f._("col.district")), Column("type", f._("col.type")),
        Column("state", f._("col.state")), Column("since", f._("col.since")), Column("for", f._("col.for"), True),
        Column("reason", f._("col.reason"))],
        [[Cell(r["name"] or r["school"], href=school_href(r["school"])), Cell(r["district"] or "-"),
          Cell(r["type"], f.school_type(r["type"])), Cell(r["state"], f.state(r["state"]), status=r["state"]),
          Cell(r["since"], f.time(r["since"])), Cell(r["for_s"], f.duration(r["for_s"])),
          Cell(r["why"] or "", offline_why(r["why"], f))]
         for r in rows])
    return {"tables": {"offline": table}, "n": len(rows), "after": f.duration(cfg.city.offline_after)}


def gaps_page(db: Db, cfg: CloudConfig, f: Fmt, now: float) -> dict[str, Any]:
    return {"tables": {"gaps": _gap_table(gaps(db, cfg, now), f, f._("gaps.title"))}}


def ingest_page(db: Db, f: Fmt) -> dict[str, Any]:
    stats = ingest_stats(db)
    counters = Table("counters", f._("ingest.title"), [Column("name", f._("col.counter")),
                                                       Column("value", f._("col.count"), True)],
                     [[Cell(k), Cell(v, f.number(v))] for k, v in sorted(stats["totals"].items())])
    rejects = Table("rejects", f._("ingest.rejects"), [
        Column("t", f._("col.time")), Column("reason", f._("col.reason")), Column("topic", f._("col.topic")),
        Column("size", f._("col.bytes"), True), Column("detail", f._("col.detail"))],
        [[Cell(r["received"], f.time(r["received"], seconds=True)), Cell(r["reason"]), Cell(r["topic"]),
          Cell(r["size"]), Cell(r["detail"][:300])] for r in stats["recent_rejects"]])
    return {"tables": {"counters": counters, "rejects": rejects}}


def table_for(db: Db, name: str, cfg: CloudConfig, f: Fmt, now: float, query: dict[str, str]) -> Table | None:
    """The table `name` as a page shows it with this query (for /export/...)."""
    g = query.get
    if name in ("schools", "region"):
        return city(db, cfg, f, now, g("district") or None, g("type") or None, g("state") or None,
                    g("status") or None, g("q") or None)["tables"][name]
    if name == "rule" and g("rule"):
        page = rule_page(db, cfg, f, now, g("rule", ""))
        return page["tables"]["rule"] if page else None
    if name in ("devices", "gaps", "events", "commands") and g("school"):
        page = school(db, cfg, f, now, g("school", ""))
        return page["tables"][name] if page else None
    if name == "offline":
        return offline_page(db, cfg, f, now)["tables"]["offline"]
    if name == "gaps":
        return gaps_page(db, cfg, f, now)["tables"]["gaps"]
    if name in ("counters", "rejects"):
        return ingest_page(db, f)["tables"][name]
    return None


def zone_of(cfg: CloudConfig) -> ZoneInfo:
    return ZoneInfo(cfg.city.timezone)
