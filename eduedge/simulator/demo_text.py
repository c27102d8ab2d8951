"""Every sentence `make demo` says to the person watching, in one place, so that it can be translated.

English for now: each entry is a `str.format` template keyed by what it says. A catalogue for another
language replaces the values, never the keys or the `{fields}`; `text(key, **fields)` is the only way the
demo words anything (eduedge/simulator/demo.py).
"""

from __future__ import annotations

TEXT: dict[str, str] = {
    "starting": "starting the simulated campus {campus} (loopback, with its own MQTT broker), in a lesson: its day "
                "starts at {start} ...",
    "campus_up": "campus up: {snmp} SNMP agents, broker {broker}, state in {state_dir}",
    "agent_start": "starting the agent: eduedge run --config {config}  (log: {log})",
    "city_receives": "what the city receives:",
    "ask_broadband": "the city asks for a broadband test now (run-check broadband)",
    "fault": "FAULT: {what} (as `eduedge sim fault {kind} {device}` does)",
    "metrics_so_far": "metrics so far: {messages} messages, {samples} samples of {metrics} metrics from {devices} "
                      "devices",
    "all_judged": "every seed rule is judged; stopping",
    "agent_died": "the agent stopped by itself (exit {code}); last lines of its log:",
    "stopping": "stopping the agent (SIGTERM: it says goodbye and keeps its outbox) ...",
    "campus_stopped": "campus stopped ({n} processes)",
    "not_removed": "; NOT REMOVED: {left}",
    # the closing summary
    "summary_title": "what the city now knows about {school} ({type} school):",
    "summary_messages": "messages: {counts}",
    "summary_samples": "{samples} samples of {metrics} metrics from {devices} devices",
    "summary_seed": "the seed documents' standards, judged from what the agent measured in this run:",
    "summary_other": "the project's proposals (not seed rules):",
    "summary_rule": "{status:<12} {rule:<30} {why}",
    "summary_part": "  {status:<10} .{part:<27} {why}",
    "summary_cause": "    - {what} — {hint}",
    "summary_more": "    - and {n} more (eduedge diag)",
    "summary_counts": "{judged} of {total} seed rules judged ({passed} pass, {failed} fail, {unknown} unknown) in "
                      "{seconds:.0f} s",
    "summary_fault": "the injected fault ({what}) failed {rule}: {cause}",
    "summary_fault_missed": "the injected fault ({what}) was not seen failing {rule}",
    "summary_invalid": "{n} messages broke the contract, e.g. {example}",
    "summary_contract": "every message met the telemetry contract (agent/contract/*.schema.json)",
    "summary_keep": "the technician's view on the box: eduedge diag --cached --config {config}",
    "status_pass": "PASS",
    "status_fail": "FAIL",
    "status_unknown": "UNKNOWN",
    "status_port-limited": "PORT-LIMITED",
    "status_missing": "NOT JUDGED",
    "fault_what": "the library's switch {device} loses power",
}


def text(key: str, **fields: object) -> str:
    return TEXT[key].format(**fields)
