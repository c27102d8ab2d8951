"""Judge the school against its standards: rule packs + samples + topology -> findings and events.

How the daemon wires it (agent/jobs.py, run by agent/daemon/):

    store = SampleStore.in_data_dir(cfg.agent.data_dir)          # once; safe to share between threads
    store.add_poll(poll.device, poll.time, poll.identity is not None, poll.samples,
                   poll.identity.hostname if poll.identity else None, poll.errors)   # each SNMP poll
    store.add(host_samples)                                      # each host collection (and future collectors)
    a = assess(store, cfg, time.time())                          # a "compliance" job, e.g. every 5 min,
    outbox.add_items("findings", [f.to_dict() for f in a.findings])   # and on `run-check compliance`
    outbox.add_items("events", [e.to_dict() for e in a.events])       # only the changes of status

`evaluate` only judges; `assess` also remembers the findings in the store (for `eduedge diag --cached`
and the compliance history) and turns every change of status into an `Event`. Rules judged across
schools (`scope: region`) are the city cloud's and are skipped here.

The package loads what a caller names from it (`assess` from assessment.py, `PackError` from packs.py...)
when it is first asked for (PEP 562): the agent's Wi-Fi rounds and device inventory use findings.py alone, and
a configuration without standards never loads the judging code (bench/README.md, footprint.py).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"Assessment": "assessment", "assess": "assessment", "evaluate": "assessment", "load_rules": "assessment",
          "status_events": "assessment", "Pack": "packs", "PackError": "packs", "Rule": "packs", "RuleSet": "packs",
          "load_pack": "packs", "load_packs": "packs", "pack_paths": "packs"}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
