"""The city's page: schools judged by their own agents (the agent's assess, outbox and MQTT link) arrive through
mosquitto, and the page and JSON API show each school's status per rule as its agent judged it; filters by district
and type; one school's findings with evidence and history; offline schools; gaps. Served by uvicorn and rendered by
Debian's Chromium (headless, in a network namespace of its own with the server, so it reaches nothing else) and
checked on the DOM and the screenshot. (tests/test_cloud_screens.py does the same for a 200-school city.)"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from eduedge.agent.compliance import assess
from eduedge.agent.compliance.findings import worst
from eduedge.agent.config import AgentConfig, MqttConfig
from eduedge.agent.envelope import Envelope
from eduedge.agent.link import Link
from eduedge.agent.outbox import Outbox
from eduedge.agent.samplestore import SampleStore
from eduedge.cloud.config import CloudConfig
from eduedge.cloud.db import connect
from eduedge.cloud.receiver import Receiver
from eduedge.cloud.sweep import sweep
from eduedge.cloud.web import CityWeb, create_app
from eduedge.core.samples import Sample
from eduedge.simulator.broker import start_broker
from tests.chromium_helpers import look, widths
from tests.test_diag_html import decode_png

pytestmark = pytest.mark.integration
NOW = time.time()
TOKEN = "viewer-token-for-the-web-test"
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


def test_the_city_page_shows_what_each_schools_agent_judged(tmp_path):
    broker = start_broker(tmp_path / "broker")
    cfg_path = tmp_path / "cloud.yaml"
    cfg_path.write_text(json.dumps({
        "mqtt": {"broker": broker.address}, "storage": {"path": str(tmp_path / "city.db")},
        "standards": {"packs": ["hebei-2019", "yinchuan-2018"]}, "city": {"offline_after": "1s"},
        "serve": {"users": [{"name": "ana", "role": "viewer", "token": {"env": "EDUEDGE_TEST_VIEWER"}}]},
        "schools": [{"id": "west-no9-teaching-point", "city": "testcity", "type": "teaching-point",
                     "district": "West", "name": "West No. 9 Teaching Point"}]}))
    os.environ["EDUEDGE_TEST_VIEWER"] = TOKEN
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
    client = TestClient(create_app(CityWeb(cfg, db)))
    try:
        get = lambda path: client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).json()  # noqa: E731
        assert client.get("/api/schools").status_code == 401
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
        assert client.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    finally:
        db.close()

    os.environ["EDUEDGE_TEST_VIEWER"] = TOKEN
    doms = look(cfg_path, TOKEN, tmp_path, [("city", "/?lang=en", 1400, 1400)], [
        ("city", "/?lang=en", 1400), ("east", "/?district=East&lang=en", 1400),
        ("primary", "/?type=primary&lang=en", 1400), ("school", "/school/east-no2-secondary?lang=en", 1400),
        ("offline", "/offline?lang=en", 1400), ("gaps", "/gaps?lang=en", 1400),
        ("school-zh", "/school/east-no2-secondary?lang=zh", 1400), ("offline-zh", "/offline?lang=zh", 1400)])
    tables = {k: v.split('data-table="schools"')[-1] for k, v in doms.items()}
    for school in agent_says:
        assert school in doms["city"]
    assert "west-no3-primary" not in tables["east"] and "east-no2-secondary" in tables["east"]
    assert "east-no2-secondary" not in tables["primary"] and "west-no9-teaching-point" not in tables["primary"]
    assert "Internet egress bandwidth of 100 Mbit/s or more" in doms["school"] and "Findings" in doms["school"]
    assert "capacity tests show 42 Mbit/s" in doms["school"]              # the agent's own words, not JSON
    assert "West No. 9 Teaching Point" in doms["offline"] and "never heard" in doms["offline"]
    # the agents judged in English; the Chinese page reads their words in Chinese, and why a school is offline
    assert "带宽测试结果为 42 Mbit/s" in doms["school-zh"] and "capacity tests show" not in doms["school-zh"]
    assert "从未上线" in doms["offline-zh"]
    assert "连接中断" in doms["offline-zh"] or "采集端正常关闭" in doms["offline-zh"]     # a death's reason, in words
    for page in ("offline", "offline-zh"):
        assert "connection_lost" not in doms[page] and ">shutdown<" not in doms[page], page
    assert "east-no1-primary" in doms["gaps"]
    for name, dom in doms.items():
        scroll, client_width = widths(dom)
        assert scroll <= client_width, name                                # nothing overflows sideways
    width, height, bpp, pixels = decode_png((tmp_path / "city.png").read_bytes())
    assert (width, height) == (1400, 1400)
    colours = {pixels[i:i + 3] for i in range(0, len(pixels), bpp * 7)}
    assert len(colours) > 30                                               # text and badges, not a blank page
    red = sum(1 for i in range(0, len(pixels), bpp)
              if abs(pixels[i] - 0xCF) < 12 and abs(pixels[i + 1] - 0x22) < 12 and abs(pixels[i + 2] - 0x2E) < 12)
    assert red > 300                                                       # FAIL and OFFLINE badges are painted
