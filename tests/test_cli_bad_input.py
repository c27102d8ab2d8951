"""Never a traceback: every command, given a wrong command line or a missing configuration, says what is
wrong in one line on stderr and exits 2; device names, host names and OID names are taken where a host or
an OID is, and a near miss lists the close names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml

from eduedge.agent.cli._options import DEFAULT_CONFIG
from eduedge.cli import build, main
from eduedge.simulator.snmpsim import start_snmpsim

EDUEDGE = str(Path(sys.executable).with_name("eduedge"))
EXAMPLE = Path(__file__).resolve().parents[1] / "eduedge" / "config" / "example-school.yaml"
MISSING = "/nonexistent/eduedge.yaml"
SWITCH = """\
1.3.6.1.2.1.1.1.0|4|Test switch for names
1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.99999.1
1.3.6.1.2.1.1.3.0|67|100
1.3.6.1.2.1.1.5.0|4|sw-names
1.3.6.1.2.1.31.1.1.1.1.1|4|GE0/0/1
1.3.6.1.2.1.31.1.1.1.1.2|4|GE0/0/2
1.3.6.1.2.1.31.1.1.1.6.1|70|1234567890123
"""


def leaves(cmd, path=()):
    """(words, command) of every command that does something (groups are walked, not called)."""
    subs = getattr(cmd, "commands", None)
    if subs is None:
        yield path, cmd
        return
    for name, sub in subs.items():
        yield from leaves(sub, (*path, name))


def groups(cmd, path=()):
    if getattr(cmd, "commands", None) is not None:
        yield path
        for name, sub in cmd.commands.items():
            yield from groups(sub, (*path, name))


def params(cmd):
    return cmd.get_params(cmd.make_context(cmd.name, [], resilient_parsing=True))


def bad_command_lines():
    """For every command: an option it does not have; a configuration that is not there (where it takes
    one), with its required arguments given; nothing at all where something is required."""
    root = typer.main.get_command(build())
    for words, cmd in leaves(root):
        ps = params(cmd)
        required_args = ["x" for p in ps if p.param_type_name == "argument" and p.required]
        yield [*words, "--no-such-option"]
        if any("--config" in p.opts for p in ps if p.param_type_name == "option"):
            yield [*words, *required_args, "-c", MISSING]
        if any(p.required for p in ps):
            yield list(words)
    for words in groups(root):
        yield [*words, "no-such-command"]


CASES = list(bad_command_lines())


@pytest.mark.parametrize("argv", CASES, ids=[" ".join(a) for a in CASES])
def test_every_command_given_a_bad_command_line_says_so_in_one_line_and_exits_2(argv, capsys, monkeypatch):
    monkeypatch.delenv("EDUEDGE_CONFIG", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out, err = capsys.readouterr()
    assert exit_.value.code == 2, (out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err and "unexpected" not in err, err


def test_the_sweep_covers_the_city_and_the_simulator_too():
    names = {c[0] if c[0] not in ("cloud", "sim", "profile", "config", "service") else " ".join(c[:2])
             for c in CASES}
    assert {"walk", "poll", "run", "diag", "speedtest", "wifi", "probe", "cloud judge", "sim up", "demo"} <= names


@pytest.fixture(scope="module")
def switch():
    server = start_snmpsim([("names", SWITCH)])
    yield server
    server.stop()


@pytest.fixture
def cfg(tmp_path):
    doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    doc["agent"]["data_dir"] = str(tmp_path)
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EDUEDGE_CONFIG"}
    return subprocess.run([EDUEDGE, *args], capture_output=True, text=True, timeout=60, env=env)


def one_line(r: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert r.returncode == code and "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_a_mistyped_device_name_lists_the_close_names_and_asks_nobody(cfg):
    line = one_line(run("poll", "sw-core-9", "-c", str(cfg)))     # nothing is resolved or sent for a typo
    assert "no device 'sw-core-9'" in line and "sw-core-1" in line and str(cfg) in line


def test_a_host_name_and_an_oid_name_are_taken(switch):
    r = run("walk", f"localhost:{switch.port}", "--community", "names", "--oid", "sysDescr")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "1.3.6.1.2.1.1.1.0 = Test switch for names\n"
    r = run("walk", f"localhost:{switch.port}", "--community", "names", "--oid", "SNMPv2-MIB::sysName")
    assert r.stdout == "1.3.6.1.2.1.1.5.0 = sw-names\n", r.stderr


def test_the_standard_mibs_pysnmp_does_not_ship_are_named_too(switch):
    r = run("walk", f"127.0.0.1:{switch.port}", "--community", "names", "--oid", "ifXTable")
    assert r.stdout == ("1.3.6.1.2.1.31.1.1.1.1.1 = GE0/0/1\n1.3.6.1.2.1.31.1.1.1.1.2 = GE0/0/2\n"
                        "1.3.6.1.2.1.31.1.1.1.6.1 = 1234567890123\n"), r.stderr
    r = run("walk", f"127.0.0.1:{switch.port}", "--community", "names", "--oid", "IF-MIB::ifName")
    assert r.stdout == "1.3.6.1.2.1.31.1.1.1.1.1 = GE0/0/1\n1.3.6.1.2.1.31.1.1.1.1.2 = GE0/0/2\n", r.stderr


def test_an_unknown_oid_name_gives_the_close_names_and_the_way_out(switch):
    line = one_line(run("walk", f"127.0.0.1:{switch.port}", "--oid", "sysDscr"))
    assert "'sysDscr'" in line and "sysDescr" in line
    line = one_line(run("walk", f"127.0.0.1:{switch.port}", "--oid", "ifHCInOctet"))
    assert "ifHCInOctets" in line
    line = one_line(run("walk", f"127.0.0.1:{switch.port}", "--oid", "hwEntityCpuUsage"))
    assert "'hwEntityCpuUsage'" in line and "by number" in line      # a vendor MIB's names are not known


def test_without_config_the_documented_default_is_used_and_named():
    if DEFAULT_CONFIG.exists():
        pytest.skip(f"{DEFAULT_CONFIG} exists on this machine")
    line = one_line(run("diag"))
    assert str(DEFAULT_CONFIG) in line and "default" in line and "--config" in line
