"""The city console's access, API and words, against a real store (SQLite) filled through the real ingestor:

- without a token every page and API answers 401; a bad token too; /login trades a token for a session cookie;
- a viewer reads but cannot send a command (403, and the attempt is audited); an operator's command is sent
  and audited with its answer (the MQTT send is replaced here: tests/test_cloud_cmd.py drives the real one);
- the OpenAPI document is served and every GET endpoint it lists answers;
- every table exports as CSV and XLSX with the page's rows;
- the two catalogues have the same keys, and every key the templates and code name is in both;
- one definition of online: the city table, /api/offline and `cloud judge` agree; judge exits 1 on a fail.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from eduedge.agent import contract
from eduedge.cloud.checker import Checker
from eduedge.cloud.commands import Answer
from eduedge.cloud.config import load_cloud_config
from eduedge.cloud.db import connect
from eduedge.cloud.i18n import MESSAGES
from eduedge.cloud.ingest import Ingestor
from eduedge.cloud.sweep import sweep
from eduedge.cloud.web import CityWeb, create_app
from eduedge.simulator.fleet import Fleet, birth_body
from tests.city_helpers import OPERATOR, VIEWER, city_config

CLOUD = Path(__file__).resolve().parents[1] / "eduedge" / "cloud"


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    """Six fleet schools' births, history, findings and live metrics, through the checker and the ingestor."""
    work = tmp_path_factory.mktemp("city")
    cfg_path = city_config(work, "127.0.0.1:1")
    cfg = load_cloud_config(cfg_path)
    db = connect(cfg.storage)
    fleet = Fleet("127.0.0.1:1", 6, 60.0, "yinchuan", seed=2, history_days=10, faults=True)
    checker, ing = Checker(cfg.ingest.max_message_bytes), Ingestor(db, cfg.ingest.dedup_window, "rx-test")
    now = time.time()
    for s in fleet.schools:          # what each school's connection would carry, in order
        msgs = [("birth", s.env.encode("birth", s.next_seq(), {**birth_body(s, 60.0), "bdSeq": 1}))]
        msgs += [(k, s.env.encode_batch(k, s.next_seq(), b, now)) for k, b in s.backlog]
        batch = []
        for kind, payload in msgs:
            verdict = checker.check(contract.topic("yinchuan", s.id, kind), payload)
            assert not isinstance(verdict, tuple), verdict
            batch.append(verdict)
        ing.apply(batch, now)
    sweep(db)
    sent: list[tuple] = []

    def sender(cfg, db, school, name, args, timeout):
        sent.append((school, name, args))
        return Answer("cloud-req-1", school, name, "ok", None, {"done": True}, waited_s=0.1)

    web = CityWeb(cfg, db, sender=sender)
    client = TestClient(create_app(web))
    yield {"client": client, "web": web, "db": db, "cfg": cfg, "cfg_path": cfg_path, "sent": sent,
           "schools": [s.id for s in fleet.schools]}
    db.close()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


PAGES = ["/", "/offline", "/gaps", "/ingest", "/rule/hebei-2019.egress", "/export/schools.csv"]
APIS = ["/api/city", "/api/schools", "/api/offline", "/api/gaps", "/api/stats", "/api/audit", "/api/me",
        "/api/openapi.json"]


def test_without_a_token_everything_answers_401(city):
    c = city["client"]
    school = city["schools"][0]
    for path in [*PAGES, *APIS, f"/school/{school}", f"/api/schools/{school}"]:
        assert c.get(path).status_code == 401, path
        assert c.get(path, headers=auth("not-a-token-at-all")).status_code == 401, path
    r = c.get("/")
    assert "登录" in r.text and "token" in r.text                         # the page offers the login form
    r = c.post(f"/api/schools/{school}/commands", json={"command": "rebirth"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert c.get("/static/echarts.min.js").status_code == 200             # static files are the app's own


def test_login_trades_a_token_for_a_session_cookie(city):
    c = TestClient(create_app(city["web"]))
    bad = c.post("/login", content="token=wrong&next=/offline", headers={"content-type":
                                                                       "application/x-www-form-urlencoded"})
    assert bad.status_code == 401 and "令牌无效" in bad.text
    ok = c.post("/login", content=f"token={VIEWER}&next=/offline",
                headers={"content-type": "application/x-www-form-urlencoded"}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/offline"
    cookie = ok.cookies.get("eduedge_session")
    assert cookie and VIEWER not in cookie and "httponly" in ok.headers["set-cookie"].lower()
    assert c.get("/offline").status_code == 200 and c.get("/api/me").json() == {"name": "ana", "role": "viewer"}
    assert c.get("/login?next=//evil.example", follow_redirects=False).status_code == 401
    c.get("/logout")
    assert c.get("/offline").status_code == 401


def test_a_viewer_cannot_send_a_command_an_operator_can_and_both_are_audited(city):
    c, school = city["client"], city["schools"][1]
    r = c.post(f"/api/schools/{school}/commands", json={"command": "rebirth"}, headers=auth(VIEWER))
    assert r.status_code == 403 and city["sent"] == []
    r = c.post(f"/school/{school}/command", content="command=rebirth", headers={
        **auth(VIEWER), "content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 403 and city["sent"] == []
    r = c.post(f"/api/schools/{school}/commands", json={"command": "run-check", "args": {"check": "host"}},
               headers=auth(OPERATOR))
    assert r.status_code == 200 and r.json()["status"] == "ok" and r.json()["by"] == "oleg"
    assert city["sent"] == [(school, "run-check", {"check": "host"})]
    log = c.get("/api/audit", params={"school": school}, headers=auth(VIEWER)).json()
    assert [(x["user"], x["role"], x["command"], x["status"]) for x in log] == [
        ("oleg", "operator", "run-check", "ok"), ("ana", "viewer", "rebirth", "forbidden"),
        ("ana", "viewer", "rebirth", "forbidden")]
    assert log[0]["request_id"] == "cloud-req-1" and log[0]["answered"] >= log[0]["t"]
    page = c.get(f"/school/{school}", headers=auth(OPERATOR)).text
    assert "oleg" in page and "下发命令" in page                               # the audit on the school's page
    assert "下发命令</button>" not in c.get(f"/school/{school}", headers=auth(VIEWER)).text
    bad = c.post(f"/api/schools/{school}/commands", json={"command": "shell", "args": {}}, headers=auth(OPERATOR))
    assert bad.status_code == 422


def test_the_openapi_document_is_served_and_its_endpoints_answer(city):
    c = city["client"]
    doc = c.get("/api/openapi.json", headers=auth(VIEWER)).json()
    assert doc["openapi"].startswith("3.") and doc["info"]["title"] == "eduedge city cloud"
    paths = doc["paths"]
    assert "post" in paths["/api/schools/{school_id}/commands"]
    school, rule = city["schools"][0], "hebei-2019.egress"
    answered = set()
    for path, ops in paths.items():
        if "get" not in ops:
            continue
        url = path.replace("{school_id}", school).replace("{rule_id}", rule)
        r = c.get(url, headers=auth(VIEWER))
        assert r.status_code == 200, (url, r.text[:300])
        answered.add(path)
        assert r.headers["content-type"].startswith("application/json")
    assert {"/api/city", "/api/schools", "/api/schools/{school_id}", "/api/schools/{school_id}/trends",
            "/api/rules/{rule_id}", "/api/offline", "/api/gaps", "/api/stats", "/api/audit"} <= answered
    detail = c.get(f"/api/schools/{school}", headers=auth(VIEWER)).json()
    assert detail["findings"] and detail["devices"]
    trends = c.get(f"/api/schools/{school}/trends", headers=auth(VIEWER)).json()
    assert len(trends["days"]) == 30 and any(v is not None for v in trends["capacity"]["mean"])
    assert trends["wifi"] and any(v is not None for v in trends["availability"])
    rows = c.get(f"/api/rules/{rule}", headers=auth(VIEWER)).json()["rows"]
    ranks = [["fail", "port-limited", "unknown", "none", "pass"].index(r["status"]) for r in rows]
    assert rows and ranks == sorted(ranks)                                   # worst first
    assert c.get("/api/schools/nope", headers=auth(VIEWER)).status_code == 404


def test_every_table_exports_as_csv_and_xlsx(city):
    c, school = city["client"], city["schools"][0]
    for name, query in [("schools", ""), ("region", ""), ("rule", "rule=hebei-2019.egress"), ("offline", ""),
                        ("gaps", ""), ("devices", f"school={school}"), ("events", f"school={school}"),
                        ("counters", "")]:
        csv = c.get(f"/export/{name}.csv?{query}", headers=auth(VIEWER))
        assert csv.status_code == 200, name
        lines = csv.content.decode("utf-8-sig").splitlines()
        xlsx = c.get(f"/export/{name}.xlsx?{query}", headers=auth(VIEWER))
        sheet = load_workbook(io.BytesIO(xlsx.content)).active
        assert sheet.max_row == len(lines), name                  # the same rows, header included
        assert [x.value for x in sheet[1]] == lines[0].split(","), name
    head = c.get("/export/schools.csv", headers=auth(VIEWER)).content.decode("utf-8-sig").splitlines()[0]
    assert head.startswith("学校,编号,区县")
    assert c.get("/export/schools.csv?lang=en", headers=auth(VIEWER)).text.lstrip("\ufeff").startswith("School,Id")
    assert c.get("/export/nothing.csv", headers=auth(VIEWER)).status_code == 404


def test_pages_are_chinese_by_default_english_on_request_no_json(city):
    c, school = city["client"], city["schools"][0]
    zh = c.get(f"/school/{school}", headers=auth(VIEWER)).text
    assert "达标评估" in zh and "时间均为 Asia/Shanghai (UTC+08:00)" in zh
    assert '{"' not in zh.split("<script")[0] and "None" not in zh          # evidence in words, not JSON
    en = c.get(f"/school/{school}?lang=en", headers=auth(VIEWER))
    assert "Findings" in en.text and "lang=en" in en.headers.get("set-cookie", "")
    assert "Findings" in c.get(f"/school/{school}", headers={**auth(VIEWER), "Accept-Language": "en-US,en"}).text
    city_page = c.get("/", headers=auth(VIEWER)).text
    for chart in ("chart-by_rule", "chart-by_district", "chart-access"):
        assert f'id="{chart}"' in city_page
    assert "cdn" not in city_page.lower() and "http://" not in city_page and "https://" not in city_page


def test_the_catalogues_are_complete():
    zh, en = MESSAGES["zh"], MESSAGES["en"]
    assert set(zh) == set(en)
    assert all(v.strip() for v in [*zh.values(), *en.values()])
    used: set[str] = set()
    for p in [*CLOUD.glob("templates/*.html"), *CLOUD.glob("*.py")]:
        body = p.read_text()
        used |= set(re.findall(r"""_\(\s*['"]([a-z_-]+\.[a-z_.>=<-]+)['"]""", body))
        used |= set(re.findall(r"""text\(\s*\w+(?:\([^)]*\))?,\s*['"]([a-z_-]+\.[a-z_.-]+)['"]""", body))
    assert len(used) > 80
    assert used - set(zh) == set()
    from eduedge.agent.compliance.packs import SCHOOL_TYPES, load_packs
    from eduedge.agent.config import STANDARDS_DIR
    from eduedge.cloud.city import STATUS_ORDER
    dynamic = {f"status.{s}" for s in STATUS_ORDER} | {f"state.{s}" for s in ("online", "offline", "silent", "never")}
    dynamic |= {f"type.{t}" for t in SCHOOL_TYPES} | {f"op.{o}" for o in (">=", ">", "<=", "<")}
    packs = sorted(p.stem for p in STANDARDS_DIR.glob("*.yaml"))
    units = {r.unit for r in load_packs(packs).rules}          # every shipped pack's units have words
    dynamic |= {f"unit.{u}" for u in units if u and u != "Mbit/s"}
    assert dynamic - set(zh) == set()
    for lang in (zh, en):                                      # the placeholders agree between languages
        for k, v in lang.items():
            assert set(re.findall(r"{(\w+)}", v)) == set(re.findall(r"{(\w+)}", zh[k])), k


def test_one_definition_of_online_and_judge_exits_1_on_a_fail(city):
    c, db = city["client"], city["db"]
    first = city["schools"][0]
    db.execute("UPDATE schools SET online = 1, last_seen = ?", [time.time()])
    for table in ("schools", "messages"):     # the first school: nothing for an hour (its session looks up)
        col = "last_seen" if table == "schools" else "received"
        db.execute(f"UPDATE {table} SET {col} = ? WHERE school = ?", [time.time() - 3600, first])
    table = c.get("/api/schools", headers=auth(VIEWER)).json()["schools"]
    not_online = {r["school"] for r in table if r["state"] != "online"}
    listed = {r["school"] for r in c.get("/api/offline", headers=auth(VIEWER)).json()}
    assert not_online == listed == {first}
    page = c.get("/offline?lang=zh", headers=auth(VIEWER)).text
    assert page.count("<tr>") - 1 == 1 and "无数据上报" in page
    city_rep = c.get("/api/city", headers=auth(VIEWER)).json()
    assert city_rep["states"] == {"online": len(table) - 1, "silent": 1}
    result = judge(city["cfg_path"], "--json")
    rep = json.loads(result.stdout)
    assert {r["school"] for r in rep["offline"]} == {first}
    assert [f["status"] for f in rep["region_findings"] if f["region"] == "yinchuan"] == ["pass"]
    assert result.returncode == 0
    db.execute("UPDATE schools SET last_seen = ?", [time.time() - 30 * 86400])   # nobody heard for 30 days
    db.execute("UPDATE messages SET received = ?", [time.time() - 30 * 86400])
    result = judge(city["cfg_path"])
    assert result.returncode == 1 and "FAIL" in result.stdout, result.stderr
    assert "schools reached the city cloud in the last 7 days" in result.stdout, result.stdout
    assert judge(city["cfg_path"], "--schools").returncode == 1
    # The integrator's terminal in Chinese: by the locale, or by a `city.language` written in the configuration;
    # `--lang en` over both.
    chinese = judge(city["cfg_path"], env={"LANG": "zh_CN.UTF-8"})
    assert chinese.returncode == 1, chinese.stderr
    n = len(table)
    for words in (f"共 {n} 所学校：无数据上报 {n}", "只能由市级平台评判的标准：", "不达标", "各项标准的学校结论：",
                  f"不在线（3600 秒内无数据，或会话已结束）：{n} 所"):
        assert words in chinese.stdout, chinese.stdout
    assert re.search(r"不达标 +hebei-2019.access-rate +yinchuan +0 +0 / \d+ 所学校在最近 7 天内连接过城市平台",
                     chinese.stdout), chinese.stdout
    assert not re.search(r"FAIL|schools|rules|online", chinese.stdout), chinese.stdout
    configured = city["cfg_path"].with_name("cloud-zh.yaml")
    doc = json.loads(city["cfg_path"].read_text())
    configured.write_text(json.dumps({**doc, "city": {**doc["city"], "language": "zh"}}))
    assert "不达标" in judge(configured).stdout
    english = judge(configured, env={"LANG": "zh_CN.UTF-8"}, lang="en")
    assert "FAIL" in english.stdout and "不达标" not in english.stdout, english.stdout


def judge(cfg: Path, *args: str, env: dict[str, str] | None = None,
          lang: str | None = None) -> subprocess.CompletedProcess[str]:
    """`eduedge [--lang L] cloud judge -c CFG ARGS`, in the C locale unless `env` says otherwise."""
    env = {**os.environ, "LC_ALL": "", "LC_MESSAGES": "", "LANG": "C.UTF-8", "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-c", "from eduedge.cli import main; main()",
                           *(["--lang", lang] if lang else []), "cloud", "judge", "-c", str(cfg), *args],
                          capture_output=True, text=True, timeout=120, env=env)


def test_behind_a_reverse_proxy_under_a_path_prefix(city):
    c = TestClient(create_app(city["web"]), root_path="/eduedge")      # as uvicorn --root-path sets it
    r = c.get(f"/eduedge/login?token={VIEWER}&next=/offline", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/eduedge/offline"
    assert "Path=/eduedge" in r.headers["set-cookie"]
    page = c.get("/eduedge/offline").text
    links = re.findall(r'(?:href|src)="([^"]+)"', page)
    assert links and all(x.startswith("/eduedge/") for x in links if x.startswith("/")), links
    assert '"/static/' not in page and 'href="/offline"' not in page
