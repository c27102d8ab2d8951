"""The `eduedge` command: a thin layer over functions that tests call directly.

Each area keeps its commands in its own module with a `register(app)` function; this file only puts
them together, so `eduedge --help` lists everything and no command module imports another.
"""

from __future__ import annotations

import typer

from eduedge.agent import (
    cli_broadband,
    cli_config,
    cli_diag,
    cli_discovery,
    cli_liveclass,
    cli_service,
    cli_snmp,
    cli_wifi,
)

app = typer.Typer(
    name="eduedge",
    help="The school network gateway agent: poll, judge, buffer and report to the city cloud.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for module in (cli_config, cli_snmp, cli_service, cli_diag, cli_discovery, cli_broadband, cli_wifi, cli_liveclass):
    module.register(app)
