"""The audit log of commands sent from the page or the API: who, when, what, to which school, and the answer.

One row is written before the command leaves (so an attempt is on record even if the server dies waiting)
and completed with the answer. A command refused here (a viewer's, a malformed one) is recorded too.

>>> from eduedge.cloud.db import connect_sqlite, init_schema
>>> db = connect_sqlite(":memory:"); init_schema(db); ensure_schema(db)
>>> i = record(db, "ana", "operator", "127.0.0.1", "s1", "rebirth", {}, t=10.0)
>>> answered(db, i, "ok", None, "cloud-1", t=11.5)
>>> [(r["user"], r["command"], r["status"], r["request_id"]) for r in recent(db)]
[('ana', 'rebirth', 'ok', 'cloud-1')]
"""

from __future__ import annotations

import json
import time
from typing import Any

from eduedge.cloud.db import DIALECT, Db

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
  id {id}, t DOUBLE PRECISION NOT NULL, username TEXT NOT NULL, role TEXT NOT NULL, remote TEXT,
  school TEXT NOT NULL, command TEXT NOT NULL, args TEXT, status TEXT NOT NULL, reason TEXT, request_id TEXT,
  answered DOUBLE PRECISION);
CREATE INDEX IF NOT EXISTS audit_school ON audit (school, t);
"""


def ensure_schema(db: Db) -> None:
    with db.transaction():
        if db.engine == "postgresql":
            db.execute("SELECT pg_advisory_xact_lock(7220)")
        for stmt in SCHEMA.split(";"):
            if stmt.strip():
                db.execute(stmt.format(id=DIALECT[db.engine]["id"]))


def record(db: Db, user: str, role: str, remote: str | None, school: str, command: str, args: dict[str, Any],
           status: str = "sending", reason: str | None = None, t: float | None = None) -> int:
    """A new entry; returns its id."""
    rows = db.query("INSERT INTO audit (t, username, role, remote, school, command, args, status, reason) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    [time.time() if t is None else t, user, role, remote, school, command,
                     json.dumps(args, ensure_ascii=False, sort_keys=True), status, reason])
    return int(rows[0][0])


def answered(db: Db, entry: int, status: str, reason: str | None, request_id: str | None,
             t: float | None = None) -> None:
    db.execute("UPDATE audit SET status = ?, reason = ?, request_id = ?, answered = ? WHERE id = ?",
               [status, reason, request_id, time.time() if t is None else t, entry])


def recent(db: Db, school: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    where, params = ("WHERE school = ?", [school]) if school else ("", [])
    rows = db.dicts(f"SELECT id, t, username AS user, role, remote, school, command, args, status, reason, "
                    f"request_id, answered FROM audit {where} ORDER BY id DESC LIMIT ?", [*params, limit])
    for r in rows:
        r["args"] = json.loads(r["args"]) if r["args"] else {}
    return rows
