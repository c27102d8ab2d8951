"""`eduedge cloud serve`: the city's page and JSON API, server-rendered, no scripts, nothing fetched from elsewhere.

Pages (HTML), with their JSON twins:

- `/?district=&type=` (`/api/city?...`): region rules (the broadband access rate), schools per rule status,
  and the schools with their status per rule; `/api/schools?...` is that table alone;
- `/school/ID` (`/api/schools/ID`): one school - findings with evidence, history per rule, events, devices,
  gaps, commands;
- `/offline` (`/api/offline`): schools offline, silent or never heard from longer than `city.offline_after`;
- `/gaps` (`/api/gaps`): per school, the seq holes (open, missing, session) and the gaps the agents declared;
- `/ingest` (`/api/stats`): what the receivers counted, and refused messages with the reason.

Filters are plain GET forms, so every view is a URL a person can bookmark or send.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from eduedge.cloud.city import STATUS_ORDER, city_report
from eduedge.cloud.config import CloudConfig
from eduedge.cloud.db import Db, connect
from eduedge.cloud.views import gaps, ingest_stats, offline, school_detail, schools

log = logging.getLogger("eduedge.cloud.web")

COLOURS = {"pass": "#1a7f37", "fail": "#cf222e", "unknown": "#9a6700", "port-limited": "#8250df", "none": "#8c959f",
           "online": "#1a7f37", "offline": "#cf222e", "silent": "#9a6700", "never": "#57606a",
           "open": "#9a6700", "missing": "#cf222e"}
CSS = """
body{font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei","DejaVu Sans",sans-serif;margin:20px;color:#1f2328;
background:#fff} h1{font-size:24px;margin:0 0 4px} h2{font-size:18px;margin:22px 0 8px;border-bottom:1px solid #d0d7de}
nav a{margin-right:14px} .meta{color:#57606a} table{border-collapse:collapse} td,th{padding:3px 8px;
border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top} th{background:#f6f8fa}
.badge{display:inline-block;min-width:64px;text-align:center;color:#fff;font-weight:bold;border-radius:4px;
padding:1px 6px;font-size:13px} .rule{font-family:"DejaVu Sans Mono",monospace;font-size:13px}
pre{background:#f6f8fa;padding:6px;max-width:900px;white-space:pre-wrap;font-size:12px;margin:0}
form{margin:10px 0} select,button{font-size:14px;margin-right:8px}
"""


def _t(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _dur(s: float | None) -> str:
    if s is None:
        return "never heard from"
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= n:
            return f"{s / n:.1f} {unit}"
    return f"{s:.0f} s"


def badge(status: str, label: str | None = None) -> str:
    colour = COLOURS.get(status, "#57606a")
    return f'<span class="badge" style="background:{colour}">{escape((label or status).upper())}</span>'


def page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<style>{CSS}</style></head><body><nav><a href="/">City</a><a href="/offline">Offline schools</a>'
            f'<a href="/gaps">Gaps</a><a href="/ingest">Ingest</a></nav>{body}'
            f'<p class="meta">eduedge city cloud - {escape(_t(time.time()))}</p></body></html>')


def _select(name: str, options: list[str], chosen: str | None, everything: str) -> str:
    opts = [f'<option value="">{escape(everything)}</option>'] + [
        f'<option value="{escape(o)}"{" selected" if o == chosen else ""}>{escape(o)}</option>' for o in options]
    return f'<select name="{name}">{"".join(opts)}</select>'


def city_page(rep: dict[str, Any], district: str | None, school_type: str | None) -> str:
    parts = ["<h1>Schools of the city</h1>",
             f'<p class="meta">{len(rep["schools"])} schools shown; '
             + ", ".join(f"{n} {s}" for s, n in sorted(rep["states"].items())) + "</p>"]
    parts.append("<h2>Rules only the city can judge</h2><table><tr><th>rule</th><th>region</th><th>status</th>"
                 "<th>value</th><th>threshold</th><th>why</th></tr>")
    for f in rep["region_findings"]:
        value = "-" if f["value"] is None else f"{f['value']:g} %"
        without = f["evidence"].get("without_access") or []
        why = escape(f["evidence"].get("why", "")) + (
            f'<br><span class="meta">without access: {escape(", ".join(without[:20]))}'
            f'{" ..." if len(without) > 20 else ""}</span>' if without else "")
        parts.append(f'<tr><td class="rule">{escape(f["rule"])}</td><td>{escape(f["region"])}</td>'
                     f'<td>{badge(f["status"])}</td><td>{value}</td><td>{f["threshold"]:g} %</td><td>{why}</td></tr>')
    parts.append("</table>")
    parts.append("<h2>Schools per rule status</h2><table><tr><th>rule</th>"
                 + "".join(f"<th>{badge(s)}</th>" for s in STATUS_ORDER) + "</tr>")
    for rule, counts in rep["status_counts"].items():
        parts.append(f'<tr><td class="rule">{escape(rule)}</td>'
                     + "".join(f"<td>{counts.get(s, '')}</td>" for s in STATUS_ORDER) + "</tr>")
    parts.append("</table>")
    parts.append('<h2>Schools</h2><form method="get" action="/">'
                 + _select("district", rep["districts"], district, "every district")
                 + _select("type", rep["types"], school_type, "every type")
                 + '<button type="submit">Filter</button></form>')
    cols = rep["columns"]
    parts.append("<table><tr><th>school</th><th>district</th><th>type</th><th>state</th>"
                 + "".join(f'<th class="rule">{escape(c)}</th>' for c in cols) + "</tr>")
    for r in rep["schools"]:
        link = f'<a href="/school/{quote(r["school"])}">{escape(r["name"] or r["school"])}</a>'
        cells = "".join(f"<td>{badge(r['rules'][c]) if c in r['rules'] else ''}</td>" for c in cols)
        parts.append(f'<tr><td>{link}<br><span class="meta">{escape(r["school"])}</span></td>'
                     f'<td>{escape(r["district"] or "-")}</td><td>{escape(r["type"] or "-")}</td>'
                     f'<td>{badge(r["state"])}</td>{cells}</tr>')
    parts.append("</table>")
    return page("City schools", "".join(parts))


def _pre(value: Any) -> str:
    return f"<pre>{escape(json.dumps(value, indent=1, ensure_ascii=False))}</pre>" if value else ""


def school_page(d: dict[str, Any]) -> str:
    parts = [f'<h1>{escape(d["name"] or d["school"])}</h1><p class="meta">{escape(d["school"])} - '
             f'{escape(d["city"])}/{escape(d["district"] or "-")} - {escape(d["type"] or "type unknown")} - '
             f'agent {escape(d["agent"] or "-")} {escape(d.get("agent_version") or "")} - {badge(d["state"])} '
             f'last heard {escape(_t(d["last_seen"]))}</p>', "<h2>Findings</h2>"]
    if not d["findings"]:
        parts.append('<p class="meta">no findings received yet</p>')
    else:
        parts.append("<table><tr><th>rule</th><th>subject</th><th>status</th><th>value</th><th>threshold</th>"
                     "<th>judged</th><th>evidence</th></tr>")
        for f in d["findings"]:
            parts.append(f'<tr><td class="rule">{escape(f["rule"])}</td><td>{escape(f["subject"])}</td>'
                         f'<td>{badge(f["status"])}</td><td>{escape(str(f["value"]))} {escape(f["unit"] or "")}</td>'
                         f'<td>{escape(str(f["threshold"]))}</td><td>{escape(_t(f["t"]))}</td>'
                         f'<td>{_pre(f["evidence"])}</td></tr>')
        parts.append("</table>")
    parts.append("<h2>History</h2><table><tr><th>rule</th><th>changes of status</th></tr>")
    for rule, changes in sorted(d["history"].items()):
        steps = " &rarr; ".join(f'{badge(c["status"])} <span class="meta">{escape(_t(c["t"]))}</span>'
                                for c in changes)
        parts.append(f'<tr><td class="rule">{escape(rule)}</td><td>{steps}</td></tr>')
    parts.append("</table><h2>Events</h2><table><tr><th>time</th><th>severity</th><th>kind</th><th>message</th></tr>")
    for e in d["events"]:
        parts.append(f'<tr><td>{escape(_t(e["t"]))}</td><td>{escape(e["severity"])}</td>'
                     f'<td class="rule">{escape(e["kind"])}</td><td>{escape(e["message"])}</td></tr>')
    parts.append("</table>" + _gap_table(d["gaps"]))
    parts.append(f'<h2>Devices ({len(d["devices"])})</h2><p class="meta">'
                 + escape(", ".join(x["device"] for x in d["devices"][:200])) + "</p>")
    parts.append("<h2>Commands</h2><table><tr><th>sent</th><th>command</th><th>status</th><th>answer</th></tr>")
    for c in d["commands"]:
        parts.append(f'<tr><td>{escape(_t(c["sent"] or c["answered"]))}</td><td>{escape(c["command"])} '
                     f'{escape(json.dumps(c["args"]) if c["args"] else "")}</td><td>{badge(c["status"])}</td>'
                     f'<td>{escape(c["reason"] or "")}{_pre(c["result"])}</td></tr>')
    parts.append("</table>")
    return page(d["name"] or d["school"], "".join(parts))


def _gap_table(rows: list[dict[str, Any]]) -> str:
    out = ["<h2>Gaps</h2><table><tr><th>school</th><th>agent</th><th>seq range</th><th>late</th><th>open</th>"
           "<th>missing</th><th>session seqs</th><th>declared by the agent</th></tr>"]
    for g in rows:
        declared = "<br>".join(f'{escape(x["reason"])}: {x["messages"]} {escape(x["dropped"])} messages '
                               f'({x["samples"]} items) {escape(_t(x["first_time"]))} .. {escape(_t(x["last_time"]))}'
                               for x in g["declared"])
        missing = badge("missing", str(g["missing_seqs"])) if g["missing_seqs"] else "0"
        out.append(f'<tr><td><a href="/school/{quote(g["school"])}">{escape(g["school"])}</a></td>'
                   f'<td>{escape(g["agent"])}</td><td>{g["floor"]} .. {g["hwm"]}</td><td>{g["late"]}</td>'
                   f'<td>{g["open_seqs"]}</td><td>{missing}</td><td>{g["session_seqs"]}</td><td>{declared}</td></tr>')
    return "".join(out) + "</table>"


def offline_page(rows: list[dict[str, Any]], after: float) -> str:
    parts = [f"<h1>Offline schools</h1><p class=\"meta\">offline, silent or never heard from for longer than "
             f"{escape(_dur(after))}: {len(rows)}</p><table><tr><th>school</th><th>district</th><th>state</th>"
             f"<th>since</th><th>for</th><th>why</th></tr>"]
    for r in rows:
        parts.append(f'<tr><td><a href="/school/{quote(r["school"])}">{escape(r["name"] or r["school"])}</a></td>'
                     f'<td>{escape(r["district"] or "-")}</td><td>{badge(r["state"])}</td>'
                     f'<td>{escape(_t(r["since"]))}</td><td>{escape(_dur(r["for_s"]))}</td>'
                     f'<td>{escape(r["offline_reason"] or "")}</td></tr>')
    return page("Offline schools", "".join(parts) + "</table>")


def ingest_page(stats: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{escape(k)}</td><td>{v}</td></tr>" for k, v in sorted(stats["totals"].items()))
    rej = "".join(f'<tr><td>{escape(_t(r["received"]))}</td><td>{escape(r["reason"])}</td>'
                  f'<td>{escape(r["topic"])}</td><td>{r["size"]}</td><td>{escape(r["detail"][:300])}</td></tr>'
                  for r in stats["recent_rejects"])
    return page("Ingest", f"<h1>Ingest</h1><table><tr><th>counter</th><th>value</th></tr>{rows}</table>"
                          f"<h2>Refused messages (newest)</h2><table><tr><th>received</th><th>reason</th><th>topic</th>"
                          f"<th>bytes</th><th>detail</th></tr>{rej}</table>")


class CityWeb:
    """The routes over one database connection (serialised: the pages are small, the city's readers few)."""

    def __init__(self, cfg: CloudConfig, db: Db | None = None):
        self.cfg = cfg
        self.db = db or connect(cfg.storage)
        self.lock = threading.Lock()

    def handle(self, path: str, query: dict[str, str]) -> tuple[int, str, str]:
        """(HTTP status, content type, body) for a GET."""
        now = time.time()
        district, school_type = query.get("district") or None, query.get("type") or None
        routes: dict[str, Callable[[], Any]] = {
            "/api/city": lambda: city_report(self.db, self.cfg, now, district, school_type),
            "/api/schools": lambda: schools(self.db, self.cfg, now, district, school_type),
            "/api/offline": lambda: offline(self.db, self.cfg, now),
            "/api/gaps": lambda: gaps(self.db, self.cfg, now),
            "/api/stats": lambda: ingest_stats(self.db)}
        with self.lock:
            if path in routes:
                return 200, "application/json", json.dumps(routes[path](), ensure_ascii=False)
            if path.startswith("/api/schools/"):
                d = school_detail(self.db, self.cfg, path.rsplit("/", 1)[1], now)
                return (404, "application/json", '{"error": "no such school"}') if d is None else (
                    200, "application/json", json.dumps(d, ensure_ascii=False))
            if path == "/":
                return 200, "text/html", city_page(city_report(self.db, self.cfg, now, district, school_type),
                                                   district, school_type)
            if path.startswith("/school/"):
                d = school_detail(self.db, self.cfg, path.split("/", 2)[2], now)
                return (404, "text/html", page("Not found", "<h1>No such school</h1>")) if d is None else (
                    200, "text/html", school_page(d))
            if path == "/offline":
                return 200, "text/html", offline_page(offline(self.db, self.cfg, now), self.cfg.city.offline_after)
            if path == "/gaps":
                return 200, "text/html", page("Gaps", "<h1>Gaps</h1>" + _gap_table(gaps(self.db, self.cfg, now)))
            if path == "/ingest":
                return 200, "text/html", ingest_page(ingest_stats(self.db))
        return 404, "text/html", page("Not found", "<h1>Not found</h1>")


def make_server(web: CityWeb, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            try:
                status, ctype, body = web.handle(url.path, query)
            except Exception:
                log.exception("GET %s failed", self.path)
                status, ctype, body = 500, "text/plain", "internal error; see the server's log"
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", f"{ctype}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("%s " + fmt, self.client_address[0], *args)

    return ThreadingHTTPServer((host, port), Handler)

