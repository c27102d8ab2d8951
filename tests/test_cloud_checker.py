"""The receiver's checks: the compiled validators agree with the agent's own (jsonschema) on every message type,
and bad input is refused with its reason: malformed, wrong version, wrong school, oversized, gzip bombs."""

from __future__ import annotations

import copy
import gzip
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from eduedge.agent import contract
from eduedge.agent.envelope import Envelope
from eduedge.cloud.checker import Accepted, Checker, Rejected
from eduedge.cloud.config import CloudConfigError, load_cloud_config
from tests.contract_helpers import problems as contract_problems

ENV = Envelope("no3-primary", "yinchuan", "gw1", "0.1.0", uuid.uuid4().hex)
T = 1_800_000_000.0


def valid_messages() -> dict[str, dict[str, Any]]:
    device = {"device": "core", "collector": "snmp", "identity": {"vendor": "h3c", "model": None}}
    bodies = {
        "birth": {"bdSeq": 3, "school_info": {"name": "No. 3", "type": "primary"}, "config_digest": "a" * 16,
                  "collectors": [{"name": "snmp", "interval_s": 60}], "devices": [device], "commands": ["rebirth"],
                  "outbox": {"rows": 1, "bytes": 10, "oldest": None}},
        "death": {"bdSeq": 3, "reason": "connection_lost"},
        "metrics": {"samples": [{"t": T, "device": "core", "metric": "if.in_bps", "value": 1.5, "unit": "bit/s",
                                 "tags": {"interface": "Gi0/1"}}, {"t": T, "device": "core",
                                                                  "metric": "if.oper_status", "value": "up"}]},
        "findings": {"findings": [{"t": T, "rule": "hebei-2019.egress", "subject": "no3-primary", "status": "fail",
                                   "value": 42, "threshold": 100, "unit": "Mbit/s", "evidence": {"why": "slow"}}]},
        "inventory": {"scope": "discovered", "devices": [{"device": "p-0123456789abcdef", "collector": "discovery",
                                                          "change": "appeared", "class": "learning", "personal": True,
                                                          "last_seen": T}]},
        "events": {"events": [{"t": T, "kind": "device.unreachable", "severity": "warning", "message": "core down",
                               "device": "core"}]},
        "cmd-result": {"request_id": "r-1", "command": "rebirth", "status": "ok", "result": {}},
        "gap": {"dropped": "metrics", "reason": "disk_budget", "messages": 2, "samples": 9, "seqs": [[4, 5]],
                "first_time": T, "last_time": T},
    }
    return {k: ENV.message(k, 7, b, now=T) for k, b in bodies.items()}


def broken(msgs: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Each valid message spoiled in a few ways the schemas forbid."""
    out = []
    for kind, m in msgs.items():
        for spoil in ("extra", "no-id", "seq", "agent", "city"):
            b = copy.deepcopy(m)
            if spoil == "extra":
                b["surprise"] = 1
            elif spoil == "no-id":
                del b["id"]
            elif spoil == "seq":
                b["seq"] = -1 if kind in ("birth", "death") else 0   # births and deaths carry 0; data from 1
            elif spoil == "agent":
                b["agent"]["boot_id"] = "xyz"
            else:
                b["school"]["city"] = "Not A Slug"
            out.append((kind, b))
    m = copy.deepcopy(msgs["metrics"])
    m["samples"][0]["value"] = None
    out.append(("metrics", m))
    m = copy.deepcopy(msgs["inventory"])
    m["devices"][0]["mac"] = "aa:bb:cc:dd:ee:ff"        # a personal device never carries its MAC
    out.append(("inventory", m))
    m = copy.deepcopy(msgs["gap"])
    m["seqs"] = [[1, "two"]]
    out.append(("gap", m))
    return out


def test_the_compiled_validators_agree_with_the_agents_jsonschema_on_every_type():
    c = Checker(1 << 20)
    msgs = valid_messages()
    assert sorted(msgs) == sorted(contract.MESSAGE_TYPES)
    for kind, m in msgs.items():
        assert contract.problems(m) == [], kind
        got = c.check(f"edu/v1/yinchuan/no3-primary/{kind}", json.dumps(m).encode())
        assert isinstance(got, Accepted) and got.kind == kind, got
    spoilt = broken(msgs)
    for kind, m in spoilt:
        assert contract.problems(m), (kind, m)
        got = c.check(f"edu/v1/{m['school']['city']}/no3-primary/{kind}", json.dumps(m).encode())
        assert isinstance(got, Rejected) and got.reason == "schema", (kind, got)


def test_the_tests_own_contract_check_takes_every_valid_message_and_refuses_every_broken_one():
    """tests/contract_helpers.problems, which the tests' receivers run on everything they see, as the city does."""
    for kind, m in valid_messages().items():
        assert contract_problems(m) == [], kind
    for kind, m in broken(valid_messages()):
        assert contract_problems(m), (kind, m)
    assert contract_problems([]) == ["(message): not a JSON object"]


def test_bad_input_is_refused_with_its_reason():
    c = Checker(64 * 1024)
    m = valid_messages()["metrics"]
    ok = json.dumps(m).encode()
    v2 = json.dumps({**m, "schema": {"name": "metrics", "version": 2}}).encode()
    other = json.dumps({**m, "school": {"id": "no5-primary", "city": "yinchuan"}}).encode()
    huge = json.dumps({**m, "samples": m["samples"] * 2000}).encode()
    bomb = gzip.compress(b'{"a": "' + b"0" * 10_000_000 + b'"}')
    cases = {
        ("edu/v1/yinchuan/no3-primary/metrics", b"{not json"): "malformed",
        ("edu/v1/yinchuan/no3-primary/metrics", b"\x1f\x8b\x08garbage"): "malformed",
        ("edu/v1/yinchuan/no3-primary/metrics", b"[1, 2]"): "malformed",
        ("edu/v1/yinchuan/no3-primary/metrics", v2): "version",
        ("edu/v1/yinchuan/no3-primary/metrics", other): "mismatch",         # no5 publishing as ... no3's topic
        ("edu/v1/yinchuan/no3-primary/findings", ok): "mismatch",           # metrics on the findings topic
        ("edu/v1/hangzhou/no3-primary/metrics", ok): "mismatch",
        ("edu/v1/yinchuan/no3-primary/metrics", huge): "oversized",
        ("edu/v1/yinchuan/no3-primary/metrics", bomb): "oversized",
        ("edu/v1/yinchuan/no3-primary/shell", ok): "topic",
        ("edu/v2/yinchuan/no3-primary/metrics", ok): "topic",
        ("edu/v1/yinchuan/no3-primary/metrics/extra", ok): "topic",
    }
    for (topic, payload), reason in cases.items():
        got = c.check(topic, payload)
        assert isinstance(got, Rejected) and got.reason == reason, (topic, payload[:40], got)
    assert len(bomb) < 64 * 1024                                   # small on the wire, refused once it grows
    zipped = c.check("edu/v1/yinchuan/no3-primary/metrics", gzip.compress(ok))
    assert isinstance(zipped, Accepted) and zipped.msg == m


def test_the_example_configuration_loads_and_bad_ones_say_file_and_line(tmp_path):
    cfg = load_cloud_config(Path(__file__).resolve().parents[1] / "eduedge" / "config" / "cloud-example.yaml")
    assert cfg.storage.engine == "sqlite" and cfg.ingest.batch_seconds == 0.05 and len(cfg.schools) == 2
    bad = tmp_path / "cloud.yaml"
    bad.write_text("mqtt:\n  broker: 127.0.0.1\n  group: 'a/b'\nstorage:\n  engine: postgresql\n"
                   "retention:\n  raw: 30d\n  rollups: 7d\n")
    with pytest.raises(CloudConfigError) as e:
        load_cloud_config(bad)
    assert e.value.problems == [
        f"{bad}:3: mqtt.group: String should match pattern '^[A-Za-z0-9_.-]*$'",
        f"{bad}:4: storage: Value error, postgresql storage needs `dsn` (e.g. 'host=db.city port=5432 "
        f"dbname=eduedge user=cloud')",
        f"{bad}:6: retention: Value error, `rollups` (how long downsampled data is kept) must be 0 or at least `raw`"]
    bad.write_text("mqtt: {broker: 127.0.0.1}\nstorage: {path: x.db}\nstandards:\n  packs: [hebei-2019, nope-2000]\n")
    with pytest.raises(CloudConfigError) as e:
        load_cloud_config(bad)
    assert e.value.problems[0].startswith(f"{bad}:4: standards.packs[1]: no rule pack 'nope-2000'")
    bad.write_text("mqtt: {broker: 127.0.0.1}\nstorage: {path: x.db}\nschools:\n  - {id: x1, city: c1}\n"
                   "  - {id: x1, city: c1}\n")
    with pytest.raises(CloudConfigError) as e:
        load_cloud_config(bad)
    assert e.value.problems == [f"{bad}:3: schools: Value error, listed twice: x1"]
