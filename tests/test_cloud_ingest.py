"""`eduedge cloud ingest` end to end through a real mosquitto: a fleet of simulated schools and real agents publish,
receivers (processes, killed and restarted) store exactly one copy of everything, sessions and gaps are right,
and bad input is refused, counted and kept aside without stopping anything."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
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

from eduedge.agent.contract import decode
from eduedge.cloud.config import load_cloud_config
from eduedge.cloud.db import Db, connect
from eduedge.cloud.pgserver import start_postgres
from eduedge.cloud.receiver import Receiver
from eduedge.cloud.sweep import sweep
from eduedge.cloud.views import gaps, ingest_stats
from eduedge.simulator.broker import Broker, start_broker
from eduedge.simulator.fleet import Fleet
from tests.mqtt_helpers import stop_agent, write_config

pytestmark = pytest.mark.integration
EDUEDGE = str(Path(sys.executable).with_name("eduedge"))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = start_broker(tmp_path / "broker")
    yield b
    b.close()


def cloud_config(path: Path, broker: Broker, storage: dict[str, Any], **sections: Any) -> Path:
    doc: dict[str, Any] = {"mqtt": {"broker": broker.address, "group": "city", "session_expiry": "10m"},
                           "storage": storage, "ingest": {"sweep_every": "500ms", "reorder_timeout": "2s"},
                           "standards": {"packs": ["hebei-2019"]}}
    for k, v in sections.items():
        doc[k] = {**doc.get(k, {}), **v}
    path.write_text(yaml.safe_dump(doc))
    return path


class RawListener:
    """A plain subscriber on the same broker: what the broker delivered, to compare the cloud's store with."""

    def __init__(self, broker: Broker):
        self.got: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="raw-listener", protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.connect(broker.host, broker.port)
        self.client.subscribe("edu/v1/#", qos=1)
        self.client.loop_start()
        assert ready.wait(5)

    def _on_message(self, client: Any, userdata: Any, m: mqtt.MQTTMessage) -> None:
        if "/cmd/" not in m.topic:
            with self.lock:
                self.got.append((m.topic, m.payload))

    def messages(self) -> dict[str, dict[str, Any]]:
        """Distinct messages by id."""
        with self.lock:
            return {(msg := decode(p))["id"]: msg for _, p in self.got}

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def start_receiver(config: Path, name: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([EDUEDGE, "cloud", "ingest", "--config", str(config), "--client-id", name],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def count(db: Db, sql: str) -> int:
    return int(db.query(sql)[0][0])


def test_a_fleet_through_two_receivers_one_killed_stores_every_message_once_on_postgresql(tmp_path, broker):
    pg = start_postgres()
    procs: list[subprocess.Popen[bytes]] = []
    raw = RawListener(broker)
    try:
        config = cloud_config(tmp_path / "cloud.yaml", broker, {"engine": "postgresql", "dsn": pg.dsn})
        cfg = load_cloud_config(config)
        db = connect(cfg.storage)
        logs = [tmp_path / "rx1.log", tmp_path / "rx2.log"]
        procs += [start_receiver(config, "rx1", logs[0]), start_receiver(config, "rx2", logs[1])]
        wait_for(lambda: all("subscribing" in p.read_text() for p in logs if p.exists()) and
                 all(p.exists() for p in logs), 20, "both receivers to subscribe")
        fleet = Fleet(broker.address, schools=6, interval=0.5, city="testcity", seed=5)
        dropper = fleet.schools[0]
        dropper.link_drops, fleet.drop_chance = True, 0.5
        runner = threading.Thread(target=fleet.run, args=(6.0,))
        runner.start()
        wait_for(lambda: count(db, "SELECT COUNT(*) FROM messages") >= 20, 10, "the receivers storing the stream")
        procs[0].kill()                                          # kill -9 in the middle of the stream
        procs[0].wait()
        heard = len(raw.got)
        wait_for(lambda: len(raw.got) >= heard + 10, 10, "ten more messages while rx1 is down")
        procs.append(start_receiver(config, "rx1", logs[0]))     # same client id: its session and queue resume
        # Duplicates, byte for byte, as an agent re-sending after a restart would make them.
        injector = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="injector", protocol=mqtt.MQTTv5)
        injector.connect(broker.host, broker.port)
        injector.loop_start()
        with raw.lock:
            again = random.Random(1).sample(raw.got, min(40, len(raw.got)))
        for topic, payload in again:
            injector.publish(topic, payload, qos=1).wait_for_publish(5)
        runner.join()
        # A late will of the dropper's first connection, after it was born again: ignored.
        first_death = next(decode(p) for t, p in raw.got if t.endswith(f"{dropper.id}/death")) if any(
            t.endswith(f"{dropper.id}/death") for t, _ in raw.got) else None
        if first_death is not None:
            injector.publish(f"edu/v1/testcity/{dropper.id}/death",
                             json.dumps({**first_death, "id": "01000000-0000-7000-8000-000000000001",
                                         "seq": first_death["seq"] + 100000}), qos=1).wait_for_publish(5)
        injector.loop_stop()
        injector.disconnect()
        time.sleep(1.0)
        sent = raw.messages()
        expected = len(sent)                                     # the injected stale death included
        try:
            wait_for(lambda: count(db, "SELECT COUNT(*) FROM messages") >= expected, 30,
                     f"{expected} messages in the database")
        except AssertionError:
            stored = {r[0] for r in db.query("SELECT id FROM messages")}
            lost = sorted((m["school"]["id"], m["seq"], m["schema"]["name"])
                          for i, m in sent.items() if i not in stored)
            tails = "\n".join(p.read_text()[-1500:] for p in logs)
            raise AssertionError(f"{len(stored)} of {expected} stored; not stored: {lost[:20]}\n{tails}") from None
        time.sleep(1.0)
        assert count(db, "SELECT COUNT(*) FROM messages") == expected
        ids = {r[0] for r in db.query("SELECT id FROM messages")}
        assert set(sent) <= ids
        samples = sum(len(m["samples"]) for m in sent.values() if m["schema"]["name"] == "metrics")
        assert count(db, "SELECT COUNT(*) FROM samples") == samples > 0
        stats = ingest_stats(db)
        assert stats["totals"]["duplicates"] >= len(again)       # plus whatever the kill made the broker re-send
        assert stats["totals"].get("rejected.schema", 0) == 0
        assert {"rx1", "rx2"} <= set(stats["receivers"])         # the shared subscription split the schools' load
        assert all(v.get("messages", 0) > 0 for v in stats["receivers"].values())
        sweep(db)
        states = {r[0]: r[1:] for r in db.query("SELECT school, online, offline_reason, bd_seq, stale_deaths "
                                                "FROM schools")}
        assert len(states) == 6
        for school, (online, reason, bd, stale) in states.items():
            if school != dropper.id:
                assert (online, reason, bd, stale) == (0, "shutdown", 1, 0), school
        # The dropper's state is its newest connection's, whatever order two receivers saw its births and deaths in.
        assert states[dropper.id][0] == 0 and states[dropper.id][2] == dropper.bd_seq > 1
        if first_death is not None:
            assert states[dropper.id][3] >= 1
        for g in gaps(db, cfg, time.time() + 10):
            births = sum(1 for m in sent.values()
                         if m["school"]["id"] == g["school"] and m["schema"]["name"] == "birth")
            if g["school"] != dropper.id:
                assert g["holes"] == [] and births == 1, g
    finally:
        for p in procs:
            stop_agent(p, 10)
        raw.close()
        pg.close()


def test_bad_input_is_refused_counted_and_kept_aside_and_the_receiver_goes_on(tmp_path, broker):
    config = cloud_config(tmp_path / "cloud.yaml", broker, {"path": str(tmp_path / "city.db")},
                          ingest={"max_message_bytes": "64KiB"})
    cfg = load_cloud_config(config)
    rx = Receiver(cfg, "rx-bad")
    t = threading.Thread(target=rx.run)
    t.start()
    try:
        assert rx.subscribed.wait(10)
        fleet = Fleet(broker.address, schools=1, interval=0.5, city="testcity", seed=2)
        s = fleet.schools[0]
        good = s.env.encode("death", 5, {"bdSeq": 1, "reason": "shutdown"})
        msg = json.loads(good)
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bad-school", protocol=mqtt.MQTTv5)
        pub.connect(broker.host, broker.port)
        pub.loop_start()
        base = f"edu/v1/testcity/{s.id}"
        bad = [(f"{base}/metrics", b"{this is not json"),
               (f"{base}/death", json.dumps({**msg, "schema": {"name": "death", "version": 9}}).encode()),
               ("edu/v1/testcity/another-school/death", good),                # under another school's topic
               (f"{base}/death", b"{" + b" " * 70_000 + b"}"),               # over the cloud's 64 KiB
               (f"{base}/death", json.dumps({**msg, "bdSeq": -1}).encode()),
               (f"{base}/events", gzip.compress(json.dumps({**msg, "schema": {"name": "events", "version": 1}})
                                                .encode()))]
        for topic, payload in bad:
            pub.publish(topic, payload, qos=1).wait_for_publish(5)
        pub.publish(f"{base}/death", gzip.compress(good), qos=1).wait_for_publish(5)  # a good one after all that
        pub.loop_stop()
        pub.disconnect()
        db = connect(cfg.storage)
        wait_for(lambda: count(db, "SELECT COUNT(*) FROM messages") == 1
                 and count(db, "SELECT COUNT(*) FROM rejects") == len(bad), 15, "the good message and the refusals")
        reasons = [r[0] for r in db.query("SELECT reason FROM rejects ORDER BY id")]
        assert sorted(reasons) == sorted(["malformed", "version", "mismatch", "oversized", "schema", "schema"])
        totals = ingest_stats(db)["totals"]
        assert (totals["rejected.schema"], totals["rejected.mismatch"], totals["messages"]) == (2, 1, 1)
        kept = db.dicts("SELECT topic, detail, size, payload FROM rejects WHERE reason = 'mismatch'")[0]
        assert kept["topic"] == "edu/v1/testcity/another-school/death" and s.id in kept["detail"]
        assert bytes(kept["payload"]) == good
        big = db.dicts("SELECT size, payload FROM rejects WHERE reason = 'oversized'")[0]
        assert big["size"] == 70_002 and len(big["payload"]) == cfg.ingest.reject_bytes
        assert t.is_alive()
    finally:
        rx.stop()
        t.join(10)


def test_real_agents_killed_and_restarted_resend_and_the_cloud_keeps_one_copy(tmp_path, broker):
    config = cloud_config(tmp_path / "cloud.yaml", broker, {"path": str(tmp_path / "city.db")})
    cfg = load_cloud_config(config)
    rx = Receiver(cfg, "rx-agents")
    t = threading.Thread(target=rx.run)
    t.start()
    procs: list[subprocess.Popen[bytes]] = []
    agent_cfg = write_config(tmp_path / "agent.yaml", broker.address, tmp_path / "data",
                             host={"enabled": True, "interval": "1s"},
                             school={"id": "killed-school", "name": "Killed School", "city": "testcity",
                                     "type": "primary"})

    def start() -> subprocess.Popen[bytes]:
        with (tmp_path / "agent.log").open("ab") as log:
            p = subprocess.Popen([EDUEDGE, "run", "--config", str(agent_cfg)], stdout=subprocess.DEVNULL, stderr=log)
        procs.append(p)
        return p

    try:
        assert rx.subscribed.wait(10)
        db = connect(cfg.storage)

        def stored(sql: str) -> int:
            return count(db, sql + " WHERE school = 'killed-school'")

        for round_ in range(3):
            p = start()
            # Killed once its birth is stored and a few of its host polls after it, at a random one of those:
            # what is in flight then is sent again by the next process.
            wait_for(lambda r=round_: stored("SELECT coalesce(max(births), 0) FROM schools") == r + 1, 30,
                     f"the birth of agent process {round_ + 1}")
            before = stored("SELECT COUNT(*) FROM messages")
            more = random.Random(round_).randint(2, 6)
            wait_for(lambda b=before, n=more: stored("SELECT COUNT(*) FROM messages") >= b + n, 30,
                     f"{more} more messages from process {round_ + 1}")
            p.kill()                                                   # kill -9: in-flight rows are sent again
            p.wait()
        p = start()
        wait_for(lambda: stored("SELECT coalesce(max(births), 0) FROM schools") == 4, 30, "the fourth birth")
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
        wait_for(lambda: db.query("SELECT online, offline_reason FROM schools WHERE school = 'killed-school'")
                 == [(0, "shutdown")], 20, "the agent's clean death")
        later = time.time() + cfg.ingest.reorder_timeout + 1             # judged as once the holes can no longer fill
        sweep(db, later)
        assert count(db, "SELECT COUNT(*) FROM (SELECT series, t FROM samples GROUP BY series, t "
                         "HAVING COUNT(*) > 1) AS d") == 0
        assert count(db, "SELECT COUNT(*) FROM samples") > 0
        births = count(db, "SELECT births FROM schools WHERE school = 'killed-school'")
        assert births == 4
        g = gaps(db, cfg, later)[0]
        # Wills take no seq, so no hole is a session seq; the only holes are rows still in the agent's outbox
        # (its goodbye event, stored after the link stopped): nothing delivered went missing.
        left = json.loads(subprocess.run([EDUEDGE, "outbox", "--json", "--config", str(agent_cfg)],
                                         capture_output=True, text=True, check=True).stdout)["rows"]
        assert (g["session_seqs"], g["missing_seqs"]) == (0, left), g
        assert g["messages"] == count(db, "SELECT COUNT(*) FROM messages WHERE seq > 0")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        rx.stop()
        t.join(10)
    assert os.path.exists(tmp_path / "city.db")
