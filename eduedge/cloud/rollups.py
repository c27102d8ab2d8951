"""Rollups the receiver keeps as it stores each batch, so the pages draw trends without scanning raw samples.

Written in the batch's own transaction (cloud/ingest.py calls `Rollups.add`), keyed by the hour the data
was measured in (a backlog sent after an outage lands in the hours it describes):

- `school_hours` (school, hour, samples): the hours a school was heard from - its availability;
- `school_days` (school, day, hours): per UTC day, a 24-bit mask of the hours the school was heard in - the
  city's broadband access rate day by day, one row per school and day (any zone's local days are cut from
  two UTC days' masks: trends.py);
- `metric_hours` (school, metric, key, hour, n, sum, min, max) for the metrics the pages chart:
  capacity tests (`wan.down_mbps`), the gateway's WAN interface (`host.if_in_bps`/`host.if_out_bps` tagged
  `role: wan`, keyed by interface), Wi-Fi client-minutes per zone (`wifi.zone_client_minutes` and
  `wifi.zone_good_client_minutes`, keyed by zone);
- `device_seen` (school, device, last, uptime, restarts): when each device was last heard from, and how
  often its uptime went backwards (a restart).

Hours are epoch-aligned; a page groups them into the city's days (every zone with a whole-hour offset,
China's included, maps hours onto days exactly). Upserts add to what is there, so two receivers on one
PostgreSQL both count into the same rows (rows are written in key order, so they never deadlock).

>>> from eduedge.cloud.db import connect_sqlite, init_schema
>>> db = connect_sqlite(":memory:"); init_schema(db); r = Rollups(db)
>>> r.add([("s1", "gw", "wan.down_mbps", "Mbit/s", (("method", "tcp"),), 7200.5, 80.0),
...        ("s1", "gw", "wan.down_mbps", "Mbit/s", (), 7300.0, 60.0)])
>>> db.query("SELECT metric, key, hour, n, sum, min, max FROM metric_hours")
[('wan.down_mbps', '', 7200.0, 2, 140.0, 60.0, 80.0)]
>>> db.query("SELECT school, hour, samples FROM school_hours")
[('s1', 7200.0, 2)]
>>> db.query("SELECT school, day, hours FROM school_days")      # hour 2 of day 0
[('s1', 0.0, 4)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eduedge.cloud.db import Db

HOUR = 3600.0
DAY = 86400.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS school_hours (
  school TEXT NOT NULL, hour DOUBLE PRECISION NOT NULL, samples BIGINT NOT NULL, PRIMARY KEY (school, hour));
CREATE INDEX IF NOT EXISTS school_hours_hour ON school_hours (hour);
CREATE TABLE IF NOT EXISTS school_days (
  school TEXT NOT NULL, day DOUBLE PRECISION NOT NULL, hours BIGINT NOT NULL, PRIMARY KEY (school, day));
CREATE INDEX IF NOT EXISTS school_days_day ON school_days (day);
CREATE TABLE IF NOT EXISTS metric_hours (
  school TEXT NOT NULL, metric TEXT NOT NULL, key TEXT NOT NULL, hour DOUBLE PRECISION NOT NULL,
  n BIGINT NOT NULL, sum DOUBLE PRECISION NOT NULL, min DOUBLE PRECISION NOT NULL, max DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (school, metric, key, hour));
CREATE TABLE IF NOT EXISTS device_seen (
  school TEXT NOT NULL, device TEXT NOT NULL, last DOUBLE PRECISION NOT NULL, uptime DOUBLE PRECISION,
  restarts BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (school, device));
"""

# metric -> the tag that keys it (None: one row per school), and a filter on the tags
CHARTED: dict[str, tuple[str | None, tuple[str, str] | None]] = {
    "wan.down_mbps": (None, None),
    "host.if_in_bps": ("interface", ("role", "wan")),
    "host.if_out_bps": ("interface", ("role", "wan")),
    "wifi.zone_client_minutes": ("zone", None),
    "wifi.zone_good_client_minutes": ("zone", None),
}
UPTIME = {"device.uptime_s", "host.uptime_s"}


def ensure_schema(db: Db) -> None:
    with db.transaction():
        if db.engine == "postgresql":
            db.execute("SELECT pg_advisory_xact_lock(7219)")
        for stmt in SCHEMA.split(";"):
            if stmt.strip():
                db.execute(stmt)


class Rollups:
    """Folds each batch's samples into the hourly rollups; `add` runs inside the batch's transaction."""

    def __init__(self, db: Db):
        self.db = db
        ensure_schema(db)

    def add(self, samples: Sequence[tuple[Any, ...]]) -> None:
        """`samples` as the ingestor keeps them: (school, device, metric, unit, sorted tag pairs, t, value)."""
        if not samples:
            return
        hours: dict[tuple[str, float], int] = {}
        metrics: dict[tuple[str, str, str, float], list[float]] = {}
        devices: dict[tuple[str, str], list[Any]] = {}     # [last t, uptime at last t]
        for school, device, metric, _unit, tags, t, value in samples:
            hour = (t // HOUR) * HOUR
            hours[(school, hour)] = hours.get((school, hour), 0) + 1
            seen = devices.get((school, device))
            if seen is None or t > seen[0]:
                devices[(school, device)] = seen = [t, seen[1] if seen else None]
            if metric in UPTIME and t >= seen[0] and isinstance(value, int | float):
                seen[1] = float(value)
            chart = CHARTED.get(metric)
            if chart is None or isinstance(value, str) or value is None:
                continue
            keyed, only = chart
            d = dict(tags)
            if only is not None and d.get(only[0]) != only[1]:
                continue
            k = (school, metric, d.get(keyed, "") if keyed else "", hour)
            v = float(value)
            agg = metrics.get(k)
            if agg is None:
                metrics[k] = [1, v, v, v]
            else:
                agg[0] += 1
                agg[1] += v
                agg[2] = min(agg[2], v)
                agg[3] = max(agg[3], v)
        self.db.many("INSERT INTO school_hours (school, hour, samples) VALUES (?, ?, ?) ON CONFLICT (school, hour) "
                     "DO UPDATE SET samples = school_hours.samples + excluded.samples",
                     [(s, h, n) for (s, h), n in sorted(hours.items())])
        days: dict[tuple[str, float], int] = {}
        for (school, hour), _n in hours.items():
            day = (hour // DAY) * DAY
            days[(school, day)] = days.get((school, day), 0) | (1 << int((hour - day) // HOUR))
        self.db.many("INSERT INTO school_days (school, day, hours) VALUES (?, ?, ?) ON CONFLICT (school, day) "
                     "DO UPDATE SET hours = school_days.hours | excluded.hours",
                     [(s, d, m) for (s, d), m in sorted(days.items())])
        self.db.many("INSERT INTO metric_hours (school, metric, key, hour, n, sum, min, max) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (school, metric, key, hour) DO UPDATE SET "
                     "n = metric_hours.n + excluded.n, sum = metric_hours.sum + excluded.sum, "
                     "min = CASE WHEN excluded.min < metric_hours.min THEN excluded.min ELSE metric_hours.min END, "
                     "max = CASE WHEN excluded.max > metric_hours.max THEN excluded.max ELSE metric_hours.max END",
                     [(*k, *agg) for k, agg in sorted(metrics.items())])
        # A restart: a newer uptime smaller than the last one known. Older data (a backlog) changes nothing.
        self.db.many("INSERT INTO device_seen (school, device, last, uptime, restarts) VALUES (?, ?, ?, ?, 0) "
                     "ON CONFLICT (school, device) DO UPDATE SET "
                     "restarts = device_seen.restarts + CASE WHEN excluded.last > device_seen.last AND "
                     "excluded.uptime IS NOT NULL AND device_seen.uptime IS NOT NULL AND "
                     "excluded.uptime < device_seen.uptime THEN 1 ELSE 0 END, "
                     "uptime = CASE WHEN excluded.last > device_seen.last THEN "
                     "COALESCE(excluded.uptime, device_seen.uptime) ELSE device_seen.uptime END, "
                     "last = CASE WHEN excluded.last > device_seen.last THEN excluded.last ELSE device_seen.last END",
                     [(s, d, v[0], v[1]) for (s, d), v in sorted(devices.items())])
