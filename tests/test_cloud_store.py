"""The cloud's storage logic on both engines (SQLite and a PostgreSQL the tests start): de-duplication, seq holes
and late data, the agents' own gaps, birth/death sessions, findings, inventory, retention, city judgement."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eduedge.agent.envelope import Envelope, uuid7
from eduedge.cloud.checker import Accepted, Checker
from eduedge.cloud.city import city_report, region_findings
from eduedge.cloud.config import CloudConfig
from eduedge.cloud.db import Db, connect
from eduedge.cloud.ingest import Ingestor
from eduedge.cloud.pgserver import start_postgres
from eduedge.cloud.retention import apply_retention
from eduedge.cloud.sweep import sweep
from eduedge.cloud.views import gaps, offline, school_detail, schools

NOW = 1_800_000_000.0
CHECK = Checker(1 << 22)


@pytest.fixture(scope="module")
def pg() -> Iterator[Any]:
    server = start_postgres()
    yield server
    server.close()


def pg_storage(server: Any) -> dict[str, Any]:
    """A fresh database on the test's PostgreSQL."""
    name = f"t{uuid.uuid4().hex[:12]}"
    admin = connect(make_cfg({"engine": "postgresql", "dsn": server.dsn}).storage)
    admin.execute(f"CREATE DATABASE {name}")
    admin.close()
    return {"engine": "postgresql", "dsn": server.dsn.replace("dbname=postgres", f"dbname={name}")}


def make_cfg(storage: dict[str, Any]) -> CloudConfig:
    return CloudConfig.model_validate({
        "mqtt": {"broker": "127.0.0.1:1"}, "storage": storage, "standards": {"packs": ["hebei-2019", "yinchuan-2018"]},
        "ingest": {"dedup_window": "1d", "reorder_timeout": "10m"},
        "retention": {"raw": "2d", "rollup": "5m"}, "city": {"offline_after": "1h", "access_window": "7d"},
        "schools": [{"id": "never-primary", "city": "testcity", "type": "primary", "district": "east"}]})


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[CloudConfig, Db]]:
    if request.param == "sqlite":
        cfg = make_cfg({"engine": "sqlite", "path": str(tmp_path / "city.db")})
    else:
        cfg = make_cfg(pg_storage(request.getfixturevalue("pg")))
    db = connect(cfg.storage)
    yield cfg, db
    db.close()


class School:
    """Builds contract-valid messages of one school's agent, as its outbox would (one seq per message)."""

    def __init__(self, school: str, kind: str = "primary", district: str = "east", agent: str = "gw"):
        self.env = Envelope(school, "testcity", agent, "0.1.0", uuid.uuid4().hex)
        self.kind, self.district, self.seq = kind, district, 0

    def msg(self, kind: str, body: dict[str, Any], t: float = NOW, seq: int | None = None) -> Accepted:
        if seq is None:
            self.seq += 1
            seq = self.seq
        m = self.env.message(kind, seq, body, now=t)
        m["id"] = uuid7(t)
        got = CHECK.check(f"edu/v1/testcity/{self.env.school}/{kind}", json.dumps(m).encode())
        assert isinstance(got, Accepted), got
        return got

    def birth(self, bd: int, t: float = NOW, seq: int | None = None) -> Accepted:
        return self.msg("birth", {"bdSeq": bd, "school_info": {"name": self.env.school.title(), "type": self.kind,
                                                              "district": self.district},
                                  "config_digest": "0" * 16, "collectors": [], "commands": ["rebirth"],
                                  "devices": [{"device": "core", "collector": "snmp"}],
                                  "outbox": {"rows": 0, "bytes": 0}}, t, seq)

    def death(self, bd: int, reason: str = "connection_lost", t: float = NOW, seq: int | None = None) -> Accepted:
        return self.msg("death", {"bdSeq": bd, "reason": reason}, t, seq)

    def metrics(self, n: int = 3, t: float = NOW, seq: int | None = None) -> Accepted:
        return self.msg("metrics", {"samples": [
            {"t": t, "device": "core", "metric": "if.in_bps", "value": 1000.0 + i, "unit": "bit/s",
             "tags": {"interface": f"Gi0/{i}"}} for i in range(n - 1)] + [
            {"t": t, "device": "core", "metric": "if.oper_status", "value": "up", "unit": "state"}]}, t, seq)

    def findings(self, status: str, t: float = NOW, rule: str = "hebei-2019.egress") -> Accepted:
        return self.msg("findings", {"findings": [{"t": t, "rule": rule, "subject": self.env.school, "status": status,
                                                   "value": 42.0, "threshold": 100.0, "unit": "Mbit/s",
                                                   "evidence": {"why": f"tests show 42 Mbit/s ({status})"}}]}, t)


def count(db: Db, sql: str, params: list[Any] | None = None) -> int:
    return int(db.query(sql, params or [])[0][0])


def test_each_message_and_sample_is_stored_once_whatever_repeats(engine):
    cfg, db = engine
    ing = Ingestor(db, cfg.ingest.dedup_window)
    s = School("dup-school")
    msgs = [s.metrics(4, t=NOW + i) for i in range(5)]
    r1 = ing.apply([msgs[0], msgs[1], msgs[0]], NOW)          # a repeat inside one batch
    r2 = ing.apply(msgs, NOW + 1)                             # redelivery of everything, plus new ones
    twin = Accepted(msgs[4].kind, msgs[4].city, msgs[4].school, {**msgs[4].msg, "id": uuid7(NOW)}, msgs[4].size)
    r3 = ing.apply([twin], NOW + 2)                           # same (agent, seq), another id: a duplicate too
    assert (r1.stored, r1.duplicates, r2.stored, r2.duplicates, r3.stored, r3.duplicates) == (2, 1, 3, 2, 0, 1)
    assert count(db, "SELECT COUNT(*) FROM samples") == 5 * 4
    assert count(db, "SELECT COUNT(*) FROM (SELECT series, t FROM samples GROUP BY series, t "
                     "HAVING COUNT(*) > 1) AS d") == 0
    assert count(db, "SELECT COUNT(*) FROM samples WHERE text = 'up'") == 5
    totals = dict(db.query("SELECT name, value FROM counters"))
    assert (totals["messages"], totals["duplicates"], totals["samples"]) == (5, 4, 20)


def test_a_redelivery_older_than_the_dedup_window_is_caught_by_the_seq_bookkeeping(engine):
    cfg, db = engine
    ing = Ingestor(db, cfg.ingest.dedup_window)
    s = School("old-school")
    old = [s.metrics(2, t=NOW - 3 * 86400) for _ in range(3)]
    ing.apply(old, NOW - 3 * 86400)
    sweep(db, NOW - 3 * 86400)
    apply_retention(db, cfg, NOW)                              # message ids past the window are gone
    assert count(db, "SELECT COUNT(*) FROM messages") == 0
    res = ing.apply([old[1]], NOW)
    assert (res.stored, res.duplicates) == (0, 1)
    fresh = s.metrics(2, t=NOW - 3 * 86400, seq=10)           # an old message never seen: stored
    assert ing.apply([fresh], NOW).stored == 1


def test_holes_late_data_and_the_agents_declared_gaps(engine):
    cfg, db = engine
    ing = Ingestor(db, cfg.ingest.dedup_window)
    s = School("gappy-school")
    m = {i: s.metrics(2, seq=i) for i in range(1, 21)}
    ing.apply([m[i] for i in (1, 2, 3, 9, 10)], NOW)          # live data ahead of a backlog
    sweep(db, NOW)
    g = gaps(db, cfg, NOW + 1, "gappy-school")[0]
    assert [(h["first"], h["last"], h["state"]) for h in g["holes"]] == [(4, 8, "open")]
    ing.apply([m[5], m[4]], NOW + 5)                          # the backlog, late
    gap = s.msg("gap", {"dropped": "metrics", "reason": "disk_budget", "messages": 2, "samples": 4,
                        "seqs": [[6, 7]], "first_time": NOW - 60, "last_time": NOW - 30}, seq=11)
    ing.apply([gap, m[12], m[15]], NOW + 6)
    sweep(db, NOW + 6)
    g = gaps(db, cfg, NOW + 3600, "gappy-school")[0]
    assert [(h["first"], h["last"]) for h in g["holes"]] == [(8, 8), (13, 14)]
    assert (g["late"], g["floor"], g["hwm"], g["missing_seqs"], g["open_seqs"]) == (2, 1, 15, 3, 0)
    assert g["declared"][0]["reason"] == "disk_budget" and g["declared"][0]["seqs"] == [[6, 7]]
    ing.apply([m[8], m[13], m[14]], NOW + 7)
    sweep(db, NOW + 7)
    sweep(db, NOW + 8)                                        # idempotent: a second sweep changes nothing
    g = gaps(db, cfg, NOW + 3600, "gappy-school")[0]
    assert (g["holes"], g["late"], g["messages"]) == ([], 5, 13)


def test_a_single_seq_hole_per_unsent_will_is_a_session_seq_not_lost_data(engine):
    cfg, db = engine
    ing = Ingestor(db, cfg.ingest.dedup_window)
    s = School("session-school")
    # connect 1: will seq 1 (unsent), birth 2, data 3; clean death 4; connect 2: will 5 (unsent), birth 6, data 7
    ing.apply([s.birth(1, seq=2), s.metrics(seq=3), s.death(1, "shutdown", seq=4), s.birth(2, seq=6),
               s.metrics(seq=7), s.metrics(seq=10)], NOW)
    sweep(db, NOW)
    g = gaps(db, cfg, NOW + 3600, "session-school")[0]
    assert [(h["first"], h["last"]) for h in g["holes"]] == [(5, 5), (8, 9)]
    assert (g["session_seqs"], g["missing_seqs"]) == (1, 2)


def test_birth_and_death_follow_bdseq_and_a_stale_death_is_ignored(engine):
    cfg, db = engine
    ing = Ingestor(db, cfg.ingest.dedup_window)
    s = School("session2-school")
    state = lambda: db.dicts("SELECT online, bd_seq, offline_reason, stale_deaths FROM schools "  # noqa: E731
                             "WHERE school = 'session2-school'")[0]
    ing.apply([s.birth(1, seq=2)], NOW)
    ing.apply([s.birth(2, seq=5)], NOW + 10)                  # reconnected; the broker's will for 1 comes late
    ing.apply([s.death(1, seq=1)], NOW + 11)
    assert state() == {"online": 1, "bd_seq": 2, "offline_reason": None, "stale_deaths": 1}
    ing.apply([s.birth(1, seq=3)], NOW + 12)                  # a birth re-sent from the older connection
    assert state()["bd_seq"] == 2 and state()["online"] == 1
    ing.apply([s.death(3, seq=8)], NOW + 20)                  # the will of connection 3 before its birth ...
    assert state()["online"] == 1
    ing.apply([s.birth(3, seq=9)], NOW + 21)                  # ... which then finds the school offline
    assert state() == {"online": 0, "bd_seq": 3, "offline_reason": "connection_lost", "stale_deaths": 1}
    ing.apply([s.birth(4, seq=11)], NOW + 30)
    assert state()["online"] == 1
    ing.apply([s.death(4, "shutdown", seq=12)], NOW + 40)
    assert state() == {"online": 0, "bd_seq": 4, "offline_reason": "shutdown", "stale_deaths": 1}


def test_findings_current_and_history_inventory_and_the_city_page_data(engine):
    cfg, db = engine
    ing = Ingestor(db, cfg.ingest.dedup_window)
    a, b = School("a-primary", "primary", "east"), School("b-secondary", "secondary", "west")
    c = School("c-kindergarten", "kindergarten", "west")
    ing.apply([a.birth(1), b.birth(1), c.birth(1)], NOW - 7200)
    newer, older = a.findings("pass", NOW - 100), a.findings("fail", NOW - 500)
    ing.apply([a.findings("fail", NOW - 900), newer, older, b.findings("unknown", NOW - 50)], NOW - 10)
    ing.apply([a.msg("inventory", {"devices": [{"device": "core", "collector": "snmp"},
                                               {"device": "ap-1", "collector": "snmp"}]})], NOW)
    ing.apply([a.metrics(), b.metrics()], NOW - 60)
    ing.apply([b.death(1)], NOW - 7000)
    sweep(db, NOW - 5)
    table = schools(db, cfg, NOW)
    rows = {r["school"]: r for r in table["schools"]}
    assert rows["a-primary"]["rules"]["hebei-2019.egress"] == "pass"        # the newest judgement, not the last sent
    assert rows["b-secondary"]["rules"]["hebei-2019.egress"] == "unknown"
    assert "hebei-2019.egress" not in rows["c-kindergarten"]["rules"]          # the rule does not apply to them
    assert rows["never-primary"]["rules"]["hebei-2019.egress"] == "none" and rows["never-primary"]["state"] == "never"
    assert rows["a-primary"]["rules"]["yinchuan-2018.uplink"] == "none"
    assert [r["school"] for r in schools(db, cfg, NOW, district="west")["schools"]] == ["b-secondary", "c-kindergarten"]
    assert [r["school"] for r in schools(db, cfg, NOW, school_type="primary")["schools"]] == ["a-primary",
                                                                                               "never-primary"]
    d = school_detail(db, cfg, "a-primary", NOW)
    assert d is not None and [c["status"] for c in d["history"]["hebei-2019.egress"]] == ["fail", "pass"]
    assert d["findings"][0]["evidence"]["why"] == "tests show 42 Mbit/s (pass)"
    assert sorted(x["device"] for x in d["devices"]) == ["ap-1", "core"]
    off = {r["school"]: r for r in offline(db, cfg, NOW + 1800)}
    assert set(off) == {"b-secondary", "never-primary", "c-kindergarten"}  # c: online but silent for > 1 h
    assert off["c-kindergarten"]["state"] == "silent" and off["never-primary"]["for_s"] is None
    rep = city_report(db, cfg, NOW)
    assert rep["status_counts"]["hebei-2019.egress"] == {"unknown": 1, "none": 1, "pass": 1}
    access = {f.region: f for f in region_findings(db, cfg, NOW)}
    # primary+secondary count for hebei-2019.access-rate; never-primary was never heard from
    assert (access["testcity"].value, access["testcity"].status) == (66.67, "fail")
    assert access["testcity"].evidence["without_access"] == ["never-primary"]
    assert (access["testcity/west"].value, access["testcity/west"].status) == (100.0, "pass")


def test_raw_samples_become_rollups_after_the_raw_retention(engine):
    cfg, db = engine
    ing = Ingestor(db, cfg.ingest.dedup_window)
    s = School("retained-school")
    for i in range(6):                                        # three days ago, one sample set a minute
        ing.apply([s.metrics(3, t=NOW - 3 * 86400 + i * 60)], NOW)
    ing.apply([s.metrics(3, t=NOW - 60)], NOW)
    rep = apply_retention(db, cfg, NOW)
    assert rep.folded == 18 and count(db, "SELECT COUNT(*) FROM samples") == 3
    rolled = db.query("SELECT SUM(n), MIN(min), MAX(max) FROM rollups WHERE text = ''")
    assert rolled[0] == (12, 1000.0, 1001.0)
    assert count(db, "SELECT SUM(n) FROM rollups WHERE text = 'up'") == 6


def test_two_receivers_on_postgresql_store_each_message_once(pg):
    cfg = make_cfg(pg_storage(pg))
    db = connect(cfg.storage)
    schools_ = [School(f"conc-{i:02d}") for i in range(20)]
    msgs = [s.metrics(5) for _ in range(10) for s in schools_]
    dbs = [connect(cfg.storage) for _ in range(2)]
    ings = [Ingestor(d, cfg.ingest.dedup_window, f"rx{i}") for i, d in enumerate(dbs)]
    errors: list[BaseException] = []

    def run(ing: Ingestor, order: list[Accepted]) -> None:
        try:
            for i in range(0, len(order), 25):
                ing.apply(order[i:i + 25], NOW)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(ings[0], msgs)),
               threading.Thread(target=run, args=(ings[1], list(reversed(msgs))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert count(db, "SELECT COUNT(*) FROM messages") == len(msgs)
    assert count(db, "SELECT COUNT(*) FROM samples") == len(msgs) * 5
    assert ings[0].totals["messages"] + ings[1].totals["messages"] == len(msgs)
    for d in (*dbs, db):
        d.close()


class PausingDb(Db):
    """A receiver's connection that stops after its first statement on the schools table until `resume` is set (or
    3 s): what another receiver commits in that moment lands between this batch's statements."""

    def __init__(self, db: Db, resume: threading.Event):
        super().__init__(db.engine, db.conn)
        self.resume, self.paused = resume, threading.Event()

    def _after(self, text: str) -> None:
        if text.startswith("UPDATE schools") and not self.paused.is_set():
            self.paused.set()
            self.resume.wait(3)

    def execute(self, text: str, params: Any = ()) -> int:
        n = super().execute(text, params)
        self._after(text)
        return n

    def query(self, text: str, params: Any = ()) -> list[tuple[Any, ...]]:
        rows = super().query(text, params)
        self._after(text)
        return rows


def test_a_death_and_its_birth_in_two_receivers_at_once_leave_the_school_offline(pg):
    """The will of connection 2 reaches one receiver while the other one is storing connection 2's birth: whichever
    commits first, the school ends offline (a stale-death verdict here left it online for good)."""
    cfg = make_cfg(pg_storage(pg))
    db = connect(cfg.storage)
    s = School("raced-school")
    Ingestor(db, cfg.ingest.dedup_window).apply([s.birth(1, seq=1)], NOW)
    resume = threading.Event()
    slow = PausingDb(connect(cfg.storage), resume)
    fast = connect(cfg.storage)
    death = threading.Thread(target=Ingestor(slow, cfg.ingest.dedup_window, "rx1").apply,
                             args=([s.death(2, seq=4)], NOW + 10))
    death.start()
    assert slow.paused.wait(10)
    birth = threading.Thread(target=Ingestor(fast, cfg.ingest.dedup_window, "rx2").apply,
                             args=([s.birth(2, seq=3)], NOW + 10))
    birth.start()
    birth.join(1.5)             # committed, or waiting for the death's row lock until the pause ends
    resume.set()
    death.join(10)
    birth.join(10)
    assert not death.is_alive() and not birth.is_alive()
    state = db.dicts("SELECT online, bd_seq, offline_reason, stale_deaths FROM schools WHERE school = 'raced-school'")
    assert state == [{"online": 0, "bd_seq": 2, "offline_reason": "connection_lost", "stale_deaths": 0}]
    for d in (db, slow, fast):
        d.close()


def test_an_ingestor_given_a_new_connection_writes_its_rollups_there_too(tmp_path):
    # A receiver reconnects after a database error; a part still holding the closed connection would fail
    # every later message (seen: rollups on PostgreSQL, 48 of 176 messages kept aside after one error).
    from eduedge.cloud.db import connect_sqlite, init_schema
    from eduedge.cloud.ingest import Ingestor
    from eduedge.cloud.rollups import ensure_schema
    old, new = connect_sqlite(str(tmp_path / "a.db")), connect_sqlite(str(tmp_path / "b.db"))
    init_schema(old)
    init_schema(new)
    ensure_schema(new)
    ing = Ingestor(old, dedup_window=3600)
    ing.use(new)
    old.close()
    ing.rollups.add([("s1", "gw", "wan.down_mbps", "Mbit/s", (), 7200.5, 80.0)])
    assert new.query("SELECT school, samples FROM school_hours") == [("s1", 1)]


# The tables version 1 keyed by (school, agent), as it made them; init_schema adds the rest of the schema.
SCHEMA_V1 = """
CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE schools (school TEXT PRIMARY KEY, city TEXT NOT NULL, name TEXT, type TEXT, district TEXT,
  students BIGINT, teachers BIGINT, agent TEXT, agent_version TEXT, boot_id TEXT, config_digest TEXT, birth TEXT,
  bd_seq BIGINT, birth_seq BIGINT, birth_time DOUBLE PRECISION, births BIGINT NOT NULL DEFAULT 0,
  online INTEGER NOT NULL DEFAULT 0, online_since DOUBLE PRECISION, offline_since DOUBLE PRECISION,
  offline_reason TEXT, pending_death_bd BIGINT, stale_deaths BIGINT NOT NULL DEFAULT 0, inventory_seq BIGINT,
  rebirth_asked DOUBLE PRECISION, first_seen DOUBLE PRECISION, last_seen DOUBLE PRECISION);
CREATE TABLE streams (school TEXT NOT NULL, agent TEXT NOT NULL, floor BIGINT, hwm BIGINT,
  messages BIGINT NOT NULL DEFAULT 0, late BIGINT NOT NULL DEFAULT 0, min_bd_seq BIGINT, max_bd_seq BIGINT,
  wills BIGINT NOT NULL DEFAULT 0, swept DOUBLE PRECISION NOT NULL, PRIMARY KEY (school, agent));
CREATE TABLE holes (school TEXT NOT NULL, agent TEXT NOT NULL, first_seq BIGINT NOT NULL, last_seq BIGINT NOT NULL,
  opened DOUBLE PRECISION NOT NULL, PRIMARY KEY (school, agent, first_seq));
CREATE TABLE gaps (id {id}, school TEXT NOT NULL, agent TEXT NOT NULL, seq BIGINT NOT NULL,
  received DOUBLE PRECISION NOT NULL, dropped TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT,
  messages BIGINT NOT NULL, samples BIGINT NOT NULL, seqs TEXT NOT NULL, first_time DOUBLE PRECISION,
  last_time DOUBLE PRECISION);
CREATE TABLE messages (id TEXT PRIMARY KEY, school TEXT NOT NULL, agent TEXT NOT NULL, seq BIGINT NOT NULL,
  kind TEXT NOT NULL, time DOUBLE PRECISION NOT NULL, received DOUBLE PRECISION NOT NULL, items INTEGER NOT NULL);
CREATE UNIQUE INDEX messages_seq ON messages (school, agent, seq);
INSERT INTO meta (k, v) VALUES ('schema_version', '1');
INSERT INTO streams (school, agent, floor, hwm, messages, swept) VALUES ('old-school', 'gw', 1, 9, 8, 0);
INSERT INTO holes (school, agent, first_seq, last_seq, opened) VALUES ('old-school', 'gw', 5, 5, 0);
INSERT INTO messages (id, school, agent, seq, kind, time, received, items) VALUES ('m1', 'old-school', 'gw', 9,
  'metrics', 0, 0, 1)
"""


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_version_1_database_is_migrated_keeping_its_streams(kind: str, tmp_path: Path,
                                                             request: pytest.FixtureRequest) -> None:
    from eduedge.cloud.db import DIALECT, connect_postgresql, connect_sqlite

    storage = ({"engine": "sqlite", "path": str(tmp_path / "city.db")} if kind == "sqlite"
               else pg_storage(request.getfixturevalue("pg")))
    raw = connect_sqlite(storage["path"]) if kind == "sqlite" else connect_postgresql(storage["dsn"])
    with raw.transaction():
        for stmt in SCHEMA_V1.split(";"):
            raw.execute(stmt.format(id=DIALECT[raw.engine]["id"]))
    raw.close()
    cfg = make_cfg(storage)
    db = connect(cfg.storage)
    try:
        assert db.query("SELECT v FROM meta WHERE k = 'schema_version'") == [("2",)]
        assert db.query("SELECT school, agent, epoch, floor, hwm FROM streams") == [("old-school", "gw", "", 1, 9)]
        assert db.query("SELECT epoch, first_seq FROM holes") == [("", 5)]
        old, new = School("old-school"), School("old-school")
        new.env = dataclasses.replace(new.env, epoch="ab" * 16)
        ing = Ingestor(db, cfg.ingest.dedup_window)
        res = ing.apply([new.birth(0, seq=0), new.birth(0, t=NOW + 1, seq=0), new.metrics(seq=9), old.metrics(seq=9)],
                        NOW + 2)
        # two births of seq 0 are two messages; seq 9 of a new epoch is not the old stream's seq 9, which is
        # still known
        assert (res.stored, res.duplicates) == (3, 1)
        assert count(db, "SELECT COUNT(*) FROM messages WHERE seq = 9") == 2
    finally:
        db.close()


def test_data_from_a_newer_process_than_the_birth_makes_a_rebirth_wished_for_but_old_backlog_does_not(engine):
    cfg, db = engine
    ing = Ingestor(db, cfg.ingest.dedup_window)
    s = School("reborn-school")
    ing.apply([s.birth(3, t=NOW, seq=0)], NOW)
    s.env = dataclasses.replace(s.env, boot_id=uuid.uuid4().hex)
    ing.apply([s.metrics(t=NOW - 60)], NOW + 1)   # backlog an earlier process wrote: no wish
    assert db.query("SELECT want_rebirth FROM schools WHERE school = 'reborn-school'") == [(None,)]
    ing.apply([s.metrics(t=NOW + 5)], NOW + 6)    # a process whose birth the city never got
    assert db.query("SELECT want_rebirth FROM schools WHERE school = 'reborn-school'") == [(NOW + 5,)]
    ing.apply([s.birth(4, t=NOW + 7, seq=0)], NOW + 8)
    assert db.query("SELECT want_rebirth, bd_seq FROM schools WHERE school = 'reborn-school'") == [(None, 4)]
