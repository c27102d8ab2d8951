"""What the agent last saw, and the short history the standards rules judge: one SQLite file in data_dir.

The daemon (and `eduedge diag`) feeds it every poll; the compliance evaluator reads it. It keeps:

- `latest`: the newest sample of every series (device, metric, tags) - link speeds, port states, LLDP
  neighbours. A neighbour LLDP stops reporting keeps its last row, so a backbone link that went down is
  still known (with the time it was last seen) instead of silently leaving the topology.
- `history`: every sample of the metrics rules judge over a window (capacity tests, WAN probes, Wi-Fi
  zones, device counts, the WAN rate for the report), for `retention` seconds. Raw interface counters
  of a whole campus are not kept here; they go to the cloud through the outbox.
- `polls`: the last poll of each device (when, whether it answered, its sysName, its errors).
- `findings`: the latest judgement of each rule (daemon or `eduedge diag`), what `diag --cached` prints;
  `reported` and `status_log`: the status the daemon last reported and every change of it, from which
  status events and the compliance history come.

`SampleStore(":memory:")` is the same store without a file (tests, a diag that may not write).

>>> from eduedge.core.samples import Sample
>>> st = SampleStore(":memory:")
>>> st.add([Sample(1.0, "sw1", "if.speed_mbps", 1000, "Mbit/s", {"interface": "Gi0/1"}),
...         Sample(2.0, "gw", "wan.down_mbps", 93.1, "Mbit/s", {"method": "tcp"})])
>>> [s.value for s in st.latest("if.speed_mbps")], [s.value for s in st.history("wan.down_mbps", 0, 10)]
([1000], [93.1])
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eduedge.core.samples import Sample

if TYPE_CHECKING:        # the judging code loads where findings are judged or read, not with every store
    from eduedge.agent.compliance.findings import Finding

DB_NAME = "compliance.sqlite"
RETENTION_S = 35 * 86400
# Metrics whose every sample is kept for `retention` (not just the newest of each series): what rules
# judge over a window, and what the report draws (service.* and liveclass.*: the live-class readiness's
# probe rounds and classroom-drop and uplink loads, agent/compliance/live_class.py).
HISTORY_PREFIXES = ("wan.", "wifi.zone_", "wifi.probe_", "inventory.", "service.", "liveclass.")
Points = list[tuple[float, Any]]             # (time, value) of one series, oldest first
WAL_LIMIT = 4 * 2**20                        # the WAL is truncated to this after a checkpoint
FULL_LOG_EVERY_S = 60.0

log = logging.getLogger("eduedge.samplestore")


def keep_history(sample: Sample) -> bool:
    """Whether a sample goes into the windowed history (see HISTORY_PREFIXES); the WAN port's rates too.

    >>> keep_history(Sample(0, "gw", "wan.loss_percent", 0.1)), keep_history(Sample(0, "sw", "if.in_bps", 1))
    (True, False)
    """
    if sample.metric.startswith(HISTORY_PREFIXES):
        return True
    return sample.metric in ("host.if_in_bps", "host.if_out_bps") and sample.tags.get("role") == "wan"


def _tags_key(tags: Any) -> str:
    return json.dumps(dict(tags), sort_keys=True, separators=(",", ":"), ensure_ascii=False) if tags else "{}"


def _sample(row: sqlite3.Row) -> Sample:
    return Sample(row["time"], row["device"], row["metric"], row["value"], row["unit"], json.loads(row["tags"]))


@dataclass
class PollRecord:
    """The last poll of one device as the store remembers it."""

    device: str
    time: float
    ok: bool
    last_ok: float | None
    hostname: str | None = None
    errors: list[str] = field(default_factory=list)


@dataclass
class StatusChange:
    time: float
    rule: str
    subject: str
    old: str | None
    new: str


_SCHEMA = """
CREATE TABLE IF NOT EXISTS latest (device TEXT NOT NULL, metric TEXT NOT NULL, tags TEXT NOT NULL,
    time REAL NOT NULL, value, unit TEXT NOT NULL, PRIMARY KEY (device, metric, tags));
CREATE INDEX IF NOT EXISTS latest_metric ON latest (metric);
CREATE TABLE IF NOT EXISTS history (time REAL NOT NULL, device TEXT NOT NULL, metric TEXT NOT NULL,
    tags TEXT NOT NULL, value, unit TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_metric_time ON history (metric, time);
CREATE TABLE IF NOT EXISTS polls (device TEXT PRIMARY KEY, time REAL NOT NULL, ok INTEGER NOT NULL,
    last_ok REAL, hostname TEXT, errors TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS findings (rule TEXT NOT NULL, subject TEXT NOT NULL, time REAL NOT NULL,
    status TEXT NOT NULL, finding TEXT NOT NULL, PRIMARY KEY (rule, subject));
CREATE TABLE IF NOT EXISTS reported (rule TEXT NOT NULL, subject TEXT NOT NULL, status TEXT NOT NULL,
    PRIMARY KEY (rule, subject));
CREATE TABLE IF NOT EXISTS status_log (time REAL NOT NULL, rule TEXT NOT NULL, subject TEXT NOT NULL,
    old TEXT, new TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS status_log_time ON status_log (time);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(self: SampleStore, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)
    wrapper.__doc__, wrapper.__name__ = method.__doc__, method.__name__
    return wrapper


def _writes(default: Any = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A write that survives a full disk: what it would have stored can be measured again, so it is skipped (and
    said once a minute) rather than raised into the poll that produced it."""
    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: SampleStore, *args: Any, **kwargs: Any) -> Any:
            with self._lock:
                try:
                    return method(self, *args, **kwargs)
                except sqlite3.OperationalError as e:
                    if getattr(e, "sqlite_errorname", "") != "SQLITE_FULL" and "full" not in str(e):
                        raise
                    now = time.monotonic()
                    if now - self._full_logged >= FULL_LOG_EVERY_S:
                        self._full_logged = now
                        log.error("sample store %s: %s (disk full); this result is not kept", self.path, e)
                    return default() if callable(default) else default
        wrapper.__doc__, wrapper.__name__ = method.__doc__, method.__name__
        return wrapper
    return wrap


class SampleStore:
    """Latest samples, windowed history, polls and findings in one SQLite database (WAL); safe to share
    between threads."""

    def __init__(self, path: Path | str, retention: float = RETENTION_S,
                 history: Callable[[Sample], bool] = keep_history, readonly: bool = False):
        self.path = str(path)
        self.retention = retention
        self._keep = history
        self._pruned_at = 0.0
        self._full_logged = -FULL_LOG_EVERY_S
        # The daemon stores polls from its worker threads and judges from another: one connection, one lock.
        self._lock = threading.RLock()
        if readonly:
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        else:
            self.db = sqlite3.connect(self.path, check_same_thread=False)
            # The daemon writes while `eduedge diag --cached` reads; WAL lets both go on. NORMAL is enough:
            # everything here can be measured again, the outbox is where durability matters.
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
            self.db.executescript(_SCHEMA)
        self.db.row_factory = sqlite3.Row

    @classmethod
    def in_data_dir(cls, data_dir: Path, readonly: bool = False) -> SampleStore:
        """The store of an agent whose data directory is `data_dir` (created when writing)."""
        if not readonly:
            Path(data_dir).mkdir(parents=True, exist_ok=True)
        return cls(Path(data_dir) / DB_NAME, readonly=readonly)

    @_locked
    def close(self) -> None:
        self.db.close()

    # -- feeding -------------------------------------------------------------------------------------

    @_writes()
    def add(self, samples: Iterable[Sample]) -> None:
        """Remember samples: each updates its series' newest value, and the history if it keeps one."""
        latest, hist = [], []
        newest = 0.0
        for s in samples:
            newest = max(newest, s.time)
            row = (s.device, s.metric, _tags_key(s.tags), s.time, s.value, s.unit)
            latest.append(row)
            if self._keep(s):
                hist.append((s.time, s.device, s.metric, row[2], s.value, s.unit))
        with self.db:
            self.db.executemany(
                "INSERT INTO latest VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device, metric, tags) DO UPDATE "
                "SET time = excluded.time, value = excluded.value, unit = excluded.unit "
                "WHERE excluded.time >= latest.time", latest)
            self.db.executemany("INSERT INTO history VALUES (?, ?, ?, ?, ?, ?)", hist)
        # Retention counts from the data's own clock, so that replayed or simulated days age correctly.
        if newest - self._pruned_at > 3600:
            self.prune(newest)

    @_writes()
    def add_poll(self, device: str, when: float, ok: bool, samples: Sequence[Sample] = (),
                 hostname: str | None = None, errors: Sequence[str] = ()) -> None:
        """Record one poll of `device` (a `DevicePoll`'s parts) and its samples."""
        self.add(samples)
        with self.db:
            self.db.execute(
                "INSERT INTO polls VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device) DO UPDATE SET time = excluded.time, "
                "ok = excluded.ok, last_ok = coalesce(excluded.last_ok, polls.last_ok), "
                "hostname = coalesce(excluded.hostname, polls.hostname), errors = excluded.errors",
                (device, when, int(ok), when if ok else None, hostname, json.dumps(list(errors))))

    @_writes()
    def prune(self, now: float) -> None:
        """Forget history and series older than the retention."""
        cutoff = now - self.retention
        with self.db:
            self.db.execute("DELETE FROM history WHERE time < ?", (cutoff,))
            self.db.execute("DELETE FROM latest WHERE time < ?", (cutoff,))
            self.db.execute("DELETE FROM status_log WHERE time < ?", (cutoff,))
        self._pruned_at = now
        # What retention freed goes back to the WAL's start: it does not grow past its limit between prunes.
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- reading -------------------------------------------------------------------------------------

    @_locked
    def latest(self, metric: str, device: str | None = None) -> list[Sample]:
        """The newest sample of every series of `metric` (on `device`)."""
        sql, args = "SELECT * FROM latest WHERE metric = ?", [metric]
        if device is not None:
            sql, args = sql + " AND device = ?", [*args, device]
        return [_sample(r) for r in self.db.execute(sql + " ORDER BY device, tags", args)]

    @_locked
    def history(self, metric: str, since: float, until: float) -> list[Sample]:
        """Every kept sample of `metric` with since <= time <= until, oldest first."""
        rows = self.db.execute("SELECT * FROM history WHERE metric = ? AND time >= ? AND time <= ? ORDER BY time",
                               (metric, since, until))
        return [_sample(r) for r in rows]

    @_locked
    def series(self, metric: str, since: float, until: float) -> list[tuple[str, dict[str, str], Points]]:
        """`history` grouped by series: [(device, tags, [(time, value), ...] oldest first)]. For many samples of a
        few series (a week of every classroom drop's loads) it reads each series' tags once, not each sample's.

        >>> st = SampleStore(":memory:")
        >>> st.add([Sample(t, "sw1", "wan.x", t, "", {"p": "1"}) for t in (1.0, 2.0)])
        >>> st.series("wan.x", 0, 10)
        [('sw1', {'p': '1'}, [(1.0, 1.0), (2.0, 2.0)])]
        """
        cur = self.db.cursor()
        cur.row_factory = None
        grouped: dict[tuple[str, str], Points] = {}
        for device, tags, t, value in cur.execute("SELECT device, tags, time, value FROM history WHERE metric = ? AND "
                                                  "time >= ? AND time <= ? ORDER BY time", (metric, since, until)):
            grouped.setdefault((device, tags), []).append((t, value))
        return [(device, json.loads(tags), points) for (device, tags), points in grouped.items()]

    @_locked
    def polls(self) -> dict[str, PollRecord]:
        out = {}
        for r in self.db.execute("SELECT * FROM polls"):
            out[r["device"]] = PollRecord(r["device"], r["time"], bool(r["ok"]), r["last_ok"], r["hostname"],
                                          json.loads(r["errors"]))
        return out

    # -- judgements ----------------------------------------------------------------------------------

    @_writes(default=list)
    def record_findings(self, findings: Sequence[Finding], source: str = "daemon") -> list[StatusChange]:
        """Keep the latest findings and return every change of status since the daemon last reported,
        a first judgement included.

        Only the daemon (`source="daemon"`) moves that baseline and writes the status log: the daemon
        turns changes into events for the city, and a technician's `eduedge diag` in between must not
        swallow them.
        """
        before = {(r["rule"], r["subject"]): r["status"] for r in self.db.execute("SELECT rule, subject, status "
                                                                                   "FROM reported")}
        changes = [StatusChange(f.time, f.rule, f.subject, before.get((f.rule, f.subject)), f.status)
                   for f in findings if before.get((f.rule, f.subject)) != f.status]
        when = max((f.time for f in findings), default=time.time())
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO findings VALUES (?, ?, ?, ?, ?)",
                                [(f.rule, f.subject, f.time, f.status, json.dumps(f.to_dict(), ensure_ascii=False))
                                 for f in findings])
            if source == "daemon":
                self.db.executemany("INSERT OR REPLACE INTO reported VALUES (?, ?, ?)",
                                    [(c.rule, c.subject, c.new) for c in changes])
                self.db.executemany("INSERT INTO status_log VALUES (?, ?, ?, ?, ?)",
                                    [(c.time, c.rule, c.subject, c.old, c.new) for c in changes])
            meta = {"time": when, "source": source, "rules": sorted({f.rule for f in findings})}
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('last_evaluation', ?)", (json.dumps(meta),))
        return changes

    @_locked
    def findings(self) -> list[Finding]:
        """The latest finding of every rule and subject of the last evaluation."""
        from eduedge.agent.compliance.findings import Finding

        meta = self.last_evaluation()
        rules = set(meta["rules"]) if meta else set()
        # A rule no longer in the school's packs keeps its old row; it is not part of the last evaluation.
        return [Finding.from_dict(json.loads(r["finding"]))
                for r in self.db.execute("SELECT rule, finding FROM findings ORDER BY rule, subject")
                if r["rule"] in rules]

    @_locked
    def last_evaluation(self) -> dict[str, Any] | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'last_evaluation'").fetchone()
        return json.loads(row["value"]) if row else None

    @_locked
    def status_log(self, since: float) -> list[StatusChange]:
        rows = self.db.execute("SELECT * FROM status_log WHERE time >= ? ORDER BY time", (since,))
        return [StatusChange(r["time"], r["rule"], r["subject"], r["old"], r["new"]) for r in rows]
