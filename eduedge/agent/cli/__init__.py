"""The `eduedge` command: a thin layer over functions that tests call directly.

Each command (or command group) lives in the module named after it, with a `register(app)` function;
this file only puts them together, so `eduedge --help` lists everything and no command module imports
another. What several share is in `_options.py` (the configuration and the device options), `_snmp.py`
(the one device `walk`, `poll` and `profile match` talk to) and `_format.py` (ages and sizes).
"""

from __future__ import annotations

import typer

from eduedge.agent.cli import (
    config,
    devices,
    diag,
    liveclass,
    outbox,
    poll,
    probe,
    profile,
    rules,
    run,
    scan,
    service,
    speedtest,
    status,
    walk,
    wifi,
)

app = typer.Typer(
    name="eduedge",
    help="The school network gateway agent: poll, judge, buffer and report to the city cloud.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# The order is the order of `eduedge --help`.
for module in (config, walk, poll, profile, run, status, outbox, service, diag, rules, scan, devices, speedtest,
               wifi, liveclass, probe):
    module.register(app)
