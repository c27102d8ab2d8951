"""Store a batch of checked messages: de-duplicate, then samples, findings, events, inventory, gaps, sessions.

One batch is one transaction, and the receiver acknowledges the batch's messages to the broker only after
it committed (cloud/receiver.py): a receiver killed at any point loses nothing and stores nothing twice.

De-duplication, in this order:
1. message id and (school, agent, epoch, seq): one multi-row `INSERT ... ON CONFLICT DO NOTHING RETURNING id` into
   `messages`; what the database did not insert is a duplicate. This is safe with several receivers on one
   PostgreSQL: the second insert of an id waits for the first one's transaction and then does nothing.
2. A message created before the de-duplication window (whose twin may have been pruned from `messages`)
   is checked against the stream's seq bookkeeping instead: a seq at or below the high-water mark that is
   in no hole was received before.

The epoch is the agent's outbox's: a re-imaged or replaced box starts a new one, with seqs from 1 again - a
new stream, kept whole, not duplicates of the old one (cloud/sweep.py records the new epoch as an event).
Births and deaths take no seq (0; agents before epochs gave them one): only their id de-duplicates them.

Sessions (Sparkplug's rules, see agent/contract/asyncapi.yaml): a birth is taken when it is newer than the
school's current one - by bdSeq, then time, from the same agent and epoch; by time from another agent or
epoch; a death counts only when its bdSeq is the current birth's (same agent and epoch) - an older one is
a late will of a connection that is already replaced, and is ignored (counted in `stale_deaths`). A death
that comes before its own birth (two receivers can see them in either order) is remembered, and the birth
then leaves the school offline. Each statement decides atomically, so concurrent receivers agree.

Seq holes, late data and last-heard-from are not touched here (no per-school row is updated for ordinary
messages, so receivers never wait for each other): cloud/sweep.py derives them from `messages`.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eduedge.cloud.checker import Accepted
from eduedge.cloud.db import Db
from eduedge.cloud.rollups import Rollups

log = logging.getLogger("eduedge.cloud.ingest")


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _opt_json(value: Any) -> str | None:
    return None if value is None else _json(value)


@dataclass
class BatchResult:
    stored: int = 0
    duplicates: int = 0
    samples: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)


class Ingestor:
    """Applies batches to one database connection; keeps a cache of series ids (a series never changes id)."""

    def __init__(self, db: Db, dedup_window: float, receiver: str = "receiver"):
        self.db = db
        self.dedup_window = dedup_window
        self.receiver = receiver
        self._series: dict[tuple[Any, ...], int] = {}
        self._schools: set[str] = set()
        # per school: (agent, epoch, boot_id, birth time) of its current birth as this receiver last knew it, and
        # whether a rebirth was already wished for (cloud/receiver.py asks for it)
        self._births: dict[str, tuple[Any, ...]] = {}
        self.totals: Counter[str] = Counter()
        self.rollups = Rollups(db)       # the pages' trends, kept in each batch's transaction

    def use(self, db: Db) -> None:
        """Write through `db` from now on (a receiver's new connection after the old one failed): everything
        that writes, the rollups included, must drop the closed connection, or every later message fails too."""
        self.db = db
        self.rollups.db = db

    # -- the batch --------------------------------------------------------------------------------------

    def apply(self, batch: Sequence[Accepted], received: float, rejected: Sequence[tuple[str, str, str, int, bytes]]
              = ()) -> BatchResult:
        """Store `batch` (checked messages, in arrival order) and `rejected` ((topic, reason, detail, size,
        payload head) of refused messages) in one transaction."""
        res = BatchResult()
        with self.db.transaction():
            self._ensure_schools(batch, received)
            fresh = self._insert_messages(batch, received)
            old = [m for m in batch if m.msg["id"] in fresh and m.msg["time"] < received - self.dedup_window]
            if old:
                fresh -= self._seen_before(old)
            samples: list[tuple[Any, ...]] = []
            for m in batch:
                if m.msg["id"] not in fresh:
                    res.duplicates += 1
                    continue
                fresh.discard(m.msg["id"])   # a second copy later in this batch is a duplicate
                res.stored += 1
                res.by_kind[m.kind] += 1
                self._store(m, received, samples)
            self._store_samples(samples)
            res.samples = len(samples)
            self._check_births(batch)
            if rejected:
                self.db.many("INSERT INTO rejects (received, topic, reason, detail, size, payload) "
                             "VALUES (?, ?, ?, ?, ?, ?)",
                             [(received, t, r, d, size, head) for t, r, d, size, head in rejected])
            self._count(res, rejected)
        return res

    def _count(self, res: BatchResult, rejected: Sequence[tuple[str, str, str, int, bytes]]) -> None:
        delta: Counter[str] = Counter({"messages": res.stored, "duplicates": res.duplicates, "samples": res.samples})
        for kind, n in res.by_kind.items():
            delta[f"kind.{kind}"] += n
        for _, reason, _, _, _ in rejected:
            delta[f"rejected.{reason}"] += 1
        delta = +delta
        self.totals.update(delta)
        # Per receiver rows: two receivers never update the same counter row.
        self.db.many("INSERT INTO counters (receiver, name, value) VALUES (?, ?, ?) ON CONFLICT (receiver, name) "
                     "DO UPDATE SET value = counters.value + excluded.value",
                     [(self.receiver, k, v) for k, v in sorted(delta.items())])

    def _ensure_schools(self, batch: Sequence[Accepted], received: float) -> None:
        new = {m.school: m.city for m in batch if m.school not in self._schools}
        if new:
            self.db.many("INSERT INTO schools (school, city, first_seen) VALUES (?, ?, ?) ON CONFLICT (school) "
                         "DO NOTHING", [(s, c, received) for s, c in sorted(new.items())])
            self._schools.update(new)

    def _insert_messages(self, batch: Sequence[Accepted], received: float) -> set[str]:
        """Insert the batch's message rows; the ids that were new (not already stored, not repeated in the batch)."""
        fresh: set[str] = set()
        step = 500   # 9 values a row; well under SQLite's 32766 variables per statement
        # In id order: two receivers inserting overlapping batches then lock rows in the same order (no deadlock).
        ordered = sorted(batch, key=lambda m: m.msg["id"])
        for i in range(0, len(ordered), step):
            part = ordered[i:i + step]
            marks = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(part))
            params: list[Any] = []
            for m in part:
                items = m.msg.get("samples") or m.msg.get("findings") or m.msg.get("events") or m.msg.get("devices")
                params += [m.msg["id"], m.school, m.agent, m.epoch, m.msg["seq"], m.kind, m.msg["time"], received,
                           len(items) if isinstance(items, list) else 1]
            rows = self.db.query(f"INSERT INTO messages (id, school, agent, epoch, seq, kind, time, received, items) "
                                 f"VALUES {marks} ON CONFLICT DO NOTHING RETURNING id", params)
            fresh.update(r[0] for r in rows)
        return fresh

    def _seen_before(self, old: Sequence[Accepted]) -> set[str]:
        """Of messages older than the de-duplication window, those the seq bookkeeping says arrived before."""
        seen = set()
        for m in old:
            seq = m.msg["seq"]
            if seq == 0:  # a birth or death: its id is all there is
                continue
            st = self.db.query("SELECT floor, hwm FROM streams WHERE school = ? AND agent = ? AND epoch = ?",
                               [m.school, m.agent, m.epoch])
            if not st or st[0][0] is None or not st[0][0] <= seq <= st[0][1]:
                continue
            hole = self.db.query("SELECT 1 FROM holes WHERE school = ? AND agent = ? AND epoch = ? AND first_seq <= ? "
                                 "AND last_seq >= ?", [m.school, m.agent, m.epoch, seq, seq])
            if not hole:
                seen.add(m.msg["id"])
                self.db.execute("DELETE FROM messages WHERE id = ?", [m.msg["id"]])
        return seen

    # -- per type ---------------------------------------------------------------------------------------

    def _store(self, m: Accepted, received: float, samples: list[tuple[Any, ...]]) -> None:
        msg = m.msg
        if m.kind == "metrics":
            school = m.school
            for s in msg["samples"]:
                tags = s.get("tags")
                samples.append((school, s["device"], s["metric"], s.get("unit", ""),
                                tuple(sorted(tags.items())) if tags else (), s["t"], s["value"]))
        elif m.kind == "findings":
            self._findings(m)
        elif m.kind == "events":
            self.db.many("INSERT INTO events (school, agent, seq, t, kind, severity, device, message, data) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         [(m.school, m.agent, msg["seq"], e["t"], e["kind"], e["severity"], e.get("device"),
                           e["message"], _opt_json(e.get("data"))) for e in msg["events"]])
        elif m.kind == "inventory":
            self._inventory(m.school, msg["seq"], msg["time"], msg.get("scope", "configured"), msg["devices"])
        elif m.kind == "gap":
            self.db.execute("INSERT INTO gaps (school, agent, epoch, seq, received, dropped, reason, detail, "
                            "messages, samples, seqs, replaces, first_time, last_time) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [m.school, m.agent, m.epoch, msg["seq"], received, msg["dropped"], msg["reason"],
                             msg.get("detail"), msg["messages"], msg["samples"], _json(msg["seqs"]),
                             _opt_json(msg.get("replaces")), msg["first_time"], msg["last_time"]])
            # It covers the gap records it replaces (their drops are in its counts): those are not counted twice.
            self.db.many("DELETE FROM gaps WHERE school = ? AND agent = ? AND epoch = ? AND seq BETWEEN ? AND ?",
                         [(m.school, m.agent, m.epoch, lo, hi) for lo, hi in msg.get("replaces", [])])
        elif m.kind == "birth":
            self._birth(m, received)
        elif m.kind == "death":
            self._death(m, received)
        elif m.kind == "cmd-result":
            self._answer(m, received)

    def _findings(self, m: Accepted) -> None:
        rows = [(m.school, f["rule"], f["subject"], f["t"], f["status"], _opt_json(f.get("value")),
                 _opt_json(f.get("threshold")), f.get("unit"), _opt_json(f.get("evidence")))
                for f in m.msg["findings"]]
        self.db.many("INSERT INTO findings (school, agent, seq, rule, subject, t, status, value, threshold, unit, "
                     "evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [(r[0], m.agent, m.msg["seq"], *r[1:]) for r in rows])
        # The newest judgement per rule and subject wins, whatever order the messages arrive in.
        self.db.many("INSERT INTO current_findings (school, rule, subject, t, status, value, threshold, unit, "
                     "evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (school, rule, subject) DO UPDATE "
                     "SET t = excluded.t, status = excluded.status, value = excluded.value, "
                     "threshold = excluded.threshold, unit = excluded.unit, evidence = excluded.evidence "
                     "WHERE excluded.t >= current_findings.t", rows)

    def _inventory(self, school: str, seq: int, t: float, scope: str, devices: list[dict[str, Any]]) -> None:
        if scope == "discovered":
            self.db.many("INSERT INTO inventory (school, scope, device, t, data) VALUES (?, 'discovered', ?, ?, ?) "
                         "ON CONFLICT (school, scope, device) DO UPDATE SET t = excluded.t, data = excluded.data "
                         "WHERE excluded.t >= inventory.t",
                         [(school, d["device"], t, _json(d)) for d in devices])
            return
        # A configured inventory is the complete list: the newest (by the agent's time: seqs of two epochs, and a
        # birth's 0, do not compare) replaces what was there.
        if self.db.execute("UPDATE schools SET inventory_seq = ?, inventory_time = ? WHERE school = ? AND "
                           "(inventory_time IS NULL OR inventory_time <= ?)", [seq, t, school, t]):
            self.db.execute("DELETE FROM inventory WHERE school = ? AND scope = 'configured'", [school])
            rows = {d["device"]: d for d in devices}
            self.db.many("INSERT INTO inventory (school, scope, device, t, data) VALUES (?, 'configured', ?, ?, ?)",
                         [(school, name, t, _json(d)) for name, d in rows.items()])

    def _birth(self, m: Accepted, received: float) -> None:
        msg, info = m.msg, m.msg["school_info"]
        bd, seq, t = msg["bdSeq"], msg["seq"], msg["time"]
        taken = self.db.execute(
            "UPDATE schools SET name = ?, type = ?, district = ?, students = ?, teachers = ?, agent = ?, "
            "agent_version = ?, boot_id = ?, config_digest = ?, birth = ?, births = births + 1, "
            "online = CASE WHEN pending_death_bd = ? THEN 0 ELSE 1 END, "
            "online_since = CASE WHEN pending_death_bd = ? THEN online_since ELSE ? END, "
            "offline_since = CASE WHEN pending_death_bd = ? THEN ? ELSE NULL END, "
            "offline_reason = CASE WHEN pending_death_bd = ? THEN 'connection_lost' ELSE NULL END, "
            "pending_death_bd = NULL, bd_seq = ?, birth_seq = ?, birth_time = ?, epoch = ?, want_rebirth = NULL "
            "WHERE school = ? AND (birth_time IS NULL "
            "OR (agent = ? AND coalesce(epoch, '') = ? AND (bd_seq < ? OR (bd_seq = ? AND birth_time < ?))) "
            "OR ((agent <> ? OR coalesce(epoch, '') <> ?) AND birth_time < ?))",
            [info["name"], info["type"], info.get("district"), info.get("students"), info.get("teachers"),
             m.agent, msg["agent"]["version"], msg["agent"]["boot_id"], msg["config_digest"],
             _json({k: msg[k] for k in ("collectors", "commands", "outbox", "started", "compression",
                                       "max_message_bytes", "rebirth") if k in msg}),
             bd, bd, received, bd, received, bd, bd, seq, t, m.epoch, m.school, m.agent, m.epoch, bd, bd, t, m.agent,
             m.epoch, t])
        if taken:
            self._births[m.school] = (m.agent, m.epoch, msg["agent"]["boot_id"], t, False)
        if not taken:
            log.info("%s: birth bdSeq %d (seq %d) is older than the school's current one; kept as history only",
                     m.school, bd, seq)
        else:
            self._inventory(m.school, seq, t, "configured", msg["devices"])
        self._session(m, bd, will=False)

    def _death(self, m: Accepted, received: float) -> None:
        msg = m.msg
        bd, reason = msg["bdSeq"], msg["reason"]
        # One statement decides both cases: with two receivers the death's birth may be committing in the other
        # one's transaction, and PostgreSQL re-reads the row it waited for only inside the statement that waited.
        # Two statements (current? else before its birth?) could each see the other side of that commit. A row the
        # WHERE takes with bd_seq = bd is the current birth's (the other case needs bd_seq < bd or NULL), so the SET
        # and the caller tell the two cases apart by bd_seq alone.
        found = self.db.query(
            "UPDATE schools SET offline_since = CASE WHEN bd_seq = ? AND online = 1 THEN ? ELSE offline_since END, "
            "offline_reason = CASE WHEN bd_seq = ? THEN ? ELSE offline_reason END, "
            "pending_death_bd = CASE WHEN bd_seq = ? THEN pending_death_bd ELSE ? END, "
            "online = CASE WHEN bd_seq = ? THEN 0 ELSE online END "
            "WHERE school = ? AND ((agent = ? AND coalesce(epoch, '') = ? AND bd_seq = ?) "
            "OR ((bd_seq IS NULL OR (agent = ? AND coalesce(epoch, '') = ? AND bd_seq < ?)) "
            "AND (pending_death_bd IS NULL OR pending_death_bd < ?))) RETURNING bd_seq",
            [bd, received, bd, reason, bd, bd, bd, m.school, m.agent, m.epoch, bd, m.agent, m.epoch, bd, bd])
        if found and found[0][0] != bd:
            log.info("%s: death bdSeq %d before its birth; the birth will find the school offline", m.school, bd)
        elif not found:
            self.db.execute("UPDATE schools SET stale_deaths = stale_deaths + 1 WHERE school = ?", [m.school])
            log.info("%s: stale death bdSeq %d (%s) ignored: the school's current birth is newer", m.school, bd, reason)
        self._session(m, bd, will=reason == "connection_lost")

    def _session(self, m: Accepted, bd: int, will: bool) -> None:
        """bdSeq range and delivered wills per stream, for agents before epochs: each of their connect attempts spent
        one seq on its will, so the views can tell how many single-seq holes are wills that were never sent. Session
        messages that take no seq (0) leave no such hole, and are not counted."""
        if m.msg["seq"] == 0:
            return
        self.db.execute(
            "INSERT INTO streams (school, agent, epoch, floor, hwm, min_bd_seq, max_bd_seq, wills, swept) "
            "VALUES (?, ?, ?, NULL, NULL, ?, ?, ?, 0) ON CONFLICT (school, agent, epoch) DO UPDATE SET "
            "min_bd_seq = CASE WHEN streams.min_bd_seq IS NULL OR excluded.min_bd_seq < streams.min_bd_seq "
            "THEN excluded.min_bd_seq ELSE streams.min_bd_seq END, "
            "max_bd_seq = CASE WHEN streams.max_bd_seq IS NULL OR excluded.max_bd_seq > streams.max_bd_seq "
            "THEN excluded.max_bd_seq ELSE streams.max_bd_seq END, wills = streams.wills + excluded.wills",
            [m.school, m.agent, m.epoch, bd, bd, int(will)])

    def _check_births(self, batch: Sequence[Accepted]) -> None:
        """Data from a process or outbox whose birth the school's current one is not (the birth was lost, e.g.
        while both sides reconnected after a broker restart): wish for a rebirth (cloud/receiver.py asks)."""
        newest: dict[str, Accepted] = {}
        for m in batch:
            if m.kind in ("birth", "death"):
                continue
            if m.school not in newest or m.msg["time"] > newest[m.school].msg["time"]:
                newest[m.school] = m
        for school, m in newest.items():
            known = self._births.get(school)
            if known is None:
                row = self.db.query("SELECT agent, coalesce(epoch, ''), boot_id, birth_time, want_rebirth FROM schools "
                                    "WHERE school = ?", [school])
                known = (*row[0][:4], row[0][4] is not None) if row else (None, "", None, None, False)
                self._births[school] = known
            agent, epoch, boot, t, wished = known
            ident = (m.agent, m.epoch, m.msg["agent"]["boot_id"])
            # Backlog written by an earlier process of the agent carries that process's boot id: only data made
            # after the current birth says that a newer process is speaking.
            if wished or ident == (agent, epoch, boot) or (t is not None and m.msg["time"] <= t):
                continue
            if self.db.execute("UPDATE schools SET want_rebirth = ? WHERE school = ? AND want_rebirth IS NULL AND "
                               "(birth_time IS NULL OR birth_time < ?) AND (boot_id IS NULL OR boot_id <> ? OR "
                               "agent <> ? OR coalesce(epoch, '') <> ?)",
                               [m.msg["time"], school, m.msg["time"], ident[2], ident[0], ident[1]]):
                log.info("%s: data from %s (boot %s) newer than its birth; a rebirth is wished for", school,
                         m.agent, ident[2][:8])
            self._births.pop(school, None)  # read again next time: this or another receiver changed it

    def _answer(self, m: Accepted, received: float) -> None:
        msg = m.msg
        if msg["request_id"] is None:
            log.warning("%s: refused a command too malformed to name its request: %s", m.school, msg.get("reason"))
            return
        self.db.execute(
            "INSERT INTO commands (request_id, school, city, command, status, reason, result, answered) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO UPDATE SET status = excluded.status, "
            "reason = excluded.reason, result = excluded.result, answered = excluded.answered "
            "WHERE commands.answered IS NULL",
            [msg["request_id"], m.school, m.city, msg["command"], msg["status"], msg.get("reason"),
             _opt_json(msg.get("result")), received])

    # -- samples ----------------------------------------------------------------------------------------

    def _store_samples(self, samples: list[tuple[Any, ...]]) -> None:
        """Samples are (school, device, metric, unit, sorted tag pairs, t, value); a series is the first five."""
        if not samples:
            return
        cache = self._series
        missing = {s[:5] for s in samples if s[:5] not in cache}
        if missing:
            self._load_series(missing)
        rows = [(cache[s[:5]], s[5], None, s[6]) if isinstance(s[6], str) else (cache[s[:5]], s[5], float(s[6]), None)
                for s in samples]
        self.db.copy("samples", ("series", "t", "value", "text"), rows)
        self.rollups.add(samples)

    def _load_series(self, keys: set[tuple[Any, ...]]) -> None:
        ordered = sorted(keys)
        step = 1000
        for i in range(0, len(ordered), step):
            part = {(*k[:4], _tags(k[4])): k for k in ordered[i:i + step]}
            marks = ", ".join(["(?, ?, ?, ?, ?)"] * len(part))
            for sid, *key in self.db.query(f"INSERT INTO series (school, device, metric, unit, tags) VALUES {marks} "
                                           f"ON CONFLICT DO NOTHING RETURNING id, school, device, metric, unit, tags",
                                           [v for k in part for v in k]):
                self._series[part[tuple(key)]] = sid
        # Series another receiver made (or this one before a restart) were not inserted: read them.
        for school in sorted({k[0] for k in keys if k not in self._series}):
            for sid, *key, tags in self.db.query("SELECT id, school, device, metric, unit, tags FROM series "
                                                 "WHERE school = ?", [school]):
                pairs = tuple(sorted(json.loads(tags).items())) if tags else ()
                self._series[(*key, pairs)] = sid


def _tags(pairs: tuple[tuple[str, str], ...]) -> str:
    """A series' tags as stored: canonical JSON, or '' for none."""
    return _json(dict(pairs)) if pairs else ""
