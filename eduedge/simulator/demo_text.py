"""Every sentence `make demo` says to the person watching, in one place, so that it can be translated.

Each entry is a `str.format` template keyed by what it says, written in English and marked for the
message catalogue (eduedge/core/i18n.py): `text(key, **fields)`, the only way the demo words anything
(eduedge/simulator/demo.py), says it in the user's language.
"""

from __future__ import annotations

from eduedge.core.i18n import N_, _, ljust

TEXT: dict[str, str] = {
    "starting": N_("starting the simulated campus {campus} (loopback, with its own MQTT broker), in a lesson: its day "
                   "starts at {start} ..."),
    "campus_up": N_("campus up: {snmp} SNMP agents, broker {broker}, state in {state_dir}"),
    "agent_start": N_("starting the agent: eduedge run --config {config}  (log: {log})"),
    "city_receives": N_("what the city receives:"),
    "ask_broadband": N_("the city asks for a broadband test now (run-check broadband)"),
    "fault": N_("FAULT: {what} (as `eduedge sim fault {kind} {device}` does)"),
    "metrics_so_far": N_("metrics so far: {messages} messages, {samples} samples of {metrics} metrics from {devices} "
                         "devices"),
    "all_judged": N_("every seed rule is judged; stopping"),
    # what each message the city hears carries, beside its topic
    "heard_metrics": N_("{samples} samples from {devices} devices"),
    "heard_birth": N_("agent {agent} bdSeq {bd_seq}, {devices} devices"),
    "heard_inventory": N_("{devices} devices"),
    "heard_samples": N_(", {samples} samples"),
    "agent_died": N_("the agent stopped by itself (exit {code}); last lines of its log:"),
    "stopping": N_("stopping the agent (SIGTERM: it says goodbye and keeps its outbox) ..."),
    "campus_stopped": N_("campus stopped ({n} processes)"),
    "not_removed": N_("; NOT REMOVED: {left}"),
    # the closing summary
    "summary_title": N_("what the city now knows about {school} ({type} school):"),
    "summary_messages": N_("messages: {counts}"),
    "summary_samples": N_("{samples} samples of {metrics} metrics from {devices} devices"),
    "summary_seed": N_("the seed documents' standards, judged from what the agent measured in this run:"),
    "summary_other": N_("the project's proposals (not seed rules):"),
    "summary_rule": N_("{status} {rule:<30} {why}"),
    "summary_part": N_("  {status} .{part:<27} {why}"),
    "summary_cause": N_("    - {what} — {hint}"),
    "summary_more": N_("    - and {n} more (eduedge diag)"),
    "summary_counts": N_("{judged} of {total} seed rules judged ({passed} pass, {failed} fail, {unknown} unknown) in "
                         "{seconds:.0f} s"),
    "summary_fault": N_("the injected fault ({what}) failed {rule}: {cause}"),
    "summary_fault_missed": N_("the injected fault ({what}) was not seen failing {rule}"),
    "summary_invalid": N_("{n} messages broke the contract, e.g. {example}"),
    "summary_contract": N_("every message met the telemetry contract (agent/contract/*.schema.json)"),
    "summary_keep": N_("the technician's view on the box: eduedge diag --cached --config {config}"),
    "status_pass": N_("PASS"),
    "status_fail": N_("FAIL"),
    "status_unknown": N_("UNKNOWN"),
    "status_port-limited": N_("PORT-LIMITED"),
    "status_missing": N_("NOT JUDGED"),
    "fault_what": N_("the library's switch {device} loses power"),
}


def text(key: str, **fields: object) -> str:
    return _(TEXT[key]).format(**fields)


def status(key: str, width: int) -> str:
    """A status label padded to `width` terminal columns (a Chinese character takes two)."""
    return ljust(text(key), width)
