"""Seq bookkeeping per (school, agent, epoch): holes, late data, declared gaps, when each school was last heard.

Every stored message has a row in `messages` (school, agent, seq, received). The sweeper looks at the
streams that received something since its last run and moves each one's state forward:

- `floor`..`hwm`: the lowest and highest seq seen. The first seq the cloud sees starts the stream (a
  receiver that starts late does not call the agent's earlier history missing); a seq below the floor
  lowers it, and what lies between becomes a hole.
- a seq above `hwm + 1` opens a hole `hwm+1 .. seq-1`; a seq that lands in a hole fills it and counts as
  `late` (after an outage the agent sends live data ahead of its backlog, so this is normal, and the
  samples are stored all the same);
- seqs the agent declared dropped in a `gap` message (disk budget, too large, ...) are taken out of the
  holes: they are known, with a reason, and will never come;
- a hole younger than `ingest.reorder_timeout` is `open` (may still fill); older, `missing`.

A stream is (school, agent, epoch): an agent whose outbox starts again (a re-imaged box) starts a new epoch at
seq 1, and the sweeper records that as an `agent.new_epoch` event of the school. Births and deaths take no
seq (0) and are not part of a stream. (Agents before epochs spent one seq on each connect attempt's last will;
`streams.wills` and the bdSeq range still let the views explain those holes.)

The work is idempotent (a seq only ever moves state once), so running it twice, or after a crash, is harmless;
on PostgreSQL an advisory lock lets one receiver at a time do it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from eduedge.cloud.db import Db

SWEEP_LOCK = 7216
# Rows whose transaction committed a little after a sweep started are picked up by the next one.
LAG_S = 120.0


@dataclass
class Stream:
    school: str
    agent: str
    epoch: str
    floor: int | None
    hwm: int | None
    messages: int
    late: int
    holes: list[list[Any]]          # [first, last, opened]


def subtract(holes: list[list[Any]], ranges: list[list[int]]) -> list[list[Any]]:
    """Holes minus seq ranges (inclusive).

    >>> subtract([[1, 10, 0.0]], [[3, 4], [10, 12]])
    [[1, 2, 0.0], [5, 9, 0.0]]
    """
    out = holes
    for lo, hi in ranges:
        nxt = []
        for first, last, opened in out:
            if hi < first or lo > last:
                nxt.append([first, last, opened])
                continue
            if first < lo:
                nxt.append([first, lo - 1, opened])
            if hi < last:
                nxt.append([hi + 1, last, opened])
        out = nxt
    return out


def advance(st: Stream, seqs: list[int], now: float, declared: list[list[int]]) -> None:
    """Move a stream's state forward by the seqs seen since (sorted, distinct, not yet accounted for).

    >>> st = Stream("s", "a", "", None, None, 0, 0, [])
    >>> advance(st, [5, 6, 9], 1.0, []); st.floor, st.hwm, st.holes
    (5, 9, [[7, 8, 1.0]])
    >>> advance(st, [7], 2.0, []); st.holes, st.late, st.messages
    ([[8, 8, 1.0]], 1, 4)
    """
    for seq in seqs:
        if st.floor is None or st.hwm is None:
            st.floor = st.hwm = seq
            st.messages += 1
        elif seq > st.hwm:
            if seq > st.hwm + 1:
                st.holes.append([st.hwm + 1, seq - 1, now])
            st.hwm = seq
            st.messages += 1
        elif seq < st.floor:
            if seq < st.floor - 1:
                st.holes.append([seq + 1, st.floor - 1, now])
            st.floor = seq
            st.messages += 1
        else:
            before = sum(h[1] - h[0] + 1 for h in st.holes)
            st.holes = subtract(st.holes, [[seq, seq]])
            if sum(h[1] - h[0] + 1 for h in st.holes) < before:
                st.late += 1
                st.messages += 1
    st.holes = subtract(sorted(st.holes), declared)


def _load(db: Db, school: str, agent: str, epoch: str) -> Stream:
    key = [school, agent, epoch]
    row = db.query("SELECT floor, hwm, messages, late FROM streams WHERE school = ? AND agent = ? AND epoch = ?", key)
    holes = [list(h) for h in db.query("SELECT first_seq, last_seq, opened FROM holes WHERE school = ? AND agent = ? "
                                       "AND epoch = ? ORDER BY first_seq", key)]
    if not row:
        return Stream(school, agent, epoch, None, None, 0, 0, holes)
    return Stream(school, agent, epoch, row[0][0], row[0][1], row[0][2], row[0][3], holes)


def _order(st: Stream, arrived: list[int], db: Db) -> list[int]:
    """The seqs to account for, in the order `advance` wants them: a new stream takes all its messages in the
    order they arrived; a known one fills holes first, then grows upwards, then downwards."""
    if st.hwm is None or st.floor is None:
        return [r[0] for r in db.query("SELECT seq FROM messages WHERE school = ? AND agent = ? AND epoch = ? "
                                       "AND seq > 0 ORDER BY received, seq", [st.school, st.agent, st.epoch])]
    inside = sorted(s for s in arrived if st.floor <= s <= st.hwm)
    above = sorted(s for s in arrived if s > st.hwm)
    below = sorted((s for s in arrived if s < st.floor), reverse=True)
    return inside + above + below


def _save(db: Db, st: Stream, before: list[list[Any]], now: float) -> None:
    db.execute("INSERT INTO streams (school, agent, epoch, floor, hwm, messages, late, swept) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (school, agent, epoch) DO UPDATE SET "
               "floor = excluded.floor, hwm = excluded.hwm, messages = excluded.messages, late = excluded.late, "
               "swept = excluded.swept",
               [st.school, st.agent, st.epoch, st.floor, st.hwm, st.messages, st.late, now])
    if st.holes != before:
        db.execute("DELETE FROM holes WHERE school = ? AND agent = ? AND epoch = ?", [st.school, st.agent, st.epoch])
        db.many("INSERT INTO holes (school, agent, epoch, first_seq, last_seq, opened) VALUES (?, ?, ?, ?, ?, ?)",
                [(st.school, st.agent, st.epoch, f, la, o) for f, la, o in st.holes])


def _new_epoch(db: Db, st: Stream, now: float) -> None:
    """The first sweep of a stream whose agent already has one of another epoch: the box started its outbox again
    (re-imaged, replaced, its data folder lost). What the old epoch had not delivered is gone; the city is told."""
    old = db.query("SELECT epoch, hwm FROM streams WHERE school = ? AND agent = ? AND epoch <> ? AND hwm IS NOT NULL "
                   "ORDER BY swept DESC", [st.school, st.agent, st.epoch])
    if not old:
        return
    prev, hwm = old[0]
    # The old stream's highest seq as stored, not as last swept (its last messages may be in this very sweep).
    top = db.query("SELECT max(seq) FROM messages WHERE school = ? AND agent = ? AND epoch = ?",
                   [st.school, st.agent, prev])[0][0]
    hwm = max(hwm, top or 0)
    db.execute("INSERT INTO events (school, agent, seq, t, kind, severity, device, message, data) "
               "VALUES (?, ?, ?, ?, 'agent.new_epoch', 'warning', NULL, ?, ?)",
               [st.school, st.agent, st.floor, now,
                f"agent {st.agent} started a new outbox (epoch {st.epoch[:8] or '-'}, seqs from {st.floor}); the "
                f"previous epoch {prev[:8] or '-'} ended at seq {hwm}, and what it had not delivered is lost",
                json.dumps({"epoch": st.epoch, "previous_epoch": prev, "previous_hwm": hwm, "first_seq": st.floor})])


def sweep(db: Db, now: float | None = None) -> int:
    """Bring every stream that received messages since the last sweep up to date; returns how many."""
    now = time.time() if now is None else now
    with db.transaction():
        if not db.try_lock(SWEEP_LOCK):
            return 0
        row = db.query("SELECT v FROM meta WHERE k = 'swept_until'")
        since = float(row[0][0]) - LAG_S if row else 0.0
        arrived: dict[tuple[str, str, str], list[int]] = {}
        last_seen: dict[str, float] = {}
        for school, agent, epoch, seq, received in db.query("SELECT school, agent, epoch, seq, received FROM messages "
                                                            "WHERE received >= ?", [since]):
            if seq > 0:  # births and deaths take no seq
                arrived.setdefault((school, agent, epoch), []).append(seq)
            last_seen[school] = max(last_seen.get(school, 0.0), received)
        for school, agent, epoch in db.query("SELECT DISTINCT school, agent, epoch FROM gaps WHERE received >= ?",
                                             [since]):
            arrived.setdefault((school, agent, epoch), [])
        declared: dict[tuple[str, str, str], list[list[int]]] = {}
        for school, agent, epoch, text, also in db.query("SELECT school, agent, epoch, seqs, replaces FROM gaps"):
            declared.setdefault((school, agent, epoch), []).extend(json.loads(text) + json.loads(also or "[]"))
        for key, seqs in sorted(arrived.items()):
            st = _load(db, *key)
            before = [list(h) for h in st.holes]
            fresh = st.floor is None
            advance(st, _order(st, seqs, db), now, declared.get(key, []))
            if st.floor is not None:
                if fresh:
                    _new_epoch(db, st, now)
                _save(db, st, before, now)
        db.many("UPDATE schools SET last_seen = ? WHERE school = ? AND (last_seen IS NULL OR last_seen < ?)",
                [(t, s, t) for s, t in sorted(last_seen.items())])
        db.execute("INSERT INTO meta (k, v) VALUES ('swept_until', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                   [repr(now)])
    return len(arrived)
