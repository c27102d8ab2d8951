"""SNMP commands for the technician: `walk`, `poll`, `profile match`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    profile_app = typer.Typer(help="Firmware profiles: which one a device matches, and why.",
                              no_args_is_help=True)
    app.add_typer(profile_app, name="profile")
