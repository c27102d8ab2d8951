"""The telemetry contract: the schemas are valid, what the agent builds meets them, and what breaks them is caught."""

from __future__ import annotations

import gzip
import json

import pytest
from jsonschema import Draft202012Validator

from eduedge.agent import contract
from eduedge.agent.envelope import Envelope, compress, uuid7
from eduedge.core.samples import Sample

ENV = Envelope("test-school", "testcity", "gw-test", "0.1.0", "ab" * 16)


@pytest.mark.parametrize("name", [*contract.MESSAGE_TYPES, "cmd"])
def test_every_schema_is_a_valid_draft_2020_12_schema(name: str) -> None:
    Draft202012Validator.check_schema(contract.schema(name))


def test_asyncapi_document_names_every_message_type_and_its_schema_file() -> None:
    import yaml

    doc = yaml.safe_load((contract.HERE / "asyncapi.yaml").read_text())
    assert doc["asyncapi"].startswith("3.")
    refs = json.dumps(doc)
    for name in [*contract.MESSAGE_TYPES, "cmd"]:
        assert f"{name}.schema.json" in refs, name
        assert (contract.HERE / f"{name}.schema.json").exists()


def test_a_metrics_batch_built_by_the_envelope_is_valid() -> None:
    samples = [Sample(1.7e9, "sw-1", "if.in_bps", 1e6, "bit/s", {"interface": "Gi0/1"}).to_dict(),
               Sample(1.7e9, "sw-1", "if.oper_status", "up").to_dict()]
    msg = contract.decode(ENV.encode_batch("metrics", 42, samples))
    assert contract.problems(msg) == []
    assert msg["seq"] == 42 and msg["schema"] == {"name": "metrics", "version": 1}
    assert msg["agent"]["boot_id"] == "ab" * 16


def test_a_message_without_seq_or_with_a_bad_metric_name_is_refused() -> None:
    msg = ENV.message("metrics", 1, {"samples": [{"t": 1.0, "device": "sw", "metric": "If In", "value": 1}]})
    del msg["seq"]
    found = contract.problems(msg)
    assert any("seq" in p for p in found)
    assert any("samples.0.metric" in p for p in found)
    with pytest.raises(contract.ContractError):
        contract.validate(msg)


def test_unknown_fields_are_refused_so_both_ends_agree_on_every_field() -> None:
    msg = ENV.message("death", 3, {"bdSeq": 1, "reason": "shutdown", "extra": True})
    assert any("extra" in p for p in contract.problems(msg))


def test_gzip_payloads_decode_to_the_same_message() -> None:
    payload = ENV.encode_batch("metrics", 5, [{"t": 1.0, "device": "sw", "metric": "a.b", "value": i}
                                              for i in range(200)])
    packed = compress(payload, "gzip")
    assert packed[:2] == b"\x1f\x8b" and len(packed) < len(payload)
    assert contract.decode(packed) == json.loads(payload)
    assert compress(b'{"small":1}', "gzip") == b'{"small":1}'
    with pytest.raises(contract.ContractError):
        contract.decode(gzip.compress(b"not json"))


def test_batches_never_exceed_the_size_cap_and_keep_every_item_in_order() -> None:
    items = [{"t": 1.0, "device": "sw", "metric": "if.in_bps", "value": i, "tags": {"interface": "x" * (i % 50)}}
             for i in range(3000)]
    groups = ENV.batches(items, limit=8192)
    assert len(groups) > 5
    assert [json.loads(x)["value"] for g in groups for x in g] == list(range(3000))
    for g in groups:
        assert len(ENV.encode_batch("metrics", 2**63 - 1, g)) <= 8192


@pytest.mark.parametrize(("command", "args", "ok"), [
    ("rebirth", {}, True),
    ("run-check", {"check": "snmp:sw-core-1"}, True),
    ("set-interval", {"check": "host", "interval_s": 30}, True),
    ("run-check", {"check": "../../etc/passwd"}, False),
    ("run-check", {"check": "snmp", "shell": "rm -rf /"}, False),
    ("set-interval", {"check": "host"}, False),
    ("shell", {}, False),
])
def test_commands_are_an_allow_list_with_validated_arguments(command: str, args: dict, ok: bool) -> None:
    req = {"schema": {"name": "cmd", "version": 1}, "request_id": "r-1", "args": args}
    assert (contract.command_problems(command, req) == []) is ok


def test_message_ids_are_time_ordered_uuid7() -> None:
    ids = [uuid7(t) for t in (1.0, 1.5, 2.0)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert all(i[14] == "7" for i in ids)
