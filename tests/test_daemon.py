"""`eduedge run` as a process against a real mosquitto and an snmpsim switch: birth, data, death (LWT and
clean), commands, SIGHUP reload, `eduedge status` and `eduedge outbox`. Every message is validated."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from eduedge.agent.cli.service import install_service
from eduedge.simulator.broker import Broker, start_broker
from eduedge.simulator.snmpsim import start_snmpsim
from tests.mqtt_helpers import Receiver, write_config
from tests.test_main_job import _free_udp_port

EDUEDGE = str(Path(sys.executable).with_name("eduedge"))
CMD = "edu/v1/testcity/test-school/cmd/"

SWITCH = """\
1.3.6.1.2.1.1.1.0|4|Test switch
1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.99999.1
1.3.6.1.2.1.1.3.0|67|100
1.3.6.1.2.1.1.5.0|4|sw-1
1.3.6.1.2.1.2.2.1.2.1|4|eth0
1.3.6.1.2.1.2.2.1.8.1|2|1
1.3.6.1.2.1.2.2.1.8.2|2|2
1.3.6.1.2.1.2.2.1.2.2|4|eth1
"""


@pytest.fixture(scope="module")
def sim():
    server = start_snmpsim([("sw1", SWITCH)])
    yield server
    server.stop()


@pytest.fixture
def broker(tmp_path: Path):
    b = start_broker(tmp_path / "broker")
    yield b
    b.close()


@pytest.fixture
def setup(tmp_path: Path, broker: Broker, sim):
    rx = Receiver(broker.host, broker.port)
    cfg = write_config(
        tmp_path / "eduedge.yaml", broker.address, tmp_path / "data",
        snmp={"credentials": {"sim": {"version": "2c", "community": {"env": "EDUEDGE_TEST_COMMUNITY"}}},
              "devices": [{"name": "sw-1", "host": sim.address, "credentials": "sim", "interval": "2s"}]},
        host={"enabled": True, "interval": "1s"},
        commands={"rate_per_minute": 600, "burst": 20, "interval_min": "1s", "interval_max": "10m"})
    procs: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        env = {**os.environ, "EDUEDGE_TEST_COMMUNITY": "sw1"}
        with open(tmp_path / f"agent{len(procs)}.log", "w") as log:
            p = subprocess.Popen([EDUEDGE, "run", "--config", str(cfg)], env=env, stdout=subprocess.DEVNULL,
                                 stderr=log)
        procs.append(p)
        return p

    yield rx, cfg, start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    rx.close()
    assert rx.problems == [], rx.problems


def command(broker: Broker, name: str, payload: bytes | dict) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"cloud-cmd-{uuid.uuid4().hex[:6]}")
    c.connect(broker.host, broker.port)
    c.loop_start()
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    c.publish(CMD + name, data, qos=1).wait_for_publish(5)
    c.loop_stop()
    c.disconnect()


def req(rid: str, **args: object) -> dict:
    return {"schema": {"name": "cmd", "version": 1}, "request_id": rid, "args": args}


def answers(rx: Receiver, rid: str | None) -> list[dict]:
    return [m for m in rx.of("cmd-result") if m["request_id"] == rid]


def devices_with_samples(rx: Receiver) -> set[str]:
    return {s["device"] for m in rx.of("metrics") for s in m["samples"]}


@pytest.mark.integration
def test_run_delivers_birth_data_inventory_status_and_a_clean_death(setup, broker: Broker, tmp_path: Path) -> None:
    rx, cfg, start = setup
    p = start()
    rx.wait_for(lambda r: {"sw-1", "gateway"} <= devices_with_samples(r), 30, "metrics from the switch and host")
    rx.wait_for(lambda r: any(d["identity"] for m in r.of("inventory") for d in m["devices"]), 15, "inventory")
    birth = rx.of("birth")[0]
    assert birth["agent"]["id"] == "gw-test" and birth["school"] == {"id": "test-school", "city": "testcity"}
    assert {c["name"] for c in birth["collectors"]} == {"snmp:sw-1", "host"}
    assert any(e["kind"] == "agent.start" for m in rx.of("events") for e in m["events"])
    time.sleep(2.5)  # one state-file period
    out = subprocess.run([EDUEDGE, "status", "--config", str(cfg)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "running" in out.stdout and "connected to" in out.stdout and "snmp:sw-1" in out.stdout
    ob = subprocess.run([EDUEDGE, "outbox", "--config", str(cfg), "--json"], capture_output=True, text=True)
    data = json.loads(ob.stdout)
    assert data["delivered_messages"] > 0 and data["drops"] == [] and "by_priority" in data
    p.send_signal(signal.SIGTERM)
    assert p.wait(20) == 0
    rx.wait_for(lambda r: r.of("death"), 10, "the death message")
    deaths = rx.of("death")
    assert [(d["reason"], d["bdSeq"]) for d in deaths] == [("shutdown", birth["bdSeq"])]
    assert all(m["seq"] == 0 for m in rx.of("birth") + deaths)  # session messages take no data seq
    out = subprocess.run([EDUEDGE, "status", "--config", str(cfg)], capture_output=True, text=True)
    assert out.returncode == 3 and "NOT RUNNING" in out.stdout


@pytest.mark.integration
def test_kill_9_makes_the_broker_send_the_last_will_with_the_birth_bdseq(setup, broker: Broker) -> None:
    rx, _, start = setup
    p = start()
    rx.wait_for(lambda r: r.of("birth"), 20, "birth")
    first = rx.of("birth")[0]
    p.kill()
    p.wait()
    rx.wait_for(lambda r: r.of("death"), 10, "the last will")
    death = rx.of("death")[0]
    assert death["reason"] == "connection_lost" and death["bdSeq"] == first["bdSeq"]
    assert death["agent"]["boot_id"] == first["agent"]["boot_id"]
    start()
    rx.wait_for(lambda r: len(r.of("birth")) >= 2, 20, "a second birth")
    assert rx.of("birth")[1]["bdSeq"] > first["bdSeq"]
    assert rx.of("birth")[1]["seq"] == death["seq"] == 0


@pytest.mark.integration
def test_commands_are_validated_answered_idempotent_and_the_agent_keeps_running(setup, broker: Broker) -> None:
    rx, _, start = setup
    p = start()
    rx.wait_for(lambda r: r.of("birth") and devices_with_samples(r), 20, "birth and data")
    bd = rx.of("birth")[0]["bdSeq"]

    command(broker, "shell", req("c1", cmd="rm -rf /"))
    command(broker, "rebirth", b"{not json")
    command(broker, "run-check", req("c3", check="../../etc/passwd"))
    command(broker, "set-interval", req("c4", check="host", interval_s=0.01))
    command(broker, "run-check", req("c5", check="snmp:no-such-device"))
    command(broker, "run-check", {**req("c6", check="host"), "expires": 1.0})
    rx.wait_for(lambda r: all(answers(r, x) for x in ("c1", None, "c3", "c4", "c5", "c6")), 10, "every refusal")
    for rid in ("c1", None, "c3", "c4", "c5", "c6"):
        assert [a["status"] for a in answers(rx, rid)] == ["refused"], rid
    assert "not allowed" in answers(rx, "c1")[0]["reason"]
    assert "malformed" in answers(rx, None)[0]["reason"]
    assert "outside the allowed" in answers(rx, "c4")[0]["reason"]
    assert "expired" in answers(rx, "c6")[0]["reason"]

    command(broker, "rebirth", req("c7"))
    rx.wait_for(lambda r: answers(r, "c7") and len(r.of("birth")) >= 2, 10, "rebirth")
    again = rx.of("birth")[1]
    assert again["rebirth"] is True and again["bdSeq"] == bd

    command(broker, "run-check", req("c8", check="snmp:sw-1"))
    rx.wait_for(lambda r: answers(r, "c8"), 15, "run-check answer")
    a = answers(rx, "c8")[0]
    assert a["status"] == "ok" and a["result"]["samples"] > 0 and a["result"]["ran"] == ["snmp:sw-1"]

    command(broker, "set-interval", req("c9", check="snmp:sw-1", interval_s=30))
    command(broker, "set-interval", req("c9", check="snmp:sw-1", interval_s=30))
    rx.wait_for(lambda r: len(answers(r, "c9")) >= 2, 10, "both answers to c9")
    first, dup = answers(rx, "c9")[:2]
    assert first["status"] == "ok" and first["result"] == {"check": "snmp:sw-1", "interval_s": 30.0, "was_s": 2.0}
    assert dup.get("duplicate") is True and dup["result"] == first["result"]

    assert p.poll() is None
    n = len(rx.of("metrics"))
    rx.wait_for(lambda r: len(r.of("metrics")) > n, 10, "more metrics after the commands")


@pytest.mark.integration
def test_sighup_reloads_a_good_config_and_refuses_a_bad_one_without_dropping_the_link(setup, broker: Broker) -> None:
    rx, cfg, start = setup
    p = start()
    rx.wait_for(lambda r: r.of("birth"), 20, "birth")
    digest = rx.of("birth")[0]["config_digest"]
    text = cfg.read_text()
    cfg.write_text(text.replace("interval: 2s", "interval: 3s"))
    p.send_signal(signal.SIGHUP)
    rx.wait_for(lambda r: len(r.of("birth")) >= 2, 10, "a birth with the new digest")
    assert rx.of("birth")[1]["config_digest"] != digest and rx.of("birth")[1]["bdSeq"] == rx.of("birth")[0]["bdSeq"]
    assert {c["name"]: c["interval_s"] for c in rx.of("birth")[1]["collectors"]}["snmp:sw-1"] == 3.0

    cfg.write_text(text.replace("interval: 2s", "interval: soon"))
    p.send_signal(signal.SIGHUP)

    def kinds(r: Receiver) -> list[str]:
        return [e["kind"] for m in r.of("events") for e in m["events"]]

    rx.wait_for(lambda r: "agent.config_refused" in kinds(r), 10, "the refusal event")
    refused = next(e for m in rx.of("events") for e in m["events"] if e["kind"] == "agent.config_refused")
    assert "interval" in refused["message"]
    n = len(rx.of("metrics"))
    rx.wait_for(lambda r: len(r.of("metrics")) > n + 2, 10, "data still flowing on the old configuration")
    assert p.poll() is None and rx.of("death") == [] and len(rx.of("birth")) == 2


def test_service_install_writes_a_unit_with_this_installation_in_it(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "eduedge.yaml", "127.0.0.1:1883", tmp_path / "data")
    done = install_service(cfg, user="eduedge", root=tmp_path / "root", executable="/opt/x/bin/eduedge")
    unit = (tmp_path / "root/etc/systemd/system/eduedge.service").read_text()
    assert f"ExecStart=/opt/x/bin/eduedge run --config {cfg.resolve()}" in unit
    assert "User=eduedge" in unit and "Restart=on-failure" in unit and "ExecReload=/bin/kill -HUP $MAINPID" in unit
    assert "AmbientCapabilities=CAP_NET_RAW CAP_NET_BIND_SERVICE" in unit
    assert f"ReadWritePaths={tmp_path / 'data'}" in unit
    assert done == [f"wrote {tmp_path / 'root/etc/systemd/system/eduedge.service'}"]


@pytest.mark.integration
def test_a_dead_device_never_holds_up_the_other_collectors(tmp_path: Path, broker: Broker) -> None:
    import socket

    black_hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # takes requests, never answers
    black_hole.bind(("127.0.0.1", 0))
    rx = Receiver(broker.host, broker.port)
    cfg = write_config(
        tmp_path / "eduedge.yaml", broker.address, tmp_path / "data",
        snmp={"credentials": {"c": {"version": "2c", "community": {"env": "EDUEDGE_TEST_COMMUNITY"}}},
              # every request to this switch waits out its 3 s timeout, twice
              "devices": [{"name": "sw-dead", "host": f"127.0.0.1:{black_hole.getsockname()[1]}", "credentials": "c",
                           "interval": "2s", "timeout": "3s", "retries": 1, "deadline": "20s"}]},
        host={"enabled": True, "interval": "1s"})
    env = {**os.environ, "EDUEDGE_TEST_COMMUNITY": "public"}
    p = subprocess.Popen([EDUEDGE, "run", "--config", str(cfg)], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        rx.wait_for(lambda r: any(e["kind"] == "device.unreachable" for m in r.of("events") for e in m["events"]),
                    30, "sw-dead reported unreachable")
        order = [(m.kind, m.msg) for m in rx.messages if m.kind in ("metrics", "events")]
        first_dead = next(i for i, (k, m) in enumerate(order)
                          if k == "events" and any(e["kind"] == "device.unreachable" for e in m["events"]))
        host_batches = [m for k, m in order[:first_dead] if k == "metrics"
                        and any(s["device"] == "gateway" for s in m["samples"])]
        # The host collector ran (every second) again and again while the dead switch's first poll waited.
        assert len(host_batches) >= 3
        event = next(e for m in rx.of("events") for e in m["events"] if e["kind"] == "device.unreachable")
        assert event["device"] == "sw-dead" and "sw-dead" in event["message"]
    finally:
        p.terminate()
        p.wait(20)
        rx.close()
        black_hole.close()
    assert rx.problems == []


def _link_down_trap(port: int, community: str, tmp: Path) -> None:
    """A v2c linkDown for ifIndex 2 from 127.0.0.1, the switch's own address (net-snmp's snmptrap)."""
    env = dict(os.environ, MIBS="", SNMP_PERSISTENT_DIR=str(tmp / "netsnmp"))
    subprocess.run(["snmptrap", "-v2c", "-c", community, f"127.0.0.1:{port}", "", "1.3.6.1.6.3.1.1.5.3",
                    "1.3.6.1.2.1.2.2.1.1.2", "i", "2"], env=env, check=True, capture_output=True, timeout=30)


def _polls(rx: Receiver, device: str) -> list[float]:
    """When the device was polled: the distinct times of its samples."""
    return sorted({s["t"] for m in rx.of("metrics") for s in m["samples"] if s["device"] == device})


@pytest.mark.integration
@pytest.mark.skipif(not shutil.which("snmptrap"), reason="net-snmp tools not installed")
def test_a_link_trap_polls_the_device_at_once_and_a_trap_storm_only_once(tmp_path: Path, broker: Broker, sim) -> None:
    trap_port = _free_udp_port()
    rx = Receiver(broker.host, broker.port)
    cfg = write_config(
        tmp_path / "eduedge.yaml", broker.address, tmp_path / "data",
        snmp={"credentials": {"sim": {"version": "2c", "community": {"env": "EDUEDGE_TEST_COMMUNITY"}}},
              # polled once at the start, then not for an hour - unless a trap says something changed
              "devices": [{"name": "sw-1", "host": sim.address, "credentials": "sim", "interval": "1h"}],
              "traps": {"enabled": True, "listen": f"127.0.0.1:{trap_port}"}})
    env = {**os.environ, "EDUEDGE_TEST_COMMUNITY": "sw1"}
    p = subprocess.Popen([EDUEDGE, "run", "--config", str(cfg)], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        rx.wait_for(lambda r: len(_polls(r, "sw-1")) == 1, 30, "sw-1's first poll")
        time.sleep(1)          # the receiver is listening by the first poll's delivery; let it settle
        _link_down_trap(trap_port, "sw1", tmp_path)
        rx.wait_for(lambda r: any(e["kind"] == "link.down" for m in r.of("events") for e in m["events"]),
                    15, "the linkDown event")
        rx.wait_for(lambda r: len(_polls(r, "sw-1")) == 2, 15, "sw-1 polled again after the trap")
        for _ in range(3):     # a flapping port: more traps within REPOLL_MIN_GAP_S poll no more
            _link_down_trap(trap_port, "sw1", tmp_path)
        rx.wait_for(lambda r: sum(e["kind"] == "link.down" for m in r.of("events") for e in m["events"]) == 4,
                    15, "four linkDown events")
        time.sleep(3)
        assert len(_polls(rx, "sw-1")) == 2, _polls(rx, "sw-1")
    finally:
        p.terminate()
        p.wait(20)
        rx.close()
    assert rx.problems == []
