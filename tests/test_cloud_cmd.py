"""`eduedge cloud cmd SCHOOL ...` against a real `eduedge run` agent through mosquitto, with the receiver running:
the answer is shown and stored, a rebirth brings a birth marked `rebirth`, the agent's refusals come back as
they are, and what the agent would refuse anyway is refused before it leaves."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from eduedge.cloud.config import load_cloud_config
from eduedge.cloud.db import connect
from eduedge.cloud.receiver import Receiver
from eduedge.simulator.broker import start_broker
from tests.mqtt_helpers import stop_agent, write_config

pytestmark = pytest.mark.integration
EDUEDGE = str(Path(sys.executable).with_name("eduedge"))


def test_commands_reach_a_real_agent_and_the_answer_is_shown(tmp_path):
    broker = start_broker(tmp_path / "broker")
    cloud_cfg = tmp_path / "cloud.yaml"
    cloud_cfg.write_text(yaml.safe_dump({"mqtt": {"broker": broker.address},
                                         "storage": {"path": str(tmp_path / "city.db")}}))
    cfg = load_cloud_config(cloud_cfg)
    rx = Receiver(cfg, "rx-cmd")
    t = threading.Thread(target=rx.run)
    t.start()
    agent_cfg = write_config(tmp_path / "agent.yaml", broker.address, tmp_path / "data",
                             host={"enabled": True, "interval": "2s"},
                             school={"id": "cmd-school", "name": "Cmd School", "city": "testcity", "type": "primary"})
    agent = subprocess.Popen([EDUEDGE, "run", "--config", str(agent_cfg)], stdout=subprocess.DEVNULL,
                             stderr=(tmp_path / "agent.log").open("w"))
    cmd = [EDUEDGE, "cloud", "cmd", "--config", str(cloud_cfg), "cmd-school"]
    try:
        db = connect(cfg.storage)
        deadline = time.monotonic() + 30
        while not db.query("SELECT 1 FROM schools WHERE school = 'cmd-school' AND online = 1"):
            assert time.monotonic() < deadline, "the agent's birth did not arrive"
            time.sleep(0.2)
        ok = subprocess.run([*cmd, "run-check", "host"], capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0, ok.stderr + ok.stdout
        assert ok.stdout.startswith("cmd-school: run-check host -> OK after ")
        assert json.loads(ok.stdout.split("\n", 1)[1])["ran"] == ["host"]
        reborn = subprocess.run([*cmd, "rebirth", "--json"], capture_output=True, text=True, timeout=60)
        assert reborn.returncode == 0 and json.loads(reborn.stdout)["status"] == "ok", reborn.stdout
        refused = subprocess.run([*cmd, "run-check", "snmp:nosuch"], capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1
        assert "-> REFUSED: unknown check 'snmp:nosuch' (known: host)" in refused.stdout, refused.stdout
        chinese = subprocess.run([*cmd, "run-check", "snmp:nosuch"], capture_output=True, text=True, timeout=60,
                                 env={**os.environ, "LC_ALL": "", "LANG": "zh_CN.UTF-8"})
        assert chinese.returncode == 1, chinese.stderr
        assert re.match(r"cmd-school: run-check snmp:nosuch -> 被拒绝：unknown check .*，用时 [\d.]+ 秒",
                        chinese.stdout), chinese.stdout
        local = subprocess.run([*cmd, "run-check", "rm -rf /"], capture_output=True, text=True, timeout=60)
        assert local.returncode == 2 and "args.check" in local.stderr, local.stderr   # never leaves the cloud
        unknown = subprocess.run([EDUEDGE, "cloud", "cmd", "--config", str(cloud_cfg), "no-such-school", "rebirth"],
                                 capture_output=True, text=True, timeout=60)
        assert unknown.returncode == 2 and "not known to this cloud" in unknown.stderr
        deadline = time.monotonic() + 10
        while db.query("SELECT births FROM schools WHERE school = 'cmd-school'")[0][0] < 2:
            assert time.monotonic() < deadline, "no birth after the rebirth command"
            time.sleep(0.2)
        assert json.loads(db.query("SELECT birth FROM schools WHERE school = 'cmd-school'")[0][0])["rebirth"] is True
        rows = db.dicts("SELECT command, status, reason FROM commands WHERE school = 'cmd-school' ORDER BY sent")
        assert [(r["command"], r["status"]) for r in rows] == [("run-check", "ok"), ("rebirth", "ok"),
                                                               ("run-check", "refused"), ("run-check", "refused")]
    finally:
        stop_agent(agent, 20)
        rx.stop()
        t.join(10)
        broker.close()
