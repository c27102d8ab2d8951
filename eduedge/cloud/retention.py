"""Retention: raw samples become rollups after `retention.raw`; old message ids, rollups and rejects go.

Raw samples older than `retention.raw` are folded into `rollups`, one row per series and bucket of
`retention.rollup` seconds: count, min, max and sum of the numbers (the mean is sum/count); a series of
states (`if.oper_status` up/down) keeps a count per state instead. Then the raw rows are deleted. The
fold runs a bucket-aligned slice at a time, each in its own transaction, and merges into rollups already
there, so an interrupted run simply continues. Findings, events, gaps and inventory are kept.

>>> from eduedge.cloud.db import connect_sqlite, init_schema
>>> db = connect_sqlite(":memory:"); init_schema(db)
>>> db.execute("INSERT INTO samples (series, t, value, text) VALUES (1, 10, 2, NULL), (1, 20, 4, NULL), "
...            "(1, 30, NULL, 'up'), (1, 400, 8, NULL)")
4
>>> downsample(db, cutoff=300, bucket=300)
3
>>> db.query("SELECT bucket, text, n, min, max, sum FROM rollups ORDER BY text")
[(0.0, '', 2, 2.0, 4.0, 6.0), (0.0, 'up', 1, None, None, None)]
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from eduedge.cloud.config import CloudConfig
from eduedge.cloud.db import Db

log = logging.getLogger("eduedge.cloud.retention")

RETENTION_LOCK = 7217
SLICE_BUCKETS = 12       # buckets folded per transaction


@dataclass
class RetentionReport:
    folded: int = 0           # raw samples turned into rollups
    messages: int = 0         # message ids past the de-duplication window
    rollups: int = 0
    rejects: int = 0


def downsample(db: Db, cutoff: float, bucket: float) -> int:
    """Fold raw samples older than `cutoff` (whole buckets only) into rollups; returns samples folded."""
    end = (cutoff // bucket) * bucket
    folded = 0
    b = db.floor(f"t / {float(bucket)!r}")
    while True:
        first = db.query("SELECT MIN(t) FROM samples WHERE t < ?", [end])[0][0]
        if first is None:
            return folded
        lo = (first // bucket) * bucket
        hi = min(end, lo + bucket * SLICE_BUCKETS)
        with db.transaction():
            if not db.try_lock(RETENTION_LOCK):     # another receiver is folding: it will finish the job
                return folded
            db.execute(f"INSERT INTO rollups (series, bucket, text, n, min, max, sum) "
                       f"SELECT series, {b} * {float(bucket)!r}, COALESCE(text, ''), COUNT(*), MIN(value), "
                       f"MAX(value), SUM(value) FROM samples WHERE t >= ? AND t < ? "
                       f"GROUP BY series, {b}, COALESCE(text, '') "
                       f"ON CONFLICT (series, bucket, text) DO UPDATE SET n = rollups.n + excluded.n, "
                       f"min = CASE WHEN rollups.min IS NULL OR excluded.min < rollups.min THEN excluded.min "
                       f"ELSE rollups.min END, "
                       f"max = CASE WHEN rollups.max IS NULL OR excluded.max > rollups.max THEN excluded.max "
                       f"ELSE rollups.max END, sum = COALESCE(rollups.sum, 0) + COALESCE(excluded.sum, 0)",
                       [lo, hi])
            folded += db.execute("DELETE FROM samples WHERE t >= ? AND t < ?", [lo, hi])


def apply_retention(db: Db, cfg: CloudConfig, now: float | None = None) -> RetentionReport:
    """Everything `retention` and `ingest.keep_rejects` say, once; safe to run from several receivers."""
    now = time.time() if now is None else now
    rep = RetentionReport()
    with db.transaction():
        if not db.try_lock(RETENTION_LOCK):
            return rep
        rep.messages = db.execute("DELETE FROM messages WHERE received < ?", [now - cfg.ingest.dedup_window])
        if cfg.retention.rollups:
            rep.rollups = db.execute("DELETE FROM rollups WHERE bucket < ?", [now - cfg.retention.rollups])
        top = db.query("SELECT MAX(id) FROM rejects")[0][0]
        if top is not None:
            rep.rejects = db.execute("DELETE FROM rejects WHERE id <= ?", [top - cfg.ingest.keep_rejects])
    rep.folded = downsample(db, now - cfg.retention.raw, cfg.retention.rollup)
    if rep.folded or rep.messages or rep.rollups or rep.rejects:
        log.info("retention: %d raw samples folded into rollups; %d message ids, %d rollups, %d rejects removed",
                 rep.folded, rep.messages, rep.rollups, rep.rejects)
    return rep
