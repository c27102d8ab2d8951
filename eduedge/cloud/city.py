"""What only the city can judge: rules across schools (`scope: region`), counts per rule status, offline schools.

Region rules come from the same rule packs the schools use (eduedge/config/standards/, `kind: region`), with the
city's overrides. Each is judged for the whole city and for each district, over the schools of the types
the rule applies to. What a region rule measures:

- `cloud.schools_connected_percent` (`hebei-2019.access-rate`, >= 98 %): the share of the schools that have
  broadband access, taken as: the school's agent reached the city cloud within `city.access_window`. The
  schools counted are those that reported and those on the roster (`schools:` in the configuration) that
  never did - without a roster, a school that never connected is invisible and the share is an upper
  bound, and the finding says so. A school whose type is unknown (no birth, not on the roster) is not
  counted, and is listed.
- anything else (`cloud.county_link_mbps`, ...): `unknown`, naming what the cloud does not measure.

>>> f = RegionFinding("hebei-2019.access-rate", "yinchuan", "fail", 97.0, 98.0, "percent of schools", {})
>>> f.to_dict()["value"]
97.0
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from eduedge.agent.compliance.packs import Rule
from eduedge.cloud.config import CloudConfig
from eduedge.cloud.db import Db
from eduedge.cloud.i18n import text
from eduedge.cloud.views import NONE, offline, rules_of, school_list, schools

STATUS_ORDER = ("fail", "port-limited", "unknown", NONE, "pass")


@dataclass
class RegionFinding:
    rule: str
    region: str                      # a city, or city/district
    status: str
    value: float | None
    threshold: float | None
    unit: str
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _compare(value: float, op: str, threshold: float) -> bool:
    return {">=": value >= threshold, ">": value > threshold, "<=": value <= threshold, "<": value < threshold}[op]


def access_why(ev: dict[str, Any], lang: str) -> str:
    """The access rule's explanation in `lang`, from its evidence's counts (the page shows it in the reader's)."""
    if not ev["schools"]:
        return text(lang, "region.none")
    words = text(lang, "region.reached", n=ev["with_access"], total=ev["schools"],
                 days=f"{ev['access_window_s'] / 86400:g}")
    return words if ev["roster"] else words + text(lang, "join.clause") + text(lang, "region.no_roster")


def _access(rule: Rule, region: str, rows: list[dict[str, Any]], cfg: CloudConfig, now: float) -> RegionFinding:
    counted = [r for r in rows if r["type"] and rule.applies_to_type(r["type"])]
    unknown_type = sorted(r["school"] for r in rows if not r["type"])
    window = cfg.city.access_window
    without = sorted(r["school"] for r in counted if r["last_seen"] is None or now - r["last_seen"] > window)
    evidence: dict[str, Any] = {
        "schools": len(counted), "with_access": len(counted) - len(without), "without_access": without,
        "access_window_s": window, "roster": bool(cfg.schools), "unknown_type": unknown_type}
    evidence["why"] = access_why(evidence, "en")
    if not counted:
        return RegionFinding(rule.id, region, "unknown", None, rule.threshold, rule.unit, evidence)
    share = round(100.0 * (len(counted) - len(without)) / len(counted), 2)
    assert rule.threshold is not None
    status = "pass" if _compare(share, rule.op, rule.threshold) else "fail"
    return RegionFinding(rule.id, region, status, share, rule.threshold, rule.unit, evidence)


def judge_region(rule: Rule, region: str, rows: list[dict[str, Any]], cfg: CloudConfig, now: float) -> RegionFinding:
    if rule.measures == "cloud.schools_connected_percent":
        return _access(rule, region, rows, cfg, now)
    return RegionFinding(rule.id, region, "unknown", None, rule.threshold, rule.unit,
                         {"why": f"the city cloud has no measurement of {rule.measures}", "missing": [rule.measures]})


def region_findings(db: Db, cfg: CloudConfig, now: float | None = None) -> list[RegionFinding]:
    """Each region rule judged per city and per district of it."""
    now = time.time() if now is None else now
    rows = school_list(db, cfg, now)
    regions: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        regions.setdefault(r["city"], []).append(r)
        if r["district"]:
            regions.setdefault(f"{r['city']}/{r['district']}", []).append(r)
    out = []
    for rule in rules_of(cfg).rules:
        if rule.scope == "region":
            out += [judge_region(rule, region, members, cfg, now) for region, members in sorted(regions.items())]
    return out


def status_counts(table: dict[str, Any]) -> dict[str, dict[str, int]]:
    """{rule: {status: schools}} over the rows of `views.schools` (filters applied there)."""
    counts: dict[str, Counter[str]] = {c: Counter() for c in table["columns"]}
    for r in table["schools"]:
        for rule, status in r["rules"].items():
            counts[rule][status] += 1
    return {rule: {s: c[s] for s in STATUS_ORDER if c[s]} for rule, c in counts.items()}


def city_report(db: Db, cfg: CloudConfig, now: float | None = None, district: str | None = None,
                school_type: str | None = None) -> dict[str, Any]:
    """Everything the city page and `eduedge cloud judge` show."""
    now = time.time() if now is None else now
    table = schools(db, cfg, now, district, school_type)
    states = Counter(r["state"] for r in table["schools"])
    return {"time": now, "region_findings": [f.to_dict() for f in region_findings(db, cfg, now)],
            "status_counts": status_counts(table), "states": dict(states), "offline": offline(db, cfg, now),
            "offline_after_s": cfg.city.offline_after, **table}
