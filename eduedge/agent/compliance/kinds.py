"""One judgement per kind of rule: samples, configuration and topology in, a `Finding` out.

The inputs each kind reads are canonical metrics; a collector that emits them plugs into the rules
without a change here. Metrics from collectors that do not exist yet are marked with their issue.

| kind          | reads                                                                     | from             |
|---------------|---------------------------------------------------------------------------|------------------|
| link-speed    | if.speed_mbps, if.oper_status, lldp.neighbor (+ topology.* configuration) | SNMP poller      |
| capacity      | wan.down_mbps / wan.up_mbps (tag method=tcp or ip), one per capacity test;| broadband (#5)   |
|               | host.if_speed_mbps of the WAN port (tag role=wan); the uplink's speed     | host, SNMP       |
| statistic     | wan.reachable (1/0 per probe), wan.loss_percent, wan.rtt_ms,              | broadband (#5)   |
|               | wan.rtt_loaded_ms (RTT during a capacity test)                            |                  |
| wifi-coverage | per zone and interval, tags zone + zone_type: wifi.zone_aps_up, client-   | compliance/wifi_ |
|               | minutes with and without signal, radio-minutes busy/noisy (wifi.zone_*)   | coverage.py      |
| wifi-access   | wifi.probe_down_mbps (tag zone), else wifi.zone_phy_median_mbps, else     | compliance/wifi_ |
|               | wifi.zone_radio_phy_mbps                                                  | coverage.py      |
| device-ratio  | inventory.learning_devices (count; the newest of each series is summed)   | devices (#8)     |
|               | and school.enrolment from the configuration                                |                  |
| live-class    | per classroom (live_class.py): its drops (topology, if.speed_mbps,        | compliance/live_ |
|               | if.duplex, liveclass.drop_*), its Wi-Fi zone (wifi.zone_*), the uplink    | class.py,        |
|               | (wan.*_mbps tests, wan.traffic_*_peak_mbps, liveclass.uplink_*), the path | service probes   |
|               | to the live-class server (service.up, service.udp_*)                      | (#10)            |
| (report only) | wifi.zone_clients (clients associated, tags zone), drawn by `diag --html`  | Wi-Fi (#6)       |

Measured throughput has a ceiling: TCP over Ethernet carries at most 1448/1538 = 94.15 % of the line rate
(IP-layer tests 1500/1538 = 97.53 %). A capacity rule whose threshold is above the ceiling of the gateway's
own WAN port is `port-limited`; below it, a test passes at 90 % of the threshold (TCP) or 95 % (IP layer),
the tolerance docs/research/STANDARDS-RESEARCH.md C.2 proposes for cross-traffic and unknown shaping.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from eduedge.agent.compliance import live_class, wifi_coverage
from eduedge.agent.compliance.findings import Finding, Problem, Status, status_word, worst
from eduedge.agent.compliance.topology import End, Link, Topology
from eduedge.agent.config import AgentConfig, role_word
from eduedge.agent.samplestore import SampleStore
from eduedge.core.i18n import N_, _, clauses, listing, ngettext
from eduedge.core.samples import Sample

from .packs import Rule, RuleBase

EFFICIENCY = {"tcp": 1448 / 1538, "ip": 1500 / 1538}
TOLERANCE = {"tcp": 0.90, "ip": 0.95}
_OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, ">": operator.gt, "<=": operator.le,
                                                   "<": operator.lt}
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def num(v: float | None) -> str:
    """A number as a person reads it: `100`, `941.5`, `0.62`.

    >>> num(100.0), num(941.4823), num(0.6234), num(None)
    ('100', '941.5', '0.62', '-')
    """
    if v is None:
        return "-"
    if abs(v - round(v)) < 1e-9:
        return str(round(v))
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def duration(seconds: float) -> str:
    """`2592000` -> `30 d`; `3600` -> `1 h`."""
    for unit, size in ((_("{n} d"), 86400), (_("{n} h"), 3600), (_("{n} min"), 60)):
        if seconds >= size and seconds % size == 0:
            return unit.format(n=int(seconds // size))
    return _("{n} s").format(n=num(seconds))


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least p % of the values at or below it.

    >>> percentile([10, 20, 30, 40, 50], 20), percentile([7], 20), percentile([1, 2, 3, 4], 50)
    (10, 7, 2)
    """
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# What each statistic is called in a finding's why (translated there); p20 and p95 read the same everywhere
_STATISTICS = {"mean": N_("mean"), "median": N_("median"), "p20": "p20", "p95": "p95",
               "percent-true": N_("percent-true")}


def _statistic(name: str, values: Sequence[float]) -> float:
    if name == "mean":
        return sum(values) / len(values)
    if name == "median":
        ordered = sorted(values)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    if name == "p20":
        return percentile(values, 20)
    if name == "p95":
        return percentile(values, 95)
    if name == "percent-true":
        return 100.0 * sum(1 for v in values if v) / len(values)
    raise ValueError(f"unknown statistic {name!r}")


def _missing(what: Sequence[str]) -> str:
    return _("missing {what}").format(what=clauses(what))


def _numbers(samples: Sequence[Sample]) -> list[float]:
    return [float(s.value) for s in samples if isinstance(s.value, int | float) and not isinstance(s.value, bool)]


@dataclass
class Context:
    """What every judgement reads: the configuration, the store, the campus topology and the time."""

    cfg: AgentConfig
    store: SampleStore
    topology: Topology
    now: float

    @property
    def school(self) -> str:
        return self.cfg.school.id

    def in_school_hours(self, t: float) -> bool:
        h = self.cfg.standards.school_hours
        local = datetime.fromtimestamp(t, ZoneInfo(h.timezone))
        return _DAYS[local.weekday()] in h.days and h.start <= local.strftime("%H:%M") < h.end

    def samples(self, metric: str, rule: RuleBase) -> list[Sample]:
        """The kept samples of `metric` in the rule's window (and school hours, if the rule says so)."""
        found = self.store.history(metric, self.now - rule.window, self.now)
        if rule.hours == "school":
            found = [s for s in found if self.in_school_hours(s.time)]
        return found

    def hours_text(self, rule: RuleBase) -> str:
        """`the last 30 d`, or `school hours of the last 7 d` (the hours are in standards.school_hours)."""
        span = duration(rule.window)
        return (_("school hours of the last {span}") if rule.hours == "school" else _("the last {span}")).format(
            span=span)


def _base(rule: RuleBase, rule_id: str, ctx: Context, status: Status, value: float | str | None, why: str,
          evidence: dict[str, Any], window: tuple[float, float] | None, missing: list[str] | None = None,
          problems: list[Problem] | None = None, threshold: float | None = None) -> Finding:
    about: dict[str, Any] = {"title": rule.title.en, "kind": rule.kind, "measures": rule.measures, "op": rule.op}
    if rule.city_override_of is not None:
        about["threshold_from"] = _("city override (standards.overrides; the pack says {n})").format(
            n=num(rule.city_override_of))
    else:
        about["threshold_from"] = _("rule pack")
    if rule.proposal:
        about["proposal"] = True
    src = rule.source
    if src is not None:
        about["source"] = {"document": src.document.zh, "clause": src.clause, "quote": src.quote}
    return Finding(rule_id, ctx.school, status, value, rule.threshold if threshold is None else threshold, rule.unit,
                   ctx.now, window, {"rule": about, **evidence}, missing or [], why, problems or [])


# -- link-speed ----------------------------------------------------------------------------------------

def _speed_hint(speed: float, threshold: float) -> str:
    if speed <= 100 < threshold:
        return _("check the cable (a damaged pair drops gigabit to 100 Mbit/s) or the SFP, and that both ends "
                 "auto-negotiate")
    return _("the ports or modules at one end run at {speed} Mbit/s: {threshold} Mbit/s needs faster ports "
             "or modules (e.g. SFP+) at both ends").format(speed=num(speed), threshold=num(threshold))


def _link_words(link: Link, which: str) -> str:
    far = link.b.label() if link.b is not None else (link.far_name or "")
    where = (_("{port} on {device} (to {far})") if far else _("{port} on {device}")).format(
        port=link.a.port, device=link.a.device, far=far)
    if which == "classroom" and link.room:
        return _("classroom {room} link {where}").format(room=link.room, where=where)
    return (_("backbone link {where}") if which == "backbone" else _("classroom link {where}")).format(where=where)


def _why_unknown_end(end: End, ctx: Context) -> str:
    poll = ctx.store.polls().get(end.device)
    if poll is None:
        return _("{device} has not been polled").format(device=end.device)
    if not poll.ok:
        err = poll.errors[0] if poll.errors else _("no answer")
        return _("{device} did not answer its last poll ({error})").format(device=end.device, error=err)
    if not end.found:
        return _("{device} reports no interface called {port}").format(device=end.device, port=end.port)
    return _("no speed reading of {end} in the window").format(end=end.label())


def judge_link_speed(rule: RuleBase, rule_id: str, ctx: Context) -> Finding:
    assert rule.links is not None and rule.threshold is not None
    which, threshold, since = rule.links, rule.threshold, ctx.now - rule.window
    links = ctx.topology.of_kind(which)
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    missing: list[str] = []
    statuses: list[Status] = []
    seen: list[float] = []
    scope = "room" if which == "classroom" else "building"
    for link in links:
        speed = link.speed_mbps
        fresh = [e.seen for e in link.ends if e.seen is not None and e.seen >= since]
        seen += fresh
        words = _link_words(link, which)
        if link.down and fresh:
            status: Status = "fail"
            reason = _("down (oper status {oper})").format(oper=", ".join(str(e.oper_status) for e in link.ends))
            problems.append(Problem(rule_id, "fail", _("{link} is down").format(link=words),
                                    _("check the cable, the SFP and the switch at the far end"), scope, 1.0,
                                    link.a.device))
        elif link.stale:
            status = "unknown"
            reason = _("LLDP no longer reports this neighbour")
            missing.append(_("{link}: LLDP no longer reports the neighbour (last seen {ago})").format(
                link=link.label(), ago=_ago(ctx.now, link.last_seen)))
            problems.append(Problem(rule_id, "unknown",
                                    _("{link}: the neighbour is no longer seen by LLDP").format(link=words),
                                    _("check whether the link or the far switch is down, or was moved"), scope, 1.0,
                                    link.a.device))
        elif speed is None or not fresh:
            status = "unknown"
            why = clauses(_why_unknown_end(e, ctx) for e in link.ends if e.speed_mbps is None or not fresh)
            reason = _("speed not known: {why}").format(why=why)
            missing.append(_("negotiated speed of {link} ({why})").format(link=link.label(), why=why))
            problems.append(Problem(rule_id, "unknown", _("{link}: speed not known").format(link=words), why, scope,
                                    1.0, link.a.device))
        elif _OPS[rule.op](speed, threshold):
            status, reason = "pass", _("{speed} Mbit/s").format(speed=num(speed))
        else:
            status, reason = "fail", _("{speed} Mbit/s, below {threshold}").format(speed=num(speed),
                                                                                   threshold=num(threshold))
            problems.append(Problem(rule_id, "fail", _("{link} negotiated {speed} Mbit/s").format(
                                        link=words, speed=num(speed)),
                                    _speed_hint(speed, threshold), scope, 1 - speed / threshold, link.a.device))
        statuses.append(status)
        rows.append({**link.to_dict(), "status": status, "reason": reason, "is_down": bool(link.down and fresh)})
    if which == "backbone":
        statuses += _backbone_gaps(ctx, links, rule_id, missing, problems)
    # the reason is in the reader's language: whether a link is down is the row's flag, not its words
    below = [_("{link} at {speed} Mbit/s").format(link=r["link"], speed=num(r["speed_mbps"])) for r in rows
             if r["status"] == "fail" and r["speed_mbps"] is not None and not r["is_down"]]
    down = [r["link"] for r in rows if r.pop("is_down")]
    evidence: dict[str, Any] = {"links": rows, "below_threshold": below, "down": down}
    if which == "backbone":
        evidence["backbone_roles"] = list(ctx.cfg.topology.backbone_roles)
        evidence["unresolved_neighbors"] = ctx.topology.unresolved
    if ctx.topology.notes:
        evidence["topology_notes"] = ctx.topology.notes
    speeds = [r["speed_mbps"] for r in rows if r["speed_mbps"] is not None and r["status"] != "unknown"]
    value = min(speeds) if speeds else None
    window = (min(seen), max(seen)) if seen else None
    if not links:
        hint = (_("enable LLDP on the switches, or name the links in topology.links") if which == "backbone"
                else _("name the ports that feed classrooms in topology.classroom_drops, or give the devices in "
                       "classrooms a `room` so that LLDP can find their links"))
        what = (_("no backbone links known: LLDP shows none between devices with roles {roles}, and the "
                  "configuration names none").format(roles=listing(map(role_word, ctx.cfg.topology.backbone_roles)))
                if which == "backbone" else _("no classroom links known from LLDP or the configuration"))
        missing.insert(0, what)
        problems.insert(0, Problem(rule_id, "unknown", what, hint, scope, 1.0))
        return _base(rule, rule_id, ctx, "unknown", None, what, evidence, None, missing, problems)
    status = worst(statuses)
    n, bad = len(rows), len(below) + len(down)
    kind = _("backbone") if which == "backbone" else _("classroom")
    if status == "pass":
        why = (_("all {n} {kind} links run at {op} {threshold} Mbit/s (slowest {value})") if n > 1
               else _("the {kind} link runs at {value} Mbit/s ({op} {threshold})")).format(
            n=n, kind=kind, op=rule.op, threshold=num(threshold), value=num(value))
    elif status == "fail":
        named = clauses([*(_("{link} down").format(link=d) for d in down), *below][:3])
        why = _("{bad} of {n} {kind} links below {threshold} Mbit/s or down: {named}").format(
            bad=bad, n=n, kind=kind, threshold=num(threshold), named=named)
    else:
        unknown = sum(1 for s in statuses if s == "unknown")
        why = ngettext("speed of {n} {kind} link not known: {first}", "speed of {n} {kind} links not known: {first}",
                       unknown).format(n=unknown, kind=kind, first=missing[0])
    return _base(rule, rule_id, ctx, status, value, why, evidence, window, missing, problems)


def _backbone_gaps(ctx: Context, links: list[Link], rule_id: str, missing: list[str],
                   problems: list[Problem]) -> list[Status]:
    """A backbone-role device with no known backbone link is a link whose speed nobody knows."""
    roles = set(ctx.cfg.topology.backbone_roles)
    members = [d for d in ctx.cfg.snmp.devices if d.role in roles]
    if len(members) < 2:
        return []
    linked = {e.device for x in links for e in x.ends}
    polls = ctx.store.polls()
    out: list[Status] = []
    for d in members:
        if d.name not in linked:
            what = _("{device} ({role}) has no known backbone link").format(device=d.name, role=role_word(d.role))
            poll = polls.get(d.name)
            if poll is not None and not poll.ok:
                hint = _("it did not answer its last poll: check that it is up and the SNMP credentials "
                         "({host})").format(host=d.host)
            else:
                hint = _("enable LLDP on it and its neighbour, or name the link in topology.links")
            missing.append(what)
            problems.append(Problem(rule_id, "unknown", what, hint, "building", 1.0, d.name))
            out.append("unknown")
    return out


def _ago(now: float, t: float | None) -> str:
    if t is None:
        return _("never")
    return _("{duration} ago").format(duration=duration(max(0, round(now - t)))) if now - t >= 60 else _("just now")


# -- capacity ------------------------------------------------------------------------------------------

def _gateway_port(ctx: Context) -> Sample | None:
    ports = [s for s in ctx.store.latest("host.if_speed_mbps") if s.tags.get("role") == "wan"]
    return max(ports, key=lambda s: s.time) if ports else None


def _shaped() -> str:
    return _("ask the provider what the line is shaped to; check for cross-traffic during the tests")


def judge_capacity(rule: RuleBase, rule_id: str, ctx: Context) -> Finding:
    assert rule.threshold is not None
    threshold = rule.threshold
    since = ctx.now - rule.window
    evidence: dict[str, Any] = {}
    problems: list[Problem] = []
    missing: list[str] = []
    # The access link itself: a port that negotiated less than the threshold cannot carry it.
    uplink = ctx.topology.uplink
    uplink_fail = None
    if uplink is not None:
        evidence["uplink"] = uplink.to_dict()
        if uplink.found and uplink.seen is not None and uplink.seen >= since:
            if uplink.oper_status not in (None, "up"):
                uplink_fail = _("uplink {port} on {device} is down (oper status {oper})").format(
                    port=uplink.port, device=uplink.device, oper=uplink.oper_status)
                problems.append(Problem(rule_id, "fail", uplink_fail, _("check the cable, the SFP and the provider's "
                                        "equipment"), "school", 1.0, uplink.device))
            elif uplink.speed_mbps is not None and uplink.speed_mbps < threshold:
                uplink_fail = _("uplink {port} on {device} negotiated {speed} Mbit/s").format(
                    port=uplink.port, device=uplink.device, speed=num(uplink.speed_mbps))
                problems.append(Problem(rule_id, "fail", uplink_fail, _speed_hint(uplink.speed_mbps, threshold),
                                        "school", 1 - uplink.speed_mbps / threshold, uplink.device))
    tests = [s for s in ctx.samples(rule.measures, rule) if isinstance(s.value, int | float)]
    methods = Counter(s.tags.get("method", "tcp") for s in tests)
    method = max(methods, key=lambda m: (methods[m], m == "ip")) if methods else "tcp"
    used = [s for s in tests if s.tags.get("method", "tcp") == method]
    port = _gateway_port(ctx)
    ceiling = float(port.value) * EFFICIENCY.get(method, EFFICIENCY["tcp"]) if port is not None else None
    limited = ceiling is not None and ceiling < threshold
    if port is not None:
        evidence["gateway_port"] = {"device": port.device, "interface": port.tags.get("interface"),
                                    "speed_mbps": port.value, "ceiling_mbps": round(ceiling or 0, 2),
                                    "method": method, "efficiency": round(EFFICIENCY[method], 6)}
    value = percentile(_numbers(used), 20) if used else None
    evidence["tests"] = {"count": len(used), "method": method, "statistic": "p20 (a rate reached in 80 % of tests)",
                         "values": [round(float(s.value), 2) for s in used[-50:]],
                         # whose tests they are: the agent's windows, the city's `command`, a `technician`'s
                         "windows": dict(Counter(s.tags.get("window", "") for s in used)),
                         "other_methods": {m: c for m, c in methods.items() if m != method}}
    tol = TOLERANCE.get(method, TOLERANCE["tcp"])
    window = (since, ctx.now)
    if uplink_fail is not None:
        shown = value if value is not None else uplink.speed_mbps if uplink is not None else None
        return _base(rule, rule_id, ctx, "fail", shown, _("{cause}, below {threshold} Mbit/s").format(
                     cause=uplink_fail, threshold=num(threshold)),
                     {**evidence, "decided_by": "uplink port"}, window, missing, problems)
    port_words = (_("the gateway's WAN port {interface} runs at {speed} Mbit/s: a {method} test tops out at "
                    "{ceiling} Mbit/s").format(interface=port.tags.get("interface", ""), speed=num(float(port.value)),
                                               method=method.upper(), ceiling=num(ceiling))
                  if port is not None else "")
    if limited:
        assert port is not None and ceiling is not None
        hint = _("connect the gateway to a port of at least {speed} Mbit/s to measure this").format(
            speed=num(threshold / EFFICIENCY[method]))
        if value is not None and value < tol * ceiling:
            why = _("tests show {value} Mbit/s, under {share} % of what the gateway port could carry").format(
                value=num(value), share=num(tol * 100))
            problems.append(Problem(rule_id, "fail", _("capacity tests show {value} Mbit/s (needs {threshold})").format(
                                    value=num(value), threshold=num(threshold)), _shaped(), "school",
                                    1 - value / threshold))
            return _base(rule, rule_id, ctx, "fail", value, why, {**evidence, "decided_by": "capacity tests"},
                         window, missing, problems)
        why = (_("{port}, below {threshold} Mbit/s; tests reach {value}") if value else
               _("{port}, below {threshold} Mbit/s; no capacity test yet")).format(
            port=port_words, threshold=num(threshold), value=num(value))
        problems.append(Problem(rule_id, "port-limited", port_words, hint, "school",
                                1 - ceiling / threshold, port.device))
        return _base(rule, rule_id, ctx, "port-limited", value, why, {**evidence, "decided_by": "gateway port"},
                     window, missing, problems)
    if value is None:
        what = _("capacity tests ({metric}) in {hours}").format(metric=rule.measures, hours=ctx.hours_text(rule))
        missing.append(what)
        if port is None:
            missing.append(_("the speed of the gateway's WAN port (host.wan_interface in the configuration)"))
        nothing = _("no {what}").format(what=what)
        problems.append(Problem(rule_id, "unknown", nothing, _("the broadband tests run from the agent; check that "
                                "it can reach the city cloud's test server"), "school", 1.0))
        return _base(rule, rule_id, ctx, "unknown", None, nothing, evidence, window, missing, problems)
    need = tol * threshold
    evidence["pass_at_mbps"] = round(need, 3)
    numbers = {"value": num(value), "method": method.upper(), "tests": len(used), "need": num(need),
               "share": num(tol * 100), "threshold": num(threshold)}
    if value >= need:
        return _base(rule, rule_id, ctx, "pass", value, _("tests reach {value} Mbit/s ({method}, p20 of {tests}); "
                     "passes at {need} ({share} % of {threshold})").format(**numbers),
                     {**evidence, "decided_by": "capacity tests"}, window, missing, problems)
    problems.append(Problem(rule_id, "fail", _("capacity tests show {value} Mbit/s, needs {threshold}").format(
                            **numbers), _shaped(), "school", 1 - value / threshold))
    return _base(rule, rule_id, ctx, "fail", value, _("tests reach only {value} Mbit/s ({method}, p20 of {tests}); "
                 "needs {need} ({share} % of {threshold})").format(**numbers),
                 {**evidence, "decided_by": "capacity tests"}, window, missing, problems)


# -- statistic -----------------------------------------------------------------------------------------

_STAT_HINTS = {   # translated where they are used
    "wan.reachable": N_("look at the events for outages of the line, and ask the provider"),
    "wan.loss_percent": N_("check the WAN port for errors (eduedge poll on the uplink switch) and ask the provider"),
    "wan.rtt_loaded_ms": N_("the line's queue fills under load (bufferbloat): enable SQM (fq_codel/cake) on the "
                            "gateway or ask the provider"),
}


def judge_statistic(rule: RuleBase, rule_id: str, ctx: Context) -> Finding:
    assert rule.statistic is not None and rule.threshold is not None
    window = (ctx.now - rule.window, ctx.now)
    values = _numbers(ctx.samples(rule.measures, rule))
    evidence: dict[str, Any] = {"statistic": rule.statistic, "samples": len(values)}
    missing: list[str] = []
    if len(values) < rule.min_samples:
        missing.append(_("{metric} in {hours} (have {have}, need {need})").format(
            metric=rule.measures, hours=ctx.hours_text(rule), have=len(values), need=rule.min_samples))
    denominator = None
    if rule.relative_to:
        base = _numbers(ctx.samples(rule.relative_to, rule))
        evidence["baseline_samples"] = len(base)
        if not base:
            missing.append(_("{metric} in {hours}").format(metric=rule.relative_to, hours=ctx.hours_text(rule)))
        else:
            denominator = _statistic(rule.statistic, base)
            evidence["baseline"] = round(denominator, 3)
    if missing:
        lacking = _missing(missing)
        problem = Problem(rule_id, "unknown", _("{title}: not enough data").format(title=rule.title.local()), lacking)
        return _base(rule, rule_id, ctx, "unknown", None, lacking, evidence, window, missing, [problem])
    value = _statistic(rule.statistic, values)
    evidence["measured"] = round(value, 3)
    if rule.relative_to:
        if not denominator:
            return _base(rule, rule_id, ctx, "unknown", None, _("{metric} is zero").format(metric=rule.relative_to),
                         evidence, window, [_("a non-zero {metric}").format(metric=rule.relative_to)])
        value = value / denominator
    ok = _OPS[rule.op](value, rule.threshold)
    what = _("{statistic} of {metric}").format(statistic=_(_STATISTICS[rule.statistic]), metric=rule.measures) + (
        f" / {rule.relative_to}" if rule.relative_to else "")
    why = _("{what} = {value} {unit} over {n} samples (needs {op} {threshold})").format(
        what=what, value=num(value), unit=rule.unit, n=len(values), op=rule.op, threshold=num(rule.threshold))
    hint = _STAT_HINTS.get(rule.measures)
    problems = [] if ok else [Problem(rule_id, "fail", _("{title} — measured {value} {unit}").format(
                                          title=rule.title.local().split(": ", 1)[-1], value=num(value),
                                          unit=rule.unit), _(hint) if hint else "", "school",
                                      min(1.0, abs(value - rule.threshold) / max(abs(rule.threshold), 1e-9)))]
    return _base(rule, rule_id, ctx, "pass" if ok else "fail", value, why, evidence, window, [], problems)


# -- Wi-Fi ---------------------------------------------------------------------------------------------
# The zone-by-zone judgement lives beside the zone samples it reads (agent/compliance/wifi_coverage.py).

def judge_wifi_coverage(rule: RuleBase, rule_id: str, ctx: Context) -> Finding:
    assert rule.zone_types is not None and rule.threshold is not None
    j = wifi_coverage.judge_coverage(rule, rule_id, lambda m: ctx.samples(m, rule), ctx.cfg, ctx.hours_text(rule))
    return _base(rule, rule_id, ctx, j.status, j.value, j.why, j.evidence, (ctx.now - rule.window, ctx.now),
                 j.missing, j.problems)


def judge_wifi_access(rule: RuleBase, rule_id: str, ctx: Context) -> Finding:
    assert rule.threshold is not None
    j = wifi_coverage.judge_access(rule, rule_id, lambda m: ctx.samples(m, rule), lambda v: percentile(v, 20),
                                   _("the last {span}").format(span=duration(rule.window)))
    return _base(rule, rule_id, ctx, j.status, j.value, j.why, j.evidence, (ctx.now - rule.window, ctx.now),
                 j.missing, j.problems)


# -- live classes --------------------------------------------------------------------------------------
# Classroom by classroom, link by link, beside the load history it reads (agent/compliance/live_class.py).

def judge_live_class(rule: RuleBase, rule_id: str, ctx: Context) -> Finding:
    assert rule.profile is not None and rule.threshold is not None
    lesson = ctx.in_school_hours if rule.hours == "school" else (lambda _t: True)
    inp = live_class.Inputs(ctx.cfg, ctx.store, ctx.topology, ctx.now, rule.window, lesson, ctx.hours_text(rule))
    j = live_class.judge(rule, rule_id, inp)
    return _base(rule, rule_id, ctx, j.status, j.value, j.why, j.evidence, (ctx.now - rule.window, ctx.now),
                 j.missing, j.problems)


# -- device ratio --------------------------------------------------------------------------------------

def judge_device_ratio(rule: RuleBase, rule_id: str, ctx: Context) -> Finding:
    assert rule.threshold is not None
    since = ctx.now - rule.window
    counts = [s for s in ctx.store.latest(rule.measures) if s.time >= since and isinstance(s.value, int | float)]
    enrol = ctx.cfg.school.enrolment
    missing = []
    if enrol is None or enrol.students + enrol.teachers == 0:
        missing.append(_("school.enrolment (students and teachers) in the configuration"))
    if not counts:
        missing.append(_("a count of learning devices ({metric}) from the last {span}").format(
            metric=rule.measures, span=duration(rule.window)))
    elif sum(float(s.value) for s in counts) == 0:
        # discovery and the learning SSIDs saw none: that is nothing seen, not a count of none
        missing.append(_("a learning device seen in the last {span} (discovery and the learning SSIDs, "
                         "discovery.learning.ssids, found none; check that they cover the classrooms)").format(
            span=duration(rule.window)))
    window = (since, ctx.now)
    if missing:
        return _base(rule, rule_id, ctx, "unknown", None, _missing(missing), {}, window, missing,
                     [Problem(rule_id, "unknown", _("learning devices per person cannot be counted"),
                              _missing(missing))])
    assert enrol is not None
    devices = sum(float(s.value) for s in counts)
    people = enrol.students + enrol.teachers
    ratio = devices / people
    evidence = {"devices": devices, "students": enrol.students, "teachers": enrol.teachers,
                "counted_at": max(s.time for s in counts)}
    why = _("{devices} learning devices for {people} students and teachers: {ratio} per person").format(
        devices=num(devices), people=people, ratio=f"{ratio:.2f}")
    if _OPS[rule.op](ratio, rule.threshold):
        return _base(rule, rule_id, ctx, "pass", round(ratio, 4), why, evidence, window)
    problem = Problem(rule_id, "fail", _("{devices} learning devices for {people} students and teachers "
                      "({ratio} per person)").format(devices=num(devices), people=people, ratio=f"{ratio:.2f}"),
                      _("check that discovery covers every classroom subnet, and the inventory of devices not yet "
                        "handed out"), "school", 1 - ratio / rule.threshold)
    return _base(rule, rule_id, ctx, "fail", round(ratio, 4), why, evidence, window, [], [problem])


# -- rules made of parts -------------------------------------------------------------------------------

JUDGES: dict[str, Callable[[RuleBase, str, Context], Finding]] = {
    "link-speed": judge_link_speed, "capacity": judge_capacity, "statistic": judge_statistic,
    "wifi-coverage": judge_wifi_coverage, "wifi-access": judge_wifi_access, "device-ratio": judge_device_ratio,
    "live-class": judge_live_class,
}


def judge(rule: Rule, ctx: Context) -> Finding:
    """The finding of one rule for the school (an all-of rule: its parts, each in the evidence)."""
    if rule.kind != "all-of":
        return JUDGES[rule.kind](rule, rule.id, ctx)
    parts = [JUDGES[p.kind](p, rule.part_id(p), ctx) for p in rule.parts]
    status = worst(p.status for p in parts)
    bad = [p for p in parts if p.status != "pass"]
    why = (_("all {n} parts pass").format(n=len(parts)) if not bad else
           _("{bad} of {n} parts do not pass: {parts}").format(
               bad=len(bad), n=len(parts),
               parts=listing(_("{part} ({status})").format(part=p.rule.rsplit(".", 1)[-1],
                                                             status=status_word(p.status)) for p in bad)))
    spans = [p.window for p in parts if p.window is not None]
    window = (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else None
    return _base(rule, rule.id, ctx, status, None, why, {"parts": [p.to_dict() for p in parts]}, window,
                 [m for p in parts for m in p.missing], [x for p in parts for x in p.problems])
