"""The cloud's database: one schema, on SQLite (embedded default) or PostgreSQL (psycopg 3), same SQL.

Statements are written once, with `?` placeholders and the SQL both engines share (`INSERT ... ON CONFLICT`,
`RETURNING`, `excluded`); the few words that differ are filled in per engine (`{id}` for a generated key,
`{blob}`, `{floor}` for rounding down). `Db` hides the two drivers behind `execute`, `query`, `many`,
`copy` and `transaction`.

Tables (see SCHEMA):
- `schools`: what the city knows of each school (its birth, online/offline, last heard from);
- `streams`, `holes`, `gaps`: per (school, agent, epoch) the seq bookkeeping - lowest and highest seq, the
  holes not (yet) filled, late arrivals, and the gaps the agent itself declared. The epoch is the agent's
  outbox's (agent/outbox.py): a re-imaged box starts a new one at seq 1, a new stream rather than duplicates;
- `messages`: the de-duplication index, one row per message id (kept for `ingest.dedup_window`), unique by
  (school, agent, epoch, seq) too for data messages (births and deaths carry seq 0: they take none);
- `series`, `samples`, `rollups`: metrics, normalised (a series is school+device+metric+unit+tags), raw and
  downsampled;
- `findings` (every judgement received), `current_findings` (the newest per school, rule, subject),
  `events`, `inventory`, `commands`, `rejects` (invalid messages kept aside), `counters` (per receiver).

>>> db = connect_sqlite(":memory:"); init_schema(db)
>>> db.query("SELECT v FROM meta WHERE k = 'schema_version'")
[('2',)]
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from eduedge.cloud.config import Storage

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS schools (
  school TEXT PRIMARY KEY, city TEXT NOT NULL, name TEXT, type TEXT, district TEXT,
  students BIGINT, teachers BIGINT,
  agent TEXT, agent_version TEXT, boot_id TEXT, config_digest TEXT, birth TEXT,
  bd_seq BIGINT, birth_seq BIGINT, birth_time DOUBLE PRECISION, births BIGINT NOT NULL DEFAULT 0,
  online INTEGER NOT NULL DEFAULT 0, online_since DOUBLE PRECISION, offline_since DOUBLE PRECISION,
  offline_reason TEXT, pending_death_bd BIGINT, stale_deaths BIGINT NOT NULL DEFAULT 0,
  inventory_seq BIGINT, rebirth_asked DOUBLE PRECISION,
  first_seen DOUBLE PRECISION, last_seen DOUBLE PRECISION,
  epoch TEXT, inventory_time DOUBLE PRECISION, want_rebirth DOUBLE PRECISION);
CREATE TABLE IF NOT EXISTS streams (
  school TEXT NOT NULL, agent TEXT NOT NULL, epoch TEXT NOT NULL DEFAULT '', floor BIGINT, hwm BIGINT,
  messages BIGINT NOT NULL DEFAULT 0, late BIGINT NOT NULL DEFAULT 0,
  min_bd_seq BIGINT, max_bd_seq BIGINT, wills BIGINT NOT NULL DEFAULT 0,
  swept DOUBLE PRECISION NOT NULL, PRIMARY KEY (school, agent, epoch));
CREATE TABLE IF NOT EXISTS holes (
  school TEXT NOT NULL, agent TEXT NOT NULL, epoch TEXT NOT NULL DEFAULT '', first_seq BIGINT NOT NULL,
  last_seq BIGINT NOT NULL, opened DOUBLE PRECISION NOT NULL, PRIMARY KEY (school, agent, epoch, first_seq));
CREATE TABLE IF NOT EXISTS gaps (
  id {id}, school TEXT NOT NULL, agent TEXT NOT NULL, seq BIGINT NOT NULL, received DOUBLE PRECISION NOT NULL,
  dropped TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT, messages BIGINT NOT NULL, samples BIGINT NOT NULL,
  seqs TEXT NOT NULL, first_time DOUBLE PRECISION, last_time DOUBLE PRECISION,
  epoch TEXT NOT NULL DEFAULT '', replaces TEXT);
CREATE INDEX IF NOT EXISTS gaps_school ON gaps (school, agent);
CREATE TABLE IF NOT EXISTS messages (
  id TEXT PRIMARY KEY, school TEXT NOT NULL, agent TEXT NOT NULL, seq BIGINT NOT NULL, kind TEXT NOT NULL,
  time DOUBLE PRECISION NOT NULL, received DOUBLE PRECISION NOT NULL, items INTEGER NOT NULL,
  epoch TEXT NOT NULL DEFAULT '');
CREATE UNIQUE INDEX IF NOT EXISTS messages_stream_seq ON messages (school, agent, epoch, seq) WHERE seq > 0;
CREATE INDEX IF NOT EXISTS messages_received ON messages (received);
CREATE TABLE IF NOT EXISTS series (
  id {id}, school TEXT NOT NULL, device TEXT NOT NULL, metric TEXT NOT NULL, unit TEXT NOT NULL,
  tags TEXT NOT NULL, UNIQUE (school, device, metric, unit, tags));
CREATE TABLE IF NOT EXISTS samples (
  series BIGINT NOT NULL, t DOUBLE PRECISION NOT NULL, value DOUBLE PRECISION, text TEXT);
CREATE INDEX IF NOT EXISTS samples_series_t ON samples (series, t);
CREATE INDEX IF NOT EXISTS samples_t ON samples (t);
CREATE TABLE IF NOT EXISTS rollups (
  series BIGINT NOT NULL, bucket DOUBLE PRECISION NOT NULL, text TEXT NOT NULL, n BIGINT NOT NULL,
  min DOUBLE PRECISION, max DOUBLE PRECISION, sum DOUBLE PRECISION, PRIMARY KEY (series, bucket, text));
CREATE TABLE IF NOT EXISTS findings (
  id {id}, school TEXT NOT NULL, agent TEXT NOT NULL, seq BIGINT NOT NULL, t DOUBLE PRECISION NOT NULL,
  rule TEXT NOT NULL, subject TEXT NOT NULL, status TEXT NOT NULL, value TEXT, threshold TEXT, unit TEXT,
  evidence TEXT);
CREATE INDEX IF NOT EXISTS findings_school ON findings (school, rule, t);
CREATE TABLE IF NOT EXISTS current_findings (
  school TEXT NOT NULL, rule TEXT NOT NULL, subject TEXT NOT NULL, t DOUBLE PRECISION NOT NULL,
  status TEXT NOT NULL, value TEXT, threshold TEXT, unit TEXT, evidence TEXT,
  PRIMARY KEY (school, rule, subject));
CREATE TABLE IF NOT EXISTS events (
  id {id}, school TEXT NOT NULL, agent TEXT NOT NULL, seq BIGINT NOT NULL, t DOUBLE PRECISION NOT NULL,
  kind TEXT NOT NULL, severity TEXT NOT NULL, device TEXT, message TEXT NOT NULL, data TEXT);
CREATE INDEX IF NOT EXISTS events_school ON events (school, t);
CREATE TABLE IF NOT EXISTS inventory (
  school TEXT NOT NULL, scope TEXT NOT NULL, device TEXT NOT NULL, t DOUBLE PRECISION NOT NULL,
  data TEXT NOT NULL, PRIMARY KEY (school, scope, device));
CREATE TABLE IF NOT EXISTS commands (
  request_id TEXT PRIMARY KEY, school TEXT NOT NULL, city TEXT NOT NULL, command TEXT NOT NULL, args TEXT,
  sent DOUBLE PRECISION, status TEXT NOT NULL, reason TEXT, result TEXT, answered DOUBLE PRECISION);
CREATE TABLE IF NOT EXISTS rejects (
  id {id}, received DOUBLE PRECISION NOT NULL, topic TEXT NOT NULL, reason TEXT NOT NULL,
  detail TEXT NOT NULL, size BIGINT NOT NULL, payload {blob});
CREATE TABLE IF NOT EXISTS counters (
  receiver TEXT NOT NULL, name TEXT NOT NULL, value BIGINT NOT NULL, PRIMARY KEY (receiver, name));
"""

DIALECT = {
    "sqlite": {"id": "INTEGER PRIMARY KEY", "blob": "BLOB", "floor": "CAST({} AS INTEGER)"},
    "postgresql": {"id": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "blob": "BYTEA",
                   "floor": "FLOOR({})"},
}


class Db:
    """A connection to either engine; statements use `?` placeholders."""

    def __init__(self, engine: str, conn: Any):
        self.engine = engine
        self.conn = conn
        self._pg = engine == "postgresql"

    def sql(self, text: str) -> str:
        return text.replace("?", "%s") if self._pg else text

    def floor(self, expr: str) -> str:
        """SQL rounding a non-negative number down to an integer, in this engine's words."""
        return DIALECT[self.engine]["floor"].format(expr)

    def execute(self, text: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        cur = self.conn.execute(self.sql(text), params)
        return cur.rowcount

    def query(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.conn.execute(self.sql(text), params).fetchall())

    def dicts(self, text: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self.conn.execute(self.sql(text), params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def many(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self._pg:
            with self.conn.cursor() as cur:
                cur.executemany(self.sql(text), rows)
        else:
            self.conn.executemany(text, rows)

    def copy(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Bulk insert: COPY on PostgreSQL (several times faster than INSERT there), executemany on SQLite."""
        if not rows:
            return
        if self._pg:
            with self.conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
                for row in rows:
                    cp.write_row(row)
        else:
            marks = ", ".join("?" * len(columns))
            self.conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction; on SQLite it takes the write lock at once (BEGIN IMMEDIATE), so two receivers on
        one file wait for each other instead of failing halfway."""
        if self._pg:
            with self.conn.transaction():
                yield
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def try_lock(self, key: int) -> bool:
        """Inside a transaction: whether this connection is the one doing a job that must not run twice at once
        (PostgreSQL advisory lock; SQLite's write lock already makes every transaction the only one)."""
        if not self._pg:
            return True
        return bool(self.query("SELECT pg_try_advisory_xact_lock(?)", [key])[0][0])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


def connect_sqlite(path: Path | str, synchronous: str = "full") -> Db:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=60.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA busy_timeout=60000")
    return Db("sqlite", conn)


def connect_postgresql(dsn: str, password: str | None = None) -> Db:
    import psycopg

    kwargs = {"password": password} if password is not None else {}
    conn = psycopg.connect(dsn, autocommit=True, **kwargs)
    return Db("postgresql", conn)


def connect(storage: Storage) -> Db:
    """Open the configured database and make sure the schema is there."""
    if storage.engine == "postgresql":
        assert storage.dsn is not None
        pw = storage.password.read("storage.password") if storage.password else None
        db = connect_postgresql(storage.dsn, pw)
    else:
        assert storage.path is not None
        storage.path.parent.mkdir(parents=True, exist_ok=True)
        db = connect_sqlite(storage.path, storage.synchronous)
    init_schema(db)
    return db


def init_schema(db: Db) -> None:
    """Create what is missing; refuse a database made by a newer version of this schema."""
    words = DIALECT[db.engine]
    with db.transaction():
        if db.engine == "postgresql":
            # Two receivers starting together must not both create the tables.
            db.execute("SELECT pg_advisory_xact_lock(7215)")
        db.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        found = db.query("SELECT v FROM meta WHERE k = 'schema_version'")
        if found and int(found[0][0]) > SCHEMA_VERSION:
            raise RuntimeError(f"the database has schema version {found[0][0]}; this eduedge knows {SCHEMA_VERSION}")
        if found and int(found[0][0]) == 1:
            _migrate_1_to_2(db)
        for stmt in SCHEMA.split(";"):
            if stmt.strip():
                db.execute(stmt.format(id=words["id"], blob=words["blob"]))
        if not found:
            db.execute("INSERT INTO meta (k, v) VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])


def _migrate_1_to_2(db: Db) -> None:
    """Version 1 keyed seqs by (school, agent): add the epoch to every key (old rows get epoch ''), let births
    and deaths (seq 0) past the seq key, and add the schools' birth epoch, inventory time and rebirth wish."""
    for table in ("messages", "gaps"):
        db.execute(f"ALTER TABLE {table} ADD COLUMN epoch TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE gaps ADD COLUMN replaces TEXT")
    for col in ("epoch TEXT", "inventory_time DOUBLE PRECISION", "want_rebirth DOUBLE PRECISION"):
        db.execute(f"ALTER TABLE schools ADD COLUMN {col}")
    db.execute("DROP INDEX messages_seq")
    db.execute("CREATE UNIQUE INDEX messages_stream_seq ON messages (school, agent, epoch, seq) WHERE seq > 0")
    keys = {"streams": "school, agent, epoch", "holes": "school, agent, epoch, first_seq"}
    if db.engine == "postgresql":
        for table, key in keys.items():
            db.execute(f"ALTER TABLE {table} ADD COLUMN epoch TEXT NOT NULL DEFAULT ''")
            db.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey")
            db.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({key})")
    else:
        # SQLite cannot change a primary key: the two small tables are copied into their version 2 form.
        for table in keys:
            db.execute(f"ALTER TABLE {table} RENAME TO {table}_v1")
        for stmt in SCHEMA.split(";"):
            if "TABLE IF NOT EXISTS streams" in stmt or "TABLE IF NOT EXISTS holes" in stmt:
                db.execute(stmt)
        db.execute("INSERT INTO streams (school, agent, floor, hwm, messages, late, min_bd_seq, max_bd_seq, wills, "
                   "swept) SELECT school, agent, floor, hwm, messages, late, min_bd_seq, max_bd_seq, wills, swept "
                   "FROM streams_v1")
        db.execute("INSERT INTO holes (school, agent, first_seq, last_seq, opened) SELECT school, agent, first_seq, "
                   "last_seq, opened FROM holes_v1")
        for table in keys:
            db.execute(f"DROP TABLE {table}_v1")
    db.execute("UPDATE meta SET v = '2' WHERE k = 'schema_version'")
