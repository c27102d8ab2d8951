"""The field's faults against the real parts: poison messages, a full disk, a re-imaged box, lost births, holes.

Each test reproduces one finding of issue 16 with mosquitto, the agent's outbox and link, `eduedge run` and
`eduedge cloud ingest` (or the receiver in-process), and checks that nothing is lost and nothing ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml

from eduedge.agent.commands import CommandHandler
from eduedge.agent.config import CommandsConfig, MqttConfig
from eduedge.agent.envelope import Envelope
from eduedge.agent.link import Link
from eduedge.agent.outbox import Outbox, OutboxError, inspect
from eduedge.cloud.checker import Checker
from eduedge.cloud.config import load_cloud_config
from eduedge.cloud.db import connect
from eduedge.cloud.receiver import Receiver as CloudReceiver
from eduedge.core.samples import Sample
from eduedge.simulator.broker import Broker, start_broker
from tests.mqtt_helpers import Receiver, stop_agent, write_config

pytestmark = pytest.mark.integration
EDUEDGE = str(Path(sys.executable).with_name("eduedge"))
ENV = Envelope("test-school", "testcity", "gw-test", "0.1.0", "ab" * 16)
BRACKETS = b"[" * 100_000 + b"]" * 100_000  # 200 kB of nesting: json.loads raised RecursionError


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = start_broker(tmp_path / "broker")
    yield b
    b.close()


def birth() -> dict[str, Any]:
    return {"school_info": {"name": "Test School", "type": "primary"}, "config_digest": "0" * 16,
            "collectors": [], "devices": [], "commands": ["rebirth"], "outbox": {"rows": 0, "bytes": 0}}


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def publish(b: Broker, items: list[tuple[str, bytes]]) -> None:
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="poisoner", protocol=mqtt.MQTTv5)
    pub.connect(b.host, b.port)
    pub.loop_start()
    for topic, payload in items:
        pub.publish(topic, payload, qos=1).wait_for_publish(10)
    pub.loop_stop()
    pub.disconnect()


def cloud_config(path: Path, b: Broker, db: Path) -> Path:
    path.write_text(yaml.safe_dump({"mqtt": {"broker": b.address, "group": "city", "session_expiry": "10m"},
                                    "storage": {"path": str(db)},
                                    "ingest": {"sweep_every": "300ms", "reorder_timeout": "2s"},
                                    "standards": {"packs": ["hebei-2019"]}}))
    return path


def metrics(seq: int, env: Envelope = ENV) -> bytes:
    return env.encode("metrics", seq, {"samples": [{"t": 1.7e9 + seq, "device": "sw-1", "metric": "x.count",
                                                    "value": seq}]})


def count(db: Any, sql: str, params: list[Any] | None = None) -> int:
    return int(db.query(sql, params or [])[0][0])


# -- finding 2: no input crashes a process ---------------------------------------------------------------------


def test_a_poison_message_is_refused_acknowledged_and_the_receiver_survives_its_restart(tmp_path: Path,
                                                                                       broker: Broker) -> None:
    config = cloud_config(tmp_path / "cloud.yaml", broker, tmp_path / "city.db")
    log = tmp_path / "ingest.log"

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen([EDUEDGE, "cloud", "ingest", "--config", str(config), "--client-id", "rx-1"],
                                    stdout=out, stderr=subprocess.STDOUT)

    proc = start()
    try:
        db = connect(load_cloud_config(config).storage)
        wait_for(lambda: "subscribing" in log.read_text(), 20, "the receiver to subscribe")
        base = "edu/v1/testcity/test-school"
        gz = __import__("gzip").compress(b'{"a":' * 20_000 + b"1" + b"}" * 20_000)
        good = metrics(1)
        publish(broker, [(f"{base}/metrics", BRACKETS), (f"{base}/events", gz), (f"{base}/metrics", good)])
        wait_for(lambda: count(db, "SELECT COUNT(*) FROM messages") == 1, 20, "the good message after the poison")
        assert proc.poll() is None, log.read_text()[-2000:]
        rejects = db.query("SELECT reason, detail FROM rejects ORDER BY id")
        assert [r[0] for r in rejects] == ["malformed", "malformed"] and "deeper than" in rejects[0][1]
        # Acknowledged: a restarted receiver (same persistent session) is not handed the poison again.
        proc.terminate()
        assert proc.wait(20) == 0
        proc = start()
        publish(broker, [(f"{base}/metrics", metrics(2))])
        wait_for(lambda: count(db, "SELECT COUNT(*) FROM messages") == 2, 20, "a message after the restart")
        assert count(db, "SELECT COUNT(*) FROM rejects") == 2 and proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(20)


def test_a_message_whose_checking_raises_is_kept_as_an_error_reject_and_acknowledged(tmp_path: Path,
                                                                                    broker: Broker) -> None:
    cfg = load_cloud_config(cloud_config(tmp_path / "cloud.yaml", broker, tmp_path / "city.db"))

    class Fragile(Checker):
        def check(self, topic: str, payload: bytes) -> Any:
            if payload.startswith(b"{\"trip\""):
                raise KeyError("a bug this message finds")
            return super().check(topic, payload)

    rx = CloudReceiver(cfg, "rx-fragile")
    rx.checker = Fragile(cfg.ingest.max_message_bytes)
    t = threading.Thread(target=rx.run)
    t.start()
    try:
        assert rx.subscribed.wait(10)
        good = metrics(1)
        publish(broker, [("edu/v1/testcity/test-school/metrics", b'{"trip": 1}'),
                         ("edu/v1/testcity/test-school/metrics", good)])
        db = connect(cfg.storage)
        wait_for(lambda: count(db, "SELECT COUNT(*) FROM messages") == 1, 15, "the good message")
        assert db.query("SELECT reason FROM rejects") == [("error",)] and t.is_alive()
    finally:
        rx.stop()
        t.join(10)


class Actions:
    """What the daemon lets commands do, for the link's command handler: a check that raises."""

    def rebirth(self) -> None:
        pass

    def checks(self) -> list[str]:
        return ["host"]

    def run_check(self, check: str, done: Any) -> None:
        raise RuntimeError("the check blew up")

    def set_interval(self, check: str, seconds: float) -> float:
        return 60.0


def test_every_command_is_answered_even_poison_huge_or_one_whose_handling_raises(tmp_path: Path,
                                                                                broker: Broker) -> None:
    rx = Receiver(broker.host, broker.port)
    box = Outbox(tmp_path / "outbox.db", ENV, max_bytes=10**8, max_message_bytes=65536)
    handler = CommandHandler(CommandsConfig(), box, Actions())
    link = Link(MqttConfig(broker=broker.address, reconnect_min=0.1, reconnect_max=0.5), box, ENV, birth,
                handler.handle)
    link.start()
    try:
        rx.wait_for(lambda r: r.of("birth"), 15, "the birth")
        base = "edu/v1/testcity/test-school/cmd"
        run = json.dumps({"schema": {"name": "cmd", "version": 1}, "request_id": "r-run",
                          "args": {"check": "host"}}).encode()
        huge = b'{"request_id": "r-huge", "x": "' + b"y" * (20 * 2**20) + b'"}'
        t0 = time.monotonic()
        nested = b"[" * 15_000 + b"]" * 15_000  # under the size limit, 15 times deeper than json.loads goes
        publish(broker, [(f"{base}/rebirth", nested), (f"{base}/rebirth", huge), (f"{base}/run-check", run)])
        rx.wait_for(lambda r: len(r.of("cmd-result")) >= 3, 30, "three answers")
        answers = rx.of("cmd-result")
        assert [a["status"] for a in answers] == ["refused", "refused", "error"]
        assert "deeper than" in answers[0]["reason"] and "limit is 65536" in answers[1]["reason"]
        assert answers[2]["request_id"] == "r-run" and "the check blew up" in answers[2]["reason"]
        assert link.is_alive() and time.monotonic() - t0 < 30
    finally:
        link.stop()
        rx.close()
    assert rx.problems == []


# -- finding 1: a full disk is a state, not a crash -----------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI and the box run "
                                                          "as root); without it a full disk cannot be made safely")


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` at `path`: a disk that fills in seconds."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Another writer takes every free byte of the disk."""
    filler = disk / "filler"
    with open(filler, "ab", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 4096)
    return filler


def owned_bytes(db: Path) -> int:
    """What the outbox's files take: database, WAL, -shm, the seq side file and the disk-full reserve."""
    return sum(p.stat().st_size for p in (db, *(Path(f"{db}{s}") for s in ("-wal", "-shm", ".seq", ".reserve")))
               if p.exists())


class Sizes(threading.Thread):
    """Samples the outbox's files every 20 ms: the largest total and the largest file seen."""

    def __init__(self, db: Path):
        super().__init__(daemon=True)
        self.db, self.max_total, self.max_file = db, 0, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            with contextlib.suppress(OSError):
                self.max_total = max(self.max_total, owned_bytes(self.db))
                self.max_file = max([self.max_file] + [p.stat().st_size for p in (self.db, Path(f"{self.db}-wal"))
                                                       if p.exists()])


def outbox_rows(db: Path) -> int:
    """The outbox's rows, 0 until the agent has created it: the file exists a moment before its table does
    (inspect raised "no such table: outbox" in that moment once, under load)."""
    try:
        return inspect(db).rows
    except OutboxError:
        return 0


def holes(rx: Receiver) -> tuple[set[int], int]:
    """Data seqs neither received nor declared by a gap record, up to the highest received; and that highest."""
    got = {m["seq"] for r in rx.messages if r.kind not in ("birth", "death") for m in [r.msg]}
    declared = {s for g in rx.of("gap") for lo, hi in g["seqs"] + g.get("replaces", []) for s in range(lo, hi + 1)}
    top = max(got, default=0)
    return set(range(1, top + 1)) - got - declared, top


@needs_root
def test_a_full_disk_is_a_state_the_agent_polls_sends_and_restarts_through(tmp_path: Path, broker: Broker) -> None:
    rx = Receiver(broker.host, broker.port)  # its persistent session collects what arrives after the outage
    broker.stop()
    with small_disk(tmp_path / "disk", "8m") as disk:
        data = disk / "data"
        cfg = write_config(tmp_path / "agent.yaml", broker.address, data, host={"enabled": True, "interval": "1s"},
                           outbox={"max_bytes": "4MiB", "min_free_bytes": 0})
        db = data / "outbox.db"
        sizes = Sizes(db)
        sizes.start()
        procs: list[subprocess.Popen[bytes]] = []
        log = tmp_path / "agent.log"

        def start() -> subprocess.Popen[bytes]:
            with log.open("ab") as out:
                p = subprocess.Popen([EDUEDGE, "run", "--config", str(cfg)], stdout=subprocess.DEVNULL, stderr=out)
            procs.append(p)
            return p

        try:
            def after(mark: int, text: str, n: int = 1) -> bool:
                return log.read_text()[mark:].count(text) >= n

            p = start()
            wait_for(lambda: outbox_rows(db) >= 3, 30, "the first rows in the outbox")
            filler = fill(disk)
            wait_for(lambda: after(0, "disk full"), 30, "the agent to meet the full disk")
            mark = len(log.read_text())
            # three more host polls into the full disk, each kept by dropping an older one (declared at once)
            wait_for(lambda: after(mark, "dropped 1 metrics", 3), 30, "polls going on while the disk is full")
            assert p.poll() is None, log.read_text()[-3000:]
            p.kill()  # and a restart on the full disk: it used to die at once in Outbox._put
            p.wait()
            mark = len(log.read_text())
            p = start()
            wait_for(lambda: after(mark, "cannot connect") and after(mark, "dropped 1 metrics", 2), 30,
                     "the new process to poll into the full disk")
            assert p.poll() is None, log.read_text()[-3000:]
            broker.start()  # sending goes on through the full disk
            rx.wait_for(lambda r: r.of("birth") and r.of("metrics"), 30, "the backlog after the outage")
            # what a full disk made it drop (disk_budget: the budget shrinks to the space it holds) is declared
            rx.wait_for(lambda r: {g["reason"] for g in r.of("gap")} & {"disk_full", "disk_budget"}, 30, "the gaps")
            filler.unlink()
            rx.wait_for(lambda r: inspect(db).rows <= 1, 30, "the outbox to drain")
            assert p.poll() is None
            assert stop_agent(p, 20) == 0
        finally:
            for q in procs:
                if q.poll() is None:
                    q.kill()
                    q.wait()
            sizes.done.set()
            sizes.join()
        missing, top = holes(rx)
        assert top > 10 and missing == set(), sorted(missing)[:20]
        assert sizes.max_total <= 4 * 2**20 + 5 * 4096, sizes.max_total  # the budget plus a page per file
        assert rx.problems == []
    rx.close()


@needs_root
def test_the_outbox_files_stay_within_the_budget_through_a_long_outage(tmp_path: Path, broker: Broker) -> None:
    """1 MiB of budget once reached 17.7 MB of files (16 KiB pages, PASSIVE checkpoints only): now the database,
    WAL, -shm and side file together stay within it, plus a page per file, while 20x the budget is written."""
    rx = Receiver(broker.host, broker.port)
    broker.stop()
    with small_disk(tmp_path / "disk", "64m") as disk:
        db = disk / "outbox.db"
        budget = 2 * 2**20
        box = Outbox(db, ENV, max_bytes=budget, max_message_bytes=16384)
        link = Link(MqttConfig(broker=broker.address, reconnect_min=0.1, reconnect_max=0.5), box, ENV, birth)
        link.start()
        sizes = Sizes(db)
        sizes.start()
        made = 0
        try:
            for i in range(800):  # ~40 MB of metrics
                made += box.add_samples([Sample(1.7e9 + i, "sw-1", "if.in_bps", float(k), "bit/s",
                                                {"port": f"Gi0/{k}", "i": str(i)}) for k in range(400)])
                if i % 100 == 0:
                    box.maintain()
            last = box.stats().next_seq - 1
            broker.start()
            rx.wait_for(lambda r: holes(r)[1] >= last and box.stats().rows == 0, 60, "every row")
            drops = box.stats().drops
        finally:
            link.stop()
            sizes.done.set()
            sizes.join()
            box.close()
        missing, top = holes(rx)
        assert missing == set() and top >= made, (sorted(missing)[:20], top, made)
        assert [d.reason for d in drops] == ["disk_budget"]
        assert sizes.max_total <= budget + 5 * box.page_size, (sizes.max_total, budget)
        assert rx.problems == []
    rx.close()


# -- finding 3: a re-imaged box is a new epoch, not duplicates --------------------------------------------------


def run_agent(data: Path, b: Broker, n: int, start: int = 0) -> str:
    """An agent (outbox and link) on `data` that stores and delivers `n` one-sample messages; its epoch."""
    box = Outbox(data / "outbox.db", ENV, max_bytes=10**8, max_message_bytes=65536)
    link = Link(MqttConfig(broker=b.address, reconnect_min=0.1, reconnect_max=0.5), box, ENV, birth)
    link.start()
    for i in range(start, start + n):
        box.add_samples([Sample(1.7e9 + i, "sw-1", "x.count", i)])
    wait_for(lambda: box.stats().rows == 0 and not box.inflight(), 30, "delivery")
    link.stop()
    box.close()
    return box.epoch


def test_a_re_imaged_box_is_a_new_epoch_the_city_keeps_everything_and_records_it(tmp_path: Path,
                                                                                broker: Broker) -> None:
    cfg = load_cloud_config(cloud_config(tmp_path / "cloud.yaml", broker, tmp_path / "city.db"))
    rx = CloudReceiver(cfg, "rx-epoch")
    t = threading.Thread(target=rx.run)
    t.start()
    try:
        assert rx.subscribed.wait(10)
        data = tmp_path / "data"
        first = run_agent(data, broker, 27)
        for f in data.iterdir():  # the SD card is re-imaged: same school, same agent id, no data folder
            f.unlink()
        second = run_agent(data, broker, 27, start=27)
        assert first != second
        db = connect(cfg.storage)
        wait_for(lambda: count(db, "SELECT COUNT(*) FROM samples") == 54, 20, "all 54 samples")
        wait_for(lambda: count(db, "SELECT COUNT(*) FROM events WHERE kind = 'agent.new_epoch'") == 1, 20,
                 "the new epoch recorded as an event")
        assert rx.stats["duplicates"] == 0
        wait_for(lambda: sorted(db.query("SELECT epoch, floor, hwm FROM streams")) == sorted([(first, 1, 27),
                                                                                          (second, 1, 27)]),
                 20, "two whole streams, one per epoch")
        assert count(db, "SELECT COUNT(*) FROM holes") == 0
        ev = db.query("SELECT message FROM events WHERE kind = 'agent.new_epoch'")[0][0]
        # the old epoch's last seq as far as the city had stored it when the new one first showed
        assert f"(epoch {second[:8]}, seqs from 1); the previous epoch {first[:8]} ended at seq " in ev
    finally:
        rx.stop()
        t.join(10)


# -- finding 7: holes are declared or never made -----------------------------------------------------------------


def test_failed_reconnects_leave_no_seq_holes(tmp_path: Path, broker: Broker) -> None:
    rx = Receiver(broker.host, broker.port)
    broker.stop()
    box = Outbox(tmp_path / "outbox.db", ENV, max_bytes=10**8, max_message_bytes=65536)
    link = Link(MqttConfig(broker=broker.address, reconnect_min=0.05, reconnect_max=0.1), box, ENV, birth)
    link.start()
    try:
        for i in range(5):
            box.add_samples([Sample(1.7e9 + i, "sw-1", "x.count", i)])
        wait_for(lambda: link._bd_seq >= 8, 20, "eight failed connect attempts")  # each took a will's seq before
        broker.start()
        for i in range(5, 10):
            box.add_samples([Sample(1.7e9 + i, "sw-1", "x.count", i)])
        rx.wait_for(lambda r: len(r.of("metrics")) >= 10, 20, "every message")
    finally:
        link.stop()
        rx.close()
    missing, top = holes(rx)
    assert top == 10 and missing == set()
    assert {m["seq"] for m in rx.of("birth")} == {0}


# -- finding 8: the receiver asks for a rebirth whenever it lacks the current birth ------------------------------


def test_data_after_a_death_without_a_new_birth_makes_the_city_ask_for_one(tmp_path: Path, broker: Broker) -> None:
    cfg = load_cloud_config(cloud_config(tmp_path / "cloud.yaml", broker, tmp_path / "city.db"))
    rx = CloudReceiver(cfg, "rx-rebirth")
    t = threading.Thread(target=rx.run)
    t.start()
    box = Outbox(tmp_path / "outbox.db", ENV, max_bytes=10**8, max_message_bytes=65536)

    class Rebirth(Actions):
        def rebirth(self) -> None:
            link.rebirth()

    handler = CommandHandler(CommandsConfig(), box, Rebirth())
    link = Link(MqttConfig(broker=broker.address, reconnect_min=0.1, reconnect_max=0.5), box, ENV, birth,
                handler.handle)
    try:
        assert rx.subscribed.wait(10)
        link.start()
        db = connect(cfg.storage)

        def state() -> tuple[Any, ...]:
            rows = db.query("SELECT online, births FROM schools WHERE school = 'test-school'")
            return rows[0] if rows else (None, 0)

        wait_for(lambda: state() == (1, 1), 20, "the birth")
        # The broker restarted: the will of the old connection reached the city, the new connection's birth did
        # not (both sides were reconnecting). The agent goes on sending.
        publish(broker, [("edu/v1/testcity/test-school/death",
                          link.env.encode("death", 0, {"bdSeq": link.status.bd_seq, "reason": "connection_lost"}))])
        wait_for(lambda: state()[0] == 0, 20, "the school offline")
        box.add_samples([Sample(time.time(), "sw-1", "x.count", i) for i in range(3)])
        wait_for(lambda: state() == (1, 2), 30, "a rebirth asked for and taken")
        assert db.query("SELECT rebirth_asked IS NOT NULL, want_rebirth FROM schools") == [(1, None)]
    finally:
        link.stop()
        rx.stop()
        t.join(10)


def test_eduedge_outbox_on_a_directory_names_it_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "outbox.db").mkdir()
    cfg = write_config(tmp_path / "agent.yaml", None, tmp_path / "data", outbox={"path": str(tmp_path / "outbox.db")})
    got = subprocess.run([EDUEDGE, "outbox", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert got.returncode == 1 and "Traceback" not in got.stderr
    assert f"{tmp_path / 'outbox.db'} is not an outbox file" in got.stderr + got.stdout


# -- findings 5 and 6: YAML limits, and `config check` as `run`'s pre-flight -----------------------------------


def check_and_run(cfg: Path, data: Path) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    check = subprocess.run([EDUEDGE, "config", "check", str(cfg)], capture_output=True, text=True, timeout=60)
    run = subprocess.run([EDUEDGE, "run", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    return check, run


@pytest.mark.parametrize("text, where", [
    ("a: &a [*a]\n", ":1:8: alias *a lies inside the node its anchor &a names (a loop)"),
    ("x: " + "[" * 5000 + "]" * 5000 + "\n", ":1:67: nested deeper than 64 levels"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n"
                                                    for p, c in zip("abcdefgh", "bcdefghi", strict=True)),
     ":6:8: more than 200000 values once its aliases are expanded"),
])
def test_yaml_that_recurses_is_named_with_its_line_by_config_check_and_run(tmp_path: Path, text: str,
                                                                          where: str) -> None:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(text)
    for p in check_and_run(cfg, tmp_path / "data"):
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
        assert f"{cfg}{where}" in p.stderr


@pytest.mark.parametrize("section, expect", [
    ({"mqtt": {"broker": "127.0.0.1:1", "username": "school", "password": {"file": "/nonexistent/mqtt.pass"}}},
     "mqtt.password: cannot read secret file /nonexistent/mqtt.pass: No such file or directory"),
    ({"mqtt": {"broker": "127.0.0.1:1", "username": "school", "password": {"env": "EDUEDGE_TEST_UNSET_VARIABLE"}}},
     "mqtt.password: environment variable EDUEDGE_TEST_UNSET_VARIABLE is not set"),
    ({"mqtt": {"broker": "127.0.0.1:1", "tls": {"ca_file": "/nonexistent/ca.crt"}}},
     "mqtt.tls.ca_file: cannot read /nonexistent/ca.crt: no such file"),
    ({"mqtt": {"broker": "127.0.0.1:1", "max_message_bytes": "1MiB"}, "outbox": {"max_bytes": "1MiB"}},
     "outbox.max_bytes: 1048576 bytes cannot hold messages of mqtt.max_message_bytes (1048576)"),
    ({"mqtt": {"broker": "127.0.0.1:1", "keepalive": 0}}, "mqtt.keepalive: 0 s is too short"),
])
def test_config_check_says_what_run_would_fail_on(tmp_path: Path, section: dict[str, Any], expect: str) -> None:
    os.environ.pop("EDUEDGE_TEST_UNSET_VARIABLE", None)
    cfg = write_config(tmp_path / "agent.yaml", None, tmp_path / "data", **section)
    check, run = check_and_run(cfg, tmp_path / "data")
    for p in (check, run):
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
        assert expect in p.stderr and f"{cfg}:" in p.stderr, p.stderr


def test_a_bad_file_sent_by_sighup_is_refused_and_the_running_configuration_kept(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "agent.yaml", None, tmp_path / "data", host={"enabled": True, "interval": "1s"})
    good = cfg.read_text()
    log = tmp_path / "agent.log"
    with log.open("wb") as out:
        p = subprocess.Popen([EDUEDGE, "run", "--config", str(cfg)], stdout=subprocess.DEVNULL, stderr=out)
    try:
        wait_for(lambda: (tmp_path / "data" / "state.json").exists(), 30, "the agent to run")
        for bad in ("a: &a [*a]\n", "x: " + "[" * 5000 + "]" * 5000 + "\n"):
            cfg.write_text(bad)
            mark = log.read_text().count("reload refused")
            p.send_signal(__import__("signal").SIGHUP)
            wait_for(lambda m=mark: log.read_text().count("reload refused") > m, 30, "the reload to be refused")
            assert p.poll() is None, log.read_text()[-3000:]
        cfg.write_text(good.replace("interval: 1s", "interval: 2s"))
        p.send_signal(__import__("signal").SIGHUP)
        wait_for(lambda: "configuration reloaded" in log.read_text(), 30, "the good file to be taken")
        assert stop_agent(p, 20) == 0
        assert "Traceback" not in log.read_text()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


# -- finding 10: the service ---------------------------------------------------------------------------------------


def test_run_tells_systemd_it_is_ready_feeds_the_watchdog_logs_priorities_and_keeps_its_files_private(
        tmp_path: Path) -> None:
    import signal
    import socket

    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.2)
    got: list[str] = []

    def received() -> list[str]:
        with contextlib.suppress(TimeoutError):
            while True:
                got.append(sock.recv(4096).decode())
        return got

    cfg = write_config(tmp_path / "agent.yaml", None, tmp_path / "data", host={"enabled": True, "interval": "1s"})
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "600000", "JOURNAL_STREAM": "8:1234"}
    env.pop("WATCHDOG_PID", None)
    log = tmp_path / "agent.log"
    with log.open("wb") as out:
        p = subprocess.Popen([EDUEDGE, "run", "--config", str(cfg)], stdout=subprocess.DEVNULL, stderr=out, env=env,
                             preexec_fn=lambda: os.umask(0o022))
    try:
        wait_for(lambda: any(m.startswith("READY=1") for m in received()), 30, "READY=1")
        ready = next(i for i, m in enumerate(got) if m.startswith("READY=1"))
        wait_for(lambda: received()[ready:].count("WATCHDOG=1") >= 3, 10, "three watchdog pings (every 0.3 s)")
        p.send_signal(signal.SIGHUP)
        wait_for(lambda: any(m.startswith("RELOADING=1") for m in received()), 20, "RELOADING=1")
        reloading = next(i for i, m in enumerate(got) if m.startswith("RELOADING=1"))
        wait_for(lambda: any(m.startswith("READY=1") for m in received()[reloading:]), 20, "READY=1 after the reload")
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
        assert "STOPPING=1" in received()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        sock.close()
    lines = log.read_text().splitlines()
    warning = next(ln for ln in lines if "no mqtt section" in ln)
    assert warning.startswith("<4>WARNING ") and all(ln[:1] in "< " for ln in lines), lines[:5]
    for f in (tmp_path / "data").iterdir():  # the school's data: the agent's only, even with a 022 umask around it
        assert f.stat().st_mode & 0o077 == 0, (f, oct(f.stat().st_mode))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_unit_is_hardened_to_an_exposure_of_at_most_3() -> None:
    unit = Path(__file__).resolve().parents[1] / "eduedge" / "config" / "eduedge.service"
    out = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)], capture_output=True,
                         text=True, timeout=60).stdout
    score = float(out.rsplit("Overall exposure level for", 1)[1].split(":", 1)[1].split()[0])
    assert score <= 3.0, out[-3000:]
    text = unit.read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text and "UMask=0077" in text


# -- the soak: disk full, outages and kill -9, every seq produced against every seq received ---------------------


def _producer(data: Path, b: Broker, name: str, budget: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "RUST_BACKTRACE": "0"}
    return subprocess.Popen([sys.executable, str(Path(__file__).with_name("fault_producer.py")), str(data), b.address,
                             name, str(budget)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env)


def _read_for(proc: subprocess.Popen[str], seconds: float, lines: list[str]) -> None:
    assert proc.stdout is not None
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            return
        lines.append(line)


def fault_rounds(tmp_path: Path, b: Broker, rounds: int, seed: int) -> dict[str, Any]:
    """Each round starts the producer, puts it through one fault (outage, full disk, or both) and kills it -9."""
    rng = __import__("random").Random(seed)
    rx = Receiver(b.host, b.port)
    budget = 2**20  # the budget that once reached 17.7 MB of files
    with small_disk(tmp_path / "disk", "24m") as disk:
        data = disk / "agent"
        db = data / "outbox.db"
        sizes = Sizes(db)
        sizes.start()
        lines: list[str] = []
        faults = {"outage": 0, "disk_full": 0, "kill -9": 0}
        try:
            for r in range(rounds):
                fault = ("outage", "disk_full", "both")[r % 3] if r < 3 else rng.choice(("outage", "disk_full", "both"))
                proc = _producer(data, b, f"r{r}", budget)
                try:
                    _read_for(proc, rng.uniform(0.2, 0.6), lines)
                    filler = None
                    if fault in ("outage", "both"):
                        b.stop()
                        faults["outage"] += 1
                    if fault in ("disk_full", "both"):
                        filler = fill(disk)
                        faults["disk_full"] += 1
                    _read_for(proc, rng.uniform(0.5, 1.5), lines)
                    if fault in ("outage", "both"):
                        b.start()
                    if filler is not None and rng.random() < 0.5:  # sometimes killed while the disk is still full
                        filler.unlink()
                        filler = None
                    _read_for(proc, rng.uniform(0.2, 0.8), lines)
                    proc.kill()
                    faults["kill -9"] += 1
                    assert proc.stdout is not None
                    lines += proc.stdout.read().splitlines()
                    if filler is not None:
                        filler.unlink()
                finally:
                    proc.kill()
                    proc.wait()
            drain = _producer(data, b, "drain", budget)
            out, _ = drain.communicate(timeout=120)
            assert "drained" in out, out
        finally:
            sizes.done.set()
            sizes.join()
        # what was committed (a kill can cut the last line short: only whole lines count)
        committed: dict[int, tuple[str, int]] = {}
        failed = 0
        for ln in lines:
            f = ln.split()
            if len(f) == 4 and f[2] == "ok" and f[3].isdigit() and f[1].isdigit():
                committed[int(f[3])] = (f[0], int(f[1]))
            elif len(f) == 3 and f[2] == "fail":
                failed += 1
        last = max(committed, default=0)
        rx.wait_for(lambda r: holes(r)[1] >= last, 60, "every committed seq, received or declared")
        rx.close()
        assert rx.problems == []
        got = {m["seq"] for m in rx.of("metrics")}
        replaced = {s for g in rx.of("gap") for lo, hi in g.get("replaces", []) for s in range(lo, hi + 1)}
        gaps = [g for g in rx.of("gap") if g["seq"] not in replaced]
        declared = {s for g in gaps for lo, hi in g["seqs"] for s in range(lo, hi + 1)} | replaced
        missing, top = holes(rx)
        samples_committed = len(committed) * 50
        samples_received = len({(s["tags"]["round"], s["value"]) for m in rx.of("metrics") for s in m["samples"]})
        return {"rounds": rounds, "faults": faults, "messages_committed": len(committed),
                "samples_committed": samples_committed, "samples_received": samples_received,
                "samples_declared_dropped": sum(g["samples"] for g in gaps if g["dropped"] == "metrics"),
                "batches_unwritable": failed,
                "lost_without_declared_gap": len([s for s in committed if s not in got and s not in declared]),
                "undeclared_holes": len(missing), "highest_seq": top, "budget": budget,
                "max_files_total": sizes.max_total, "max_single_file": sizes.max_file,
                "over_budget": max(0, sizes.max_total - budget), "page": 4096}


def test_disk_full_outages_and_kill_9_lose_nothing_undeclared(tmp_path: Path, broker: Broker) -> None:
    """Each fault once (an outage, a full disk, both), every round ending in kill -9."""
    fig = fault_rounds(tmp_path, broker, rounds=3, seed=1)
    print("fault figures:", json.dumps(fig))
    assert fig["lost_without_declared_gap"] == 0 and fig["undeclared_holes"] == 0, fig
    assert fig["max_files_total"] <= fig["budget"] + 5 * fig["page"], fig


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_fault_soak(tmp_path: Path, broker: Broker) -> None:
    fig = fault_rounds(tmp_path, broker, rounds=int(os.environ.get("EDUEDGE_SOAK_ROUNDS", "60")), seed=7)
    print("fault soak figures:", json.dumps(fig))
    assert fig["lost_without_declared_gap"] == 0 and fig["undeclared_holes"] == 0, fig
    assert fig["max_files_total"] <= fig["budget"] + 5 * fig["page"], fig
