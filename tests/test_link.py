"""Outbox + MQTT link against a real mosquitto that each test starts on a free loopback port.

Every message the receiver sees is validated against the contract (tests/mqtt_helpers.Receiver).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from eduedge.agent.config import MqttConfig, MqttTls
from eduedge.agent.envelope import Envelope
from eduedge.agent.link import Link
from eduedge.agent.outbox import Outbox
from eduedge.core.samples import Sample
from eduedge.simulator.broker import Broker, make_pki, start_broker
from tests.mqtt_helpers import Receiver

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
ENV = Envelope("test-school", "testcity", "gw-test", "0.1.0", "ef" * 16)


def birth() -> dict:
    return {"school_info": {"name": "Test School", "type": "primary"}, "config_digest": "0" * 16,
            "collectors": [], "devices": [], "commands": ["rebirth"], "outbox": {"rows": 0, "bytes": 0}}


@pytest.fixture
def broker(tmp_path: Path):
    b = start_broker(tmp_path / "broker")
    yield b
    b.close()


def make_link(b: Broker, outbox: Outbox, **cfg: object) -> Link:
    cfg.setdefault("broker", b.address)
    cfg.setdefault("reconnect_min", 0.1)
    cfg.setdefault("reconnect_max", 0.5)
    return Link(MqttConfig(**cfg), outbox, ENV, birth)  # type: ignore[arg-type]


def values(r: Receiver, kind: str = "metrics") -> list[tuple[int, float]]:
    """(seq, value) of every sample received, in order of arrival."""
    return [(m["seq"], s["value"]) for m in r.of(kind) for s in m.get("samples", [])]


def test_broker_down_then_up_every_sample_arrives_in_order_within_its_priority(tmp_path: Path, broker: Broker) -> None:
    rx = Receiver(broker.host, broker.port)
    box = Outbox(tmp_path / "outbox.db", ENV, max_bytes=10**8, max_message_bytes=4096)
    link = make_link(broker, box)
    link.start()
    stop = threading.Event()
    produced: list[int] = []
    events_made: list[int] = []
    back_at = 0

    def produce() -> None:
        i = 0
        while not stop.is_set():
            box.add_samples([Sample(time.time(), "sw-1", "test.counter", i + k) for k in range(20)])
            produced.extend(range(i, i + 20))
            i += 20
            if i % 200 == 0:
                box.add_items("events", [{"t": time.time(), "kind": "device.unreachable", "severity": "error",
                                          "device": "sw-1", "message": f"e{i}", "data": {"i": i}}])
                events_made.append(i)
            time.sleep(0.01)

    t = threading.Thread(target=produce)
    t.start()
    try:
        rx.wait_for(lambda r: len(values(r)) > 100, 15, "data before the outage")
        broker.stop()  # clean stop: the receiver's subscription survives in the broker's persistence
        # a backlog with more than ten events in it (the order check below needs them)
        mark = len(events_made)
        wait_until(lambda: not link.status.connected and len(events_made) > mark + 12 and box.stats().rows > 10, 15,
                   "a backlog during the outage")
        back_at = produced[-1] + 1
        broker.start()
        wait_until(lambda: link.status.connected and produced[-1] > back_at + 20, 15, "data after the outage")
    finally:
        stop.set()
        t.join()
    rx.wait_for(lambda r: {v for _, v in values(r)} >= set(produced), 30, "every sample")
    rx.wait_for(lambda r: len({m["id"] for m in r.of("events")}) >= len(events_made), 15, "every event")
    link.stop()
    rx.close()
    assert rx.problems == []
    got = values(rx)
    assert sorted({v for _, v in got}) == produced
    # In order within each priority: everything made before the broker came back (before and during the
    # outage) arrives in seq order. Rows made after it may overtake the backlog by design.
    firsts = {"metrics": lambda m: m["samples"][0]["value"], "events": lambda m: m["events"][0]["data"]["i"]}
    for kind, index in firsts.items():
        first: dict[str, tuple[int, int]] = {}
        for m in rx.of(kind):
            first.setdefault(m["id"], (m["seq"], index(m)))
        before = [seq for seq, i in first.values() if i < back_at]
        assert before == sorted(before), kind
        assert len(before) > 10, kind
    births = rx.of("birth")
    assert len(births) >= 2 and births[-1]["bdSeq"] > births[0]["bdSeq"]
    assert box.stats().rows == 0


def test_never_more_in_flight_than_the_brokers_receive_maximum(tmp_path: Path) -> None:
    # mosquitto announces its max_inflight_messages to MQTT 5 clients as Receive Maximum (but does not enforce it).
    b = start_broker(tmp_path / "broker", persistence=False, extra_conf="max_inflight_messages 5")
    try:
        box = Outbox(tmp_path / "outbox.db", ENV, max_bytes=10**8, max_message_bytes=4096)
        for i in range(40):
            box.add_samples([Sample(1.7e9 + i, "sw-1", "test.counter", i * 10 + k) for k in range(10)])
        link = make_link(b, box, max_inflight=50)
        unacked: set[int] = set()
        peak = [0]
        publish, on_publish = link.client.publish, link.client.on_publish

        def counting_publish(*args: Any, **kwargs: Any) -> Any:
            info = publish(*args, **kwargs)
            unacked.add(info.mid)
            peak[0] = max(peak[0], len(unacked))
            return info

        def counting_on_publish(client: Any, userdata: Any, mid: int, *rest: Any) -> None:
            unacked.discard(mid)
            on_publish(client, userdata, mid, *rest)

        link.client.publish = counting_publish  # type: ignore[method-assign]
        link.client.on_publish = counting_on_publish
        link.start()
        deadline = time.monotonic() + 20
        while (box.stats().rows or box.inflight()) and time.monotonic() < deadline:
            time.sleep(0.05)
        link.stop()
        assert box.stats().rows == 0
        assert peak[0] == 5  # the birth counts too
        assert link.status.connects == 1
    finally:
        b.close()


def test_a_failing_read_does_not_stop_the_link(tmp_path: Path, broker: Broker) -> None:
    rx = Receiver(broker.host, broker.port)
    box = Outbox(tmp_path / "outbox.db", ENV, max_bytes=10**8, max_message_bytes=4096)
    take = box.take
    failures = [2]

    def flaky_take(n: int) -> list:
        if failures[0]:
            failures[0] -= 1
            raise sqlite3.OperationalError("database is locked")
        return take(n)

    box.take = flaky_take  # type: ignore[method-assign]
    box.add_samples([Sample(1.7e9, "sw-1", "test.counter", 1)])
    link = make_link(broker, box)
    link.start()
    rx.wait_for(lambda r: r.of("metrics"), 15, "the row, once reading works again")
    link.stop()
    rx.close()
    assert failures == [0] and box.stats().rows == 0


def _run_producer(data: Path, broker: Broker, round_: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(REPO / "tests" / "outbox_producer.py"), str(data), broker.address,
                             round_], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)


def _kill_rounds(tmp_path: Path, broker: Broker, rounds: int) -> None:
    rx = Receiver(broker.host, broker.port)
    data = tmp_path / "agent"
    committed: dict[str, int] = {}
    rng = random.Random()
    for r in range(rounds):
        name = f"r{r}"
        proc = _run_producer(data, broker, name)
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert first.startswith(name), first
            last = first
            deadline = time.monotonic() + rng.uniform(0.05, 1.2)
            while time.monotonic() < deadline:
                last = proc.stdout.readline() or last
            proc.send_signal(signal.SIGKILL)
            rest = proc.stdout.read()
            # A kill can cut the last line short; a cut number is still a lower bound of what was committed.
            done = [int(f[1]) for f in (ln.split() for ln in [last, *rest.splitlines()])
                    if len(f) == 2 and f[0] == name and f[1].isdigit()]
            assert done, f"{name}: no progress line in {[last, rest[-200:]]}"
            committed[name] = done[-1]
        finally:
            proc.kill()
            proc.wait()
    drain = _run_producer(data, broker, "drain")
    out, _ = drain.communicate(timeout=120)
    assert "drained" in out
    total = sum(v + 1 for v in committed.values())
    with contextlib.suppress(AssertionError):  # on a timeout, the checks below say which round lacks what
        rx.wait_for(lambda r: len({(s["tags"]["round"], s["value"]) for m in r.of("metrics") for s in m["samples"]})
                    >= total, 60, "every committed sample")
    time.sleep(0.5)
    rx.close()
    assert rx.problems == []
    seen: dict[tuple[str, int], set[str]] = defaultdict(set)
    by_id: dict[str, str] = {}
    for m in rx.of("metrics"):
        body = json.dumps(m, sort_keys=True)
        assert by_id.setdefault(m["id"], body) == body, "a redelivery differs from the first delivery"
        for s in m["samples"]:
            seen[(s["tags"]["round"], int(s["value"]))].add(m["id"])
    for name, last_committed in committed.items():
        got = sorted(i for (rn, i) in seen if rn == name)
        # What a round stored is a prefix 0..n (each batch is one transaction); all of it arrived.
        holes = sorted(set(range(max(got, default=-1) + 1)) - set(got))
        assert not holes, f"{name}: {len(holes)} samples missing, first {holes[:5]}, last committed {last_committed}"
        assert len(got) >= last_committed + 1, f"{name}: committed up to {last_committed}, received {len(got)}"
    assert all(len(ids) == 1 for ids in seen.values()), "a sample arrived in two different messages"
    seqs = [m["seq"] for m in rx.of("metrics")]
    assert len(set(seqs)) == len(by_id), "seq and message id do not match one to one"


def test_kill_9_during_heavy_publishing_loses_nothing_and_duplicates_keep_their_id(tmp_path: Path,
                                                                                     broker: Broker) -> None:
    _kill_rounds(tmp_path, broker, rounds=10)


@pytest.mark.soak
@pytest.mark.timeout(900)  # ~240 s on the shared 2-core box; past the default 300 s when other suites load it
def test_kill_9_soak_100_rounds(tmp_path: Path, broker: Broker) -> None:
    _kill_rounds(tmp_path, broker, rounds=int(os.environ.get("EDUEDGE_SOAK_ROUNDS", "100")))


def test_disk_budget_drops_only_old_metrics_and_the_gap_records_arrive(tmp_path: Path, broker: Broker) -> None:
    rx = Receiver(broker.host, broker.port)  # its persistent session collects what arrives after the outage
    broker.stop()
    box = Outbox(tmp_path / "outbox.db", ENV, max_bytes=600_000, max_message_bytes=4096)
    link = make_link(broker, box)
    link.start()
    made_metrics = 0
    for i in range(240):
        made_metrics += box.add_samples([Sample(1.7e9 + i, "sw-1", "test.counter", i * 30 + k) for k in range(30)])
        if i % 24 == 0:
            box.add_items("findings", [{"t": 1.7e9 + i, "rule": "wan.down", "subject": "school", "status": "fail",
                                        "value": 10, "threshold": 100, "unit": "Mbit/s"}])
    drops = box.stats().drops
    assert [(d.kind, d.reason) for d in drops] == [("metrics", "disk_budget")]
    broker.start()
    expected = made_metrics - drops[0].messages
    rx.wait_for(lambda r: len({m["seq"] for m in r.of("metrics")}) >= expected and len(r.of("findings")) >= 10
                and r.of("gap"), 30, "every metrics message that was not dropped, the findings and the gaps")
    rx.wait_for(lambda r: box.stats().rows == 0, 10, "the outbox to empty")
    link.stop()
    rx.close()
    assert rx.problems == []
    gaps = rx.of("gap")
    dropped = {s for g in gaps for lo, hi in g["seqs"] for s in range(lo, hi + 1)}
    delivered = {m["seq"] for m in rx.of("metrics")}
    assert gaps and {g["reason"] for g in gaps} == {"disk_budget"}
    assert len(dropped) == drops[0].messages and not dropped & delivered
    assert len(dropped) + len(delivered) == made_metrics  # every metrics message arrived or is in a gap record
    assert max(dropped) < min(delivered)
    assert len(rx.of("findings")) == 10


def test_tls_with_client_certificates(tmp_path: Path) -> None:
    b = start_broker(tmp_path / "broker", tls=True, tls_clients=("gw-test",))
    try:
        assert b.pki is not None and b.tls_port is not None
        rx = Receiver(b.host, b.port)
        cert, key = b.pki.clients["gw-test"]
        box = Outbox(tmp_path / "outbox.db", ENV, max_bytes=10**7)
        box.add_samples([Sample(1.7e9, "sw-1", "test.counter", 1)])
        link = make_link(b, box, broker=f"localhost:{b.tls_port}",
                         tls=MqttTls(ca_file=b.pki.ca_cert, cert_file=cert, key_file=key))
        link.start()
        rx.wait_for(lambda r: r.of("metrics") and r.of("birth"), 15, "metrics over TLS")
        link.stop()

        # Without a client certificate the broker refuses; the rows stay in the outbox.
        box2 = Outbox(tmp_path / "outbox2.db", ENV, max_bytes=10**7)
        box2.add_samples([Sample(1.7e9, "sw-1", "test.counter", 2)])
        anon = make_link(b, box2, broker=f"localhost:{b.tls_port}", tls=MqttTls(ca_file=b.pki.ca_cert))
        anon.start()
        wait_until(lambda: anon.status.last_error, 15, "the broker's refusal")
        assert not anon.status.connected and anon.status.connects == 0
        anon.stop()
        assert box2.stats().rows == 1
        rx.close()
        assert rx.problems == []
        assert [s["value"] for m in rx.of("metrics") for s in m["samples"]] == [1]
    finally:
        b.close()


def wait_until(check: Any, timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


@pytest.mark.parametrize("wrong", ["ca", "name"])
def test_the_agent_refuses_a_broker_whose_certificate_its_ca_did_not_sign_or_names_another_host(
        tmp_path: Path, wrong: str) -> None:
    # "name": the broker listens on 127.0.0.2 with a certificate for localhost and 127.0.0.1 only
    b = start_broker(tmp_path / "broker", host="127.0.0.2" if wrong == "name" else "127.0.0.1", tls=True,
                     tls_clients=("gw-test",))
    try:
        assert b.pki is not None and b.tls_port is not None
        cert, key = b.pki.clients["gw-test"]
        ca = make_pki(tmp_path / "other-pki").ca_cert if wrong == "ca" else b.pki.ca_cert
        box = Outbox(tmp_path / "outbox.db", ENV, max_bytes=10**7)
        box.add_samples([Sample(1.7e9, "sw-1", "test.counter", 1)])
        link = make_link(b, box, broker=f"{b.host}:{b.tls_port}", tls=MqttTls(ca_file=ca, cert_file=cert,
                                                                              key_file=key))
        link.start()
        error = wait_until(lambda: link.status.last_error, 15, "the agent's refusal")
        link.stop()
        assert "CERTIFICATE_VERIFY_FAILED" in error, error
        # a CA with the same name but another key: the signature does not verify; the right CA, the wrong name
        assert ("signature failure" if wrong == "ca" else "IP address mismatch") in error, error
        assert link.status.connects == 0 and box.stats().rows == 1  # nothing was sent to that broker
        log = (b.workdir / "mosquitto.log").read_text()
        assert "New client connected" not in log
    finally:
        b.close()


def test_a_password_from_a_file_is_used_and_never_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), "school", "s3cret-Pa55"], check=True,
                   capture_output=True)
    b = start_broker(tmp_path / "broker", extra_conf="")
    b.stop()
    conf = (b.workdir / "mosquitto.conf").read_text().replace("allow_anonymous true",
                                                             f"allow_anonymous false\npassword_file {pw}")
    (b.workdir / "mosquitto.conf").write_text(conf)
    os.chmod(pw, 0o644)
    b.start()
    try:
        caplog.set_level("DEBUG")
        box = Outbox(tmp_path / "outbox.db", ENV, max_bytes=10**7)
        (tmp_path / "secret").write_text("s3cret-Pa55\n")
        cfg = MqttConfig(broker=b.address, username="school", password={"file": str(tmp_path / "secret")},
                         reconnect_min=0.1, reconnect_max=0.5)
        assert cfg.password is not None
        good = Link(cfg, box, ENV, birth, password=cfg.password.read("mqtt.password"))
        good.start()
        deadline = time.monotonic() + 10
        while not good.status.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert good.status.connected
        good.stop()
        bad = Link(MqttConfig(broker=b.address, username="school", reconnect_min=0.1, reconnect_max=0.5),
                   box, ENV, birth, password="wrong")
        bad.start()
        wait_until(lambda: bad.status.last_error, 15, "the broker's refusal")
        assert not bad.status.connected and "refused" in (bad.status.last_error or "")
        bad.stop()
        assert "s3cret" not in caplog.text and "wrong" not in caplog.text.replace("went wrong", "")
    finally:
        b.close()
