"""`eduedge sim fleet`: many simulated schools stream contract-valid telemetry to one real broker."""

from __future__ import annotations

import collections
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from eduedge.agent.contract import decode
from eduedge.simulator.broker import start_broker
from eduedge.simulator.fleet import Fleet
from tests.contract_helpers import problems

pytestmark = pytest.mark.integration


@pytest.fixture()
def broker():
    b = start_broker()
    yield b
    b.close()


def listen(broker) -> tuple[mqtt.Client, list[tuple[str, dict]]]:
    got: list[tuple[str, dict]] = []
    lock = threading.Lock()
    ready = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cloud-test", protocol=mqtt.MQTTv5)

    def on_message(client, userdata, msg):
        with lock:
            got.append((msg.topic, decode(msg.payload)))

    c.on_message = on_message
    c.on_subscribe = lambda *a: ready.set()
    c.connect(broker.host, broker.port)
    c.subscribe("edu/v1/#", qos=1)
    c.loop_start()
    assert ready.wait(5)
    return c, got


def test_a_fleet_of_schools_streams_valid_telemetry(broker, realdevices):
    cloud, got = listen(broker)
    fleet = Fleet(broker.address, schools=4, interval=1.0, city="testcity", seed=3)
    dropper = fleet.schools[0]
    dropper.link_drops, fleet.drop_chance = True, 1.0
    stats = fleet.run(4.5)
    cloud.loop_stop()
    cloud.disconnect()

    assert stats.births >= 4 and stats.messages > 0 and stats.drops >= 1
    bad = [(t, p) for t, m in got for p in problems(m)]
    assert bad == []                                     # every message meets the contract
    by_school = collections.defaultdict(list)
    seen: set[str] = set()
    for t, m in got:
        if m["id"] in seen:              # a QoS 1 redelivery after a reconnect: same id, dropped by the cloud
            continue
        seen.add(m["id"])
        by_school[m["school"]["id"]].append((t.rsplit("/", 1)[1], m))
    assert len(by_school) == 4
    types = {msgs[0][1]["school_info"]["type"] for msgs in by_school.values() if msgs[0][0] == "birth"}
    assert len(types) == 4                                # the schools differ
    for school, msgs in by_school.items():
        seqs = [m["seq"] for kind, m in msgs if kind != "death" or m["reason"] == "shutdown"]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), school
        assert msgs[0][0] == "birth"
        metrics = [m for kind, m in msgs if kind == "metrics"]
        if school != dropper.id:
            assert metrics and msgs[-1][0] == "death" and msgs[-1][1]["reason"] == "shutdown"
            names = {s["metric"] for m in metrics for s in m["samples"]}
            assert {"if.in_bps", "if.oper_status", "device.uptime_s"} <= names
    # the school whose link dropped: the broker delivered its last will, then it was born again
    kinds = [(kind, m.get("bdSeq"), m.get("reason")) for kind, m in by_school[dropper.id]
             if kind in ("birth", "death")]
    assert ("death", 1, "connection_lost") in kinds
    assert ("birth", 2, None) in kinds


def test_a_city_of_schools_that_differ_reports_findings_and_reconnects_after_a_broker_outage(tmp_path):
    broker = start_broker(tmp_path / "broker")
    got: list[tuple[str, dict]] = []
    lock = threading.Lock()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cloud-city", protocol=mqtt.MQTTv5)
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe("edu/v1/#", qos=1)

    def on_message(client, userdata, m):
        with lock:
            got.append((m.topic, decode(m.payload)))

    c.on_message = on_message
    c.reconnect_delay_set(0.2, 1.0)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 600     # the broker keeps the cloud's subscription and queue across its restart
    c.connect(broker.host, broker.port, clean_start=False, properties=props)
    c.loop_start()
    lines: list[str] = []
    try:
        fleet = Fleet(broker.address, schools=12, interval=1.0, city="yinchuan", seed=4, history_days=3,
                      progress=lines.append, faults=True)
        fates = {s.id: s.profile.fate for s in fleet.schools}
        runner = threading.Thread(target=fleet.run, args=(12.0,))
        runner.start()

        def sent(kind: str) -> set[str]:
            with lock:
                return {m["school"]["id"] for t, m in got if t.endswith(f"/{kind}")}
        # the outage once the city has every school's birth and its history's findings (the last of it)
        end = time.monotonic() + 10
        while not len(sent("birth")) == len(sent("findings")) == 12 and time.monotonic() < end:
            time.sleep(0.1)
        broker.stop()                                        # a broker outage: every school loses its connection
        time.sleep(2.0)
        broker.start()
        runner.join(60)
        stats = fleet.stats
    finally:
        c.loop_stop()
        c.disconnect()
        broker.close()
    with lock:
        msgs = list(got)
    assert [p for _, m in msgs for p in problems(m)] == []                 # all of it meets the contract
    kinds = collections.Counter(t.rsplit("/", 1)[1] for t, _ in msgs)
    assert kinds["findings"] >= 12 and kinds["metrics"] > 12 and kinds["birth"] > 12
    births = [m for t, m in msgs if t.endswith("/birth")]
    assert len({m["school_info"]["district"] for m in births}) >= 3          # districts differ
    assert all(any(d["device"] == "gateway" for d in m["devices"]) for m in births)   # the inventory
    findings = [f for t, m in msgs if t.endswith("/findings") for f in m["findings"]]
    statuses = collections.Counter((f["rule"], f["status"]) for f in findings)
    assert {s for _, s in statuses} >= {"pass", "fail", "unknown"}             # schools fail for different reasons
    why = {f["evidence"]["why"] for f in findings if f["status"] == "fail"}
    assert len(why) > 3
    # the outage: schools connected again (bdSeq 2 births after the broker came back), and the history's metrics
    # carry days of samples
    reborn = {m["school"]["id"] for m in births if m["bdSeq"] >= 2}
    cut = {s for s, fate in fates.items() if fate == "cut"}
    assert stats.reconnects >= 8 and len(reborn - cut) >= 8
    oldest = min(s["t"] for t, m in msgs if t.endswith("/metrics") for s in m["samples"])
    assert time.time() - oldest > 2 * 86400
    assert any(line.startswith("prepared 12/12") for line in lines) and any("connected" in x for x in lines)
