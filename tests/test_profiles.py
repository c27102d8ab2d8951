"""The profile engine: matching precedence, extends, broken files, and reading rows into samples."""

from __future__ import annotations

import asyncio
import shutil
import textwrap
from pathlib import Path

import pytest

from eduedge.collectors.snmp.poller import DevicePoller
from eduedge.collectors.snmp.profiles import (
    BUNDLED_DIR,
    ProfileError,
    load_profiles,
    match_profile,
    pattern_matches,
)
from eduedge.collectors.snmp.recording import RecordingClient


def make_dir(tmp_path: Path, files: dict[str, str], with_base: bool = True) -> Path:
    root = tmp_path / "profiles"
    (root / "base").mkdir(parents=True)
    shutil.copy(BUNDLED_DIR / "canonical-metrics.yaml", root / "canonical-metrics.yaml")
    if with_base:
        for f in (BUNDLED_DIR / "base").glob("*.yaml"):
            shutil.copy(f, root / "base" / f.name)
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


# --- patterns ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "oid", "ok"), [
    ("1.3.6.1.4.1.2011.2.23.291", "1.3.6.1.4.1.2011.2.23.291", True),
    ("1.3.6.1.4.1.2011.2.23.291", ".1.3.6.1.4.1.2011.2.23.291", True),      # recordings with a leading dot
    ("1.3.6.1.4.1.2011.**", "1.3.6.1.4.1.2011.2.23.291", True),
    ("1.3.6.1.4.1.2011.**", "1.3.6.1.4.1.2011", False),                    # ** is one or more arcs
    ("1.3.6.1.4.1.2011.**", "1.3.6.1.4.1.20110.1", False),                 # not a string prefix
    ("1.3.6.1.4.1.9.1.*", "1.3.6.1.4.1.9.1.2494", True),
    ("1.3.6.1.4.1.9.1.*", "1.3.6.1.4.1.9.1.2494.1", False),                # * is exactly one arc
    ("1.3.6.1.4.1.*.1.1", "1.3.6.1.4.1.318.1.1", True),
])
def test_sysobjectid_patterns_are_arc_aware(pattern, oid, ok):
    assert pattern_matches(pattern, oid) is ok


# --- precedence ---------------------------------------------------------------------------------------

PRECEDENCE = {
    "acme/acme-family.yaml": """
        vendor: Acme
        extends: [_system]
        match: {sysobjectid: ["1.3.6.1.4.1.99999.**"]}
    """,
    "acme/acme-exact.yaml": """
        vendor: Acme
        extends: [_system]
        match: {sysobjectid: ["1.3.6.1.4.1.99999.1.7"]}
    """,
    "acme/acme-ap.yaml": """
        vendor: Acme
        device_class: wifi_ap
        extends: [_system]
        match: {sysobjectid: ["1.3.6.1.4.1.99999.**"], sysdescr: ["^AcmeAP"]}
    """,
    "acme/acme-lab.yaml": """
        vendor: Acme
        extends: [_system]
        match: {sysobjectid: ["1.3.6.1.4.1.99999.**"], exclude_sysdescr: ["."], sysdescr: ["lab"]}
    """,
}


def test_most_specific_pattern_wins(tmp_path):
    ps = load_profiles(bundled_dir=make_dir(tmp_path, PRECEDENCE))
    assert ps.errors == []
    assert match_profile(ps, "1.3.6.1.4.1.99999.1.7", "Acme switch").profile.name == "acme-exact"
    assert match_profile(ps, "1.3.6.1.4.1.99999.1.8", "Acme switch").profile.name == "acme-family"


def test_a_sysdescr_rule_beats_the_same_pattern_without_one(tmp_path):
    ps = load_profiles(bundled_dir=make_dir(tmp_path, PRECEDENCE))
    m = match_profile(ps, "1.3.6.1.4.1.99999.3", "AcmeAP 6.1")
    assert m.profile.name == "acme-ap"
    assert m.sysdescr_rule == "^AcmeAP"
    assert "sysDescr matches" in m.reason and "1.3.6.1.4.1.99999.**" in m.reason


def test_exclusions_remove_a_candidate(tmp_path):
    ps = load_profiles(bundled_dir=make_dir(tmp_path, PRECEDENCE))
    assert match_profile(ps, "1.3.6.1.4.1.99999.3", "lab box").profile.name == "acme-family"


def test_no_match_falls_back_to_generic(tmp_path):
    ps = load_profiles(bundled_dir=make_dir(tmp_path, PRECEDENCE))
    m = match_profile(ps, "1.3.6.1.4.1.12345.1", "something")
    assert m.profile.name == "generic"
    assert "no profile matches" in m.reason


def test_priority_breaks_a_tie(tmp_path):
    files = {
        "x/one.yaml": "match: {sysobjectid: ['1.3.6.1.4.1.77.1']}\n",
        "x/two.yaml": "priority: 5\nmatch: {sysobjectid: ['1.3.6.1.4.1.77.1']}\n",
    }
    ps = load_profiles(bundled_dir=make_dir(tmp_path, files))
    assert ps.errors == []
    assert match_profile(ps, "1.3.6.1.4.1.77.1", "").profile.name == "two"


def test_two_bundled_profiles_with_one_pattern_are_a_load_error(tmp_path):
    files = {
        "x/one.yaml": "match: {sysobjectid: ['1.3.6.1.4.1.77.1']}\n",
        "y/two.yaml": "match: {sysobjectid: ['1.3.6.1.4.1.77.1']}\n",
    }
    ps = load_profiles(bundled_dir=make_dir(tmp_path, files))
    assert len(ps.errors) == 1
    assert "two.yaml" in ps.errors[0] and "one.yaml" in ps.errors[0]
    assert "one" in ps.profiles and "two" not in ps.profiles


def test_a_probe_that_answers_tells_apart_profiles_that_share_a_sysobjectid(tmp_path):
    files = {
        "x/controller.yaml": "match: {sysobjectid: ['1.3.6.1.4.1.77.5.**']}\n",
        "x/cluster.yaml": "match: {sysobjectid: ['1.3.6.1.4.1.77.5.**'], probe: ['1.3.6.1.4.1.77.15.1']}\n",
    }
    ps = load_profiles(bundled_dir=make_dir(tmp_path, files))
    assert ps.errors == []
    assert ps.match_probes("1.3.6.1.4.1.77.5.15", "") == ["1.3.6.1.4.1.77.15.1"]
    assert ps.match_probes("1.3.6.1.4.1.78.1", "") == []            # only the profiles the device could be
    assert match_profile(ps, "1.3.6.1.4.1.77.5.15", "").profile.name == "controller"
    m = match_profile(ps, "1.3.6.1.4.1.77.5.15", "", answered={"1.3.6.1.4.1.77.15.1"})
    assert m.profile.name == "cluster" and "answers under 1.3.6.1.4.1.77.15.1" in m.reason


def test_two_profiles_with_one_pattern_and_one_probe_are_still_a_load_error(tmp_path):
    files = {
        "x/one.yaml": "match: {sysobjectid: ['1.3.6.1.4.1.77.1'], probe: ['1.3.6.1.4.1.77.9']}\n",
        "y/two.yaml": "match: {sysobjectid: ['1.3.6.1.4.1.77.1'], probe: ['1.3.6.1.4.1.77.9']}\n",
    }
    ps = load_profiles(bundled_dir=make_dir(tmp_path, files))
    assert len(ps.errors) == 1 and "probes" in ps.errors[0]
    assert "one" in ps.profiles and "two" not in ps.profiles


# --- extends ------------------------------------------------------------------------------------------

def test_extends_appends_metrics_and_child_identity_wins(tmp_path):
    files = {
        "x/_mix.yaml": """
            identity:
              model: [{value: from-mixin}]
              serial: [{value: S1}]
            metrics:
              - {name: device.cpu_percent, unit: percent, scalar: 1.3.6.1.4.1.77.1.0}
        """,
        "x/child.yaml": """
            extends: [_system, _mix]
            identity:
              model: [{value: from-child}]
            match: {sysobjectid: ['1.3.6.1.4.1.77.**']}
        """,
    }
    ps = load_profiles(bundled_dir=make_dir(tmp_path, files))
    p = ps.get("child")
    assert [m.name for m in p.metrics] == ["device.uptime_s", "device.cpu_percent"]
    assert p.identity["model"][0].value == "from-child"
    assert p.identity["serial"][0].value == "S1"
    assert p.lineage == ["_system", "_mix"]


def test_redefining_a_base_metric_needs_replace(tmp_path):
    files = {
        "x/bad.yaml": """
            extends: [_system]
            metrics: [{name: device.uptime_s, unit: s, scalar: 1.3.6.1.6.3.10.2.1.3.0}]
        """,
        "x/good.yaml": """
            extends: [_system]
            metrics: [{name: device.uptime_s, unit: s, scalar: 1.3.6.1.6.3.10.2.1.3.0, replace: true}]
        """,
    }
    ps = load_profiles(bundled_dir=make_dir(tmp_path, files))
    assert any("bad.yaml" in e and "replace: true" in e for e in ps.errors)
    assert [m.scalar for m in ps.get("good").metrics] == ["1.3.6.1.6.3.10.2.1.3.0"]


def test_cyclic_and_unknown_extends_are_refused(tmp_path):
    files = {
        "x/_a.yaml": "extends: [_b]\n",
        "x/_b.yaml": "extends: [_a]\n",
        "x/c.yaml": "extends: [_a]\nmatch: {sysobjectid: ['1.3.6.1.4.1.77.1']}\n",
        "x/d.yaml": "extends: [_nope]\nmatch: {sysobjectid: ['1.3.6.1.4.1.77.2']}\n",
    }
    ps = load_profiles(bundled_dir=make_dir(tmp_path, files))
    text = "\n".join(ps.errors)
    assert "cyclic extends" in text and "c.yaml" in text
    assert "unknown profile '_nope'" in text and "d.yaml" in text


# --- broken files -------------------------------------------------------------------------------------

def test_broken_profiles_are_refused_with_file_line_and_key_and_the_rest_load(tmp_path):
    files = {
        "x/typo.yaml": """
            vendor: Acme
            match: {sysobjectid: ['1.3.6.1.4.1.77.1']}
            metrics:
              - name: device.cpu_percent
                unit: percent
                scalr: 1.3.6.1.4.1.77.5.0
        """,
        "x/syntax.yaml": "match: {sysobjectid: ['1.3.6.1.4.1.77.2'\n",
        "x/badoid.yaml": "match: {sysobjectid: ['1.3.6.x.4']}\n",
        "x/unit.yaml": """
            match: {sysobjectid: ['1.3.6.1.4.1.77.4']}
            metrics: [{name: device.cpu_percent, unit: '%', scalar: 1.3.6.1.4.1.77.5.0}]
        """,
        "x/fine.yaml": "extends: [_system]\nmatch: {sysobjectid: ['1.3.6.1.4.1.77.9']}\n",
    }
    ps = load_profiles(bundled_dir=make_dir(tmp_path, files))
    errs = "\n".join(ps.errors)
    assert "typo.yaml:7: metrics[0].scalr: unknown field" in errs
    assert "syntax.yaml:2" in errs and "not valid YAML" in errs
    assert "badoid.yaml:1: match.sysobjectid" in errs
    assert "unit.yaml" in errs and "must have unit 'percent'" in errs
    assert {"typo", "syntax", "badoid", "unit"}.isdisjoint(ps.profiles)
    assert "fine" in ps.profiles and "generic" in ps.profiles


def test_a_counter_without_its_bit_width_is_refused(tmp_path):
    files = {"x/c.yaml": """
        match: {sysobjectid: ['1.3.6.1.4.1.77.1']}
        metrics: [{name: if.in_octets, kind: counter, unit: bytes, column: 1.3.6.1.2.1.2.2.1.10}]
    """}
    ps = load_profiles(bundled_dir=make_dir(tmp_path, files))
    assert any("bits: 32" in e for e in ps.errors)


def test_site_profiles_replace_bundled_ones_only_when_they_say_so(tmp_path):
    root = make_dir(tmp_path, {"x/acme.yaml": "vendor: Acme\nmatch: {sysobjectid: ['1.3.6.1.4.1.77.1']}\n"})
    site = tmp_path / "site"
    site.mkdir()
    (site / "acme.yaml").write_text("vendor: Rogue\nmatch: {sysobjectid: ['1.3.6.1.4.1.77.1']}\n")
    ps = load_profiles([site], bundled_dir=root)
    assert ps.get("acme").vendor == "Acme"
    assert any("overrides: acme" in e for e in ps.errors)

    (site / "acme.yaml").write_text("overrides: acme\nvendor: Local\nmatch: {sysobjectid: ['1.3.6.1.4.1.77.1']}\n")
    ps = load_profiles([site], bundled_dir=root)
    assert ps.errors == []
    assert ps.get("acme").vendor == "Local" and not ps.get("acme").bundled


def test_the_bundled_profiles_all_load():
    ps = load_profiles()
    assert ps.errors == []
    assert "generic" in ps.profiles


# --- reading a device through a profile ---------------------------------------------------------------

RECORDING = """\
1.3.6.1.2.1.1.1.0|4x|4163 6d65 2058 3130 0d0a 5665 7273 696f 6e20 372e 31
1.3.6.1.2.1.1.2.0|6|.1.3.6.1.4.1.77.3
1.3.6.1.2.1.1.3.0|67|500
1.3.6.1.2.1.1.5.0|4|sw-test
1.3.6.1.2.1.2.2.1.2.1|4|port one
1.3.6.1.2.1.2.2.1.2.2|4|port two
1.3.6.1.2.1.2.2.1.8.1|2|1
1.3.6.1.2.1.2.2.1.8.2|2|7
1.3.6.1.2.1.2.2.1.10.1|65|1000
1.3.6.1.2.1.2.2.1.10.2|65|2000
1.3.6.1.2.1.47.1.1.1.1.5.1|2|10
1.3.6.1.2.1.47.1.1.1.1.5.2|2|3
1.3.6.1.2.1.47.1.1.1.1.11.1|4|NOT-THE-CHASSIS
1.3.6.1.2.1.47.1.1.1.1.11.2|4|CHASSIS-SERIAL
1.3.6.1.4.1.77.9.1.2.1|4|cpu0
1.3.6.1.4.1.77.9.1.3.1.5|66|42
1.3.6.1.4.1.77.9.1.3.1.6|66|0
1.3.6.1.4.1.77.9.1.4.1|4|temp 47.5 C
"""

ACME = {"acme/acme.yaml": """
    vendor: Acme
    extends: [_system]
    match: {sysobjectid: ['1.3.6.1.4.1.77.**']}
    identity:
      model: [{oid: 1.3.6.1.2.1.1.1.0, regex: '^Acme (\\S+)'}]
      os_version: [{oid: 1.3.6.1.2.1.1.1.0, regex: 'Version ([\\d.]+)'}]
      serial: [{oid: 1.3.6.1.2.1.47.1.1.1.1.11, where: {oid: 1.3.6.1.2.1.47.1.1.1.1.5, equals: 3}}]
    metrics:
      - name: if.oper_status
        kind: state
        unit: state
        column: 1.3.6.1.2.1.2.2.1.8
        mapping: {1: up, 2: down, 7: lower_layer_down}
        tags:
          - {tag: if_index, index: 1}
          - {tag: interface, column: 1.3.6.1.2.1.31.1.1.1.1, fallback: [1.3.6.1.2.1.2.2.1.2]}
      - name: if.in_octets
        kind: counter
        bits: 64
        unit: bytes
        column: 1.3.6.1.2.1.31.1.1.1.6
        fallback: [{oid: 1.3.6.1.2.1.2.2.1.10, bits: 32}]
        rate: {name: if.in_bps, unit: bit/s, scale: 8}
        tags: [{tag: if_index, index: 1}]
      - name: device.cpu_percent
        unit: percent
        column: 1.3.6.1.4.1.77.9.1.3
        skip_values: [0]
        tags:
          - {tag: cpu, column: 1.3.6.1.4.1.77.9.1.2, index_transform: [1, 1]}
          - {tag: core, index: 2}
      - name: device.temperature_c
        unit: celsius
        scalar: 1.3.6.1.4.1.77.9.1.4.1
        regex: '([\\d.]+)\\s*C'
"""}


def test_a_recording_is_read_through_its_profile(tmp_path):
    ps = load_profiles(bundled_dir=make_dir(tmp_path, ACME))
    rec = tmp_path / "acme.snmprec"
    rec.write_text(RECORDING)
    poller = DevicePoller(RecordingClient(rec), ps)
    result = asyncio.run(poller.poll())
    assert result.errors == []
    ident = result.identity
    assert (ident.profile, ident.vendor, ident.model, ident.os_version) == ("acme", "Acme", "X10", "7.1")
    assert ident.serial == "CHASSIS-SERIAL"            # the chassis row (entPhysicalClass 3), not row 1
    assert ident.hostname == "sw-test"
    by = {(s.metric, s.tags.get("if_index") or s.tags.get("core", "")): s for s in result.samples}
    assert by[("if.oper_status", "1")].value == "up"
    assert by[("if.oper_status", "2")].value == "lower_layer_down"
    assert by[("if.oper_status", "1")].tags["interface"] == "port one"    # ifName absent: ifDescr
    assert by[("device.cpu_percent", "5")].value == 42
    assert by[("device.cpu_percent", "5")].tags["cpu"] == "cpu0"          # joined through index_transform
    assert ("device.cpu_percent", "6") not in by                            # skip_values
    assert by[("device.temperature_c", "")].value == 47.5
    assert by[("device.uptime_s", "")].value == 5.0
    # a counter gives no rate on the first poll, and the 32-bit fallback column was chosen
    assert not any(s.metric == "if.in_bps" for s in result.samples)

    rec.write_text(RECORDING.replace("1.3.6.1.2.1.1.3.0|67|500", "1.3.6.1.2.1.1.3.0|67|6500")
                   .replace("10.1|65|1000", "10.1|65|76000"))
    poller.client = RecordingClient(rec)
    second = asyncio.run(poller.poll())
    rates = {s.tags["if_index"]: s.value for s in second.samples if s.metric == "if.in_bps"}
    assert rates["2"] == 0.0
    assert rates["1"] > 0


def test_a_forced_profile_that_does_not_exist_is_an_error_naming_it(tmp_path):
    ps = load_profiles(bundled_dir=make_dir(tmp_path, ACME))
    with pytest.raises(ProfileError, match="no profile named 'nope'"):
        ps.get("nope")
