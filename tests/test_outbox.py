"""The outbox on its own: order and priority, persistence across restarts, disk budget, full disk, corruption."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from eduedge.agent import contract
from eduedge.agent.envelope import Envelope
from eduedge.agent.outbox import Outbox, OutboxError, inspect
from eduedge.core.samples import Sample

ENV = Envelope("test-school", "testcity", "gw-test", "0.1.0", "cd" * 16)


def box(path: Path, **kw: object) -> Outbox:
    kw.setdefault("max_bytes", 10**8)
    kw.setdefault("max_message_bytes", 8192)
    return Outbox(path / "outbox.db", ENV, **kw)  # type: ignore[arg-type]


def samples(n: int, start: int = 0, t: float = 1.7e9) -> list[Sample]:
    return [Sample(t + i, "sw-1", "if.in_bps", float(start + i), "bit/s", {"i": str(start + i)}) for i in range(n)]


def event(kind: str = "device.unreachable") -> dict:
    return {"t": 1.7e9, "kind": kind, "severity": "error", "device": "sw-1", "message": "no answer"}


def finding() -> dict:
    return {"t": 1.7e9, "rule": "wan.down", "subject": "school", "status": "unknown"}


def decoded(rows: list) -> list[dict]:
    out = []
    for r in rows:
        msg = contract.decode(r.payload)
        assert contract.problems(msg) == [], contract.problems(msg)
        out.append(msg)
    return out


def test_rows_come_out_by_priority_then_in_seq_order(tmp_path: Path) -> None:
    b = box(tmp_path)
    b.add_samples(samples(10))
    b.add_items("findings", [finding()])
    b.add_samples(samples(10, 10))
    b.add_items("events", [event()])
    b.add_answer("r1", {"request_id": "r1", "command": "rebirth", "status": "ok"})
    rows = b.take(100)
    assert [r.kind for r in rows] == ["cmd-result", "findings", "events", "metrics", "metrics"]
    assert [r.seq for r in rows if r.kind == "metrics"] == sorted(r.seq for r in rows if r.kind == "metrics")
    decoded(rows)


def test_lifecycle_events_go_with_command_answers(tmp_path: Path) -> None:
    b = box(tmp_path)
    b.add_items("events", [event()])
    b.add_items("events", [event("agent.start")])
    assert [(r.priority, json.loads(r.payload)["events"][0]["kind"]) for r in b.take(10)] == [
        (0, "agent.start"), (1, "device.unreachable")]


def test_after_an_outage_live_rows_go_ahead_of_the_backlog_each_in_order(tmp_path: Path) -> None:
    b = box(tmp_path)
    b.link_up()
    b.add_samples(samples(1, 0))
    b.ack([r.seq for r in b.take(10)])
    backlog = [b.add_samples(samples(1, i)) for i in range(1, 6)]
    assert sum(backlog) == 5
    b.link_up()  # the link comes back: rows 1..5 are now the backlog
    first = b.take(2)
    b.add_samples(samples(1, 100))
    b.add_samples(samples(1, 101))
    rest = b.take(10)
    values = [json.loads(r.payload)["samples"][0]["value"] for r in first + rest]
    assert values == [1.0, 2.0, 100.0, 101.0, 3.0, 4.0, 5.0]


def test_unacknowledged_rows_are_all_sent_again_after_a_restart_and_seq_continues(tmp_path: Path) -> None:
    b = box(tmp_path)
    b.add_samples(samples(5))
    b.add_samples(samples(5, 5))
    rows = b.take(10)
    b.ack([rows[0].seq])
    b.close()
    b2 = box(tmp_path)
    again = b2.take(10)
    assert [r.seq for r in again] == [rows[1].seq]
    assert again[0].payload == rows[1].payload  # same message id, byte for byte
    b2.add_samples(samples(1, 99))
    assert b2.take(10)[0].seq > rows[1].seq


def test_a_read_that_fails_half_way_hands_out_nothing_and_skips_nothing(tmp_path: Path) -> None:
    b = box(tmp_path)
    b.add_items("findings", [finding()])
    b.add_samples(samples(3))
    rows = b._rows
    calls = [0]

    def failing_fourth_query(sql: str, params: list) -> list:
        calls[0] += 1
        if calls[0] == 4:  # after the findings were read
            raise sqlite3.OperationalError("database is locked")
        return rows(sql, params)

    b._rows = failing_fourth_query  # type: ignore[method-assign]
    with pytest.raises(sqlite3.OperationalError):
        b.take(10)
    assert b.inflight() == 0
    assert [r.kind for r in b.take(10)] == ["findings", "metrics"]


def test_seq_is_never_reused_even_after_the_database_is_lost(tmp_path: Path) -> None:
    b = box(tmp_path)
    b.add_samples(samples(3))
    last = max(r.seq for r in b.take(10))
    b.close()
    (tmp_path / "outbox.db").unlink()
    b2 = box(tmp_path)
    b2.add_samples(samples(1))
    assert b2.take(1)[0].seq > last


def test_a_corrupt_file_is_quarantined_and_a_fresh_outbox_reports_the_reset(tmp_path: Path) -> None:
    b = box(tmp_path)
    b.add_samples(samples(3))
    b.close()
    db = tmp_path / "outbox.db"
    for extra in ("-wal", "-shm"):
        Path(str(db) + extra).unlink(missing_ok=True)
    db.write_bytes(b"this is not an sqlite database" * 200)
    b2 = box(tmp_path)
    assert b2.resets == 1
    kept = list(tmp_path.glob("outbox.db.corrupt-*"))
    assert kept and kept[0].read_bytes().startswith(b"this is not")
    msgs = decoded(b2.take(10))
    assert [m["schema"]["name"] for m in msgs] == ["events", "gap"]
    assert msgs[0]["events"][0]["kind"] == "outbox.reset"
    assert msgs[1]["reason"] == "outbox_reset"
    b2.add_samples(samples(2))
    assert len(b2.take(10)) == 1


def test_corruption_found_while_running_is_recovered_without_raising(tmp_path: Path) -> None:
    b = box(tmp_path)
    b.add_samples(samples(3))
    b.db.close()  # simulate the file going bad under the agent: every statement now fails
    b.db = sqlite3.connect(":memory:")
    b.db.execute("CREATE TABLE outbox(x)")
    err = sqlite3.DatabaseError("database disk image is malformed")
    calls = []

    def broken(*a: object, **k: object) -> None:
        calls.append(1)
        raise err

    b._take = broken  # type: ignore[method-assign]
    assert b.take(10) == []
    assert b.resets == 1 and calls


def test_disk_budget_drops_oldest_metrics_first_and_writes_gap_records(tmp_path: Path) -> None:
    b = box(tmp_path, max_bytes=600_000, max_message_bytes=4096)
    for i in range(160):
        b.add_samples(samples(20, i * 20))
        if i % 40 == 0:
            b.add_items("findings", [finding()])
            b.add_items("events", [event()])
    st = b.stats()
    assert st.file_bytes <= 600_000 + 5 * b.page_size
    assert {(d.kind, d.reason) for d in st.drops} == {("metrics", "disk_budget")}
    rows = b.take(10_000)
    msgs = decoded(rows)
    gaps = [m for m in msgs if m["schema"]["name"] == "gap"]
    kept = [m["seq"] for m in msgs if m["schema"]["name"] == "metrics"]
    dropped = [s for g in gaps for lo, hi in g["seqs"] for s in range(lo, hi + 1)]
    assert gaps and all(g["dropped"] == "metrics" and g["reason"] == "disk_budget" for g in gaps)
    assert max(dropped) < min(kept)  # the oldest went first
    assert sum(g["samples"] for g in gaps) == st.drops[0].items
    assert len([m for m in msgs if m["schema"]["name"] == "findings"]) == 4  # none of these dropped
    assert len([m for m in msgs if m["schema"]["name"] == "events"]) == 4
    assert all(g["first_time"] is not None for g in gaps)


def test_when_only_findings_are_left_they_go_before_priority_0(tmp_path: Path) -> None:
    b = box(tmp_path, max_bytes=600_000, max_message_bytes=4096)
    for _ in range(100):
        b.add_items("findings", [finding()] * 30)
    b.add_answer("r1", {"request_id": "r1", "command": "rebirth", "status": "ok"})
    for _ in range(100):
        b.add_items("findings", [finding()] * 30)
    kinds = {d.kind for d in b.stats().drops}
    assert kinds == {"findings"}
    assert [r.kind for r in b.take(10_000)].count("cmd-result") == 1


def test_a_full_disk_drops_by_policy_reports_it_and_never_raises(tmp_path: Path) -> None:
    b = box(tmp_path, max_bytes=10**9, max_message_bytes=4096)
    for i in range(30):
        b.add_samples(samples(20, i * 20))
    pages = b.db.execute("PRAGMA page_count").fetchone()[0]
    b.db.execute(f"PRAGMA max_page_count={pages}")  # the "disk" is now exactly full
    for i in range(30, 60):
        b.add_samples(samples(20, i * 20))
    drops = {(d.kind, d.reason) for d in b.stats().drops}
    assert ("metrics", "disk_full") in drops
    gaps = [m for m in decoded(b.take(10_000)) if m["schema"]["name"] == "gap"]
    assert gaps and {g["reason"] for g in gaps} == {"disk_full"}


def test_a_message_over_the_size_cap_is_dropped_with_a_gap_record(tmp_path: Path) -> None:
    b = box(tmp_path, max_message_bytes=4096)
    huge = Sample(1.0, "sw-1", "lldp.neighbor", "x" * 10_000)
    assert b.add_samples([huge]) == 0
    b.add_samples(samples(1))
    msgs = decoded(b.take(10))
    assert [m["schema"]["name"] for m in msgs] == ["gap", "metrics"]
    assert msgs[0]["reason"] == "too_large"


def test_command_answers_are_remembered_by_request_id(tmp_path: Path) -> None:
    b = box(tmp_path)
    body = {"request_id": "abc", "command": "rebirth", "status": "ok", "result": {}}
    b.add_answer("abc", body)
    b.close()
    assert box(tmp_path).answer_for("abc") == body


def test_inspect_reads_depth_drops_and_delivery_without_the_owner(tmp_path: Path) -> None:
    b = box(tmp_path, compression="gzip")
    b.add_samples(samples(300))
    b.add_items("events", [event()])
    rows = b.take(1)
    b.ack([rows[0].seq])
    st = inspect(tmp_path / "outbox.db")
    assert st.rows >= 1 and st.by_priority[2]["items"] == 300
    assert st.delivered_messages == 1
    with pytest.raises(OutboxError):
        inspect(tmp_path / "missing.db")


def test_a_budget_smaller_than_two_messages_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutboxError, match="max_bytes"):
        box(tmp_path, max_bytes=5000, max_message_bytes=4096)


def _declared(msgs: list[dict]) -> set[int]:
    return {s for m in msgs if m["schema"]["name"] == "gap" for lo, hi in m["seqs"] + m.get("replaces", [])
            for s in range(lo, hi + 1)}


def _backlog(tmp_path: Path, n: int = 41) -> tuple[set[int], Outbox]:
    b = box(tmp_path, max_message_bytes=4096)
    for i in range(n):
        b.add_samples(samples(20, i * 20))
    seqs = {r.seq for r in b.take(10_000)}
    b.maintain()  # records in the side file the lowest seq that may be unsent
    b.close()
    return seqs, b


@pytest.mark.parametrize("damage", ["empty", "missing"])
def test_an_empty_or_missing_database_with_a_backlog_is_declared_lost_with_its_seqs(tmp_path: Path,
                                                                                   damage: str) -> None:
    seqs, old = _backlog(tmp_path)
    db = tmp_path / "outbox.db"
    if damage == "empty":
        db.write_bytes(b"")
    else:
        db.unlink()
    b = box(tmp_path, max_message_bytes=4096)
    msgs = decoded(b.take(100))
    assert [m["schema"]["name"] for m in msgs] == ["events", "gap"]
    assert msgs[0]["events"][0]["kind"] == "outbox.lost"
    gap = msgs[1]
    assert gap["reason"] == "outbox_lost" and seqs <= _declared(msgs)
    # the new rows continue above every declared seq, in the same epoch (the side file survived)
    b.add_samples(samples(1))
    new = decoded(b.take(10))
    assert new[0]["seq"] > max(_declared(msgs)) and b.epoch == old.epoch


def test_a_truncated_database_is_salvaged_row_by_row_and_the_gap_names_exactly_what_was_lost(tmp_path: Path) -> None:
    seqs, _ = _backlog(tmp_path, n=200)
    db = tmp_path / "outbox.db"
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    b = box(tmp_path, max_message_bytes=4096)
    assert b.resets == 1
    msgs = decoded(b.take(10_000))
    salvaged = {m["seq"] for m in msgs if m["schema"]["name"] == "metrics"}
    lost = _declared(msgs)
    assert 0 < len(salvaged) < len(seqs)
    assert salvaged | (lost & seqs) == seqs and not salvaged & lost  # every old seq: salvaged or declared
    reset = next(m for m in msgs if m["schema"]["name"] == "events")["events"][0]
    assert reset["kind"] == "outbox.reset" and reset["data"]["salvaged"] == len(salvaged)
    for m in msgs:  # a salvaged row is the message as it was stored: same id, same seq
        if m["schema"]["name"] == "metrics":
            assert m["samples"][0]["tags"]["i"] == str(int(m["samples"][0]["value"]))


def test_a_new_data_folder_is_a_new_epoch_and_a_quarantine_is_not(tmp_path: Path) -> None:
    b = box(tmp_path)
    b.add_samples(samples(1))
    first = decoded(b.take(1))[0]
    assert first["agent"]["epoch"] == b.epoch and len(b.epoch) == 32
    b.close()
    db = tmp_path / "outbox.db"
    db.write_bytes(b"garbage" * 1000)
    b2 = box(tmp_path)
    assert b2.resets == 1 and b2.epoch == b.epoch
    b2.close()
    for f in tmp_path.iterdir():
        f.unlink()
    b3 = box(tmp_path)
    b3.add_samples(samples(1))
    again = decoded(b3.take(1))[0]
    assert again["seq"] == 1 and again["agent"]["epoch"] != first["agent"]["epoch"]


def test_inspect_names_a_path_that_is_not_an_outbox_file(tmp_path: Path) -> None:
    with pytest.raises(OutboxError, match="not an outbox file"):
        inspect(tmp_path)
    with pytest.raises(OutboxError, match="not a file"):
        Outbox(tmp_path, ENV, max_bytes=10**8)
