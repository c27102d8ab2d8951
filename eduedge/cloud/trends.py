"""Trends for the charts, read from the rollups the receiver keeps (cloud/rollups.py), grouped into the city's days.

- `access_trend`: the city's (and each district's) broadband access rate per day - of the schools a region
  rule counts, the share heard from within `city.access_window` before each day's end;
- `school_trends`: one school's last 30 days - capacity tests (min/mean/max of `wan.down_mbps`), WAN
  utilisation (mean and peak of the gateway's WAN interface against the school's best capacity test),
  Wi-Fi coverage per zone (good client-minutes / client-minutes), availability (hours heard / hours).

Every series is a list of (day, value) with `day` the city's local date as YYYY-MM-DD.

A sample at 17:30 UTC on 1 May is heard on 2 May in Shanghai (01:30), on 1 May in UTC:

>>> from eduedge.cloud.db import connect_sqlite, init_schema
>>> from eduedge.cloud.rollups import Rollups
>>> db = connect_sqlite(":memory:"); init_schema(db)
>>> t = dt.datetime(2024, 5, 1, 17, 30, tzinfo=dt.UTC).timestamp()
>>> Rollups(db).add([("s1", "gw", "wan.down_mbps", "Mbit/s", (), t, 50.0)])
>>> [day_of(e - 1, ZoneInfo("Asia/Shanghai")) for e in heard_days(db, t - DAY, 8 * HOUR)["s1"]]
['2024-05-02']
>>> [day_of(e - 1, ZoneInfo("UTC")) for e in heard_days(db, t - DAY, 0.0)["s1"]]
['2024-05-01']
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

from eduedge.cloud.db import Db
from eduedge.cloud.rollups import DAY, HOUR


def _offset(zone: ZoneInfo, t: float) -> float:
    off = dt.datetime.fromtimestamp(t, zone).utcoffset()
    return off.total_seconds() if off else 0.0


def day_of(t: float, zone: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(t, zone).strftime("%Y-%m-%d")


def days(now: float, zone: ZoneInfo, n: int = 30) -> list[tuple[str, float, float]]:
    """The last `n` local days up to today: (date, start, end) in epoch seconds."""
    today = dt.datetime.fromtimestamp(now, zone).replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    for i in range(n - 1, -1, -1):
        start = today - dt.timedelta(days=i)
        end = start + dt.timedelta(days=1)
        out.append((start.strftime("%Y-%m-%d"), start.timestamp(), end.timestamp()))
    return out


def heard_days(db: Db, first: float, zone_offset: float) -> dict[str, list[float]]:
    """{school: [the end of each local day it was heard on]} from `first`, from `school_days`' hour masks: a
    UTC day's hours fall into at most two local days, each a slice of the mask (exact for whole-hour offsets)."""
    parts: dict[int, int] = {}                   # local day relative to the UTC day -> mask of its hours
    for h in range(24):
        rel = int((h * HOUR + zone_offset) // DAY)
        parts[rel] = parts.get(rel, 0) | (1 << h)
    out: dict[str, list[float]] = defaultdict(list)
    for school, day, hours in db.query("SELECT school, day, hours FROM school_days WHERE day >= ?",
                                       [(first // DAY) * DAY - DAY]):
        for rel, mask in parts.items():
            if int(hours) & mask:
                out[school].append(day + (rel + 1) * DAY - zone_offset)   # the end of that local day
    return out


def access_trend(db: Db, rows: list[dict[str, Any]], counted: set[str], window: float, now: float, zone: ZoneInfo,
                 n: int = 30) -> dict[str, list[tuple[str, float | None]]]:
    """{region: [(day, access %)]} for the city (key '') and each district, over the schools in `counted`."""
    span = days(now, zone, n)
    heard = heard_days(db, span[0][1] - window, _offset(zone, now))
    regions: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        if r["school"] in counted:
            regions[""].append(r["school"])
            if r["district"]:
                regions[r["district"]].append(r["school"])
    ends = [end for _name, _start, end in span if end <= now + DAY]
    covered: dict[str, list[bool]] = {}           # per school: had access at each day's end
    for s in counted:
        hs = sorted(heard.get(s, ()))
        row = []
        for end in ends:                      # the last day heard by this day's end: within the window?
            i = bisect.bisect_right(hs, end)
            row.append(i > 0 and hs[i - 1] > end - window)
        covered[s] = row
    out: dict[str, list[tuple[str, float | None]]] = {}
    for region, schools in sorted(regions.items()):
        out[region] = [(span[i][0], round(100.0 * sum(covered[s][i] for s in schools) / len(schools), 2))
                       for i in range(len(ends))]
    return out


def school_trends(db: Db, school: str, now: float, zone: ZoneInfo, n: int = 30) -> dict[str, Any]:
    span = days(now, zone, n)
    lo, hi = span[0][1], span[-1][2]
    names = [d for d, _, _ in span]

    def local(hour: float) -> str:
        return day_of(hour, zone)

    per: dict[tuple[str, str, str], list[float]] = {}     # (metric, key, day) -> [n, sum, min, max]
    for metric, key, hour, cnt, total, mn, mx in db.query(
            "SELECT metric, key, hour, n, sum, min, max FROM metric_hours WHERE school = ? AND hour >= ? AND hour < ?",
            [school, lo, hi]):
        k = (metric, key, local(hour))
        a = per.get(k)
        if a is None:
            per[k] = [cnt, total, mn, mx]
        else:
            a[0] += cnt
            a[1] += total
            a[2] = min(a[2], mn)
            a[3] = max(a[3], mx)

    def series(metric: str, key: str, f: Any) -> list[float | None]:
        return [None if (metric, key, d) not in per else round(f(per[(metric, key, d)]), 2) for d in names]

    capacity = {"min": series("wan.down_mbps", "", lambda a: a[2]),
                "mean": series("wan.down_mbps", "", lambda a: a[1] / a[0]),
                "max": series("wan.down_mbps", "", lambda a: a[3])}
    best = max((a[3] for (m, _, _), a in per.items() if m == "wan.down_mbps"), default=None)
    wan: dict[str, list[float | None]] = {}
    if best:
        for metric, label in (("host.if_in_bps", "in"), ("host.if_out_bps", "out")):
            for key in sorted({k for m, k, _ in per if m == metric}):
                wan[f"{label} {key}"] = series(metric, key, lambda a: 100.0 * a[1] / a[0] / (best * 1e6))
    wifi: dict[str, list[float | None]] = {}
    for zone_name in sorted({k for m, k, _ in per if m == "wifi.zone_client_minutes"}):
        all_ = per
        wifi[zone_name] = [None if ("wifi.zone_client_minutes", zone_name, d) not in all_
                           or not all_[("wifi.zone_client_minutes", zone_name, d)][1]
                           else round(100.0 * all_.get(("wifi.zone_good_client_minutes", zone_name, d),
                                                       [0, 0.0])[1]
                                      / all_[("wifi.zone_client_minutes", zone_name, d)][1], 2) for d in names]
    heard: dict[str, int] = defaultdict(int)
    for (hour,) in db.query("SELECT hour FROM school_hours WHERE school = ? AND hour >= ? AND hour < ?",
                            [school, lo, hi]):
        heard[local(hour)] += 1
    first = db.query("SELECT MIN(hour) FROM school_hours WHERE school = ?", [school])[0][0]
    availability: list[float | None] = []
    for d, start, end in span:
        if first is None or end <= first:
            availability.append(None)       # before the school was first heard of: nothing to say
            continue
        hours = (min(end, now) - max(start, first)) / HOUR
        availability.append(round(min(100.0, 100.0 * heard.get(d, 0) / max(1.0, hours)), 1))
    return {"days": names, "capacity": capacity, "wan": wan, "wifi": wifi, "availability": availability,
            "capacity_best_mbps": best}
