"""The agents' sentences on the city's pages in the reader's language (cloud/agent_words.py).

The proof is the agent itself: the same judgements made in English and in Chinese (the simulated city's
schools, and the evaluator's hand-made campuses: slow and down links, a switch that did not answer, zones
without data, a line shaped below its port, learning devices without enrolment), every sentence of their
evidence read from one language must be the agent's own sentence in the other.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from eduedge.agent.compliance import evaluate
from eduedge.cloud.agent_words import problems, translate
from eduedge.core.i18n import using
from eduedge.core.samples import Sample
from eduedge.simulator import fleetdata
from eduedge.simulator.fleet import TYPES, ZONES
from tests.test_compliance import NOW, campus, config, gateway_port, port, speedtests, store_with, zone


def sentences(en: Any, zh: Any) -> list[tuple[str, str]]:
    """The (English, Chinese) strings at the same places of two evidence trees, where they differ."""
    if isinstance(en, dict) and isinstance(zh, dict):
        return [pair for k in en for pair in sentences(en[k], zh.get(k))]
    if isinstance(en, list) and isinstance(zh, list):
        return [pair for a, b in zip(en, zh, strict=True) for pair in sentences(a, b)]
    return [(en, zh)] if isinstance(en, str) and isinstance(zh, str) and en != zh else []


def both(judge) -> list[tuple[str, str]]:
    en = judge()
    with using("zh"):
        zh = judge()
    return sorted({p for a, b in zip(en, zh, strict=True) for p in sentences(a["evidence"], b["evidence"])})


def fleet_findings() -> list[tuple[str, str]]:
    now = time.time()
    pairs: set[tuple[str, str]] = set()
    for i in range(14):           # every school type twice, lines shaped and not, 100 and 1000 Mbit/s ports
        kind = TYPES[i % len(TYPES)]
        p = fleetdata.profile(i, kind, list(ZONES), 7, 100.0 if i % 2 else 1000.0)
        school = SimpleNamespace(id=f"s{i}", name=p.name, city="yinchuan", type=kind, district=p.district)
        cfg = fleetdata.agent_config(school, ZONES)
        hist = fleetdata.history(p, ZONES, now, 15, i)
        pairs |= set(both(lambda cfg=cfg, hist=hist: fleetdata.findings(cfg, hist, now, (0,))))
    return sorted(pairs)


def campus_findings() -> list[tuple[str, str]]:
    no_enrolment = config()
    no_enrolment.school.enrolment = None
    cases = [
        (campus(core_b=100) + port("core", 1, "Gi0/1", 100), None, None),
        (campus(oper="down") + zone("A101", "teaching", 1000, 899) + zone("O1", "office", 400, 400), None, None),
        ([s for s in campus() if s.device != "dist-b"], None,
         {"core": True, "dist-a": True, "dist-b": False, "acc-101": True}),
        (port("core", 1, "Gi0/1", 1000) + zone("A101", "teaching", 299, 299), None, None),
        ([*speedtests([40.0, 42.0, 63.0]), gateway_port(1000)], None, None),
        ([*speedtests([90.0] * 4), gateway_port(100), *zone("A101", "teaching", 1000, 1000, [1] * 98 + [0] * 2)],
         None, None),
        ([Sample(NOW, "gw", "inventory.learning_devices", 100, "devices")], no_enrolment, None),
        ([Sample(NOW, "gw", "inventory.learning_devices", 0, "devices")], None, None),
    ]
    pairs: set[tuple[str, str]] = set()
    for samples, cfg, polled in cases:
        pairs |= set(both(lambda s=samples, c=cfg, p=polled: [
            f.to_dict() for f in evaluate(store_with(s, p), c or config(), NOW)]))
    return sorted(pairs)


@pytest.mark.parametrize("pairs", [fleet_findings, campus_findings], ids=["simulated-city", "hand-made-campuses"])
def test_every_sentence_of_an_agent_reads_as_its_own_in_the_other_language(pairs):
    found = pairs()
    assert len(found) > 40                  # the judgements say a good deal, in both languages
    # Back to English, one Chinese word may stand for two of the agent's ("FAIL" and "fail" are both 未达标):
    # an English that reads as the same Chinese again is the agent's meaning.
    wrong = [(en, zh, translate(en, "zh"), translate(zh, "en")) for en, zh in found
             if translate(en, "zh") != zh or translate(translate(zh, "en"), "zh") != zh
             or translate(zh, "en") == zh]
    assert not wrong, "\n".join(f"{en}\n  zh: {zh}\n  ->: {a}\n  <-: {b}" for en, zh, a, b in wrong[:10])


def test_what_no_message_says_is_shown_as_the_agent_wrote_it():
    for text in ["sw-1 (127.0.0.1:161): no answer from the device's own stack", "GE0/0/1", "ac-1", "Gi0/1 ↔ Gi0/2",
                 "3.14", ""]:
        assert translate(text, "zh") == text and translate(text, "en") == text


def test_a_findings_problems_read_in_the_pages_language():
    items = [{"rule": "r", "status": "fail", "what": "capacity tests show 31 Mbit/s (needs 100)",
              "hint": "ask the provider what the line is shaped to; check for cross-traffic during the tests"},
             "not a problem"]
    (p,) = problems(items, "zh")
    assert p["rule"] == "r" and "Mbit/s" in p["what"] and "capacity" not in p["what"] and "运营商" in p["hint"]
