"""Configuration: the example is valid, and every mistake is named with its file, line and field."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from eduedge.agent.cli.config import check_config
from eduedge.agent.config import ConfigError, load_config
from eduedge.core.model import parse_duration, parse_size
from eduedge.core.netaddr import split_host_port
from eduedge.core.secrets import Secret, SecretError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "eduedge" / "config" / "example-school.yaml"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "eduedge.yaml"
    p.write_text(text, encoding="utf-8")
    return p


GOOD = """\
school:
  id: demo-school
  name: Demo
  city: yinchuan
  type: primary
snmp:
  credentials:
    lab: {version: 2c, community: {env: LAB_COMMUNITY}}
  devices:
    - {name: sw1, host: "127.0.0.1:1161", credentials: lab}
"""


def test_the_example_configuration_is_valid():
    cfg = load_config(EXAMPLE)
    assert cfg.school.type == "primary"
    assert {d.name for d in cfg.snmp.devices} >= {"sw-core-1", "ac-1"}
    assert cfg.snmp.credentials["campus-v3"].priv_proto == "AES"
    assert cfg.mqtt is not None and cfg.mqtt.max_message_bytes == 256 * 1024
    assert cfg.outbox.max_bytes == 512 * 2**20 and cfg.outbox.synchronous == "full"
    assert cfg.commands.interval_max == 3600


def test_durations_accept_units():
    assert parse_duration("90s") == 90 and parse_duration("1h") == 3600 and parse_duration(5) == 5
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_BYTES = {"kB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def _strings(node: object) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def test_every_duration_and_size_the_shipped_files_write_reads_as_it_means():
    """The parsing is a library's (pytimeparse2, pydantic.ByteSize): each `NUMBER UNIT` written in a shipped
    configuration, rule pack, campus or profile reads as the unit says."""
    seen: dict[str, str] = {}
    for path in sorted((REPO / "eduedge").rglob("*.yaml")):
        for text in _strings(yaml.safe_load(path.read_text(encoding="utf-8"))):
            if m := re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text):
                assert parse_duration(text) == pytest.approx(float(m[1]) * _SECONDS[m[2]]), (path, text)
                seen[text] = "duration"
            elif m := re.fullmatch(r"(\d+)(kB|MB|GB|KiB|MiB|GiB)", text):
                assert parse_size(text) == int(m[1]) * _BYTES[m[2]], (path, text)
                seen[text] = "size"
    assert {"50ms", "1.5s", "5m", "1h", "1d", "30d"} <= seen.keys() and "512MiB" in seen   # the walk saw them


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("500ms", 0.5), ("5m", 300), ("1h", 3600), ("1d", 86400),
                                               ("2.5s", 2.5), ("90", 90), (5, 5), (2.5, 2.5), ("1h30m", 5400)])
def test_duration_forms(text, seconds):
    assert parse_duration(text) == seconds and isinstance(parse_duration(text), float)


@pytest.mark.parametrize("bad", ["soon", "", "-1h", "5 parsecs", True, None])
def test_what_is_not_a_duration_is_refused(bad):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(("text", "size"), [("512MB", 512 * 10**6), ("2GiB", 2 * 2**30), ("64kB", 64000),
                                            ("64KiB", 65536), (" 4 GB ", 4 * 10**9), ("1048576", 2**20), (1000, 1000)])
def test_size_forms(text, size):
    assert parse_size(text) == size and type(parse_size(text)) is int


@pytest.mark.parametrize("bad", ["lots", "", "-5", "5 parsecs", 1.5, True])
def test_what_is_not_a_size_is_refused(bad):
    with pytest.raises(ValueError, match="size"):
        parse_size(bad)


def test_a_bad_size_or_duration_names_file_line_and_field(tmp_path):
    path = write(tmp_path, GOOD + "outbox: {max_bytes: lots, min_free_bytes: 64MiB}\n"
                                  "commands: {interval_max: 1 fortnight}\n")
    text = "\n".join(check_config(path))
    assert f"{path}:11: outbox.max_bytes:" in text and "'lots' is not a size (use e.g. 65536, 64kB" in text
    assert f"{path}:12: commands.interval_max:" in text and "'1 fortnight' is not a duration" in text
    assert "min_free_bytes" not in text


def test_host_port_forms():
    assert split_host_port("10.0.0.1") == ("10.0.0.1", 161)
    assert split_host_port("[::1]:1161") == ("::1", 1161)
    with pytest.raises(ValueError):
        split_host_port("10.0.0.1:99999")


def test_every_error_names_file_line_and_field(tmp_path):
    bad = GOOD.replace("type: primary", "type: university").replace(
        'host: "127.0.0.1:1161"', 'hots: "127.0.0.1:1161"') + "  defaults: {timeout: soon}\n"
    path = write(tmp_path, bad)
    problems = check_config(path)
    text = "\n".join(problems)
    assert f"{path}:5: school.type:" in text
    assert f"{path}:10: snmp.devices[0].hots: unknown field (a typo?)" in text
    assert f"{path}:10: snmp.devices[0].host: required field is missing" in text
    assert f"{path}:11: snmp.defaults.timeout:" in text and "not a duration" in text


def test_undefined_credentials_are_named(tmp_path):
    path = write(tmp_path, GOOD.replace("credentials: lab}", "credentials: nope}"))
    (line,) = check_config(path)
    assert "credentials 'nope' are not defined" in line and "(lab)" in line and "sw1" in line


def test_yaml_syntax_errors_point_at_the_line(tmp_path):
    path = write(tmp_path, GOOD.replace("  name: Demo", "  name: [Demo"))
    (line,) = check_config(path)
    assert line.startswith(f"{path}:") and "not valid YAML" in line


def test_a_missing_file_is_one_clear_line(tmp_path):
    (line,) = check_config(tmp_path / "nope.yaml")
    assert "nope.yaml: cannot read" in line


def test_v3_credentials_must_be_complete(tmp_path):
    text = GOOD.replace("{version: 2c, community: {env: LAB_COMMUNITY}}",
                        "{version: 3, user: u, priv_proto: AES, priv_key: {env: K}}")
    (line,) = check_config(write(tmp_path, text))
    assert "snmp.credentials.lab" in line and "needs authentication" in line


def test_secrets_come_from_files_or_env_and_errors_never_show_them(tmp_path, monkeypatch):
    f = tmp_path / "community"
    f.write_text("s3cret\n")
    assert Secret(file=f).read("x") == "s3cret"
    monkeypatch.setenv("EDU_TEST_SECRET", "hunter2")
    assert Secret(env="EDU_TEST_SECRET").read("x") == "hunter2"
    with pytest.raises(SecretError, match="EDU_TEST_MISSING is not set"):
        Secret(env="EDU_TEST_MISSING").read("credentials lab: community")
    with pytest.raises(SecretError) as e:
        Secret(file=tmp_path / "absent").read("credentials lab: community")
    assert "credentials lab: community" in str(e.value)


def test_config_check_command_exits_2_and_prints_to_stderr(tmp_path):
    path = write(tmp_path, GOOD.replace("city: yinchuan", "city: Yin Chuan"))
    eduedge = Path(sys.executable).with_name("eduedge")
    run = subprocess.run([str(eduedge), "config", "check", str(path)], capture_output=True, text=True)
    assert run.returncode == 2
    assert f"{path}:4: school.city:" in run.stderr
    ok = subprocess.run([str(eduedge), "config", "check", "--file-only", str(EXAMPLE)], capture_output=True,
                        text=True)
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout
    # On this machine the example's secrets and certificates are not there: `run` would not start, nor does check.
    here = subprocess.run([str(eduedge), "config", "check", str(EXAMPLE)], capture_output=True, text=True)
    assert here.returncode == 2 and "mqtt.tls.ca_file: cannot read /etc/eduedge/tls/city-ca.crt" in here.stderr


def test_load_config_raises_a_config_error_with_all_problems(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "school: {}\n"))
    assert len(e.value.problems) == 4      # id, name, city, type
