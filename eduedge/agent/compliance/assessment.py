"""A school judged: its rules over what the store holds (`evaluate`), remembered and turned into events of
what changed (`assess`). The package's __init__ names these for its users."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from eduedge.agent.compliance.findings import Finding, status_word
from eduedge.agent.compliance.kinds import Context, judge
from eduedge.agent.compliance.packs import RuleSet, load_packs
from eduedge.agent.compliance.topology import Topology, topology_from_store
from eduedge.agent.config import AgentConfig
from eduedge.agent.samplestore import SampleStore, StatusChange
from eduedge.core.events import Event, Severity
from eduedge.core.i18n import _

_SEVERITY: dict[str, Severity] = {"pass": "info", "port-limited": "info", "unknown": "warning", "fail": "warning"}


def load_rules(cfg: AgentConfig) -> RuleSet:
    """The rules of the packs the configuration names, with its overrides; raises `PackError`."""
    s = cfg.standards
    return load_packs(s.packs, s.pack_dirs, s.overrides)


def evaluate(store: SampleStore, cfg: AgentConfig, now: float | None = None, rules: RuleSet | None = None,
             topology: Topology | None = None) -> list[Finding]:
    """One finding per rule that applies to this school, from what the store holds at `now`."""
    now = time.time() if now is None else now
    rules = load_rules(cfg) if rules is None else rules
    ctx = Context(cfg, store, topology or topology_from_store(cfg, store), now)
    return [judge(rule, ctx) for rule in rules.for_school(cfg.school.type)]


def status_events(changes: Sequence[StatusChange], findings: Sequence[Finding]) -> list[Event]:
    """An event per change of status (a first judgement included), saying what changed and why."""
    by_key = {(f.rule, f.subject): f for f in findings}
    out = []
    for c in changes:
        f = by_key[(c.rule, c.subject)]
        device = next((p.device for p in f.problems if p.device), None)
        old = status_word(c.old) if c.old else _("not judged")
        out.append(Event(c.time, device, "compliance.status_changed", _SEVERITY[c.new],
                         f"{c.rule}: {old} → {status_word(c.new)}: {f.why}",
                         {"rule": c.rule, "subject": c.subject, "from": c.old, "to": c.new, "value": f.value,
                          "threshold": f.threshold, "unit": f.unit}))
    return out


@dataclass
class Assessment:
    findings: list[Finding]
    events: list[Event]
    topology: Topology


def assess(store: SampleStore, cfg: AgentConfig, now: float | None = None, rules: RuleSet | None = None,
           source: str = "daemon") -> Assessment:
    """Evaluate, remember the findings in the store, and return them with the events of what changed."""
    now = time.time() if now is None else now
    topo = topology_from_store(cfg, store)
    findings = evaluate(store, cfg, now, rules, topo)
    changes = store.record_findings(findings, source)
    return Assessment(findings, status_events(changes, findings), topo)
