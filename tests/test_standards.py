"""The rule packs: every rule of STANDARDS.md is there, quoted from its source, proposals say so, and a
broken pack is refused with its file, line and field. `eduedge rules` lists them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from eduedge.agent.compliance import PackError, load_pack, load_packs, pack_paths
from eduedge.agent.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]
EDUEDGE = str(Path(sys.executable).with_name("eduedge"))
SEEDS = REPO / "seeds"
PACKS = ["yinchuan-2018", "hebei-2019", "moe-2019", "national-2019", "ningxia-2019", "ningxia-2025"]
# The project's own proposal, not a standard of the table (tests/test_live_class*.py)
OWN = ["live-class"]


def seed_text(number: str) -> str:
    found = sorted(SEEDS.glob(f"{number}_*.txt"))
    if not found:
        pytest.fail(f"seed document {number} not found in {SEEDS}")
    return found[0].read_text(encoding="utf-8")


def test_the_bundled_packs_are_the_six_and_all_load():
    assert sorted(pack_paths()) == sorted(PACKS + OWN)
    rs = load_packs(PACKS)
    assert [p.pack for p in rs.packs] == PACKS


def test_every_rule_of_the_standards_table_is_in_a_pack():
    ids = {r.id for r in load_packs(PACKS).rules}
    assert ids == {
        "yinchuan-2018.uplink", "yinchuan-2018.backbone", "yinchuan-2018.backbone-vocational",
        "yinchuan-2018.wifi-areas", "yinchuan-2018.wifi-full", "yinchuan-2018.wifi-access",
        "yinchuan-2018.wifi-access-vocational", "yinchuan-2018.device-ratio", "hebei-2019.egress",
        "hebei-2019.access-rate", "moe-2019.fast-stable", "national-2019.egress", "ningxia-2019.egress",
        "ningxia-2025.campus", "ningxia-2025.class", "ningxia-2025.county"}


def test_thresholds_are_the_documents_numbers():
    rules = {r.id: r for r in load_packs(PACKS).rules}
    expected = {"yinchuan-2018.uplink": 2500, "yinchuan-2018.backbone": 1000, "yinchuan-2018.backbone-vocational":
                10000, "yinchuan-2018.wifi-access": 100, "yinchuan-2018.wifi-access-vocational": 300,
                "yinchuan-2018.device-ratio": 1.0, "hebei-2019.egress": 100, "hebei-2019.access-rate": 98,
                "national-2019.egress": 100, "ningxia-2019.egress": 200, "ningxia-2025.campus": 1000,
                "ningxia-2025.class": 100, "ningxia-2025.county": 10000}
    assert {k: rules[k].threshold for k in expected} == expected


def test_quotes_from_the_seed_documents_are_verbatim():
    checked = 0
    for rule in load_packs(PACKS).rules:
        src = rule.source
        if src.evidence != "seed":
            assert src.url and src.url.startswith("http"), rule.id   # a secondary source says where it is
            continue
        text = re.sub(r"\s+", "", seed_text(src.seed or ""))
        for piece in src.quote.split("……"):
            assert re.sub(r"\s+", "", piece) in text, f"{rule.id}: {piece!r} is not in seed {src.seed}"
        checked += 1
    assert checked == 11


def test_every_rule_has_chinese_and_english_and_a_clause():
    for rule in load_packs(PACKS).rules:
        assert re.search(r"[\u4e00-\u9fff]", rule.source.quote), rule.id
        assert re.search(r"[\u4e00-\u9fff]", rule.title.zh) and rule.title.en and rule.source.gloss, rule.id
        assert rule.source.clause and rule.source.document.zh and rule.source.document.en, rule.id


def test_the_projects_own_numbers_say_they_are_proposals():
    rules = {r.id: r for r in load_packs(PACKS).rules}
    fast = rules["moe-2019.fast-stable"]
    assert "proposal" in (fast.proposal or "")
    assert all("proposal" in (p.proposal or "") for p in fast.parts)
    assert {p.id: (p.threshold, p.op) for p in fast.parts} == {
        "egress": (100, ">="), "availability": (99, ">="), "loss": (1, "<"), "latency-under-load": (3, "<=")}
    for rid in ("yinchuan-2018.wifi-areas", "yinchuan-2018.wifi-full", "yinchuan-2018.wifi-access",
                "yinchuan-2018.wifi-access-vocational"):
        assert "The project" in (rules[rid].proposal or ""), rid
    # a number the document itself gives is not a proposal
    assert rules["yinchuan-2018.backbone"].proposal is None and rules["hebei-2019.egress"].proposal is None


def broken(tmp_path: Path, text: str, name: str = "city-2024") -> Path:
    d = tmp_path / "packs"
    d.mkdir(exist_ok=True)
    p = d / f"{name}.yaml"
    p.write_text(text, encoding="utf-8")
    return p


GOOD_RULE = """\
pack: city-2024
title: {zh: 某市标准, en: A city's standard}
jurisdiction: somewhere
rules:
  - id: city-2024.egress
    title: {zh: 出口带宽, en: Egress}
    applies_to: [primary]
    kind: capacity
    measures: wan.down_mbps
    threshold: 300
    unit: Mbit/s
    source:
      document: {zh: 某文件, en: A document}
      clause: 一
      quote: 出口带宽达到300Mbps以上
      gloss: egress of 300 Mbps or more
"""


def test_a_site_pack_loads_from_a_pack_dir(tmp_path):
    p = broken(tmp_path, GOOD_RULE)
    rs = load_packs(["city-2024"], [p.parent])
    assert rs.rules[0].threshold == 300


@pytest.mark.parametrize(("change", "message"), [
    (("    threshold: 300\n", ""), ":5: rules[0]: Value error, a `capacity` rule needs `threshold`"),
    (("unit: Mbit/s", "unit: Mbit/s\n    treshold: 3"), ":12: rules[0].treshold: unknown field (a typo?)"),
    (("applies_to: [primary]", "applies_to: [primary, college]"), ":7: rules[0].applies_to"),
    (("kind: capacity", "kind: speed"), ":8: rules[0].kind: Input should be 'link-speed', 'capacity'"),
    (("      quote: 出口带宽达到300Mbps以上\n", ""), ":12: rules[0].source.quote: required field is missing"),
    (("id: city-2024.egress", "id: other.egress"), ":5: rules[0].id: 'other.egress' must start with the pack name"),
    (("city-2024", "city-2025"), ":1: pack: 'city-2025' must match the file name 'city-2024'"),
    (("title: {zh: 出口带宽, en: Egress}", "title: {zh: 出口带宽, en: Egress"), ": not valid YAML: expected ','"),
])
def test_a_broken_pack_is_refused_with_file_line_and_field(tmp_path, change, message):
    p = broken(tmp_path, GOOD_RULE.replace(*change))
    with pytest.raises(PackError) as e:
        load_pack(p)
    assert any(str(p) in line and message in line for line in e.value.problems), e.value.problems


def test_the_configuration_refuses_a_pack_that_does_not_exist(tmp_path):
    cfg = tmp_path / "eduedge.yaml"
    cfg.write_text("school: {id: s-1, name: S, city: yinchuan, type: primary}\n"
                   "standards:\n  packs: [yinchuan-2018, ningxia-2030]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    assert e.value.problems == [f"{cfg}:3: standards.packs[1]: no rule pack 'ningxia-2030' (available: "
                                f"{', '.join(sorted(PACKS + OWN))})"]


def test_eduedge_rules_lists_packs_rules_thresholds_and_sources():
    r = subprocess.run([EDUEDGE, "rules"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for pack in PACKS:
        assert f"\n{pack}  " in "\n" + r.stdout
    assert "yinchuan-2018.backbone" in r.stdout and "if.speed_mbps >= 1000 Mbit/s [link-speed]" in r.stdout
    assert "普通中小学校、中职学校、幼儿园校园网络骨干带宽达到1G以上" in r.stdout
    one = subprocess.run([EDUEDGE, "rules", "--pack", "moe-2019", "--json"], capture_output=True, text=True,
                         timeout=60)
    rules = json.loads(one.stdout)
    assert [x["id"] for x in rules] == ["moe-2019.fast-stable"]
    assert [p["id"] for p in rules[0]["parts"]] == ["egress", "availability", "loss", "latency-under-load"]


def test_eduedge_rules_with_a_configuration_marks_what_applies_and_the_city_overrides(tmp_path):
    cfg = tmp_path / "eduedge.yaml"
    cfg.write_text("school: {id: s-1, name: S, city: yinchuan, type: kindergarten}\n"
                   "standards:\n  packs: [yinchuan-2018, ningxia-2019]\n  overrides: {ningxia-2019.egress: 300}\n",
                   encoding="utf-8")
    r = subprocess.run([EDUEDGE, "rules", "--config", str(cfg), "--json"], capture_output=True, text=True,
                       timeout=60)
    rules = {x["id"]: x for x in json.loads(r.stdout)}
    assert rules["yinchuan-2018.backbone"]["applies_to_school"] is True
    assert rules["yinchuan-2018.backbone-vocational"]["applies_to_school"] is False
    assert rules["ningxia-2019.egress"]["applies_to_school"] is False
    assert (rules["ningxia-2019.egress"]["threshold"], rules["ningxia-2019.egress"]["pack_threshold"]) == (300, 200)
