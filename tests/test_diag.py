"""`eduedge diag` against real SNMP agents: snmpsim serving a small campus whose LLDP tables point at
each other, with one backbone link negotiated at 100 Mbit/s and one switch that does not answer."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from babel.messages.pofile import read_po
from rich.cells import cell_len

from eduedge.simulator.snmpsim import free_udp_port, start_snmpsim

pytestmark = pytest.mark.integration
EDUEDGE = str(Path(sys.executable).with_name("eduedge"))


def switch(sysname: str, ports: list[tuple[int, str, int, int]],
           neighbors: list[tuple[int, str, str, str]]) -> str:
    """A switch recording: ports are (ifIndex, ifName, Mbit/s, ifOperStatus); neighbours are (local ifIndex,
    local ifName, remote sysName, remote port) as LLDP-MIB reports them (lldpLocPortNum = ifIndex)."""
    rows = ["1.3.6.1.2.1.1.1.0|4|eduedge test switch", "1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.99999.1.1",
            "1.3.6.1.2.1.1.3.0|67|123456", f"1.3.6.1.2.1.1.5.0|4|{sysname}"]
    for idx, name, mbps, oper in ports:
        rows += [f"1.3.6.1.2.1.2.2.1.2.{idx}|4|{name}", f"1.3.6.1.2.1.2.2.1.3.{idx}|2|6",
                 f"1.3.6.1.2.1.2.2.1.5.{idx}|66|{min(mbps * 1_000_000, 4294967295)}",
                 f"1.3.6.1.2.1.2.2.1.7.{idx}|2|1", f"1.3.6.1.2.1.2.2.1.8.{idx}|2|{oper}",
                 f"1.3.6.1.2.1.2.2.1.10.{idx}|65|1000", f"1.3.6.1.2.1.2.2.1.16.{idx}|65|2000",
                 f"1.3.6.1.2.1.31.1.1.1.1.{idx}|4|{name}", f"1.3.6.1.2.1.31.1.1.1.15.{idx}|66|{mbps}",
                 f"1.3.6.1.2.1.31.1.1.1.18.{idx}|4|"]
    for idx, name, _, _ in ports:
        rows.append(f"1.0.8802.1.1.2.1.3.7.1.3.{idx}|4|{name}")
    for n, (idx, _, remote, remote_port) in enumerate(neighbors, 1):
        key = f"0.{idx}.{n}"
        rows += [f"1.0.8802.1.1.2.1.4.1.1.5.{key}|4x|00000c9f{n:04x}",
                 f"1.0.8802.1.1.2.1.4.1.1.7.{key}|4|{remote_port}",
                 f"1.0.8802.1.1.2.1.4.1.1.8.{key}|4|uplink", f"1.0.8802.1.1.2.1.4.1.1.9.{key}|4|{remote}"]
    return "\n".join(rows) + "\n"


UP = 1
CAMPUS = {
    # The core: uplink to the provider on Gi0/24, sw-dist-a on Gi0/1 at 1 Gbit/s, sw-dist-b on Gi0/2 at 100 Mbit/s.
    "sw-core-1": switch("sw-core-1", [(1, "Gi0/1", 1000, UP), (2, "Gi0/2", 100, UP), (24, "Gi0/24", 1000, UP)],
                        [(1, "Gi0/1", "sw-dist-a", "Gi1/0/49"), (2, "Gi0/2", "sw-dist-b.campus.local", "Gi1/0/49")]),
    "sw-dist-a": switch("sw-dist-a", [(1, "Gi1/0/1", 100, UP), (49, "Gi1/0/49", 1000, UP)],
                        [(49, "Gi1/0/49", "sw-core-1", "Gi0/1")]),
    "sw-dist-b": switch("sw-dist-b.campus.local", [(49, "Gi1/0/49", 100, UP)],
                        [(49, "Gi1/0/49", "sw-core-1", "Gi0/2")]),
}


@pytest.fixture(scope="module")
def campus():
    server = start_snmpsim(list(CAMPUS.items()))
    yield server
    server.stop()


def write_config(tmp_path: Path, sim, packs: str = "[yinchuan-2018, ningxia-2025, hebei-2019]") -> Path:
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    creds = []
    for name in CAMPUS:
        (secrets / name).write_text(name + "\n")
        creds.append(f"    {name}: {{version: 2c, community: {{file: {secrets / name}}}}}")
    (secrets / "dead").write_text("dead\n")
    dead_port = free_udp_port()
    text = f"""\
school:
  id: diag-test-school
  name: 诊断测试小学 (Diag Test Primary School)
  city: yinchuan
  type: primary
agent:
  data_dir: {tmp_path / "data"}
host: {{enabled: true, wan_interface: lo}}
# The WAN is down: nothing listens where the broker should be, and diag must not care.
mqtt: {{broker: "127.0.0.1:{free_udp_port()}"}}
snmp:
  defaults: {{timeout: 1s, retries: 0, deadline: 10s}}
  credentials:
{chr(10).join(creds)}
    dead: {{version: 2c, community: {{file: {secrets / "dead"}}}}}
  devices:
    - {{name: sw-core-1, host: "{sim.address}", credentials: sw-core-1, role: core}}
    - {{name: sw-dist-a, host: "{sim.address}", credentials: sw-dist-a, role: distribution}}
    - {{name: sw-dist-b, host: "{sim.address}", credentials: sw-dist-b, role: distribution}}
    - {{name: sw-dist-c, host: "127.0.0.1:{dead_port}", credentials: dead, role: distribution, timeout: 0.5s}}
standards:
  packs: {packs}
topology:
  uplink: {{device: sw-core-1, port: Gi0/24}}
  classroom_drops:
    - {{device: sw-dist-a, port: Gi1/0/1, room: A101}}
"""
    path = tmp_path / "eduedge.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def diag(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    """`eduedge diag` as a terminal `columns` wide would show it (80 is also what a pipe gets)."""
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run([EDUEDGE, "diag", *args], capture_output=True, text=True, timeout=120, env=env)


def test_diag_names_the_slow_backbone_link_and_what_to_check(campus, tmp_path):
    cfg = write_config(tmp_path, campus)
    r = diag("--config", str(cfg), columns=250)     # wide enough that no row of the tables wraps
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert "诊断测试小学" in out
    lines = out.splitlines()
    backbone = next(x for x in lines if "yinchuan-2018.backbone " in x)
    assert "FAIL" in backbone and "sw-core-1 Gi0/2 ↔ sw-dist-b Gi1/0/49 at 100 Mbit/s" in backbone
    problems = lines[lines.index("Problems, most important first") + 1:]
    slow = next(x for x in problems if "Gi0/2 on sw-core-1" in x)
    assert "negotiated 100 Mbit/s" in slow and "check the cable" in slow and "sw-dist-b" in slow
    # the uplink (1 Gbit/s against 2.5) touches the whole school: it outranks the backbone link
    first = next(i for i, x in enumerate(problems) if "uplink Gi0/24 on sw-core-1 negotiated 1000 Mbit/s" in x)
    assert first < problems.index(slow)
    assert "PASS" in next(x for x in lines if "ningxia-2025.class " in x)
    assert "judged by the city cloud across schools: ningxia-2025.county" in out
    # the dead switch is one of the problems (not a footer), the rule under it, and did not stall the others
    dead = next(i for i, x in enumerate(problems) if "sw-dist-c (distribution) did not answer" in x)
    assert "UNKNOWN" in problems[dead] and problems[dead + 1].split() == ["snmp.poll"], out


def test_diag_json_is_one_object_with_the_evidence_and_html_is_written_beside_it(campus, tmp_path):
    cfg = write_config(tmp_path, campus)
    report = tmp_path / "report.html"
    r = diag("--config", str(cfg), "--json", "--html", str(report))
    assert r.returncode == 1, r.stderr
    html = report.read_text(encoding="utf-8")
    assert "诊断测试小学" in html and "yinchuan-2018.backbone" in html and html.count("<svg") == 1
    doc = json.loads(r.stdout)
    assert set(doc) >= {"school", "time", "source", "packs", "findings", "problems", "devices", "summary",
                        "exit_code"}
    assert doc["school"]["id"] == "diag-test-school" and doc["exit_code"] == 1 and doc["source"] == "live"
    by_rule = {f["rule"]: f for f in doc["findings"]}
    assert set(by_rule) == {"yinchuan-2018.uplink", "yinchuan-2018.backbone", "yinchuan-2018.wifi-areas",
                            "yinchuan-2018.wifi-access", "yinchuan-2018.device-ratio", "ningxia-2025.campus",
                            "ningxia-2025.class", "hebei-2019.egress"}
    backbone = by_rule["yinchuan-2018.backbone"]
    assert backbone["status"] == "fail" and backbone["value"] == 100 and backbone["threshold"] == 1000
    assert backbone["evidence"]["below_threshold"] == ["sw-core-1 Gi0/2 ↔ sw-dist-b Gi1/0/49 at 100 Mbit/s"]
    links = {x["link"]: x["status"] for x in backbone["evidence"]["links"]}
    assert links["sw-core-1 Gi0/1 ↔ sw-dist-a Gi1/0/49"] == "pass"
    assert "sw-dist-c (distribution) has no known backbone link" in backbone["evidence"]["missing"]
    assert by_rule["ningxia-2025.class"]["status"] == "pass"
    assert by_rule["hebei-2019.egress"]["status"] == "unknown"
    assert by_rule["hebei-2019.egress"]["evidence"]["missing"]
    devices = {d["device"]: d["ok"] for d in doc["devices"]}
    assert devices == {"sw-core-1": True, "sw-dist-a": True, "sw-dist-b": True, "sw-dist-c": False}
    assert doc["summary"]["fail"] == 2 and sum(doc["summary"].values()) == len(doc["findings"])


def test_a_campus_where_no_device_answers_is_not_reported_as_fine(tmp_path):
    silent = SimpleNamespace(address=f"127.0.0.1:{free_udp_port()}")     # nothing listens there
    r = diag("--config", str(write_config(tmp_path, silent)), "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 4 and doc["exit_code"] == 4, r.stdout + r.stderr
    assert [d["ok"] for d in doc["devices"]] == [False] * 4
    silent_ones = {p["device"] for p in doc["problems"] if p["rule"] == "snmp.poll"}
    assert silent_ones == {"sw-core-1", "sw-dist-a", "sw-dist-b", "sw-dist-c"}
    text = diag("--config", str(write_config(tmp_path, silent)))
    assert text.returncode == 4 and "No problems found" not in text.stdout
    assert "sw-core-1 (core) did not answer" in text.stdout


def test_cached_prints_the_stored_results_without_polling(campus, tmp_path):
    cfg = write_config(tmp_path, campus)
    assert diag("--config", str(cfg), "--cached").returncode == 3     # nothing stored yet
    live = json.loads(diag("--config", str(cfg), "--json").stdout)
    campus.stop()   # from here on no device answers; --cached must not need them
    try:
        r = diag("--config", str(cfg), "--cached", "--json")
        assert r.returncode == 1, r.stderr
        cached = json.loads(r.stdout)
        assert cached["source"].startswith("cached (diag at ")
        assert ({f["rule"]: f["status"] for f in cached["findings"]}
                == {f["rule"]: f["status"] for f in live["findings"]})
        text = diag("--config", str(cfg), "--cached")
        assert text.returncode == 1 and "Gi0/2 on sw-core-1" in " ".join(text.stdout.split()), text.stdout
        # on an 80-column console every line fits (Chinese characters take two columns)
        assert max(cell_len(line) for line in text.stdout.splitlines()) <= 80, text.stdout
    finally:
        restarted = start_snmpsim(list(CAMPUS.items()), port=campus.port)
        campus.workdir, campus.proc = restarted.workdir, restarted.proc


def test_a_broken_configuration_or_pack_name_exits_2(tmp_path, campus):
    cfg = write_config(tmp_path, campus, packs="[yinchuan-2018, no-such-pack]")
    r = diag("--config", str(cfg))
    assert r.returncode == 2
    assert "standards.packs[1]: no rule pack 'no-such-pack'" in r.stderr


def english_phrases() -> list[str]:
    """The English words of every catalogue message (the parts between its placeholders that are phrases,
    not a single word, a key or a unit)."""
    with (Path(__file__).resolve().parents[1] / "eduedge/locale/eduedge.pot").open("rb") as f:
        ids = [i for m in read_po(f) if m.id for i in (m.id if isinstance(m.id, tuple) else (m.id,))]
    parts = {p.strip(" ,;:.()—-") for i in ids for p in re.split(r"\{[^}]*\}", i)}
    return sorted(p for p in parts if re.search(r"[a-z]{2,} [a-z]{2,}", p))


def test_diag_reads_in_chinese_when_the_locale_is_zh_CN(campus, tmp_path):
    cfg = write_config(tmp_path, campus)
    r = subprocess.run([EDUEDGE, "diag", "--config", str(cfg)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "COLUMNS": "250", "LC_ALL": "", "LC_MESSAGES": "", "LANG": "zh_CN.UTF-8"})
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    lines = out.splitlines()
    assert "设备：4 台中 3 台应答" in out
    backbone = next(x for x in lines if "yinchuan-2018.backbone " in x)
    assert "未达标" in backbone and "sw-core-1 Gi0/2 ↔ sw-dist-b Gi1/0/49 为 100 Mbit/s" in backbone
    problems = lines[lines.index("问题（按重要程度排序）") + 1:]
    slow = next(x for x in problems if "sw-core-1 的 Gi0/2" in x)
    assert "协商速率为 100 Mbit/s" in slow and "检查网线" in slow
    assert "达标" in next(x for x in lines if "ningxia-2025.class " in x)
    assert "由市级教育云跨校评判：ningxia-2025.county" in out
    # the dead switch is a problem, and its error comes from the SNMP client in Chinese too
    dead = next(x for x in problems if "sw-dist-c（汇聚）未应答" in x)
    assert "无法判定" in dead and "次尝试" in dead, out
    # and nothing of the English is left (the pack titles' English line is not shown in Chinese)
    left = [p for p in english_phrases() if p in out]
    assert not left, f"English left in the Chinese diag: {left}\n{out}"
