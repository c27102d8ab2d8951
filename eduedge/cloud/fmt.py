"""How values read on the page: times in the city's zone, durations, numbers with units, and evidence in words.

An agent's evidence is a nested dict (agent/compliance/kinds.py); the page shows it as labelled lines,
never as JSON: times become local dates, lists of numbers a min/median/max line, nested parts their own
indented lines, empty values nothing. Keys the catalogue names (`ev.*`) get its words; others are
shown as the agent named them, with underscores as spaces. The agent's sentences are read into the page's
language (agent_words.py).

>>> from zoneinfo import ZoneInfo
>>> f = Fmt("zh", ZoneInfo("Asia/Shanghai"))
>>> f.time(0.0), f.duration(5400), f.number(1234.5, "Mbit/s"), f.number(None, "Mbit/s")
('1970-01-01 08:00', '1.5 小时', '1,234.5 Mbit/s', '-')
>>> [(x.label, x.text) for x in f.evidence({"tests": {"count": 4, "values": [40.0, 42.0, 42.0, 63.0]},
...                                          "why": "tests show 42", "rule": {"title": "x"}, "links": []})]
[('测试', ''), ('次数', '4'), ('测试结果', '最低 40，中位 42，最高 63'), ('采集端说明', 'tests show 42')]
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from eduedge.cloud.agent_words import translate
from eduedge.cloud.i18n import MESSAGES, text

TIME_KEYS = {"t", "time", "from", "to", "first_time", "last_time", "opened", "since", "started", "received"}
SKIP = {"rule", "problems", "signal", "capacity", "source"}      # shown elsewhere on the page, or settings
LABELS = {"count": "ev.count", "values": "ev.values", "statistic": "ev.statistic", "window": "ev.window",
          "gateway_port": "ev.gateway_port", "decided_by": "ev.decided_by", "zones": "ev.zones", "links": "ev.links",
          "missing": "ev.missing", "why": "ev.why", "uplink": "ev.uplink", "method": "ev.method",
          "speed_mbps": "ev.speed", "ceiling_mbps": "ev.ceiling", "tests": "ev.tests"}


@dataclass
class Line:
    label: str
    text: str
    depth: int = 0


class Fmt:
    def __init__(self, lang: str, zone: ZoneInfo):
        self.lang = lang
        self.zone = zone

    def _(self, key: str, **values: object) -> str:
        return text(self.lang, key, **values)

    def time(self, t: float | None, seconds: bool = False) -> str:
        if t is None:
            return "-"
        return dt.datetime.fromtimestamp(t, self.zone).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else ""))

    def zone_name(self) -> str:
        off = dt.datetime.now(self.zone).strftime("%z")
        return f"{self.zone.key} (UTC{off[:3]}:{off[3:]})"

    def duration(self, s: float | None) -> str:
        if s is None:
            return self._("offline.never")
        for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
            if s >= n:
                return self._(f"dur.{unit}", n=f"{s / n:.1f}")
        return self._("dur.s", n=f"{s:.0f}")

    def number(self, v: Any, unit: str | None = None) -> str:
        if v is None:
            return "-"
        if isinstance(v, bool) or not isinstance(v, int | float):
            return str(v)
        body = f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}".rstrip("0").rstrip(".")
        if not unit:
            return body
        words = MESSAGES[self.lang].get(f"unit.{unit}", unit)     # the packs' units, in the page's language
        return f"{body}{words}" if words.startswith("%") else f"{body} {words}"

    def status(self, s: str) -> str:
        key = f"status.{s}"
        return self._(key) if key in MESSAGES[self.lang] else s

    def state(self, s: str) -> str:
        return self._(f"state.{s}")

    def school_type(self, t: str | None) -> str:
        if not t:
            return "-"
        key = f"type.{t}"
        return self._(key) if key in MESSAGES[self.lang] else t

    def op(self, op: str | None) -> str:
        return self._(f"op.{op or '>='}")

    def label(self, key: str) -> str:
        return self._(LABELS[key]) if key in LABELS else key.replace("_", " ")

    def value(self, key: str, v: Any) -> str:
        """One leaf value in words."""
        if v is None or v == [] or v == {}:
            return ""
        if key in TIME_KEYS and isinstance(v, int | float):
            return self.time(v)
        if isinstance(v, bool):
            return "✓" if v else "✗"
        if isinstance(v, int | float):
            unit = "Mbit/s" if key.endswith("_mbps") else "%" if key.endswith("_percent") else (
                "s" if key.endswith("_s") else None)
            return self.number(v, unit)
        if isinstance(v, list) and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v):
            if len(v) <= 3:
                return ", ".join(self.number(x) for x in v)
            return self._("ev.range", lo=self.number(min(v)), mid=self.number(statistics.median(v)),
                          hi=self.number(max(v)))
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return self._("join.clause").join(translate(x, self.lang) for x in v)
        if isinstance(v, str):
            return translate(v, self.lang)          # the agent's words, in the page's language where it can
        return str(v)

    def evidence(self, ev: dict[str, Any] | None, depth: int = 0) -> list[Line]:
        """Evidence as labelled lines (a window as one line from .. to)."""
        out: list[Line] = []
        for key, v in (ev or {}).items():
            if key in SKIP or v is None or v == [] or v == {} or v == "":
                continue
            if key == "window" and isinstance(v, dict) and {"from", "to"} <= set(v):
                out.append(Line(self.label(key), f"{self.time(v['from'])} – {self.time(v['to'])}", depth))
            elif isinstance(v, dict):
                out.append(Line(self.label(key), "", depth))
                out += self.evidence(v, depth + 1)
            elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                out.append(Line(self.label(key), "", depth))
                for item in v[:50]:
                    name = item.get("zone") or item.get("device") or item.get("name") or item.get("label") or ""
                    parts = [f"{self.label(k)} {self.value(k, x)}" for k, x in item.items()
                             if k not in ("zone", "device", "name", "label") and not isinstance(x, dict | list)
                             and self.value(k, x)]
                    out.append(Line(str(name), ", ".join(parts), depth + 1))
            else:
                words = self.value(key, v)
                if words:
                    out.append(Line(self.label(key), words, depth))
        return out
