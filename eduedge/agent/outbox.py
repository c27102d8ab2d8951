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

Order and priority
    0: command answers, gap records, lifecycle events; 1: findings, events, inventory; 2: metrics.
    `take()` serves priority 0 first, then 1, then 2. Within a priority rows go in seq order, except that
    rows written since the link came back go ahead of the backlog that waited through the outage (so live
    data is never starved); each of the two keeps its seq order.

Disk budget
    `max_bytes` of payload (also capped by free disk minus `min_free_bytes`). When a new row would pass it,
    the oldest rows of the lowest priority go first (metrics, then findings/events, then priority 0),
    never a row in flight; every drop is counted per type and reason, and written as a `gap` message
    (priority 0) that is itself delivered.

Failure
    A full disk makes room by the same policy and retries; if the row still cannot be written it is
    counted as dropped and reported by a gap record as soon as writing works again. A corrupt file is
    renamed `<db>.corrupt-<time>` (with its -wal/-shm) and a fresh outbox starts, with an `outbox.reset`
    event; the agent never crash-loops on its buffer.

>>> import tempfile; from eduedge.agent.envelope import Envelope
>>> box = Outbox(Path(tempfile.mkdtemp()) / "o.db", Envelope("s1", "c1", "gw", "0", "0" * 32), max_bytes=10**6)
>>> box.add("events", {"events": [{"t": 1.0, "kind": "agent.start", "severity": "info", "message": "hi"}]})
1
>>> [(r.seq, r.kind, r.priority) for r in box.take(10)]
[(1, 'events', 0)]
>>> box.ack([1]); box.stats().rows
0
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from eduedge.agent.contract import topic
from eduedge.agent.envelope import Envelope, compress
from eduedge.core.samples import Sample

log = logging.getLogger("eduedge.outbox")

PRIORITIES = (0, 1, 2)
LIFECYCLE_EVENT_PREFIXES = ("agent.", "outbox.")
SEQ_BLOCK = 100_000  # seq numbers reserved in the side file at a time
RETRY_DELAY = 5.0  # seconds before re-sending a row the broker refused for a passing reason
GAP_RANGES_PER_MESSAGE = 2000


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


def _is_full(e: sqlite3.Error) -> bool:
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


class Outbox:
    """The durable, bounded, prioritised queue between the collectors and the MQTT link.

    Thread-safe: collectors add from worker threads while the link takes and acknowledges from its own.
    """

    def __init__(self, path: Path, envelope: Envelope, *, max_bytes: int, min_free_bytes: int = 0,
                 synchronous: str = "full", max_message_bytes: int = 256 * 1024, compression: str = "none",
                 now: Callable[[], float] = time.time):
        if max_bytes < 2 * max_message_bytes:
            raise OutboxError(f"outbox.max_bytes ({max_bytes}) must hold at least two messages of "
                              f"mqtt.max_message_bytes ({max_message_bytes})")
        self.path = Path(path)
        self.env = envelope
        self.max_bytes = max_bytes
        self.min_free_bytes = min_free_bytes
        self.synchronous = synchronous.upper()
        self.max_message_bytes = max_message_bytes
        self.compression = compression
        self._now = now
        # Two connections: the writer (inserts, acks, eviction) under `_lock`, and the reader the link takes
        # rows through under `_rlock`, so an fsync on the writer never stalls publishing (WAL readers do not
        # wait for writers). Lock order: `_lock` before `_rlock`; `take` only ever holds `_rlock`.
        self._lock = threading.RLock()
        self._rlock = threading.RLock()
        self._inflight: dict[int, tuple[int, int]] = {}  # seq -> (size, items)
        self._retry: list[tuple[float, int]] = []
        self._unrecorded: list[Drop] = []  # drops that could not be written yet (disk full)
        self._unrecorded_seqs: list[int] = []
        self.resets = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutboxError(f"cannot create the outbox directory {self.path.parent}: {e.strerror}") from None
        self._open()

    # -- opening, quarantine ---------------------------------------------------------------------

    @property
    def _seqfile(self) -> Path:
        return self.path.with_name(self.path.name + ".seq")

    def _side(self) -> dict[str, int]:
        try:
            return {k: int(v) for k, v in json.loads(self._seqfile.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def _write_side(self, **values: int) -> None:
        data = {**self._side(), **values}
        tmp = self._seqfile.with_name(self._seqfile.name + ".tmp")
        try:
            with open(tmp, "w") as f:
                json.dump(data, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._seqfile)
        except OSError as e:
            log.error("outbox: cannot write %s (%s); seq numbers stay safe while the database lives",
                      self._seqfile, e.strerror)

    def _open(self) -> None:
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

    def _connect(self) -> None:
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0)
        self.db = Database(conn)
        self.rdb = Database(sqlite3.connect(self.path, check_same_thread=False, timeout=5.0))
        fresh = "outbox" not in self.db.table_names()
        if fresh:
            # Both must precede the first table. auto_vacuum lets maintain() give freed pages back to the disk;
            # 16 KiB pages keep a typical batch message (10-15 kB) on one page instead of an overflow chain,
            # which makes deleting acknowledged rows several times cheaper.
            self.db.execute("PRAGMA page_size=16384")
            self.db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self.db.enable_wal()
        self.db.execute(f"PRAGMA synchronous={self.synchronous}")
        self.db.execute("PRAGMA busy_timeout=5000")
        # Debian builds SQLite with secure_delete on, which rewrites every freed page with zeros: for a queue
        # that deletes each row once it is delivered that doubles the writes. FAST still clears what lies in
        # pages being written anyway; nothing in the outbox is more secret than what it sends to the cloud.
        self.db.execute("PRAGMA secure_delete=FAST")
        if fresh:
            self.db["outbox"].create({"seq": int, "kind": str, "priority": int, "topic": str, "payload": bytes,
                                      "size": int, "items": int, "t_first": float, "t_last": float,
                                      "created": float}, pk="seq", not_null={"kind", "priority", "topic",
                                                                             "payload", "size", "items"},
                                     if_not_exists=True)
            self.db["outbox"].create_index(["priority", "seq"], index_name="outbox_send", if_not_exists=True)
            self.db["meta"].create({"k": str, "v": int}, pk="k", if_not_exists=True)
            self.db["drops"].create({"kind": str, "reason": str, "messages": int, "items": int},
                                    pk=("kind", "reason"), if_not_exists=True)
            self.db["commands"].create({"request_id": str, "at": float, "answer": str}, pk="request_id",
                                       if_not_exists=True)
            start = self._side().get("seq_ceiling", 0) + 1
            self.db["meta"].insert_all([{"k": "next_seq", "v": start}, {"k": "delivered_messages", "v": 0},
                                        {"k": "delivered_items", "v": 0}], replace=True)

    def _load_state(self) -> None:
        meta = {r["k"]: r["v"] for r in self.db.query("SELECT k, v FROM meta")}
        top = next(self.db.query("SELECT max(seq) AS m FROM outbox"))["m"] or 0
        self._next_seq = max(meta.get("next_seq", 1), top + 1)
        self._ceiling = self._side().get("seq_ceiling", 0)
        if self._next_seq > self._ceiling:
            self._reserve(self._next_seq)
        self._bytes = next(self.db.query("SELECT coalesce(sum(size), 0) AS b FROM outbox"))["b"]
        self._delivered = [meta.get("delivered_messages", 0), meta.get("delivered_items", 0)]
        # Everything already stored is backlog for this process: it is all unacknowledged.
        self._mark = self._next_seq - 1
        self._live = dict.fromkeys(PRIORITIES, self._mark)
        self._back = dict.fromkeys(PRIORITIES, 0)
        self._back_done = dict.fromkeys(PRIORITIES, False)
        self._inflight.clear()
        self._retry.clear()

    def _reserve(self, upto: int) -> None:
        self._ceiling = upto + SEQ_BLOCK
        self._write_side(seq_ceiling=self._ceiling)

    def _quarantine(self, reason: str) -> None:
        with self._lock, self._rlock:
            self._quarantine_locked(reason)

    def _quarantine_locked(self, reason: str) -> None:
        for db in (self.db, getattr(self, "rdb", None)):
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
        self.resets += 1
        log.error("outbox: %s is corrupt (%s); kept it as %s and started a fresh outbox", self.path, reason, kept)
        self._connect()
        self._load_state()
        self._insert([self._event_spec("outbox.reset", "error",
                                       f"the outbox file was corrupt ({reason}); kept as {kept.name}, started afresh",
                                       {"kept_as": kept.name}),
                      self._gap_spec("gap", "outbox_reset", [], 0, 0, None, None,
                                     f"unsent messages in {kept.name} are unknown")])

    def _guard(self, op: Callable[[], Any], default: Any = None, retry: bool = True) -> Any:
        """Run a database operation; a corrupt file is quarantined (and the operation retried once)."""
        with self._lock:
            try:
                return op()
            except sqlite3.Error as e:
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
        return self.add_items("metrics", [s.to_dict() for s in samples])

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
                self.db["commands"].insert({"request_id": request_id, "at": self._now(),
                                            "answer": json.dumps(body)}, replace=True)
        spec = ("cmd-result", 0, lambda seq: self.env.encode("cmd-result", seq, body, self._now()), 1, None, None)
        return self._put([spec], extra)

    def answer_for(self, request_id: str) -> dict[str, Any] | None:
        """The answer given earlier to `request_id`, if any (commands are idempotent by request id)."""
        def op() -> dict[str, Any] | None:
            rows = list(self.db.query("SELECT answer FROM commands WHERE request_id = ?", [request_id]))
            return json.loads(rows[0]["answer"]) if rows else None
        return self._guard(op)

    def allocate_seq(self) -> int:
        """A seq for a message that is not stored (birth, death); persisted so it is never reused."""
        def op() -> int:
            seq = self._next_seq
            if seq >= self._ceiling:
                self._reserve(seq)
            self.db.execute("UPDATE meta SET v = ? WHERE k = 'next_seq'", [seq + 1])
            self._next_seq = seq + 1
            return seq
        return self._guard(op)

    def next_bd_seq(self) -> int:
        """The bdSeq for the next MQTT CONNECT (persisted in the side file, so it survives a reset)."""
        with self._lock:
            bd = self._side().get("bd_seq", -1) + 1
            self._write_side(bd_seq=bd)
            return bd

    def _event_spec(self, kind: str, severity: str, message: str, data: dict[str, Any]) -> tuple:
        body = {"events": [{"t": round(self._now(), 3), "kind": kind, "severity": severity, "message": message,
                            "data": data}]}
        return ("events", 0, lambda seq: self.env.encode("events", seq, body, self._now()), 1, None, None)

    def _gap_spec(self, dropped: str, reason: str, seqs: list[list[int]], messages: int, items: int,
                  first: float | None, last: float | None, detail: str | None = None) -> tuple:
        body: dict[str, Any] = {"dropped": dropped, "reason": reason, "messages": messages, "samples": items,
                                "seqs": seqs, "first_time": first, "last_time": last}
        if detail:
            body["detail"] = detail
        return ("gap", 0, lambda seq: self.env.encode("gap", seq, body, self._now()), 1, None, None)

    def _put(self, specs: list[tuple], extra: Callable[[], None] | None = None) -> int:
        with self._lock:
            if self._unrecorded:
                specs = self._unrecorded_gap_specs() + specs
            for attempt in range(2):
                try:
                    return self._insert(specs, extra)
                except sqlite3.Error as e:
                    if _is_corruption(e):
                        self._quarantine(str(e))
                        continue
                    if not _is_full(e):
                        raise
                    log.error("outbox: disk full while writing %d messages; dropping old low-priority rows",
                              len(specs))
                    with contextlib.suppress(sqlite3.Error):
                        self._evict(self._bytes // 4 + self.max_message_bytes * len(specs), "disk_full")
                    if attempt == 1:
                        break
            for kind, _prio, _build, items, _f, _l in specs:
                if kind != "gap":
                    self._unrecorded.append(Drop(kind, "disk_full", 1, items))
            return 0

    def _unrecorded_gap_specs(self) -> list[tuple]:
        by: dict[tuple[str, str], Drop] = {}
        for d in self._unrecorded:
            acc = by.setdefault((d.kind, d.reason), Drop(d.kind, d.reason, 0, 0))
            acc.messages += d.messages
            acc.items += d.items
        self._unrecorded.clear()
        specs = []
        for d in by.values():
            self._count_drop(d)
            specs.append(self._gap_spec(d.kind, d.reason, [], d.messages, d.items, None, None,
                                        "could not be written: the disk was full"))
        return specs

    def _insert(self, specs: list[tuple], extra: Callable[[], None] | None = None) -> int:
        """Make room, allocate seqs, build payloads, and write all rows in one transaction.

        Rows become visible in seq order (every write holds `_lock`, and gap records written while making
        room get their seqs before these rows): the link's cursors rely on never seeing a lower seq appear
        after a higher one.
        """
        rows = self._build(specs, self._next_seq)
        if not rows:
            return 0
        self._make_room(sum(r["size"] for r in rows))
        if rows[0]["seq"] != self._next_seq:  # gap records took the seqs: number the rows after them
            rows = self._build(specs, self._next_seq, count_drops=False)
        seq = rows[-1]["seq"] + 1
        # These seqs are taken from here on, even if the write fails (a hole is harmless, a reuse is not).
        self._next_seq = seq
        if seq - 1 >= self._ceiling:
            self._reserve(seq - 1)
        with self.db.atomic():
            self.db["outbox"].insert_all(rows, batch_size=500)
            self.db.execute("UPDATE meta SET v = ? WHERE k = 'next_seq'", [seq])
            if extra is not None:
                extra()
        self._bytes += sum(r["size"] for r in rows)
        return len(rows)

    def _build(self, specs: list[tuple], seq: int, count_drops: bool = True) -> list[dict[str, Any]]:
        rows = []
        now = self._now()
        for kind, prio, build, items, t_first, t_last in specs:
            payload = compress(build(seq), self.compression)
            if len(payload) > self.max_message_bytes:
                if count_drops:
                    log.error("outbox: a %s message of %d bytes exceeds mqtt.max_message_bytes (%d); dropped",
                              kind, len(payload), self.max_message_bytes)
                    self._unrecorded.append(Drop(kind, "too_large", 1, items))
                continue
            rows.append({"seq": seq, "kind": kind, "priority": prio,
                         "topic": topic(self.env.city, self.env.school, kind), "payload": payload,
                         "size": len(payload), "items": items, "t_first": t_first, "t_last": t_last,
                         "created": now})
            seq += 1
        return rows

    # -- the disk budget ---------------------------------------------------------------------------

    def budget(self) -> int:
        """Bytes the outbox may hold now: the configured budget, less if the disk is running out."""
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError:
            return self.max_bytes
        return max(0, min(self.max_bytes, self._bytes + free - self.min_free_bytes))

    def _make_room(self, size: int) -> None:
        budget = self.budget()
        if self._bytes + size <= budget:
            return
        # Free a little more than needed so that a full outbox does not evict on every insert.
        target = max(0, budget - size - budget // 20)
        self._evict(self._bytes - target, "disk_budget")

    def _evict(self, to_free: int, reason: str) -> None:
        with self._rlock:  # so that `take` cannot hand out a row while it is being dropped
            self._evict_locked(to_free, reason)

    def _evict_locked(self, to_free: int, reason: str) -> None:
        gaps = []
        for prio in sorted(PRIORITIES, reverse=True):
            if to_free <= 0:
                break
            chosen: list[dict[str, Any]] = []
            after = 0
            while to_free > 0:
                batch = list(self.db.query(
                    "SELECT seq, kind, size, items, t_first, t_last FROM outbox WHERE priority = ? AND seq > ? "
                    "ORDER BY seq LIMIT 500", [prio, after]))
                if not batch:
                    break
                after = batch[-1]["seq"]
                for r in batch:
                    if r["seq"] in self._inflight:
                        continue
                    chosen.append(r)
                    to_free -= r["size"]
                    if to_free <= 0:
                        break
            if not chosen:
                continue
            with self.db.atomic():
                self.db.conn.executemany("DELETE FROM outbox WHERE seq = ?", [(r["seq"],) for r in chosen])
            self._bytes -= sum(r["size"] for r in chosen)
            by_kind: dict[str, list[dict[str, Any]]] = {}
            for r in chosen:
                by_kind.setdefault(r["kind"], []).append(r)
            for kind, rs in by_kind.items():
                drop = Drop(kind, reason, len(rs), sum(r["items"] for r in rs))
                self._count_drop(drop)
                firsts = [r["t_first"] for r in rs if r["t_first"] is not None]
                lasts = [r["t_last"] for r in rs if r["t_last"] is not None]
                ranges = _ranges(r["seq"] for r in rs)
                log.warning("outbox: over its budget (%s); dropped %d %s messages (%d items)", reason,
                            drop.messages, kind, drop.items)
                for i in range(0, len(ranges), GAP_RANGES_PER_MESSAGE):
                    part = ranges[i:i + GAP_RANGES_PER_MESSAGE]
                    in_part = [r for r in rs if part[0][0] <= r["seq"] <= part[-1][1]]
                    gaps.append(self._gap_spec(kind, reason, part, len(in_part), sum(r["items"] for r in in_part),
                                               min(firsts, default=None), max(lasts, default=None)))
        if gaps:
            # Gap records are small and must not themselves trigger another eviction round.
            self._insert_unbudgeted(gaps)

    def _insert_unbudgeted(self, specs: list[tuple]) -> None:
        rows = []
        seq = self._next_seq
        for kind, prio, build, items, _f, _l in specs:
            payload = compress(build(seq), self.compression)
            rows.append({"seq": seq, "kind": kind, "priority": prio,
                         "topic": topic(self.env.city, self.env.school, kind), "payload": payload,
                         "size": len(payload), "items": items, "t_first": None, "t_last": None,
                         "created": self._now()})
            seq += 1
        if seq - 1 >= self._ceiling:
            self._reserve(seq - 1)
        with self.db.atomic():
            self.db["outbox"].insert_all(rows)
            self.db.execute("UPDATE meta SET v = ? WHERE k = 'next_seq'", [seq])
        self._next_seq = seq
        self._bytes += sum(r["size"] for r in rows)

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
                self._mark = self.rdb.conn.execute("SELECT coalesce(max(seq), 0) FROM outbox").fetchone()[0]
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
        return [Row(*r) for r in self.rdb.conn.execute(sql, params).fetchall()]

    def ack(self, seqs: Sequence[int]) -> None:
        """The broker acknowledged these rows: delete them (one transaction)."""
        if not seqs:
            return

        def op() -> None:
            done = [(s, self._inflight.pop(s)) for s in seqs if s in self._inflight]
            if not done:
                return
            msgs = len(done)
            items = sum(v[1] for _, v in done)
            with self.db.atomic():
                # Acknowledgements come mostly in seq order: delete runs of consecutive seqs as rowid ranges.
                self.db.conn.executemany("DELETE FROM outbox WHERE seq BETWEEN ? AND ?",
                                         _ranges(s for s, _ in done))
                self.db.conn.execute("UPDATE meta SET v = v + ? WHERE k = 'delivered_messages'", [msgs])
                self.db.conn.execute("UPDATE meta SET v = v + ? WHERE k = 'delivered_items'", [items])
            self._bytes -= sum(v[0] for _, v in done)
            self._delivered[0] += msgs
            self._delivered[1] += items

        self._guard(op, retry=False)

    def release(self, seq: int, *, permanent: bool, reason: str) -> None:
        """The broker refused a row: retry it later, or (permanent) drop it with a gap record."""
        with self._lock, self._rlock:
            if seq not in self._inflight:
                return
            if not permanent:
                self._retry.append((time.monotonic() + RETRY_DELAY, seq))
                return
            size, items = self._inflight.pop(seq)

            def op() -> None:
                rows = list(self.db.query("SELECT kind, t_first, t_last FROM outbox WHERE seq = ?", [seq]))
                if not rows:
                    return
                self.db.execute("DELETE FROM outbox WHERE seq = ?", [seq])
                self._bytes -= size
                kind = rows[0]["kind"]
                self._count_drop(Drop(kind, "rejected_by_broker", 1, items))
                log.error("outbox: the broker refused %s message seq %d (%s); dropped", kind, seq, reason)
                self._insert([self._gap_spec(kind, "rejected_by_broker", [[seq, seq]], 1, items,
                                             rows[0]["t_first"], rows[0]["t_last"], reason)])

            self._guard(op, retry=False)

    def inflight(self) -> int:
        return len(self._inflight)

    # -- housekeeping and reporting ----------------------------------------------------------------

    def maintain(self, max_pages: int = 4096) -> None:
        """Give freed pages back to the disk (a bounded amount per call) and forget old command answers."""
        def op() -> None:
            self.db.execute("DELETE FROM commands WHERE at < ?", [self._now() - 7 * 86400])
            free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
            if free > 256:
                self.db.executescript(f"PRAGMA incremental_vacuum({max_pages});")
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self._guard(op, retry=False)

    def stats(self) -> OutboxStats:
        try:
            with self._rlock:
                return collect_stats(self.rdb, str(self.path))
        except sqlite3.Error as e:
            if not _is_corruption(e):
                raise
            error = str(e)
        self._quarantine(error)
        return OutboxStats(str(self.path))

    def close(self) -> None:
        with self._lock, self._rlock, contextlib.suppress(sqlite3.Error):
            self.db.close()
            self.rdb.close()


def collect_stats(db: Database, path: str) -> OutboxStats:
    st = OutboxStats(path)
    for r in db.query("SELECT priority, count(*) AS rows, coalesce(sum(size), 0) AS bytes, "
                      "coalesce(sum(items), 0) AS items, min(created) AS oldest FROM outbox GROUP BY priority"):
        st.by_priority[r["priority"]] = {"rows": r["rows"], "bytes": r["bytes"], "items": r["items"],
                                         "oldest": r["oldest"]}
    st.rows = sum(v["rows"] for v in st.by_priority.values())
    st.bytes = sum(v["bytes"] for v in st.by_priority.values())
    st.oldest = min((v["oldest"] for v in st.by_priority.values() if v["oldest"]), default=None)
    meta = {r["k"]: r["v"] for r in db.query("SELECT k, v FROM meta")}
    st.next_seq = meta.get("next_seq", 1)
    st.delivered_messages = meta.get("delivered_messages", 0)
    st.delivered_items = meta.get("delivered_items", 0)
    st.drops = [Drop(r["kind"], r["reason"], r["messages"], r["items"])
                for r in db.query("SELECT kind, reason, messages, items FROM drops ORDER BY kind, reason")]
    with contextlib.suppress(OSError):
        st.file_bytes = sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))
    return st


def inspect(path: Path) -> OutboxStats:
    """Statistics of an outbox file without disturbing the agent that owns it (read-only)."""
    if not Path(path).exists():
        raise OutboxError(f"no outbox at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    try:
        return collect_stats(Database(conn), str(path))
    except sqlite3.Error as e:
        raise OutboxError(f"cannot read the outbox {path}: {e}") from None
    finally:
        conn.close()
