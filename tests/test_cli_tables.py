"""The CLI's tables fit an 80-column console, carry their units in the headers, and never cut a name."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from rich.cells import cell_len
from typer.testing import CliRunner

from eduedge.agent.cli import app
from eduedge.agent.cli.poll import _print_poll
from eduedge.agent.envelope import Envelope
from eduedge.agent.outbox import Outbox
from eduedge.agent.state import state_path

EXAMPLE = Path(__file__).resolve().parents[1] / "eduedge" / "config" / "example-school.yaml"
LONG = "GigabitEthernet1/0/48-uplink-to-building-b"


@pytest.fixture(autouse=True)
def console_80(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")


def fits(text: str, width: int = 80) -> bool:
    return max(cell_len(line) for line in text.splitlines()) <= width


@pytest.fixture
def cfg(tmp_path):
    doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    doc["agent"]["data_dir"] = str(tmp_path / "data")
    (tmp_path / "data").mkdir()
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_poll_shows_interfaces_with_units_and_whole_names_at_80_columns(capsys):
    ifs = [{"index": i, "name": LONG if i == 48 else f"gi1/0/{i}", "alias": "classroom A101 drop, 2nd floor",
            "admin_status": "up" if i != 3 else "down", "oper_status": "up", "speed_mbps": 1000,
            "in_bps": 93_400_000.0 * i, "out_bps": 1_200_000.0, "in_errors_pps": 0.5} for i in range(1, 49)]
    _print_poll({"device": "core", "profile": "huawei-switch", "identity": {"vendor": "Huawei", "model": "S5720"},
                 "interfaces": ifs, "neighbors": [{"protocol": "lldp", "local_port": "gi1/0/1",
                                                   "remote_name": "sw-a101", "remote_port": "Gi0/24"}],
                 "sensors": [{"metric": "device.temperature_c", "value": 41.5, "unit": "°C", "tags": {}}],
                 "errors": [], "values": 500, "requests": 9, "duration_s": 0.2})
    text = capsys.readouterr().out
    assert fits(text), text
    # nothing is cut to "…": a name too long for its column folds onto the next lines, whole
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("interface "))
    width = lines[header].index("state")
    first_column = "".join(line[:width].strip() for line in lines[header + 2:])
    assert "…" not in text and LONG in first_column, text
    assert all(u in text for u in ("Mbit/s", "errors", "/s")), text
    row = next(line for line in text.splitlines() if line.startswith("gi1/0/10 "))
    assert row.split()[:5] == ["gi1/0/10", "up", "1000", "934.00", "1.20"]          # in/out in Mbit/s
    assert next(line for line in text.splitlines() if line.startswith("gi1/0/3 ")).split()[1] == "disabled"
    assert "sw-a101" in text and "41.5" in text


def test_status_lists_the_collectors_in_a_table_that_fits(cfg, tmp_path):
    now = time.time()
    long_error = "cannot reach 127.0.0.1:1161 after 3 tries: the device is down or the community is wrong"
    state = {"running": False, "pid": 0, "started": now - 100, "updated": now - 5, "link": None,
             "collectors": {"snmp:sw-core-1": {"last_success": now - 30, "last_summary": {"values": 1200}},
                            "snmp:sw-dist-a": {"last_success": None, "last_error": long_error}}}
    state_path(tmp_path / "data").write_text(json.dumps(state), encoding="utf-8")
    r = CliRunner().invoke(app, ["status", "-c", str(cfg)])
    assert r.exit_code == 3, r.output
    assert fits(r.output), r.output
    lines = r.output.splitlines()
    header = next(x for x in lines if x.split()[:1] == ["collector"])
    assert "took s" in header and "failed runs" in header                 # the unit in the header
    # a state file without the run's figures (an older agent's) shows them as '-', not as zero
    assert next(x for x in lines if x.split()[:1] == ["snmp:sw-core-1"]).split()[1:6] == \
        ["30s", "ago", "-", "-", "values:"]
    dist = next(i for i, x in enumerate(lines) if x.split()[:1] == ["snmp:sw-dist-a"])
    assert lines[dist].split()[1:5] == ["never", "-", "-", "ERROR:"]
    assert "the device is down or the community is wrong" in " ".join(" ".join(lines[dist:]).split())


def test_outbox_shows_the_depth_by_priority_with_units(cfg, tmp_path):
    ob = Outbox(tmp_path / "data" / "outbox.db", Envelope("s", "c", "gw", "0.1.0", "cd" * 16), max_bytes=10**7)
    ob.add("findings", {"findings": []})
    ob.close()
    r = CliRunner().invoke(app, ["outbox", "-c", str(cfg)])
    assert r.exit_code == 0, r.output
    assert fits(r.output), r.output
    header = next(x for x in r.output.splitlines() if "priority" in x)
    assert header.split() == ["priority", "messages", "items", "size", "oldest"]
    row = next(x for x in r.output.splitlines() if "1 findings, events, inventory" in x).split()
    assert row[4:6] == ["1", "1"] and row[7] == "B"


def access_evidence(schools: int, reached: int, roster: bool) -> dict[str, object]:
    """The access rule's evidence as cloud/city.py makes it: the counts its explanation is worded from."""
    return {"schools": schools, "with_access": reached, "without_access": [f"s{i}" for i in range(schools - reached)],
            "access_window_s": 7 * 86400, "roster": roster, "unknown_type": []}


def test_the_city_report_is_tables_that_fit(capsys):
    from eduedge.cloud.cli import _print_city

    why = "2 of 3 schools reached the city cloud in the last 7 days"
    _print_city({"schools": [1, 2, 3], "states": {"online": 2, "offline": 1}, "offline_after_s": 600,
                 "region_findings": [{"status": "fail", "rule": "hebei-2019.access-rate", "region": "hebei/sjz",
                                      "value": 66.7, "evidence": access_evidence(3, 2, roster=True)}],
                 "status_counts": {"yinchuan-2018.backbone": {"pass": 2, "fail": 1}},
                 "offline": [{"school": "demo-school-3", "state": "offline", "for_s": None}]})
    text = capsys.readouterr().out
    assert fits(text), text
    assert "value %" in text and "66.7" in text and why in " ".join(text.split())
    assert next(x for x in text.splitlines() if "demo-school-3" in x).split() == ["demo-school-3", "offline",
                                                                                   "never", "heard", "from"]


def test_a_wide_terminal_gets_wide_tables(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    from eduedge.cloud.cli import _print_city

    why = ("0 of 3 schools reached the city cloud in the last 7 days; without a roster, schools that never "
           "connected are not counted (an upper bound)")
    _print_city({"schools": [], "states": {}, "offline_after_s": 600, "status_counts": {}, "offline": [],
                 "region_findings": [{"status": "pass", "rule": "r", "region": "g", "value": None,
                                      "evidence": access_evidence(3, 0, roster=False)}]})
    text = capsys.readouterr().out
    assert why in text and not fits(text)                    # one line: the table took the room it was given
