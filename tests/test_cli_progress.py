"""The technician is never left in front of a blank screen, and what is printed reads well.

Progress (agent/cli/_progress.py) is shown on a terminal only: a command run in a pty shows its stage and how
many devices answered, the same command piped or with `--json` prints nothing of it. The layout fixes are
tested on the functions that print: diag's header, poll's sensors and its last line.
"""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from eduedge.agent.cli._progress import Activity, activity, wanted
from eduedge.agent.cli._sensors import rows
from eduedge.agent.cli.diag import DiagResult, render
from eduedge.agent.cli.poll import footer
from eduedge.agent.compliance import load_rules
from eduedge.agent.config import load_config

EDUEDGE = str(Path(sys.executable).with_name("eduedge"))
EXAMPLE = Path(__file__).resolve().parents[1] / "eduedge" / "config" / "example-school.yaml"


@pytest.fixture
def cfg(tmp_path):
    doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    doc["agent"]["data_dir"] = str(tmp_path / "data")
    (tmp_path / "data").mkdir()
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return load_config(path)


def in_pty(argv: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> tuple[int, str]:
    """Run `argv` with stdout and stderr on a pseudo-terminal, as a technician's console; all it wrote."""
    main, child = pty.openpty()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=child, stderr=child, close_fds=True,
                            env={**os.environ, "COLUMNS": "100", "TERM": "xterm", **(env or {})})
    os.close(child)
    out = bytearray()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([main], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:          # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(main)
    return proc.wait(timeout=10), out.decode("utf-8", "replace")


# -- the progress helper -------------------------------------------------------------------------------

def test_a_terminal_sees_the_stage_and_the_count():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100)
    with activity(console=console, show=True) as act:
        act.stage("polling the devices", total=4)
        act.advance()
        act.advance(note="1 did not answer")
        console.file.flush()
        time.sleep(0.3)              # rich redraws 8 times a second
    text = buf.getvalue()
    assert act.shown and "polling the devices" in text and "2 of 4" in text and "1 did not answer" in text


def test_json_or_a_pipe_shows_nothing(monkeypatch):
    terminal = Console(file=io.StringIO(), force_terminal=True)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    assert wanted(False, terminal) and not wanted(True, terminal)        # --json: never
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    assert not wanted(False, terminal)                                   # stdout piped: never
    buf = io.StringIO()
    with activity(console=Console(file=buf, force_terminal=False)) as act:   # stderr not a terminal
        act.stage("polling the devices", total=4)
        act.advance()
    assert not act.shown and buf.getvalue() == "" and act.stages == ["polling the devices"]


def test_an_activity_without_a_console_does_nothing():
    act = Activity()
    act.advance()                    # before any stage: no error
    act.stage("judging the rules")
    assert not act.shown and act.stages == ["judging the rules"]


# -- diag ----------------------------------------------------------------------------------------------

def _text(parts) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=200, highlight=False)
    for p in parts:
        console.print(p, markup=False)
    return buf.getvalue()


def test_diag_cached_header_says_who_judged_and_when_once(cfg):
    r = DiagResult(cfg, load_rules(cfg), [], 1741658700.0, "cached (diag at 2025-03-11 10:05:00 CST)",
                   stored_by="diag")
    head = _text(render(r)[:2])
    assert "(cached (" not in head and head.count("2025-03-11") == 1, head
    assert "stored results: an earlier `eduedge diag` judged at 2025-03-11" in head, head
    live = _text(render(DiagResult(cfg, load_rules(cfg), [], 1741658700.0, "live"))[:2])
    assert "checked 2025-03-11" in live and "(live)" in live, live


# -- poll ----------------------------------------------------------------------------------------------

def _poe(port: int, watts: float) -> dict:
    return {"metric": "poe.port_power_w", "value": watts, "unit": "W",
            "tags": {"if_index": str(port + 5), "interface": f"GigabitEthernet0/0/{port}"}}


def test_poll_groups_the_idle_poe_ports_and_names_the_metrics_in_words():
    sensors = [{"metric": "device.uptime_s", "value": 1375190.0, "unit": "s", "tags": {}},
               {"metric": "device.temperature_c", "value": 42, "unit": "celsius",
                "tags": {"entity_index": "9", "entity": "MPU Board 0"}}]
    sensors += [_poe(p, 15.4 if p in (11, 12) else 0.0) for p in range(1, 49)]
    shown = [(r.what, r.value, r.unit, r.where) for r in rows(sensors)]
    assert shown == [("up for", "15.9", "days", ""), ("temperature", "42", "°C", "MPU Board 0"),
                     ("PoE power on a port", "0", "W", "46 ports"),
                     ("PoE power on a port", "15.4", "W", "GigabitEthernet0/0/11"),
                     ("PoE power on a port", "15.4", "W", "GigabitEthernet0/0/12")]


def test_a_metric_of_many_different_readings_is_one_row_of_its_range():
    sensors = [{"metric": "wifi.radio_noise_dbm", "value": -90.0 - i, "unit": "dBm",
                "tags": {"ap": f"ap-{i}", "radio": "0"}} for i in range(20)]
    assert [(r.what, r.value, r.where) for r in rows(sensors)] == [("noise floor", "-109–-90", "20 radios")]
    states = [{"metric": "ups.output_status", "value": v, "unit": "state", "tags": {"n": str(i)}}
              for i, v in enumerate(["online"] * 3 + ["onBattery"] * 2 + [f"s{i}" for i in range(8)])]
    assert rows(states)[0].value.startswith("online 3, onBattery 2, ")


def test_poll_ends_with_the_time_the_technician_waited():
    summary = {"interfaces": [{}] * 65, "values": 685, "requests": 46, "duration_s": 0.016, "wall_s": 4.03}
    line = footer(summary)
    assert "4.0 s in all" in line and "the last poll 0.02 s" in line and "0.016s" not in line, line


# -- the commands on real SNMP agents --------------------------------------------------------------------

@pytest.fixture(scope="module")
def campus():
    from eduedge.simulator.snmpsim import start_snmpsim
    from tests.test_diag import CAMPUS

    server = start_snmpsim(list(CAMPUS.items()))
    yield server
    server.stop()


@pytest.mark.integration
def test_diag_on_a_terminal_counts_the_devices_and_is_quiet_when_piped(campus, tmp_path):
    from tests.test_diag import write_config

    config = str(write_config(tmp_path, campus))
    code, screen = in_pty([EDUEDGE, "diag", "--config", config])
    assert code == 1, screen
    assert "polling the devices" in screen and " of 4" in screen, screen
    assert "Problems, most important first" in screen      # the report itself is printed after it
    piped = subprocess.run([EDUEDGE, "diag", "--config", config], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "COLUMNS": "100"})
    assert piped.returncode == 1 and "polling the devices" not in piped.stdout + piped.stderr
    assert " of 4" not in piped.stderr and piped.stderr == "", piped.stderr
    code, screen = in_pty([EDUEDGE, "diag", "--config", config, "--json"])
    assert code == 1 and "polling the devices" not in screen and screen.lstrip().startswith("{"), screen[:300]


@pytest.mark.integration
def test_poll_on_a_terminal_counts_down_the_wait_for_the_rates(campus, tmp_path):
    argv = [EDUEDGE, "poll", campus.address, "--community", "sw-core-1", "--rate-interval", "2"]
    code, screen = in_pty(argv)
    assert code == 0, screen
    assert "polling " in screen and "waiting 2 s to measure the rates" in screen, screen
    assert "s in all" in screen
    piped = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and "waiting" not in piped.stdout + piped.stderr
    code, screen = in_pty([*argv, "--json"])
    assert code == 0 and "waiting" not in screen, screen[:300]


# -- wifi ----------------------------------------------------------------------------------------------

def _ap(name: str, channels: tuple[int, int], up: bool = True) -> dict:
    return {"name": name, "up": up, "radios": [{"radio": "0", "band": "2.4", "channel": channels[0], "status": "up"},
                                               {"radio": "1", "band": "5", "channel": channels[1], "status": "up"}]}


def test_wifi_names_the_co_channel_neighbours_of_a_zone():
    from eduedge.agent.cli.wifi import co_channel, co_channel_lines

    zones = [{"zone": "teaching-a", "aps": [_ap(f"ap-a{i:02d}", (1, 36)) for i in range(1, 13)]},
             {"zone": "office", "aps": [_ap("ap-o1", (1, 36)), _ap("ap-o2", (6, 149)), _ap("ap-o3", (6, 149), False)]}]
    found = co_channel(zones)
    assert [(c["zone"], c["band"], c["channel"], len(c["aps"])) for c in found] == [
        ("teaching-a", "2.4", 1, 12), ("teaching-a", "5", 36, 12)]       # a down AP shares nothing
    assert co_channel_lines(found) == [
        "zone teaching-a: 12 APs share channel 1 (2.4 GHz), 36 (5 GHz): ap-a01, ap-a02, ap-a03, ap-a04, ap-a05, "
        "ap-a06 and 6 more"]


def test_wifi_with_nothing_weak_still_shows_the_neighbours(capsys, monkeypatch):
    from eduedge.agent.cli.wifi import _print, co_channel

    monkeypatch.setenv("COLUMNS", "80")
    zones = [{"zone": "teaching-a", "aps": [_ap(f"ap-a{i:02d}", (1, 36)) for i in range(1, 13)]}]
    _print({"zones": [], "ssids": {}, "devices": {}, "weak": [], "co_channel": co_channel(zones)})
    out = " ".join(capsys.readouterr().out.split())
    assert "Nothing weak seen now" in out and "Co-channel neighbours" in out
    assert "zone teaching-a: 12 APs share channel 1 (2.4 GHz), 36 (5 GHz)" in out, out


# -- liveclass -----------------------------------------------------------------------------------------

def _room(name: str) -> dict:
    wifi = "Wi-Fi zone teaching-a: no AP state in school hours of the last 7 d"
    return {"room": name, "status": "unknown", "weakest": None, "notes": [],
            "words": f"{name}: missing {wifi}; probe rounds to live-class (have 0, need 3)",
            "links": [{"link": "drop", "label": "drop sw-a1 Gi0/0/3", "status": "pass", "why": "1000 Mbit/s, 2 % used"},
                      {"link": "wifi", "label": "Wi-Fi zone teaching-a", "status": "unknown",
                       "why": "no AP state in school hours of the last 7 d", "missing": [wifi]},
                      {"link": "path", "label": "the path to live-class", "status": "unknown",
                       "why": "too few probe rounds", "missing": ["probe rounds to live-class (have 0, need 3)"]}]}


def test_liveclass_for_one_room_says_its_verdict_and_each_missing_thing_once(cfg):
    from eduedge.agent.cli.liveclass import render
    from eduedge.agent.compliance.findings import Finding

    f = Finding("live-class.720p-one-way", "school", "unknown", 0.0, 100.0, "%", 1741658700.0,
                evidence={"profile": {"name": {"en": "720p one-way live lesson"}},
                          "rooms": [_room(f"A{i:03d}") for i in range(101, 125)]},
                why="0 of 24 classrooms ready for a 720p one-way live lesson; 0 not, 24 unknown")
    out = _text(render(cfg, [f], [], [], "A101"))
    assert "0 of 24 classrooms" not in out, out
    assert "720p one-way live lesson (live-class.720p-one-way): A101 UNKNOWN: 2 of 3 links cannot be judged" in out
    assert out.count("no AP state in school hours") == 1, out
    assert out.count("have 0, need 3") == 1, out
    everyone = _text(render(cfg, [f], [], [], None))           # without ROOM: the school's line and every room
    assert "0 of 24 classrooms" in everyone and "A124" in everyone


def test_liveclass_says_whether_the_probes_it_made_count(cfg):
    from eduedge.agent.cli.liveclass import probes_counted

    tuesday_10 = 1741658400.0            # 2025-03-11 10:00 in Asia/Shanghai, the example's school hours
    sunday_night = 1741528800.0          # 2025-03-09 22:00
    assert "one more round" in probes_counted(cfg, tuesday_10)
    night = probes_counted(cfg, sunday_night)
    assert "outside school hours" in night and "does not count them" in night, night


# -- scan and devices ----------------------------------------------------------------------------------

def test_an_empty_scan_says_why_instead_of_an_empty_table(capsys, monkeypatch):
    from eduedge.agent.cli.scan import _print

    monkeypatch.setenv("COLUMNS", "80")
    _print({"subnets": ["127.66.0.0/24"], "seconds": 4.56, "devices": [], "errors": [],
            "listed": [{"name": "core", "address": "127.66.0.1", "summary": "up, ping 0.0 ms", "reachable": True}]})
    out = " ".join(capsys.readouterr().out.split())
    assert "no device discovered on 127.66.0.0/24 in 4.56 s" in out, out
    assert "127.66.0.0/24 is loopback: nothing answers ARP there" in out
    assert "address MAC class" not in out                  # no empty table
    assert "listed core (127.66.0.1): up" in out


def _devices(config: Path, *args: str) -> str:
    from typer.testing import CliRunner

    from eduedge.agent.cli import app

    r = CliRunner().invoke(app, ["devices", "--config", str(config), *args])
    assert r.exit_code == 0, r.output
    return " ".join(r.output.split())


def test_devices_says_why_it_lists_none(tmp_path):
    doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    doc["agent"]["data_dir"] = str(tmp_path / "data")
    (tmp_path / "data").mkdir()
    config = tmp_path / "agent.yaml"
    doc["discovery"] = {"enabled": False}
    config.write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert "no devices: discovery is off" in _devices(config)
    doc["discovery"] = {"enabled": True, "subnets": ["10.20.0.0/24"]}
    config.write_text(yaml.safe_dump(doc), encoding="utf-8")
    out = _devices(config)
    assert "no devices yet: the agent has not saved an inventory" in out and "10.20.0.0/24" in out, out
    (tmp_path / "data" / "discovery.json").write_text('{"devices": {}}')
    assert "the agent's inventory was empty when it last saved it" in _devices(config)
    assert "0 devices" not in _devices(config)


# -- sim fleet -----------------------------------------------------------------------------------------

def test_the_fleets_run_in_a_line():
    from types import SimpleNamespace

    from eduedge.simulator.cli import _running

    st = SimpleNamespace(connected=180, schools=200, messages=4200, acked=4100)
    assert _running(st, 75.0, 900.0) == "13:45 left · 180/200 connected · 4200 sent, 4100 acked"


@pytest.mark.integration
def test_sim_fleet_on_a_terminal_shows_the_schools_prepared_and_the_run(tmp_path):
    argv = [EDUEDGE, "sim", "fleet", "--schools", "2", "--duration", "3s", "--interval", "1s", "--history-days", "1"]
    code, screen = in_pty(argv)
    assert code == 0, screen
    assert "preparing the schools" in screen and " of 2" in screen and "connected ·" in screen, screen
    assert "prepared 2/2 schools" not in screen          # the log lines give way to the live one
    piped = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and "preparing the schools" not in piped.stdout + piped.stderr
    assert "prepared 2/2 schools" in piped.stderr         # a log still gets its lines


# -- liveclass and scan on loopback (nothing answers there: the stages still show, and say why) -----------

def _config(tmp_path: Path, **sections) -> str:
    doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    doc["agent"]["data_dir"] = str(tmp_path / "data")
    (tmp_path / "data").mkdir(exist_ok=True)
    doc.update(sections)
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return str(path)


@pytest.mark.integration
def test_liveclass_on_a_terminal_shows_its_probes_and_judging(tmp_path):
    from eduedge.simulator.snmpsim import free_udp_port

    silent = f"127.0.0.1:{free_udp_port()}"         # no test server there: the probe fails, and says so
    config = _config(tmp_path, live_class={"enabled": True, "endpoints": [
        {"name": "live-1", "role": "live-class", "echo": silent, "timeout": "1s"}]})
    code, screen = in_pty([EDUEDGE, "liveclass", "--config", config])
    assert "probing the live-class endpoints" in screen and "judging the classrooms" in screen, screen
    assert "Endpoints, probed now: 0 of 1 up" in screen
    piped = subprocess.run([EDUEDGE, "liveclass", "--config", config], capture_output=True, text=True, timeout=120)
    assert piped.returncode == code and "probing the" not in piped.stdout + piped.stderr
    code, screen = in_pty([EDUEDGE, "liveclass", "--config", config, "--json"])
    assert "probing the" not in screen and screen.lstrip().startswith("{"), screen[:300]


@pytest.mark.integration
def test_scan_on_a_terminal_shows_its_sweep_and_why_it_found_nothing(tmp_path):
    # no device listed anywhere: a scan pings every configured device wherever it is, and this test sends
    # nothing beyond loopback
    (tmp_path / "data").mkdir()
    path = tmp_path / "scan.yaml"
    path.write_text(f"""\
school: {{id: scan-school, name: Scan School, city: demo-city, type: primary}}
agent: {{data_dir: {tmp_path / "data"}}}
discovery: {{enabled: true, subnets: [127.0.0.0/30], bridge_tables: false}}
""", encoding="utf-8")
    config = str(path)
    code, screen = in_pty([EDUEDGE, "scan", "--config", config])
    assert code == 0, screen
    assert "sweeping 127.0.0.0/30" in screen, screen
    flat = " ".join(screen.split())
    assert "no device discovered on 127.0.0.0/30" in flat and "is loopback" in flat, screen
    piped = subprocess.run([EDUEDGE, "scan", "--config", config], capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and "sweeping" not in piped.stdout + piped.stderr
    assert "no device discovered" in piped.stdout
