"""The school's compliance report as one self-contained HTML file: no scripts, fonts or images from
anywhere; the charts are inline SVG drawn here.

It shows the school, every rule with its status and why, the problems ranked by impact, and three
charts from the store: the WAN's bandwidth over the last day (host.if_in_bps / host.if_out_bps of the
port with role=wan), Wi-Fi clients per zone over the last day (wifi.zone_clients, tags zone) and the
compliance history (every change of status the daemon reported, over the last 30 days).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from eduedge.agent.compliance.findings import STATUSES, Finding, Problem, status_label, status_word
from eduedge.agent.config import AgentConfig, school_type_word
from eduedge.agent.samplestore import SampleStore
from eduedge.core.i18n import _, language

from .packs import RuleSet

DAY = 86400.0
HISTORY_DAYS = 30
_COLOURS = {"pass": "#1a7f37", "fail": "#cf222e", "unknown": "#9a6700", "port-limited": "#8250df",
            "none": "#d0d7de"}


@dataclass
class ChartData:
    """What the charts draw, read from the store while it is open."""

    start: float
    end: float
    wan_in: list[tuple[float, float]] = field(default_factory=list)
    wan_out: list[tuple[float, float]] = field(default_factory=list)
    wifi_clients: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    history: dict[str, list[tuple[float, str]]] = field(default_factory=dict)


def chart_data(store: SampleStore, now: float, findings: Sequence[Finding]) -> ChartData:
    """The last day's WAN rates and Wi-Fi clients, and 30 days of status changes (plus the current status)."""
    data = ChartData(now - DAY, now)
    for metric, target in (("host.if_in_bps", data.wan_in), ("host.if_out_bps", data.wan_out)):
        target += [(s.time, float(s.value)) for s in store.history(metric, now - DAY, now)
                   if s.tags.get("role") == "wan" and isinstance(s.value, int | float)]
    clients: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for s in store.history("wifi.zone_clients", now - DAY, now):
        if isinstance(s.value, int | float):
            clients[s.tags.get("zone", s.device)].append((s.time, float(s.value)))
    data.wifi_clients = dict(sorted(clients.items()))
    history: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for c in store.status_log(now - HISTORY_DAYS * DAY):
        history[c.rule].append((c.time, c.new))
    for f in findings:
        history[f.rule].append((f.time, f.status))
    data.history = {k: sorted(v) for k, v in sorted(history.items())}
    return data


def _clock(t: float, tz: str, fmt: str = "%H:%M") -> str:
    return datetime.fromtimestamp(t, ZoneInfo(tz)).strftime(fmt)


def _nice_max(v: float) -> float:
    """The smallest 1-2-5 step at or above `v` (the top of a y axis)."""
    if v <= 0:
        return 1.0
    step = 1.0
    while step * 10 <= v:
        step *= 10
    while step > v:
        step /= 10
    for m in (1, 2, 5, 10):
        if step * m >= v:
            return step * m
    return step * 10


def _line_chart(series: dict[str, list[tuple[float, float]]], start: float, end: float, tz: str, unit: str,
                scale: float = 1.0, empty: str = "") -> str:
    w, h, left, bottom, top, right = 860, 220, 60, 30, 12, 160
    pw, ph = w - left - right, h - top - bottom
    points = [v * scale for pts in series.values() for _, v in pts]
    if not points:
        return '<p class="empty">' + escape(empty or _("no data")) + "</p>"
    ymax = _nice_max(max(points))

    def x(t: float) -> float:
        return left + pw * (t - start) / (end - start)

    def y(v: float) -> float:
        return top + ph * (1 - v * scale / ymax)

    out = [f'<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img">',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#f6f8fa" stroke="#d0d7de"/>']
    for i in range(5):
        v = ymax * i / 4
        yy = top + ph * (1 - i / 4)
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#d0d7de"/>')
        out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{v:g}</text>')
    for i in range(9):
        t = start + (end - start) * i / 8
        out.append(f'<text x="{x(t):.1f}" y="{h - 10}" text-anchor="middle">{_clock(t, tz)}</text>')
    out.append(f'<text x="12" y="{top + ph / 2:.0f}" transform="rotate(-90 12 {top + ph / 2:.0f})" '
               f'text-anchor="middle">{escape(unit)}</text>')
    palette = ["#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e", "#57606a"]
    for i, (name, pts) in enumerate(series.items()):
        colour = palette[i % len(palette)]
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in sorted(pts))
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        ly = top + 14 + 18 * i
        out.append(f'<line x1="{left + pw + 12}" x2="{left + pw + 32}" y1="{ly - 4}" y2="{ly - 4}" '
                   f'stroke="{colour}" stroke-width="3"/>')
        out.append(f'<text x="{left + pw + 38}" y="{ly}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _history_chart(history: dict[str, list[tuple[float, str]]], end: float, tz: str) -> str:
    if not history:
        return '<p class="empty">' + escape(_("no judgements yet")) + "</p>"
    start = end - HISTORY_DAYS * DAY
    label_w, pw, row = 330, 480, 20
    h = row * len(history) + 30
    width = label_w + pw + 40      # room for the last date under the axis
    out = [f'<svg viewBox="0 0 {width} {h}" width="{width}" height="{h}" role="img">']
    for i, (rule, changes) in enumerate(history.items()):
        yy = 4 + row * i
        out.append(f'<text x="0" y="{yy + 13}">{escape(rule)}</text>')
        out.append(f'<rect x="{label_w}" y="{yy}" width="{pw}" height="{row - 6}" fill="{_COLOURS["none"]}"/>')
        for j, (t, status) in enumerate(changes):
            t0 = max(t, start)
            t1 = changes[j + 1][0] if j + 1 < len(changes) else end
            x0 = label_w + pw * (t0 - start) / (end - start)
            x1 = label_w + pw * (max(t1, t0) - start) / (end - start)
            title = _("{status} from {time}").format(status=_word(status), time=_clock(t, tz, "%Y-%m-%d %H:%M"))
            out.append(f'<rect x="{x0:.1f}" y="{yy}" width="{max(x1 - x0, 3):.1f}" height="{row - 6}" '
                       f'fill="{_COLOURS.get(status, _COLOURS["none"])}"><title>{escape(title)}</title></rect>')
    for i in range(7):
        t = start + (end - start) * i / 6
        out.append(f'<text x="{label_w + pw * i / 6:.1f}" y="{h - 6}" text-anchor="middle">'
                   f'{_clock(t, tz, "%m-%d")}</text>')
    out.append("</svg>")
    return "\n".join(out)


_CSS = """
body{font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei","DejaVu Sans",sans-serif;margin:24px;color:#1f2328;
 max-width:1100px}
h1{font-size:24px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
.meta{color:#57606a} table{border-collapse:collapse;width:100%} td,th{padding:4px 8px;vertical-align:top;
 text-align:left;border-bottom:1px solid #eaeef2;font-size:14px}
.badge{display:inline-block;min-width:104px;text-align:center;color:#fff;font-weight:bold;border-radius:4px;
 padding:1px 6px;font-size:13px}
.part td{color:#57606a} .rule{font-family:"DejaVu Sans Mono",monospace;white-space:nowrap}
.summary span{margin-right:14px;font-weight:bold} svg text{font-size:12px;fill:#1f2328}
.empty{color:#57606a;font-style:italic} ol li{margin:4px 0}
"""


def _word(status: str) -> str:
    return status_word(status) if status in STATUSES else status


def _badge(status: str) -> str:
    return f'<span class="badge" style="background:{_COLOURS[status]}">{escape(status_label(status))}</span>'


def render_html(cfg: AgentConfig, rules: RuleSet, findings: Sequence[Finding], problems: Sequence[Problem],
                when: float, source: str, devices: Sequence[dict[str, Any]], charts: ChartData) -> str:
    """The whole report as one HTML document."""
    s, tz = cfg.school, cfg.standards.school_hours.timezone
    counts = {k: sum(1 for f in findings if f.status == k) for k in STATUSES}
    by_rule = {f.rule: f for f in findings}
    rows = []
    for pack in rules.packs:
        english = "" if language() == "zh" else f" · {escape(pack.title.en)}"
        rows.append(f'<tr><th colspan="3">{escape(pack.pack)} · {escape(pack.title.zh)}{english}</th></tr>')
        for rule in pack.rules:
            f = by_rule.get(rule.id)
            if f is None:
                continue
            proposal = " <em>" + escape(_("(proposal)")) + "</em>" if rule.proposal else ""
            rows.append(f'<tr><td>{_badge(f.status)}</td><td class="rule">{escape(rule.id)}{proposal}</td>'
                        f'<td>{escape(f.why)}</td></tr>')
            for part in f.evidence.get("parts", []):
                rows.append(f'<tr class="part"><td>{_badge(part["status"])}</td><td class="rule">&nbsp;&nbsp;.'
                            f'{escape(part["rule"].rsplit(".", 1)[-1])}</td>'
                            f'<td>{escape(part["evidence"].get("why", ""))}</td></tr>')
    items = "".join(f"<li>{_badge(p.status)} {escape(p.line())} <span class=\"rule\">[{escape(p.rule)}]</span></li>"
                    for p in problems) or "<li>" + escape(_("none")) + "</li>"
    down = [d for d in devices if not d.get("ok")]
    device_line = (_("{answered} of {total} devices answered").format(answered=len(devices) - len(down),
                                                                      total=len(devices)) if devices else "")
    bandwidth = _line_chart({_("in (download)"): charts.wan_in, _("out (upload)"): charts.wan_out}, charts.start,
                            charts.end, tz, "Mbit/s", 1e-6, _("no WAN rate data in the last day"))
    clients = _line_chart(charts.wifi_clients, charts.start, charts.end, tz, _("clients"),
                          empty=_("no Wi-Fi client counts (wifi.zone_clients) in the last day"))
    summary = " ".join(f'<span style="color:{_COLOURS[k]}">{n} {escape(status_word(k))}</span>'
                       for k, n in counts.items())
    where = s.city + ("/" + s.district if s.district else "")
    meta = _("school {id} · {type} · {where} · checked {when} ({source})").format(
        id=s.id, type=school_type_word(s.type), where=where, when=_clock(when, tz, "%Y-%m-%d %H:%M:%S %Z"),
        source=_("live") if source == "live" else source)
    meta += f" · {device_line}" if device_line else ""
    lang = "zh-CN" if language() == "zh" else "en"
    # (Babel reads no call inside an f-string: every heading is translated here)
    heads = {"standards": _("Standards"), "problems": _("Problems, most important first"),
             "wan": _("WAN bandwidth, last 24 hours"), "wifi": _("Wi-Fi clients per zone, last 24 hours"),
             "history": _("Compliance history, last {days} days").format(days=HISTORY_DAYS),
             "proposal": _("(proposal): the threshold is the project's proposal; `eduedge rules` shows every rule's "
                           "source. Generated by eduedge.")}
    heads = {k: escape(v) for k, v in heads.items()}
    return f"""<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8"><title>eduedge — {escape(s.name)}</title>
<style>{_CSS}</style></head><body>
<h1>{escape(s.name)}</h1>
<p class="meta">{escape(meta)}</p>
<p class="summary">{summary}</p>
<h2>{heads["standards"]}</h2>
<table>{''.join(rows)}</table>
<h2>{heads["problems"]}</h2>
<ol>{items}</ol>
<h2>{heads["wan"]}</h2>
{bandwidth}
<h2>{heads["wifi"]}</h2>
{clients}
<h2>{heads["history"]}</h2>
{_history_chart(charts.history, charts.end, tz)}
<p class="meta">{heads["proposal"]}</p>
</body></html>
"""
