"""Judgements of standards rules: a `Finding` per rule and subject, and the `Problem`s behind it.

A finding says whether one rule holds for one subject (the school, usually):

- `pass`: the data in the window shows the rule is met;
- `fail`: the data shows it is not;
- `unknown`: the data needed is not there (`missing` says what); never a pass in disguise;
- `port-limited`: a measurement through the gateway's own port cannot show the threshold (a 1 GbE port
  carries at most ~941 Mbit/s of TCP, so ">= 1 Gbit/s" cannot be shown through it); a finding of its own.

Every finding carries the value judged, the threshold, the window of data it looked at and the evidence
(which links, zones and tests decided it), so that the city can re-judge it when a rule changes.
`problems` are the concrete things a technician can act on ("uplink Gi0/0/1 on sw-core-1 negotiated
100 Mbit/s - check the cable or the SFP"); `rank_problems` orders them by impact.

>>> f = Finding("hebei-2019.egress", "demo-school", "fail", 42.0, 100.0, "Mbit/s", time=10.0,
...             why="capacity tests show 42 Mbit/s")
>>> f.to_dict()["evidence"]["why"]
'capacity tests show 42 Mbit/s'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from eduedge.core.i18n import N_, _

Status = Literal["pass", "fail", "unknown", "port-limited"]
STATUSES: tuple[Status, ...] = ("pass", "fail", "unknown", "port-limited")
# How much of the school a problem touches: the whole school (its internet), a building (a backbone
# link), a room (a classroom drop, a Wi-Fi zone).
Scope = Literal["school", "building", "room"]
_SCOPE_ORDER = {"school": 0, "building": 1, "room": 2}
_STATUS_ORDER = {"fail": 0, "port-limited": 1, "unknown": 2, "pass": 3}
# What a status reads as, in a sentence and as a label (translated where shown).
_WORDS = {"pass": N_("pass"), "fail": N_("fail"), "unknown": N_("unknown"), "port-limited": N_("port-limited")}
_LABELS = {"pass": N_("PASS"), "fail": N_("FAIL"), "unknown": N_("UNKNOWN"), "port-limited": N_("PORT-LIMITED")}


def status_word(status: str) -> str:
    """A status as a word in a sentence, in the reader's language: `fail`, `未达标`."""
    return _(_WORDS[status])


def status_label(status: str) -> str:
    """A status as a label of its own: `FAIL`, `未达标`."""
    return _(_LABELS[status])


def worst(statuses: Iterable[Status]) -> Status:
    """The status of a whole made of parts: any fail fails; then port-limited; then unknown; else pass.

    An empty whole is `unknown`: nothing was judged.

    >>> worst(["pass", "unknown"]), worst(["pass", "fail", "unknown"]), worst([])
    ('unknown', 'fail', 'unknown')
    """
    found = list(statuses)
    if not found:
        return "unknown"
    return min(found, key=lambda s: _STATUS_ORDER[s])


def share_status(statuses: Sequence[Status], threshold: float) -> tuple[Status, float]:
    """The verdict on "at least `threshold` % of the places" (zones, classrooms) and the share that passed:
    pass when enough passed, unknown while the unknown ones could still make it, else fail.

    >>> share_status(["pass", "unknown"], 100), share_status(["pass", "fail"], 50), share_status(["fail"], 100)
    (('unknown', 50.0), ('pass', 50.0), ('fail', 0.0))
    """
    passed = 100.0 * statuses.count("pass") / len(statuses)
    possible = 100.0 * (statuses.count("pass") + statuses.count("unknown")) / len(statuses)
    return ("pass" if passed >= threshold else "unknown" if possible >= threshold else "fail"), passed


@dataclass(frozen=True)
class Problem:
    """One thing to look at: what is wrong, where, and what to check."""

    rule: str
    status: Status
    what: str
    hint: str
    scope: Scope = "school"
    shortfall: float = 1.0       # 0 (just short) .. 1 (nothing at all); orders problems of equal scope
    device: str | None = None

    def line(self) -> str:
        return f"{self.what} — {self.hint}" if self.hint else self.what

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule, "status": self.status, "what": self.what, "hint": self.hint,
                               "scope": self.scope, "shortfall": round(self.shortfall, 4)}
        if self.device:
            out["device"] = self.device
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Problem:
        return cls(d["rule"], d["status"], d["what"], d.get("hint", ""), d.get("scope", "school"),
                   float(d.get("shortfall", 1.0)), d.get("device"))


@dataclass
class Finding:
    rule: str
    subject: str
    status: Status
    value: float | str | None
    threshold: float | str | None
    unit: str
    time: float
    window: tuple[float, float] | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    why: str = ""
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"{self.rule}: status {self.status!r} is not one of {', '.join(STATUSES)}")

    def to_dict(self) -> dict[str, Any]:
        """The item of a `findings` message: the contract's fields, with the explanation inside `evidence`."""
        evidence = dict(self.evidence)
        evidence["why"] = self.why
        if self.window is not None:
            evidence["window"] = {"from": round(self.window[0], 3), "to": round(self.window[1], 3)}
        if self.missing:
            evidence["missing"] = list(self.missing)
        if self.problems:
            evidence["problems"] = [p.to_dict() for p in self.problems]
        value = round(self.value, 4) if isinstance(self.value, float) else self.value
        return {"t": round(self.time, 3), "rule": self.rule, "subject": self.subject, "status": self.status,
                "value": value, "threshold": self.threshold, "unit": self.unit, "evidence": evidence}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        """The inverse of `to_dict` (for results read back from the store)."""
        evidence = dict(d.get("evidence") or {})
        why = evidence.pop("why", "")
        window = evidence.pop("window", None)
        missing = evidence.pop("missing", [])
        problems = [Problem.from_dict(p) for p in evidence.pop("problems", [])]
        return cls(d["rule"], d["subject"], d["status"], d.get("value"), d.get("threshold"), d.get("unit", ""),
                   float(d["t"]), (window["from"], window["to"]) if window else None, evidence, missing, why,
                   problems)


def rank_problems(findings: Iterable[Finding]) -> list[Problem]:
    """Every problem of every finding, most important first: failures before port limits before
    unknowns, the whole school before a building before a room, the biggest shortfall first.

    One cause found by several rules (the uplink's speed fails two packs) is one problem naming them all.

    >>> a = Problem("p1.uplink", "fail", "uplink at 100 Mbit/s", "check the cable")
    >>> b = Problem("p2.campus", "fail", "uplink at 100 Mbit/s", "check the cable")
    >>> f = Finding("p1.uplink", "s", "fail", 100.0, 2500.0, "Mbit/s", 0.0, problems=[a, b])
    >>> [p.rule for p in rank_problems([f])]
    ['p1.uplink, p2.campus']
    """
    merged: dict[tuple[str, str, str], Problem] = {}
    for p in (p for f in findings for p in f.problems):
        key = (p.status, p.what, p.hint)
        if key in merged:
            old = merged[key]
            rules = old.rule.split(", ")
            if p.rule not in rules:
                merged[key] = replace(old, rule=", ".join([*rules, p.rule]), shortfall=max(old.shortfall, p.shortfall))
        else:
            merged[key] = p
    return sorted(merged.values(), key=problem_order)


def problem_order(p: Problem) -> tuple[int, int, float, str, str]:
    """The sort key of `rank_problems`, for lists that add problems of their own (diag's silent devices)."""
    return (_STATUS_ORDER[p.status], _SCOPE_ORDER[p.scope], -p.shortfall, p.rule, p.what)
