"""The outbox: every message the agent sends is first a row in SQLite, and leaves only on the broker's PUBACK.

Durability
    SQLite through sqlite-utils, WAL journal, `synchronous=FULL` by default: every committed row has been
    fsynced, so it survives `kill -9` *and* power loss. NORMAL (configurable) survives a crash of the agent
    but may roll back the last commits on power loss - and with them seq numbers that were already sent,
    which the cloud would then see reused with new message ids. FULL costs one fsync per commit; the agent
    bounds that by committing one transaction per collector result and one per batch of PUBACKs (the link
    hands them over every 50 ms or 500 PUBACKs: a crash or power cut before a batch is committed only sends
    those rows again, with the same message ids).

Identity
    Each row's primary key is the message's `seq` (64-bit, per agent, never reused: the next value is stored
    in the database and a reservation ceiling in a side file `<db>.seq`, so even a fresh database after a
    quarantine continues above every seq ever issued). The message id (UUIDv7) is made once and stored in
    the payload, so every redelivery is byte-identical. MQTT packet ids are never stored.
    Each outbox has an `epoch` (random, made with its first database and kept in the database and the side
    file): every message carries it (`agent.epoch`), and the cloud keys seqs by (school, agent, epoch). A box
    whose data folder is lost (re-imaged, replaced) starts a new epoch at seq 1 - a new stream, not
    duplicates of the old one (compare Sparkplug's bdSeq and a Zabbix proxy's session).
    Births and deaths take no seq (they carry 0): they belong to a connection, and a will that is never
    published would otherwise leave a hole the cloud cannot tell from lost data.

Order and priority
    0: command answers, gap records, lifecycle events; 1: findings, events, inventory; 2: metrics.
    `take()` serves priority 0 first, then 1, then 2. Within a priority rows go in seq order, except that
    rows written since the link came back go ahead of the backlog that waited through the outage (so live
    data is never starved); each of the two keeps its seq order.

Disk budget
    `max_bytes` bounds the files the outbox owns: the database, its WAL and -shm, and the side file. The WAL
    gets a fixed share (`journal_size_limit`, and a RESTART checkpoint before a write that would pass it);
    the database the rest, counted in pages in use (free pages are reused before the file grows), and
    further capped by the free disk less `min_free_bytes`. Room is made *before* a write would pass the
    budget: the oldest rows of the lowest priority go first (metrics, then findings/events, then priority
    0), never a row in flight; every drop is counted per type and reason, and written as a `gap` message
    (priority 0), in the same transaction as the deletion, that is itself delivered.
    Pages are 4 KiB below a 64 MiB budget (a 16 KiB page is a quarter of a small budget's WAL share), 16 KiB
    above (a typical batch message fits one page: deleting delivered rows is several times cheaper).
    After a RESTART checkpoint the WAL file keeps its size and is written again from its start, so it is
    also a reserve: deleting delivered rows still commits when the disk is full.

Failure
    A full disk (SQLITE_FULL) is a state, not an error: every write survives it. A write that fails is
    retried after a checkpoint and after making room by the same policy; if it still fails its messages
    are counted as dropped and declared (with their seqs) by a gap record as soon as writing works again;
    acknowledgements that cannot be committed are retried; sending goes on (it is what frees the space).
    A corrupt file is renamed `<db>.corrupt-<time>` (with its -wal/-shm); every row that can still be read
    from it is salvaged into a fresh outbox, and a gap record names the seq ranges that could not be
    (`outbox_reset`). A database that is missing or empty while the side file says an outbox lived here is
    declared the same way (`outbox_lost`). The side file keeps the lowest seq that may be unsent, written
    by `maintain()`, so the range is exact up to what was delivered since.

>>> import tempfile; from eduedge.agent.envelope import Envelope
>>> box = Outbox(Path(tempfile.mkdtemp()) / "o.db", Envelope("s1", "c1", "gw", "0", "0" * 32), max_bytes=4 * 2**20)
>>> box.add("events", {"events": [{"t": 1.0, "kind": "agent.start", "severity": "info", "message": "hi"}]})
1
>>> [(r.seq, r.kind, r.priority) for r in box.take(10)]
[(1, 'events', 0)]
>>> box.ack([1]); box.stats().rows
0
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import json
import logging
import os
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eduedge.agent.contract import topic
from eduedge.agent.envelope import Envelope, compress
from eduedge.core.samples import Sample

log = logging.getLogger("eduedge.outbox")
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)    # as envelope.py writes items

PRIORITIES = (0, 1, 2)
LIFECYCLE_EVENT_PREFIXES = ("agent.", "outbox.")
SEQ_BLOCK = 100_000  # seq numbers reserved in the side file at a time
RETRY_DELAY = 5.0  # seconds before re-sending a row the broker refused for a passing reason
GAP_RANGES_PER_MESSAGE = 2000
SHM_BYTES = 32 * 1024  # one -shm block indexes 4096 WAL frames; the WAL share never needs more
SIDE_BYTES = 4096  # the side file: a few dozen bytes, one block
LARGE_BUDGET = 64 * 2**20  # from here on 16 KiB pages
MAX_WAL = 64 * 2**20
MAX_RESERVE = 16 * 2**20
SALVAGE_QUERIES = 50_000  # at most this many reads of a damaged file
FULL_LOG_EVERY_S = 60.0
ROW_COLUMNS = "seq, kind, priority, topic, payload, size, items, t_first, t_last, created"
INSERT_ROW = f"INSERT INTO outbox ({ROW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# Written out as SQL rather than with sqlite-utils: the agent's whole use of it was these five statements, and
# it brings click, pluggy and dateutil, ~4 MB of a box's 60 (bench/README.md, footprint.py).
SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, priority INTEGER NOT NULL,
    topic TEXT NOT NULL, payload BLOB NOT NULL, size INTEGER NOT NULL, items INTEGER NOT NULL, t_first REAL,
    t_last REAL, created REAL);
CREATE INDEX IF NOT EXISTS outbox_send ON outbox (priority, seq);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER);
CREATE TABLE IF NOT EXISTS drops (kind TEXT, reason TEXT, messages INTEGER, items INTEGER, PRIMARY KEY (kind, reason));
CREATE TABLE IF NOT EXISTS commands (request_id TEXT PRIMARY KEY, at REAL, answer TEXT);
"""


def priority_of(kind: str, body: dict[str, Any] | None = None) -> int:
    """The outbox priority of a message type (0 is sent first and dropped last).

    >>> priority_of("metrics"), priority_of("findings"), priority_of("cmd-result")
    (2, 1, 0)
    >>> priority_of("events", {"events": [{"kind": "outbox.reset"}]})
    0
    """
    if kind in ("cmd-result", "gap"):
        return 0
    if kind == "events" and body is not None:
        kinds = [e.get("kind", "") for e in body.get("events", [])]
        if kinds and all(k.startswith(LIFECYCLE_EVENT_PREFIXES) for k in kinds):
            return 0
    if kind in ("findings", "events", "inventory"):
        return 1
    return 2


@dataclass(frozen=True)
class Layout:
    """How `max_bytes` is shared between the files the outbox owns."""

    page_size: int
    wal_bytes: int
    reserve_bytes: int
    db_bytes: int

    @property
    def db_pages(self) -> int:
        return self.db_bytes // self.page_size


def layout(max_bytes: int, max_message_bytes: int) -> Layout:
    """The page size, the WAL's share and the database's share of a budget.

    >>> layout(512 * 2**20, 256 * 1024)
    Layout(page_size=16384, wal_bytes=67108864, reserve_bytes=16777216, db_bytes=452947968)
    >>> layout(4 * 2**20, 16384).wal_bytes
    524288
    """
    page = 16384 if max_bytes >= LARGE_BUDGET else 4096
    # The WAL must hold the biggest transaction twice over (a checkpoint runs before a write would pass it).
    wal = min(MAX_WAL, max(max_bytes // 8, 2 * max_message_bytes + 32 * page))
    reserve = min(wal, MAX_RESERVE)
    return Layout(page, wal, reserve, max_bytes - wal - reserve - SHM_BYTES - SIDE_BYTES)


def min_budget(max_message_bytes: int) -> int:
    """The smallest `outbox.max_bytes` that holds a few messages of `max_message_bytes` beside the WAL.

    >>> min_budget(256 * 1024)
    2527232
    """
    page = 4096
    wal = 2 * max_message_bytes + 32 * page
    return 2 * wal + SHM_BYTES + SIDE_BYTES + 4 * max_message_bytes + 32 * page


@dataclass(frozen=True)
class Row:
    """One stored message, as the link publishes it."""

    seq: int
    kind: str
    priority: int
    topic: str
    payload: bytes
    size: int
    items: int


@dataclass
class Drop:
    kind: str
    reason: str
    messages: int
    items: int


@dataclass
class Unrecorded:
    """Messages that could not be written (or whose drop could not be): declared by the next write that works."""

    drop: Drop
    seqs: list[list[int]]
    first: float | None
    last: float | None
    detail: str


@dataclass
class OutboxStats:
    """What `eduedge outbox` shows."""

    path: str
    rows: int = 0
    bytes: int = 0
    file_bytes: int = 0
    by_priority: dict[int, dict[str, Any]] = field(default_factory=dict)
    oldest: float | None = None
    next_seq: int = 1
    delivered_messages: int = 0
    delivered_items: int = 0
    drops: list[Drop] = field(default_factory=list)
    epoch: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["drops"] = [x.__dict__ for x in self.drops]
        return d


class OutboxError(Exception):
    """The outbox cannot be opened or used at all (e.g. its directory cannot be created)."""


def _is_corruption(e: sqlite3.Error) -> bool:
    name = getattr(e, "sqlite_errorname", "")
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return True
    return isinstance(e, sqlite3.DatabaseError) and not isinstance(e, sqlite3.OperationalError | sqlite3.IntegrityError
                                                                   | sqlite3.ProgrammingError)


def _is_full(e: BaseException) -> bool:
    if isinstance(e, OSError):
        return e.errno in (28, 122)  # ENOSPC, EDQUOT
    return getattr(e, "sqlite_errorname", "") == "SQLITE_FULL" or "full" in str(e)


def _ranges(seqs: Iterable[int]) -> list[list[int]]:
    """Inclusive ranges of sorted seq numbers.

    >>> _ranges([1, 2, 3, 7, 9, 10])
    [[1, 3], [7, 7], [9, 10]]
    """
    out: list[list[int]] = []
    for s in sorted(seqs):
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return out


def _minus(lo: int, hi: int, taken: Iterable[int]) -> list[list[int]]:
    """The inclusive ranges of lo..hi without the seqs in `taken`.

    >>> _minus(1, 10, [3, 4, 9])
    [[1, 2], [5, 8], [10, 10]]
    """
    out, at = [], lo
    for s in sorted(set(taken)):
        if s < at or s > hi:
            continue
        if s > at:
            out.append([at, s - 1])
        at = s + 1
    if at <= hi:
        out.append([at, hi])
    return out


def _pages(size: int, page: int) -> int:
    """Pages a row of `size` payload bytes takes (cell header, overflow pages), rounded up."""
    return -(-(size + 64) // (page - 40))


def salvage(path: Path, lo: int, hi: int) -> list[tuple[Any, ...]]:
    """Every outbox row with lo <= seq <= hi that can still be read from a damaged file, in seq order.

    Reads ranges of seqs, halving a range whose read fails, so that a damaged page costs only the rows on
    it. A row is kept only if its values have their types and its payload names its own seq.
    """
    try:
        conn = sqlite3.connect(str(path), timeout=1.0)
    except sqlite3.Error:
        return []
    out: list[tuple[Any, ...]] = []
    budget = [SALVAGE_QUERIES]

    def read(a: int, b: int) -> bool:
        if budget[0] <= 0:
            return False
        budget[0] -= 1
        try:
            out.extend(conn.execute(f"SELECT {ROW_COLUMNS} FROM outbox WHERE seq BETWEEN ? AND ? ORDER BY seq",
                                    (a, b)).fetchall())
            return True
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return False
        except sqlite3.Error:
            pass
        if a == b:
            return True
        mid = (a + b) // 2
        return read(a, mid) and read(mid + 1, b)

    try:
        try:
            # Lets SQLite read a schema whose checks fail (a root page past the end of a truncated file); the
            # copy is only read.
            conn.execute("PRAGMA writable_schema=ON")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error:
            return []  # not a database any more (its first page is gone): nothing to read
        with contextlib.suppress(sqlite3.Error):
            top = conn.execute("SELECT min(seq), max(seq) FROM outbox").fetchone()
            if top and top[0] is not None:
                lo, hi = min(lo, top[0]), max(hi, top[1])
        if hi >= lo:
            read(lo, hi)
    finally:
        conn.close()
    good = []
    for r in out:
        seq, kind, prio, top_, payload, size, items = r[:7]
        if not (isinstance(seq, int) and isinstance(kind, str) and prio in PRIORITIES and isinstance(top_, str)
                and isinstance(payload, bytes) and size == len(payload) and isinstance(items, int)):
            continue
        if payload[:1] == b"{" and f'"seq":{seq},'.encode() not in payload[:400]:
            continue
        good.append(r)
    return good


class Outbox:
    """The durable, bounded, prioritised queue between the collectors and the MQTT link.

    Thread-safe: collectors add from worker threads while the link takes and acknowledges from its own.
    """

    def __init__(self, path: Path, envelope: Envelope, *, max_bytes: int, min_free_bytes: int = 0,
                 synchronous: str = "full", max_message_bytes: int = 256 * 1024, compression: str = "none",
                 now: Callable[[], float] = time.time):
        if max_bytes < min_budget(max_message_bytes):
            raise OutboxError(f"outbox.max_bytes ({max_bytes}) is too small for mqtt.max_message_bytes "
                              f"({max_message_bytes}): it must be at least {min_budget(max_message_bytes)} "
                              "(a few messages beside the write-ahead log)")
        self.path = Path(path)
        self.env = envelope
        self.max_bytes = max_bytes
        self.min_free_bytes = min_free_bytes
        self.synchronous = synchronous.upper()
        self.max_message_bytes = max_message_bytes
        self.compression = compression
        self.layout = layout(max_bytes, max_message_bytes)
        self._now = now
        # Two connections: the writer (inserts, acks, eviction) under `_lock`, and the reader the link takes
        # rows through under `_rlock`, so an fsync on the writer never stalls publishing (WAL readers do not
        # wait for writers). Lock order: `_lock` before `_rlock`; `take` only ever holds `_rlock`.
        self._lock = threading.RLock()
        self._rlock = threading.RLock()
        self._inflight: dict[int, tuple[int, int]] = {}  # seq -> (size, items)
        self._retry: list[tuple[float, int]] = []
        self._unrecorded: list[Unrecorded] = []
        self._ack_pending: list[tuple[int, tuple[int, int]]] = []  # acknowledged, deletion not yet committed
        self._bd_seq = -1
        self._full_since: float | None = None
        self._full_logged = 0.0
        self.full_events = 0
        self.resets = 0
        self.epoch = ""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutboxError(f"cannot create the outbox directory {self.path.parent}: {e.strerror}") from None
        if self.path.exists() and not self.path.is_file():
            raise OutboxError(f"the outbox {self.path} is not a file")
        self._open()
        self._make_reserve()

    # -- the side file ---------------------------------------------------------------------------

    @property
    def _reserve_file(self) -> Path:
        return self.path.with_name(self.path.name + ".reserve")

    def _make_reserve(self) -> None:
        """Hold `reserve_bytes` of the disk in a file of zeros, given back when the disk fills (`_full`): a WAL
        checkpoint must extend the database and deleting delivered rows must append to the WAL, and with a full
        disk neither could - sending would never free the space it is meant to free."""
        r = self._reserve_file
        if self.layout.reserve_bytes <= 0 or (r.exists() and r.stat().st_size >= self.layout.reserve_bytes):
            return
        try:
            if shutil.disk_usage(self.path.parent).free < self.layout.reserve_bytes + self.min_free_bytes:
                return
            with open(r, "wb") as f:
                f.write(b"\0" * self.layout.reserve_bytes)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                r.unlink()

    def _release_reserve(self) -> bool:
        try:
            self._reserve_file.unlink()
        except OSError:
            return False
        log.warning("outbox: the disk is full; gave back its %d-byte reserve so that delivered rows can be deleted",
                    self.layout.reserve_bytes)
        return True

    @property
    def _seqfile(self) -> Path:
        return self.path.with_name(self.path.name + ".seq")

    def _side(self) -> dict[str, Any]:
        try:
            raw = json.loads(self._seqfile.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(raw, dict):
            return {}
        out: dict[str, Any] = {k: raw[k] for k in ("seq_ceiling", "bd_seq", "unsent_from")
                               if isinstance(raw.get(k), int) and not isinstance(raw.get(k), bool)}
        if isinstance(raw.get("epoch"), str) and len(raw["epoch"]) == 32:
            out["epoch"] = raw["epoch"]
        return out

    def _write_side(self, **values: Any) -> bool:
        data = {**self._side(), **values}
        tmp = self._seqfile.with_name(self._seqfile.name + ".tmp")
        try:
            with open(tmp, "w") as f:
                json.dump(data, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._seqfile)
            return True
        except OSError as e:
            self._full(e, f"cannot write {self._seqfile}")
            with contextlib.suppress(OSError):
                tmp.unlink()
            return False

    # -- opening, quarantine ---------------------------------------------------------------------

    def _open(self) -> None:
        side = self._side()
        lost = None
        if "seq_ceiling" in side:
            if not self.path.exists():
                lost = "is missing"
            elif self.path.stat().st_size == 0:
                lost = "is empty (0 bytes)"
        reason = None
        try:
            self._connect()
            check = self.db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                reason = f"quick_check: {check}"
        except sqlite3.Error as e:
            if not _is_corruption(e):
                raise OutboxError(f"cannot open the outbox {self.path}: {e}") from None
            reason = str(e)
        if reason is not None:
            self._quarantine(reason)
            return
        self._load_state()
        if lost is not None:
            self._declare_lost(lost, side)

    def _connect(self) -> None:
        self.db = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0)
        self.rdb = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0)
        fresh = self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox'").fetchone() \
            is None
        if fresh:
            # Both must precede the first table. auto_vacuum lets maintain() give freed pages back to the disk.
            self.db.execute(f"PRAGMA page_size={self.layout.page_size}")
            self.db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.page_size = self.db.execute("PRAGMA page_size").fetchone()[0]
        self.db.execute(f"PRAGMA synchronous={self.synchronous}")
        self.db.execute("PRAGMA busy_timeout=5000")
        # The WAL's share of the budget: truncated to it when reset, checkpointed (PASSIVE) at half of it by
        # SQLite and (RESTART) by `_wal_room` before a write that would pass it.
        self.db.execute(f"PRAGMA journal_size_limit={self.layout.wal_bytes}")
        self.db.execute(f"PRAGMA wal_autocheckpoint={max(8, self.layout.wal_bytes // 2 // self.page_size)}")
        # Debian builds SQLite with secure_delete on, which rewrites every freed page with zeros: for a queue
        # that deletes each row once it is delivered that doubles the writes. FAST still clears what lies in
        # pages being written anyway; nothing in the outbox is more secret than what it sends to the cloud.
        self.db.execute("PRAGMA secure_delete=FAST")
        side = self._side()
        if fresh:
            self.db.executescript(SCHEMA)
            start = side.get("seq_ceiling", 0) + 1
            self.db.executemany("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)",
                                [("next_seq", start), ("delivered_messages", 0), ("delivered_items", 0)])
        self.db.execute("CREATE TABLE IF NOT EXISTS ident (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        self.db.commit()
        row = self.db.execute("SELECT v FROM ident WHERE k = 'epoch'").fetchone()
        # The database's epoch if it has one (its seqs belong to it); else the side file's (a fresh database
        # continues above its seq ceiling); else a new one: nothing of an earlier outbox is left here.
        epoch = row[0] if row else side.get("epoch") or secrets.token_hex(16)
        if not row:
            with self.db:
                self.db.execute("INSERT OR REPLACE INTO ident (k, v) VALUES ('epoch', ?)", [epoch])
            if "epoch" not in side and "seq_ceiling" not in side:
                log.info("outbox: %s starts a new epoch %s", self.path, epoch)
        if side.get("epoch") != epoch:
            self._write_side(epoch=epoch)
        self.epoch = epoch
        self.env = dataclasses.replace(self.env, epoch=epoch)

    def _load_state(self) -> None:
        meta = dict(self.db.execute("SELECT k, v FROM meta").fetchall())
        top = self.db.execute("SELECT max(seq) FROM outbox").fetchone()[0] or 0
        self._next_seq = max(meta.get("next_seq", 1), top + 1)
        self._ceiling = self._side().get("seq_ceiling", 0)
        if self._next_seq > self._ceiling:
            self._reserve(self._next_seq)
        self._bytes = self.db.execute("SELECT coalesce(sum(size), 0) FROM outbox").fetchone()[0]
        self._delivered = [meta.get("delivered_messages", 0), meta.get("delivered_items", 0)]
        # Everything already stored is backlog for this process: it is all unacknowledged.
        self._mark = self._next_seq - 1
        self._live = dict.fromkeys(PRIORITIES, self._mark)
        self._back = dict.fromkeys(PRIORITIES, 0)
        self._back_done = dict.fromkeys(PRIORITIES, False)
        self._inflight.clear()
        self._retry.clear()
        self._ack_pending.clear()

    def _reserve(self, upto: int) -> None:
        self._ceiling = upto + SEQ_BLOCK
        self._write_side(seq_ceiling=self._ceiling)

    def _declare_lost(self, what: str, side: dict[str, Any]) -> None:
        """The database is gone although the side file says an outbox lived here: declare what it may have held."""
        lo, hi = side.get("unsent_from", 1), side["seq_ceiling"]
        ranges = [[lo, hi]] if hi >= lo else []
        n = sum(b - a + 1 for a, b in ranges)
        log.error("outbox: %s %s although an outbox with seqs up to %d lived here; seqs %d..%d are declared lost",
                  self.path, what, hi, lo, hi)
        specs = [self._event_spec("outbox.lost", "error",
                                  f"the outbox file {what}; messages with seqs {lo}..{hi} that were not delivered "
                                  "are lost", {"seqs": ranges})]
        specs += self._gap_specs("gap", "outbox_lost", ranges, n, 0, None, None,
                                 f"the outbox file {what}; at most {n} undelivered messages")
        self._insert_unbudgeted(specs)

    def _quarantine(self, reason: str) -> None:
        with self._lock, self._rlock:
            self._quarantine_locked(reason)

    def _quarantine_locked(self, reason: str) -> None:
        for db in (getattr(self, "db", None), getattr(self, "rdb", None)):
            with contextlib.suppress(Exception):
                db.close()  # type: ignore[union-attr]
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(self._now()))
        kept = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                try:
                    os.replace(src, Path(str(kept) + suffix))
                except OSError as e:
                    log.error("outbox: cannot move %s aside (%s); deleting it instead", src, e.strerror)
                    with contextlib.suppress(OSError):
                        src.unlink()
        side = self._side()
        lo, hi = side.get("unsent_from", 1), side.get("seq_ceiling", 0)
        rows = salvage(kept, lo, hi) if kept.exists() else []
        self.resets += 1
        self._connect()
        self._load_state()
        rows = [r for r in rows if r[0] < self._next_seq]
        hi = max(hi, self._next_seq - 1)
        lost = _minus(lo, hi, (r[0] for r in rows)) if hi >= lo else []
        n = sum(b - a + 1 for a, b in lost)
        log.error("outbox: %s is corrupt (%s); kept it as %s, salvaged %d messages into a fresh outbox, "
                  "declared %d seqs in %d ranges lost", self.path, reason, kept, len(rows), n, len(lost))
        if rows:
            with self.db:
                self.db.executemany(INSERT_ROW.replace("INSERT", "INSERT OR IGNORE"), rows)
            self._bytes += sum(r[5] for r in rows)
        event = self._event_spec("outbox.reset", "error",
                                 f"the outbox file was corrupt ({reason}); kept as {kept.name}, {len(rows)} messages "
                                 f"salvaged, started afresh", {"kept_as": kept.name, "salvaged": len(rows),
                                                               "lost_seqs": lost[:100]})
        self._insert_unbudgeted([event, *self._gap_specs("gap", "outbox_reset", lost, n, 0, None, None,
                                                         f"unsent messages in {kept.name} that could not be read; "
                                                         f"at most {n}")])

    def _full(self, e: BaseException, what: str) -> bool:
        """A full disk: remembered as a state, logged once a minute while it lasts; the reserve file is given back.
        True if that freed space just now (worth trying again at once)."""
        now = time.monotonic()
        if self._full_since is None:
            self._full_since = now
            self.full_events += 1
        released = self._release_reserve()
        if now - self._full_logged >= FULL_LOG_EVERY_S:
            self._full_logged = now
            log.error("outbox: %s: %s (disk full; polling and sending go on, what cannot be kept is declared "
                      "as a gap once writing works again)", what, e)
        return released

    def _writing_works(self) -> None:
        if self._full_since is not None:
            log.warning("outbox: writing works again after %.0f s of a full disk", time.monotonic() - self._full_since)
            self._full_since = None
            self._full_logged = 0.0

    @property
    def disk_full(self) -> bool:
        return self._full_since is not None

    def _guard(self, op: Callable[[], Any], default: Any = None, retry: bool = True, what: str = "write") -> Any:
        """Run a database operation; a corrupt file is quarantined (and the operation retried once), a full disk
        is logged and the operation given up (`default`) - retried once if that gave the reserve back."""
        with self._lock:
            try:
                return op()
            except sqlite3.Error as e:
                if _is_full(e):
                    if self._full(e, what):
                        with contextlib.suppress(sqlite3.Error):
                            return op()
                    return default
                if not _is_corruption(e):
                    raise
                self._quarantine(str(e))
            if retry:
                try:
                    return op()
                except sqlite3.Error as e:
                    log.error("outbox: still failing after a fresh start: %s", e)
            return default

    # -- writing -----------------------------------------------------------------------------------

    def add_samples(self, samples: Sequence[Sample]) -> int:
        """Store samples as metrics messages (batched under the size cap); returns messages written."""
        if not samples:
            return 0
        items = [s.to_dict() for s in samples]
        # Most results (a switch's poll: ~700 samples, ~100 kB) fit one message: encoded in one pass, as one
        # list, they cost what a plain json.dumps does (item by item, batches() costs twice that); the rest
        # are batched item by item under the cap.
        body = _COMPACT.encode(items)[1:-1]
        if len(body.encode()) > self.max_message_bytes - self.env.overhead("metrics"):
            return self.add_items("metrics", items)
        times = [s.time for s in samples]
        return self._put([("metrics", priority_of("metrics"),
                           lambda seq: self.env.encode_batch("metrics", seq, [body], self._now()),
                           len(items), min(times), max(times))])

    def add_items(self, kind: str, items: Sequence[dict[str, Any]]) -> int:
        """Store items of a batch type (`metrics` samples, `findings`, `events`); returns messages written."""
        if not items:
            return 0
        specs = []
        groups = self.env.batches(items, self.max_message_bytes, kind)
        at = 0
        for group in groups:
            chunk = items[at:at + len(group)]
            at += len(group)
            times = [i["t"] for i in chunk if isinstance(i.get("t"), int | float)]
            prio = priority_of(kind, {"events": chunk} if kind == "events" else None)
            specs.append((kind, prio, lambda seq, g=group: self.env.encode_batch(kind, seq, g, self._now()),
                          len(group), min(times, default=None), max(times, default=None)))
        return self._put(specs)

    def add(self, kind: str, body: dict[str, Any]) -> int:
        """Store one message of any type but birth/death (those belong to a connection, not the outbox)."""
        spec = (kind, priority_of(kind, body), lambda seq: self.env.encode(kind, seq, body, self._now()),
                len(body.get("events", ())) or 1, None, None)
        return self._put([spec])

    def add_answer(self, request_id: str | None, body: dict[str, Any]) -> int:
        """Store a command answer and remember it under its request id, in one transaction."""
        def extra() -> None:
            if request_id is not None:
                self.db.execute("INSERT OR REPLACE INTO commands (request_id, at, answer) VALUES (?, ?, ?)",
                                [request_id, self._now(), json.dumps(body)])
        spec = ("cmd-result", 0, lambda seq: self.env.encode("cmd-result", seq, body, self._now()), 1, None, None)
        return self._put([spec], extra)

    def answer_for(self, request_id: str) -> dict[str, Any] | None:
        """The answer given earlier to `request_id`, if any (commands are idempotent by request id)."""
        def op() -> dict[str, Any] | None:
            row = self.db.execute("SELECT answer FROM commands WHERE request_id = ?", [request_id]).fetchone()
            return json.loads(row[0]) if row else None
        return self._guard(op)

    def next_bd_seq(self) -> int:
        """The bdSeq for the next MQTT CONNECT (persisted in the side file, so it survives a reset; counted in
        memory too, so that a side file that cannot be written never repeats one)."""
        with self._lock:
            bd = max(self._side().get("bd_seq", -1), self._bd_seq) + 1
            self._bd_seq = bd
            self._write_side(bd_seq=bd)
            return bd

    def _event_spec(self, kind: str, severity: str, message: str, data: dict[str, Any]) -> tuple:
        body = {"events": [{"t": round(self._now(), 3), "kind": kind, "severity": severity, "message": message,
                            "data": data}]}
        return ("events", 0, lambda seq: self.env.encode("events", seq, body, self._now()), 1, None, None)

    def _gap_spec(self, dropped: str, reason: str, seqs: list[list[int]], messages: int, items: int,
                  first: float | None, last: float | None, detail: str | None = None,
                  replaces: list[list[int]] | None = None) -> tuple:
        body: dict[str, Any] = {"dropped": dropped, "reason": reason, "messages": messages, "samples": items,
                                "seqs": seqs, "first_time": first, "last_time": last}
        if detail:
            body["detail"] = detail
        if replaces:
            body["replaces"] = replaces
        return ("gap", 0, lambda seq: self.env.encode("gap", seq, body, self._now()), 1, None, None)

    def _gap_specs(self, dropped: str, reason: str, seqs: list[list[int]], messages: int, items: int,
                   first: float | None, last: float | None, detail: str | None = None,
                   replaces: list[list[int]] | None = None) -> list[tuple]:
        """Gap records for any number of ranges (GAP_RANGES_PER_MESSAGE a message; the counts go with the first)."""
        if not seqs or replaces:
            return [self._gap_spec(dropped, reason, seqs, messages, items, first, last, detail, replaces)]
        out = []
        for i in range(0, len(seqs), GAP_RANGES_PER_MESSAGE):
            part = seqs[i:i + GAP_RANGES_PER_MESSAGE]
            n = sum(b - a + 1 for a, b in part) if messages == sum(b - a + 1 for a, b in seqs) else (
                messages if i == 0 else 0)
            out.append(self._gap_spec(dropped, reason, part, n, items if i == 0 else 0, first, last, detail))
        return out

    def _put(self, specs: list[tuple], extra: Callable[[], None] | None = None) -> int:
        with self._lock:
            for _ in range(2):
                try:
                    return self._insert(specs, extra)
                except sqlite3.Error as e:
                    if not _is_corruption(e):
                        raise
                    self._quarantine(str(e))
            return 0

    def _unrecorded_specs(self) -> tuple[list[tuple], list[Drop]]:
        """Gap records for what could not be written or declared yet (nothing is written here)."""
        specs: list[tuple] = []
        drops = []
        for u in self._unrecorded:
            specs += self._gap_specs(u.drop.kind, u.drop.reason, u.seqs, u.drop.messages, u.drop.items,
                                     u.first, u.last, u.detail)
            drops.append(u.drop)
        return specs, drops

    def _remember_unwritten(self, specs: list[tuple], rows: list[tuple], spec_of: list[int], reason: str,
                            detail: str) -> None:
        by: dict[str, list[tuple[int, tuple]]] = {}
        for r, i in zip(rows, spec_of, strict=True):
            by.setdefault(specs[i][0], []).append((r[0], specs[i]))
        for kind, lst in by.items():
            firsts = [s[4] for _, s in lst if s[4] is not None]
            lasts = [s[5] for _, s in lst if s[5] is not None]
            self._unrecorded.append(Unrecorded(Drop(kind, reason, len(lst), sum(s[3] for _, s in lst)),
                                               _ranges(seq for seq, _ in lst), min(firsts, default=None),
                                               max(lasts, default=None), detail))

    def _insert(self, specs: list[tuple], extra: Callable[[], None] | None = None) -> int:
        """Declare what is pending, make room, allocate seqs, build payloads, and write the rows.

        Rows are written in transactions of at most a quarter of the WAL's share. They become visible in seq
        order (every write holds `_lock`, and gap records written while making room get their seqs before
        these rows): the link's cursors rely on never seeing a lower seq appear after a higher one.
        """
        pending = len(self._unrecorded)
        gap_specs, drops = self._unrecorded_specs()
        all_specs = gap_specs + specs
        too_large: list[Drop] = []
        rows, spec_of = self._build(all_specs, self._next_seq, too_large)
        # Declared (with a gap record and in the drop counts) by the next write.
        self._unrecorded += [Unrecorded(d, [], None, None, "bigger than mqtt.max_message_bytes") for d in too_large]
        written = 0
        chunks = self._chunks(rows, spec_of)
        for n, (crows, cidx) in enumerate(chunks):
            first, last = n == 0, n == len(chunks) - 1

            def in_txn(first: bool = first, last: bool = last) -> None:
                if first:
                    for d in drops:
                        self._count_drop(d)
                if last and extra is not None:
                    extra()

            if self._write_rows(all_specs, crows, cidx, in_txn):
                if first:
                    del self._unrecorded[:pending]
                written += sum(1 for i in cidx if i >= len(gap_specs))
        return written

    def _chunks(self, rows: list[tuple], spec_of: list[int]) -> list[tuple[list[tuple], list[int]]]:
        limit = self.layout.wal_bytes // 4
        out: list[tuple[list[tuple], list[int]]] = []
        cur: list[tuple] = []
        idx: list[int] = []
        size = 0
        for r, i in zip(rows, spec_of, strict=True):
            if cur and size + r[5] > limit:
                out.append((cur, idx))
                cur, idx, size = [], [], 0
            cur.append(r)
            idx.append(i)
            size += r[5]
        if cur:
            out.append((cur, idx))
        return out

    def _write_rows(self, specs: list[tuple], rows: list[tuple], spec_of: list[int],
                    in_txn: Callable[[], None]) -> bool:
        """One transaction of rows, retried through a full disk; False (and remembered) if it cannot be written."""
        error: sqlite3.Error | None = None
        for attempt in range(3):
            try:
                need = sum(_pages(r[5], self.page_size) for r in rows) + 4
                if attempt == 0:
                    self._make_room(need)
                elif attempt == 2:
                    self._evict_pages(need + 16, "disk_full")
                if rows[0][0] != self._next_seq:  # gap records took the seqs: number the rows after them
                    rows, _ = self._build([specs[i] for i in spec_of], self._next_seq, None)
                self._wal_room(need * 2)
                with self.db:
                    self.db.executemany(INSERT_ROW, rows)
                    self.db.execute("UPDATE meta SET v = ? WHERE k = 'next_seq'", [rows[-1][0] + 1])
                    in_txn()
                self._next_seq = rows[-1][0] + 1
                if self._next_seq - 1 >= self._ceiling:
                    self._reserve(self._next_seq - 1)
                self._bytes += sum(r[5] for r in rows)
                self._writing_works()
                return True
            except sqlite3.Error as e:
                if not _is_full(e):
                    raise
                error = e
                if attempt == 0:
                    self._full(e, f"cannot write {len(rows)} messages")  # gives the reserve back
                    self._checkpoint("RESTART")
        # These seqs are taken from here on (a hole is harmless once declared; a reuse is not), and declared.
        self._next_seq = rows[-1][0] + 1
        if self._next_seq - 1 >= self._ceiling:
            self._reserve(self._next_seq - 1)
        assert error is not None
        self._full(error, f"cannot write {len(rows)} messages")
        self._remember_unwritten(specs, rows, spec_of, "disk_full", "could not be written: the disk was full")
        return False

    def _build(self, specs: list[tuple], seq: int, too_large: list[Drop] | None) -> tuple[list[tuple], list[int]]:
        rows: list[tuple] = []
        spec_of: list[int] = []
        now = self._now()
        for i, (kind, prio, build, items, t_first, t_last) in enumerate(specs):
            payload = compress(build(seq), self.compression)
            if len(payload) > self.max_message_bytes and kind != "gap":
                if too_large is not None:
                    log.error("outbox: a %s message of %d bytes exceeds mqtt.max_message_bytes (%d); dropped",
                              kind, len(payload), self.max_message_bytes)
                    too_large.append(Drop(kind, "too_large", 1, items))
                continue
            rows.append((seq, kind, prio, topic(self.env.city, self.env.school, kind), payload, len(payload), items,
                         t_first, t_last, now))
            spec_of.append(i)
            seq += 1
        return rows, spec_of

    def _insert_unbudgeted(self, specs: list[tuple]) -> None:
        """Small rows (gap records, lifecycle events) written at once, in the caller's transaction if one is open."""
        rows, _ = self._build(specs, self._next_seq, None)
        if not rows:
            return
        seq = rows[-1][0] + 1
        if seq - 1 >= self._ceiling:
            self._reserve(seq - 1)
        own = not self.db.in_transaction
        self.db.executemany(INSERT_ROW, rows)
        self.db.execute("UPDATE meta SET v = ? WHERE k = 'next_seq'", [seq])
        if own:
            self.db.commit()
        self._next_seq = seq
        self._bytes += sum(r[5] for r in rows)

    # -- the disk budget ---------------------------------------------------------------------------

    def _file_size(self, suffix: str) -> int:
        try:
            return os.path.getsize(str(self.path) + suffix)
        except OSError:
            return 0

    def budget_pages(self) -> int:
        """Pages the database may have in use now: its share of the budget, less if the disk is running out."""
        limit = self.layout.db_pages
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError:
            return limit
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        # What the database may still grow into: the free disk, less the reserve, less what the WAL may still
        # take of its share.
        wal_to_come = max(0, self.layout.wal_bytes - self._file_size("-wal"))
        reserve_to_come = 0 if self._reserve_file.exists() else self.layout.reserve_bytes
        room = (free - self.min_free_bytes - wal_to_come - reserve_to_come) // self.page_size
        return max(0, min(limit, pages + room))

    def budget(self) -> int:
        """Bytes the database may hold now (see `budget_pages`)."""
        return self.budget_pages() * self.page_size

    def _in_use(self) -> int:
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        return pages - free

    def _make_room(self, need: int) -> None:
        """Evict before a write of `need` pages would take the database past its budget."""
        budget = self.budget_pages()
        over = self._in_use() + need - budget
        if over > 0:
            # Free a little more than needed so that a full outbox does not evict on every insert.
            self._evict_pages(over + max(4, budget // 10), "disk_budget")

    def _wal_room(self, pages: int) -> None:
        """Before a write: if it could take the WAL past its share, checkpoint and start the WAL from its top."""
        if self._file_size("-wal") + pages * (self.page_size + 24) > self.layout.wal_bytes:
            self._checkpoint("RESTART")

    def _checkpoint(self, mode: str) -> bool:
        with self._rlock:  # the link's reader holds no snapshot while this runs
            try:
                busy = self.db.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()[0]
            except sqlite3.Error as e:
                if not _is_full(e):
                    raise
                if not self._full(e, "cannot checkpoint the write-ahead log"):
                    return False
                try:
                    busy = self.db.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()[0]
                except sqlite3.Error as e2:
                    if not _is_full(e2):
                        raise
                    return False
        return not busy

    def _evict_pages(self, pages: int, reason: str) -> None:
        """Drop the oldest rows of the lowest priority until `pages` fewer pages are in use (or nothing is left)."""
        with self._rlock:  # so that `take` cannot hand out a row while it is being dropped
            goal = self._in_use() - pages
            for _ in range(8):  # deleted cells free whole pages only once b-tree pages merge: measure again
                missing = self._in_use() - goal
                if missing <= 0 or not self._evict_locked(missing * self.page_size, reason):
                    return

    def _footprint(self, size: int) -> int:
        """Bytes of pages a row takes: its cell on a shared leaf, or whole overflow pages."""
        return size + 40 if size + 104 < self.page_size // 4 else _pages(size, self.page_size) * self.page_size

    def _old_gaps(self, kind: str, reason: str, acked: set[int]) -> list[tuple[int, int, dict[str, Any]]]:
        """Unsent gap records of the same drop (kind and reason) that a new one can replace, newest last."""
        out = []
        for seq, size, payload in self.db.execute("SELECT seq, size, payload FROM outbox WHERE kind = 'gap' "
                                                  "AND priority = 0 ORDER BY seq DESC LIMIT 16").fetchall():
            if seq in self._inflight or seq in acked:
                continue
            try:
                body = json.loads(gzip.decompress(payload) if payload[:2] == b"\x1f\x8b" else payload)
            except (OSError, ValueError):
                continue
            if body.get("dropped") == kind and body.get("reason") == reason and body.get("detail") is None:
                out.append((seq, size, body))
        return out[::-1]

    def _evict_locked(self, to_free: int, reason: str) -> bool:
        """One transaction: delete rows worth `to_free` bytes, count them, and write their gap record. An unsent
        gap record of the same drop is replaced by one that covers both (and its own seq), so that a long
        outage over budget leaves a few gap records, not one per eviction."""
        max_rows = max(8, self.layout.wal_bytes // (4 * self.page_size))
        acked = {s for s, _ in self._ack_pending}
        for prio in sorted(PRIORITIES, reverse=True):
            chosen: list[tuple] = []
            after = 0
            while to_free > 0 and len(chosen) < max_rows:
                batch = self.db.execute(
                    "SELECT seq, kind, size, items, t_first, t_last FROM outbox WHERE priority = ? AND seq > ? "
                    "AND kind <> 'gap' ORDER BY seq LIMIT 500", [prio, after]).fetchall()
                if not batch:
                    break
                after = batch[-1][0]
                for r in batch:
                    if r[0] in self._inflight or r[0] in acked:
                        continue
                    chosen.append(r)
                    to_free -= self._footprint(r[2])
                    if to_free <= 0 or len(chosen) >= max_rows:
                        break
            if not chosen:
                continue
            by_kind: dict[str, list[tuple]] = {}
            for r in chosen:
                by_kind.setdefault(r[1], []).append(r)
            specs = []
            drops = []
            replaced: list[int] = []
            replaced_bytes = 0
            for kind, rs in by_kind.items():
                drop = Drop(kind, reason, len(rs), sum(r[3] for r in rs))
                drops.append(drop)
                firsts = [r[4] for r in rs if r[4] is not None]
                lasts = [r[5] for r in rs if r[5] is not None]
                log.warning("outbox: over its budget (%s); dropped %d %s messages (%d items)", reason,
                            drop.messages, kind, drop.items)
                seqs = [r[0] for r in rs]
                also: list[int] = []
                messages, items = drop.messages, drop.items
                for old_seq, old_size, body in self._old_gaps(kind, reason, acked):
                    old_ranges = body.get("seqs") or []
                    old_replaces = body.get("replaces") or []
                    if len(_ranges(seqs)) + len(old_ranges) + len(old_replaces) + 1 > GAP_RANGES_PER_MESSAGE:
                        continue
                    replaced.append(old_seq)
                    replaced_bytes += old_size
                    also += [old_seq] + [s for lo, hi in old_replaces for s in range(lo, hi + 1)]
                    seqs += [s for lo, hi in old_ranges for s in range(lo, hi + 1)]
                    messages += body.get("messages", 0)
                    items += body.get("samples", 0)
                    firsts += [body["first_time"]] if body.get("first_time") is not None else []
                    lasts += [body["last_time"]] if body.get("last_time") is not None else []
                specs += self._gap_specs(kind, reason, _ranges(seqs), messages, items,
                                         min(firsts, default=None), max(lasts, default=None), replaces=_ranges(also))
            self._wal_room(len(chosen) + len(replaced) + 8)
            saved = self._next_seq
            gone = _ranges([r[0] for r in chosen] + replaced)
            try:
                with self.db:
                    self.db.executemany("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", gone)
                    for d in drops:
                        self._count_drop(d)
                    # Gap records are small and must not themselves trigger another eviction round.
                    self._insert_unbudgeted(specs)
            except sqlite3.Error:
                self._next_seq = saved  # the transaction rolled back, its gap records with it
                raise
            self._bytes -= sum(r[2] for r in chosen) + replaced_bytes
            return True
        return False

    def _count_drop(self, d: Drop) -> None:
        self.db.execute("INSERT INTO drops(kind, reason, messages, items) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT(kind, reason) DO UPDATE SET messages = messages + excluded.messages, "
                             "items = items + excluded.items", [d.kind, d.reason, d.messages, d.items])

    # -- delivering --------------------------------------------------------------------------------

    def link_up(self) -> None:
        """Called on every new connection: if the old backlog is gone, what waited until now is the backlog."""
        with self._rlock:
            if all(self._back_done.values()):
                for p in PRIORITIES:
                    self._back[p] = self._live[p]
                    self._back_done[p] = False
                # What the reader can see now, not what writers have allocated: a row being written at this
                # moment becomes visible later, above this mark, as live data.
                self._mark = self.rdb.execute("SELECT coalesce(max(seq), 0) FROM outbox").fetchone()[0]
                self._mark = max(self._mark, *self._live.values())
                self._live = dict.fromkeys(PRIORITIES, self._mark)

    def take(self, n: int) -> list[Row]:
        """Up to `n` rows not yet handed out, in sending order; they stay stored until `ack`."""
        try:
            with self._rlock:
                return self._take(n)
        except sqlite3.Error as e:
            if not _is_corruption(e):
                raise
            error = str(e)
        self._quarantine(error)  # outside `_rlock`: quarantining takes `_lock` first
        return []

    def _take(self, n: int) -> list[Row]:
        # The cursors move on local copies, kept only once every query has worked: a read that fails half-way
        # (the link tries again) must not leave rows behind a cursor without handing them out.
        live, back, back_done = dict(self._live), dict(self._back), dict(self._back_done)
        out: list[Row] = []
        now = time.monotonic()
        due = [s for t, s in self._retry if t <= now][:n]
        if due:
            marks = ",".join("?" * len(due))
            out += self._rows(f"SELECT * FROM outbox WHERE seq IN ({marks}) ORDER BY seq", due)
        for p in PRIORITIES:
            if len(out) >= n:
                break
            rows = self._rows("SELECT * FROM outbox WHERE priority = ? AND seq > ? ORDER BY seq LIMIT ?",
                              [p, live[p], n - len(out)])
            if rows:
                live[p] = rows[-1].seq
                out += rows
            if len(out) < n and not back_done[p]:
                rows = self._rows("SELECT * FROM outbox WHERE priority = ? AND seq > ? AND seq <= ? "
                                  "ORDER BY seq LIMIT ?", [p, back[p], self._mark, n - len(out)])
                if rows:
                    back[p] = rows[-1].seq
                    out += rows
                else:
                    back_done[p] = True
        self._live, self._back, self._back_done = live, back, back_done
        if due:
            self._retry = [(t, s) for t, s in self._retry if s not in set(due)]
        for r in out:
            self._inflight[r.seq] = (r.size, r.items)
        return out

    def _rows(self, sql: str, params: list[Any]) -> list[Row]:
        sql = sql.replace("SELECT *", "SELECT seq, kind, priority, topic, payload, size, items")
        return [Row(*r) for r in self.rdb.execute(sql, params).fetchall()]

    def ack(self, seqs: Sequence[int]) -> None:
        """The broker acknowledged these rows: delete them. On a full disk the deletion waits and is tried again
        with the next acknowledgements (the rows are not sent again meanwhile)."""
        with self._lock:
            done = [(s, self._inflight.pop(s)) for s in seqs if s in self._inflight]
            pending, self._ack_pending = self._ack_pending + done, []
            step = max(8, self.layout.wal_bytes // (4 * self.page_size))
            for i in range(0, len(pending), step):
                part = pending[i:i + step]
                if not self._guard(lambda part=part: self._delete_acked(part), default=False, retry=False,
                                   what=f"cannot record {len(part)} acknowledgements"):
                    self._ack_pending = pending[i:] + self._ack_pending
                    return

    def _delete_acked(self, done: list[tuple[int, tuple[int, int]]]) -> bool:
        msgs = len(done)
        items = sum(v[1] for _, v in done)
        self._wal_room(len(done) + 8)
        with self.db:
            # Acknowledgements come mostly in seq order: delete runs of consecutive seqs as rowid ranges.
            self.db.executemany("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", _ranges(s for s, _ in done))
            self.db.execute("UPDATE meta SET v = v + ? WHERE k = 'delivered_messages'", [msgs])
            self.db.execute("UPDATE meta SET v = v + ? WHERE k = 'delivered_items'", [items])
        self._bytes -= sum(v[0] for _, v in done)
        self._delivered[0] += msgs
        self._delivered[1] += items
        return True

    def release(self, seq: int, *, permanent: bool, reason: str) -> None:
        """The broker refused a row: retry it later, or (permanent) drop it with a gap record."""
        with self._lock, self._rlock:
            if seq not in self._inflight:
                return
            if not permanent:
                self._retry.append((time.monotonic() + RETRY_DELAY, seq))
                return

            def op() -> None:
                rows = self.db.execute("SELECT kind, t_first, t_last FROM outbox WHERE seq = ?",
                                            [seq]).fetchall()
                if not rows:
                    return
                size, items = self._inflight[seq]
                kind = rows[0][0]
                saved = self._next_seq
                try:
                    with self.db:
                        self.db.execute("DELETE FROM outbox WHERE seq = ?", [seq])
                        self._count_drop(Drop(kind, "rejected_by_broker", 1, items))
                        self._insert_unbudgeted([self._gap_spec(kind, "rejected_by_broker", [[seq, seq]], 1, items,
                                                                rows[0][1], rows[0][2], reason)])
                except sqlite3.Error:
                    self._next_seq = saved
                    raise
                self._inflight.pop(seq, None)
                self._bytes -= size
                log.error("outbox: the broker refused %s message seq %d (%s); dropped", kind, seq, reason)

            self._guard(op, retry=False, what=f"cannot drop the refused message seq {seq}")
            if seq in self._inflight:  # could not be dropped now: it is tried again later
                self._retry.append((time.monotonic() + RETRY_DELAY, seq))

    def inflight(self) -> int:
        return len(self._inflight)

    # -- housekeeping and reporting ----------------------------------------------------------------

    def maintain(self, max_pages: int = 4096) -> None:
        """Housekeeping, never raising on a full disk: acknowledgements still pending, old command answers, the
        WAL back to its start, freed pages back to the disk (a bounded amount per call) when the database is
        past its budget or mostly empty, and the side file's record of the lowest seq that may be unsent."""
        with self._lock:
            if self._ack_pending:
                self.ack([])

            def op() -> None:
                with self.db:
                    self.db.execute("DELETE FROM commands WHERE at < ?", [self._now() - 7 * 86400])
                pages = self.db.execute("PRAGMA page_count").fetchone()[0]
                free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
                over = pages - self.layout.db_pages
                if free > 256 and (over > 0 or free > pages // 4):
                    self.db.executescript(f"PRAGMA incremental_vacuum({max(max_pages, over)});")
                if self._file_size("-wal") > self.layout.wal_bytes // 2:
                    self._checkpoint("RESTART")
                low = self.db.execute("SELECT min(seq) FROM outbox").fetchone()[0]
                self._write_side(unsent_from=low if low is not None else self._next_seq)

            self._guard(op, retry=False, what="housekeeping")
            if self._unrecorded and not self.disk_full:
                self._put([])
            if not self.disk_full:
                self._make_reserve()

    def stats(self) -> OutboxStats:
        try:
            with self._rlock:
                st = collect_stats(self.rdb, str(self.path))
                st.epoch = self.epoch
                return st
        except sqlite3.Error as e:
            if not _is_corruption(e):
                raise
            error = str(e)
        self._quarantine(error)
        return OutboxStats(str(self.path))

    def close(self) -> None:
        with self._lock, self._rlock:
            with contextlib.suppress(sqlite3.Error):
                if self._ack_pending:
                    self.ack([])
                low = self.db.execute("SELECT min(seq) FROM outbox").fetchone()[0]
                self._write_side(unsent_from=low if low is not None else self._next_seq)
            with contextlib.suppress(sqlite3.Error):
                self.db.close()
                self.rdb.close()


def collect_stats(db: sqlite3.Connection, path: str) -> OutboxStats:
    st = OutboxStats(path)
    for priority, rows, size, items, oldest in db.execute(
            "SELECT priority, count(*), coalesce(sum(size), 0), coalesce(sum(items), 0), min(created) FROM outbox "
            "GROUP BY priority"):
        st.by_priority[priority] = {"rows": rows, "bytes": size, "items": items, "oldest": oldest}
    st.rows = sum(v["rows"] for v in st.by_priority.values())
    st.bytes = sum(v["bytes"] for v in st.by_priority.values())
    st.oldest = min((v["oldest"] for v in st.by_priority.values() if v["oldest"]), default=None)
    meta = dict(db.execute("SELECT k, v FROM meta").fetchall())
    st.next_seq = meta.get("next_seq", 1)
    st.delivered_messages = meta.get("delivered_messages", 0)
    st.delivered_items = meta.get("delivered_items", 0)
    st.drops = [Drop(*r) for r in db.execute("SELECT kind, reason, messages, items FROM drops ORDER BY kind, reason")]
    with contextlib.suppress(sqlite3.Error):
        row = db.execute("SELECT v FROM ident WHERE k = 'epoch'").fetchone()
        st.epoch = row[0] if row else None
    # Every file the outbox owns counts against its budget.
    st.file_bytes = sum(os.path.getsize(path + s) for s in ("", "-wal", "-shm", ".seq", ".reserve")
                        if os.path.isfile(path + s))
    return st


def inspect(path: Path) -> OutboxStats:
    """Statistics of an outbox file without disturbing the agent that owns it (read-only)."""
    if not Path(path).exists():
        raise OutboxError(f"no outbox at {path}")
    if not Path(path).is_file():
        raise OutboxError(f"{path} is not an outbox file (it is a directory or a special file)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as e:
        raise OutboxError(f"cannot open the outbox {path}: {e}") from None
    try:
        return collect_stats(conn, str(path))
    except sqlite3.Error as e:
        raise OutboxError(f"cannot read the outbox {path}: {e}") from None
    finally:
        conn.close()
