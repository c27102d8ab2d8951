"""The city's page: schools judged by their own agents (the agent's assess, outbox and MQTT link) arrive through
mosquitto, and the page and JSON API show each school's status per rule as its agent judged it; filters by district
and type; one school's findings with evidence and history; offline schools; gaps. Rendered by Debian's Chromium
(headless, in a network namespace of its own with the server, so it reaches nothing else) and checked on the
screenshot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from eduedge.agent.compliance import assess
from eduedge.agent.config import AgentConfig, MqttConfig
from eduedge.agent.envelope import Envelope
from eduedge.agent.findings import worst
from eduedge.agent.link import Link
from eduedge.agent.outbox import Outbox
from eduedge.agent.samplestore import SampleStore
from eduedge.cloud.config import CloudConfig
from eduedge.cloud.db import connect
from eduedge.cloud.receiver import Receiver
from eduedge.cloud.sweep import sweep
from eduedge.cloud.web import CityWeb, make_server
from eduedge.core.samples import Sample
from eduedge.simulator.broker import start_broker
from tests.test_diag_html import decode_png

pytestmark = pytest.mark.integration
NOW = time.time()
SCHOOLS = [  # id, type, district, measured egress (Mbit/s), uplink port speed (Mbit/s)
    ("east-no1-primary", "primary", "East", 150.0, 1000.0),
    ("east-no2-secondary", "secondary", "East", 42.0, 100.0),
    ("west-no3-primary", "primary", "West", None, None),
]


def agent_config(school: str, kind: str, district: str) -> AgentConfig:
    return AgentConfig.model_validate({
        "school": {"id": school, "name": school.replace("-", " ").title(), "city": "testcity", "type": kind,
                   "district": district, "enrolment": {"students": 300, "teachers": 30}},
        "snmp": {"credentials": {"c": {"version": "2c", "community": {"env": "UNUSED"}}}, "devices": [
            {"name": "core", "host": "127.0.0.1", "credentials": "c", "role": "core"}]},
        "standards": {"packs": ["hebei-2019", "yinchuan-2018"]}})


def judged(cfg: AgentConfig, egress: float | None, uplink: float | None, store: SampleStore) -> list[dict[str, Any]]:
    """What the school's agent judges from a few days of its own measurements, twice (so there is history)."""
    samples: list[Sample] = []
    if egress is not None:
        samples += [Sample(NOW - 3600 * i, "gw", "wan.down_mbps", egress * (1.5 if i > 30 else 1), "Mbit/s",
                           {"method": "tcp"}) for i in range(1, 60, 6)]
    if uplink is not None:
        samples += [Sample(NOW - 60, "gw", "host.if_speed_mbps", uplink, "Mbit/s", {"interface": "eth0",
                                                                                      "role": "wan"})]
    store.add(samples)
    first = assess(store, cfg, NOW - 86400 * 2).findings
    return [f.to_dict() for f in first] + [f.to_dict() for f in assess(store, cfg, NOW).findings]


def publish_as_agent(broker: Any, cfg: AgentConfig, findings: list[dict[str, Any]], work: Path) -> None:
    """The agent's own delivery path: findings into its outbox, the MQTT link drains it (birth first)."""
    env = Envelope(cfg.school.id, cfg.school.city, f"{cfg.school.id}-gw", "0.1.0", uuid.uuid4().hex)
    box = Outbox(work / f"{cfg.school.id}.db", env, max_bytes=10**7)
    s = cfg.school
    birth = {"school_info": {"name": s.name, "type": s.type, "district": s.district, "students": 300,
                             "teachers": 30}, "config_digest": "0" * 16, "collectors": [],
             "devices": [{"device": "core", "collector": "snmp"}], "commands": ["rebirth"],
             "outbox": {"rows": 0, "bytes": 0}}
    box.add_items("findings", findings)
    link = Link(MqttConfig(broker=broker.address, reconnect_min=0.1, reconnect_max=0.5), box, env, lambda: birth)
    link.start()
    deadline = time.monotonic() + 20
    while box.stats().rows and time.monotonic() < deadline:
        time.sleep(0.05)
    link.stop()
    assert box.stats().rows == 0
    box.close()


def chromium_pages(db_path: Path, cfg_path: Path, out: Path) -> dict[str, str]:
    """Serve the page and shoot it with Chromium, both inside a private network namespace; returns the DOMs."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed (scripts/install-system-deps installs it)")
    script = f"""
import subprocess, sys, threading
from eduedge.cloud.config import load_cloud_config
from eduedge.cloud.web import CityWeb, make_server
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
server = make_server(CityWeb(load_cloud_config({str(cfg_path)!r})), "127.0.0.1", 8080)
threading.Thread(target=server.serve_forever, daemon=True).start()
flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--window-size=1400,1400"]
def run(n, extra, url):
    r = subprocess.run([{chromium!r}, *flags, f"--user-data-dir={out}/profile-{{n}}", *extra, url],
                       capture_output=True, text=True, timeout=120)
    return r.stdout
run("shot", ["--screenshot={out}/city.png"], "http://127.0.0.1:8080/")
for name, url in (("city", "/"), ("east", "/?district=East"), ("primary", "/?type=primary"),
                  ("school", "/school/east-no2-secondary"), ("offline", "/offline"), ("gaps", "/gaps")):
    open(f"{out}/{{name}}.html", "w").write(run(name, ["--dump-dom"], "http://127.0.0.1:8080" + url))
"""
    unshare = ["unshare", "--net", "--"] if os.geteuid() == 0 else ["unshare", "-rn", "--"]
    r = subprocess.run([*unshare, sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                       cwd=Path(__file__).resolve().parents[1])
    assert (out / "city.png").is_file(), r.stderr[-3000:]
    return {p.stem: p.read_text() for p in out.glob("*.html")}


def test_the_city_page_shows_what_each_schools_agent_judged(tmp_path):
    broker = start_broker(tmp_path / "broker")
    cfg_path = tmp_path / "cloud.yaml"
    cfg_path.write_text(json.dumps({
        "mqtt": {"broker": broker.address}, "storage": {"path": str(tmp_path / "city.db")},
        "standards": {"packs": ["hebei-2019", "yinchuan-2018"]}, "city": {"offline_after": "1s"},
        "schools": [{"id": "west-no9-teaching-point", "city": "testcity", "type": "teaching-point",
                     "district": "West", "name": "West No. 9 Teaching Point"}]}))
    cfg = CloudConfig.model_validate(json.loads(cfg_path.read_text()))
    rx = Receiver(cfg, "rx-web")
    t = threading.Thread(target=rx.run)
    t.start()
    agent_says: dict[str, dict[str, str]] = {}
    try:
        assert rx.subscribed.wait(10)
        for school, kind, district, egress, uplink in SCHOOLS:
            acfg = agent_config(school, kind, district)
            store = SampleStore(":memory:")
            findings = judged(acfg, egress, uplink, store)
            latest = [f for f in findings if f["t"] == max(x["t"] for x in findings)]
            agent_says[school] = {r: worst([f["status"] for f in latest if f["rule"] == r])
                                  for r in {f["rule"] for f in latest}}
            publish_as_agent(broker, acfg, findings, tmp_path)
        db = connect(cfg.storage)
        deadline = time.monotonic() + 20
        while db.query("SELECT COUNT(*) FROM schools WHERE online = 0")[0][0] < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        rx.stop()
        t.join(10)
        broker.close()
    statuses = {s for v in agent_says.values() for s in v.values()}
    assert {"pass", "fail"} <= statuses                                   # the schools differ

    sweep(db)
    web = CityWeb(cfg, db)
    server = make_server(web, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        get = lambda path: json.loads(urllib.request.urlopen(base + path, timeout=10).read())  # noqa: E731
        table = {r["school"]: r for r in get("/api/schools")["schools"]}
        for school, rules in agent_says.items():
            assert {r: s for r, s in table[school]["rules"].items() if s != "none"} == rules, school
        assert table["west-no9-teaching-point"]["state"] == "never"
        assert sorted(get("/api/schools?district=East")["schools"][i]["school"] for i in range(2)) == [
            "east-no1-primary", "east-no2-secondary"]
        assert len(get("/api/schools?district=East")["schools"]) == 2
        assert {r["school"] for r in get("/api/schools?type=primary")["schools"]} == {"east-no1-primary",
                                                                                     "west-no3-primary"}
        detail = get("/api/schools/east-no2-secondary")
        egress = next(f for f in detail["findings"] if f["rule"] == "hebei-2019.egress")
        assert egress["status"] == agent_says["east-no2-secondary"]["hebei-2019.egress"]
        assert egress["evidence"]["why"] and len(detail["history"]["hebei-2019.egress"]) >= 1
        city = get("/api/city")
        access = next(f for f in city["region_findings"] if f["region"] == "testcity")
        assert (access["status"], access["value"]) == ("fail", 75.0)      # the teaching point never connected
        time.sleep(1.2)                                                   # past city.offline_after
        assert len(get("/api/offline")) == 4 and len(get("/api/gaps")) == 3
        assert urllib.request.urlopen(base + "/", timeout=10).status == 200
    finally:
        server.shutdown()
        db.close()

    doms = chromium_pages(tmp_path / "city.db", cfg_path, tmp_path)
    tables = {k: v.split("<h2>Schools</h2>")[-1] for k, v in doms.items()}
    for school in agent_says:
        assert school in doms["city"]
    assert "west-no3-primary" not in tables["east"] and "east-no2-secondary" in tables["east"]
    assert "east-no2-secondary" not in tables["primary"] and "west-no9-teaching-point" not in tables["primary"]
    assert "vocational" not in tables["primary"]                          # no column for rules of other types
    assert "hebei-2019.egress" in doms["school"] and "Findings" in doms["school"] and "History" in doms["school"]
    assert "West No. 9 Teaching Point" in doms["offline"] and "never heard from" in doms["offline"]
    assert "east-no1-primary" in doms["gaps"]
    width, height, bpp, pixels = decode_png((tmp_path / "city.png").read_bytes())
    assert (width, height) == (1400, 1400)
    colours = {pixels[i:i + 3] for i in range(0, len(pixels), bpp * 7)}
    assert len(colours) > 30                                               # text and badges, not a blank page
    red = sum(1 for i in range(0, len(pixels), bpp)
              if abs(pixels[i] - 0xCF) < 12 and abs(pixels[i + 1] - 0x22) < 12 and abs(pixels[i + 2] - 0x2E) < 12)
    assert red > 300                                                       # FAIL and OFFLINE badges are painted
