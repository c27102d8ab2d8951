"""The agent reports on itself (agent/health.py): a running `eduedge run` against snmpsim switches (one that
answers, one address where nothing does) and a real mosquitto serves `/metrics` on loopback when enabled, with
each device's poll duration and failed polls; the birth the city receives carries the same figures and meets
the contract; `eduedge status` shows them; the endpoint is off by default and its section is validated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from eduedge.agent import contract
from eduedge.agent.config import ConfigError, load_config
from eduedge.core.netaddr import free_tcp_port
from eduedge.simulator.broker import start_broker
from eduedge.simulator.snmpsim import start_snmpsim
from tests.mqtt_helpers import Receiver, stop_agent, write_config
from tests.test_daemon import SWITCH
from tests.test_main_job import _free_udp_port

EDUEDGE = str(Path(sys.executable).with_name("eduedge"))


def scrape(url: str) -> dict[str, list]:
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


@pytest.mark.integration
def test_a_running_agent_serves_each_devices_poll_duration_and_errors(tmp_path: Path) -> None:
    sim = start_snmpsim([("sw1", SWITCH), ("sw2", SWITCH)])
    broker = start_broker(tmp_path / "broker")
    rx = Receiver(broker.host, broker.port)
    port = free_tcp_port()
    cfg = write_config(
        tmp_path / "eduedge.yaml", broker.address, tmp_path / "data",
        snmp={"credentials": {"sim": {"version": "2c", "community": {"env": "EDUEDGE_TEST_COMMUNITY"}}},
              "devices": [{"name": "sw-1", "host": sim.address, "credentials": "sim", "interval": "2s"},
                          {"name": "sw-dead", "host": f"127.0.0.1:{_free_udp_port()}", "credentials": "sim",
                           "interval": "2s", "timeout": "0.5s", "retries": 0}]},
        prometheus={"enabled": True, "listen": f"127.0.0.1:{port}"})
    env = {**os.environ, "EDUEDGE_TEST_COMMUNITY": "sw1"}
    with open(tmp_path / "agent.log", "w") as log:
        agent = subprocess.Popen([EDUEDGE, "run", "--config", str(cfg)], env=env, stdout=subprocess.DEVNULL,
                                 stderr=log)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 60
        fams: dict[str, list] = {}
        while time.monotonic() < deadline:
            try:
                fams = scrape(url)
                runs = {s.labels["device"]: s.value for s in fams.get("eduedge_job_runs", [])
                        if s.name == "eduedge_job_runs_total"}
                if runs.get("sw-1", 0) >= 2 and runs.get("sw-dead", 0) >= 2:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            raise AssertionError(f"no two polls of each device in the scrapes: {fams}\n"
                                 + (tmp_path / "agent.log").read_text()[-2000:])
        durations = {s.labels["device"]: s.value for s in fams["eduedge_job_last_duration_seconds"]}
        assert 0 < durations["sw-1"] < 5 and durations["sw-dead"] >= 0     # nothing listens: refused at once
        errors = {s.labels["device"]: s.value for s in fams["eduedge_job_errors"]
                  if s.name == "eduedge_job_errors_total"}
        assert errors["sw-1"] == 0 and errors["sw-dead"] >= 2
        assert {s.labels["collector"] for s in fams["eduedge_job_last_duration_seconds"]} == {"snmp"}
        assert fams["eduedge_outbox_messages"][0].value >= 0
        assert fams["eduedge_link_connected"][0].value == 1.0
        # the same figures reach the city in the birth, which meets the contract
        rx.wait_for(lambda r: r.of("birth"), 15, "a birth")
        birth = rx.of("birth")[0]
        assert contract.problems(birth) == []
        assert {j["device"] for j in birth["health"]["jobs"]} == {"sw-1", "sw-dead"}
        time.sleep(2.5)                                 # a state-file period
        out = subprocess.run([EDUEDGE, "--lang", "en", "status", "--config", str(cfg)], capture_output=True,
                             text=True, env=env)
        assert "failed runs" in out.stdout and "judged:" in out.stdout, out.stdout + out.stderr
        state = json.loads(subprocess.run([EDUEDGE, "status", "--config", str(cfg), "--json"], capture_output=True,
                                          text=True, env=env).stdout)
        assert state["collectors"]["snmp:sw-dead"]["errors"] >= 2
    finally:
        stop_agent(agent)
        rx.close()
        broker.close()
        sim.stop()


def test_the_endpoint_is_off_by_default_on_the_loopback_by_default_and_its_section_is_checked(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path / "a.yaml", None, tmp_path / "d"))
    assert cfg.prometheus.enabled is False and cfg.prometheus.listen == "127.0.0.1:9464"
    for bad in ({"enabled": "sometimes"}, {"listen": "9464"}, {"listen": "127.0.0.1:99999"}, {"port": 9464}):
        with pytest.raises(ConfigError) as e:
            load_config(write_config(tmp_path / "b.yaml", None, tmp_path / "d", prometheus=bad))
        assert any("prometheus" in p for p in e.value.problems), e.value.problems
