"""The profile keys that real devices needed (where, denominator, via, saturated_at, tag_overrides,
unverified): refused when malformed, with the file and key named, and resolved through `extends` as the
README says. What they do to readings is proven on the recordings in test_realdevices.py."""

from __future__ import annotations

import asyncio
import shutil
import textwrap
from pathlib import Path

import pytest

from eduedge.collectors.snmp.poller import DevicePoller
from eduedge.collectors.snmp.profiles import BUNDLED_DIR, load_profiles
from eduedge.collectors.snmp.recording import RecordingClient

IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"


def bundle(tmp_path: Path, **files: str) -> Path:
    """A profile directory with the canonical names, the base mixins and `files` (name -> YAML)."""
    root = tmp_path / "profiles"
    shutil.copytree(BUNDLED_DIR / "base", root / "base")
    shutil.copy(BUNDLED_DIR / "canonical-metrics.yaml", root)
    (root / "acme").mkdir()
    for name, text in files.items():
        (root / "acme" / f"{name}.yaml").write_text(textwrap.dedent(text))
    return root


CPU = """
    extends: [_system]
    match: {sysobjectid: ['1.3.6.1.4.1.77.**']}
    metrics:
      - name: device.cpu_percent
        unit: percent
        column: 1.3.6.1.4.1.77.1.5
        %s
"""


@pytest.mark.parametrize(("line", "complaint"), [
    ("where: {oid: 1.3.6.1.4.1.77.1.9}", "give exactly one of `equals`, `one_of`, `not_in` or `same_as`"),
    ("where: {oid: 1.3.6.1.4.1.77.1.9, equals: 3, not_in: [0]}", "give exactly one of"),
    ("where: {oid: 1.3.6.1.4.1.77.1.9, same_as: 1.3.6.1.4.1.77.2.0}", "picks an identity row"),
    ("denominator: [not-an-oid]", "is not a numeric OID"),
    ("tags: [{tag: x, column: 1.3.6.1.4.1.77.1.2, via: 1.3.6.1.4.1.77.1.3, index_transform: [1, 1]}]",
     "at most one of `via` or `index_transform`"),
])
def test_malformed_new_keys_are_refused_naming_file_and_key(tmp_path, line, complaint):
    ps = load_profiles(bundled_dir=bundle(tmp_path, acme=CPU % line))
    assert "acme" not in ps.profiles
    assert any("acme.yaml:" in e and complaint in e for e in ps.errors), ps.errors


def test_a_scalar_cannot_select_rows(tmp_path):
    text = """
        match: {sysobjectid: ['1.3.6.1.4.1.77.**']}
        metrics:
          - {name: device.cpu_percent, unit: percent, scalar: 1.3.6.1.4.1.77.1.0,
             where: {oid: 1.3.6.1.4.1.77.2, equals: 1}}
    """
    ps = load_profiles(bundled_dir=bundle(tmp_path, acme=text))
    assert any("a scalar has none" in e for e in ps.errors), ps.errors


def test_a_scalar_divided_by_other_scalars(tmp_path):
    # memory in use from free and total, as AIRESPACE's agentFreeMemory / agentTotalMemory give it
    text = """
        match: {sysobjectid: ['1.3.6.1.4.1.77.**']}
        extends: [_system]
        metrics:
          - {name: device.memory_percent, unit: percent, scalar: 1.3.6.1.4.1.77.3.0,
             denominator: [1.3.6.1.4.1.77.2.0], scale: -100, offset: 100}
    """
    ps = load_profiles(bundled_dir=bundle(tmp_path, acme=text))
    assert ps.errors == []
    rec = tmp_path / "d.snmprec"
    rec.write_text("1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.77.1\n1.3.6.1.4.1.77.2.0|2|8192\n1.3.6.1.4.1.77.3.0|2|432\n")
    poll = asyncio.run(DevicePoller(RecordingClient(rec), ps).poll())
    assert [round(s.value, 2) for s in poll.samples if s.metric == "device.memory_percent"] == [94.73]


def test_tag_overrides_reach_inherited_metrics_and_origins_name_the_defining_file(tmp_path):
    root = bundle(tmp_path, **{
        "_acme": CPU % "unverified: from ACME-MIB; no recording",
        "acme-quirky": f"""
            extends: [_acme, _if-mib]
            match: {{sysobjectid: ['1.3.6.1.4.1.77.9.**']}}
            tag_overrides:
              - {{tag: interface, column: {IF_NAME}, regex: '^(\\S+)'}}
        """})
    ps = load_profiles(bundled_dir=root)
    assert ps.errors == []
    p = ps.get("acme-quirky")
    oper = next(m for m in p.metrics if m.name == "if.oper_status")
    assert next(t for t in oper.tags if t.tag == "interface").regex == r"^(\S+)"
    assert next(t for t in oper.tags if t.tag == "if_index").index == 1          # the others are kept
    cpu = next(m for m in p.metrics if m.name == "device.cpu_percent")
    assert (p.origin[cpu.key], p.origin[oper.key]) == ("_acme", "_if-mib")
    assert cpu.unverified == "from ACME-MIB; no recording"
    assert ps.get("_if-mib").metrics[0].tags != oper.tags                           # the mixin is untouched
