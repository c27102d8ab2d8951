"""`eduedge profile match` and `eduedge profile check`: which firmware profile a device matches, and why;
and whether the profiles load."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from eduedge.agent.cli._options import (
    auth_key_opt,
    auth_proto_opt,
    community_opt,
    device_config_opt,
    dirs_opt,
    json_opt,
    priv_key_opt,
    priv_proto_opt,
    retries_opt,
    timeout_opt,
    user_opt,
    version_opt,
)
from eduedge.agent.cli._snmp import build_target, fail, profiles
from eduedge.collectors.snmp.client import SnmpRequestError
from eduedge.collectors.snmp.poller import DevicePoller
from eduedge.collectors.snmp.profiles import ProfileError, load_profiles
from eduedge.collectors.snmp.recording import RecordingClient
from eduedge.core.i18n import N_, _
from eduedge.core.tables import add, terminal

# The identity's fields as `profile match` labels them (translated where shown)
_FIELDS = {"vendor": N_("vendor:"), "model": N_("model:"), "os_version": N_("os_version:"), "serial": N_("serial:"),
           "hostname": N_("hostname:"), "device_class": N_("device_class:"), "sys_object_id": N_("sys_object_id:")}


def register(app: typer.Typer) -> None:
    profile_app = typer.Typer(help="Firmware profiles: which one a device matches, and why.",
                              no_args_is_help=True)
    app.add_typer(profile_app, name="profile")

    @profile_app.command("match")
    def match_cmd(host: str | None = typer.Argument(None, help="HOST or HOST:PORT (or use --snmprec)"),
                  snmprec: Path | None = typer.Option(None, "--snmprec", help="a recording instead of a device"),
                  community: str = community_opt, snmp_version: str | None = version_opt,
                  user: str | None = user_opt, auth_proto: str = auth_proto_opt,
                  auth_key_file: Path | None = auth_key_opt, priv_proto: str = priv_proto_opt,
                  priv_key_file: Path | None = priv_key_opt, timeout: float = timeout_opt,
                  retries: int = retries_opt, as_json: bool = json_opt, config: Path | None = device_config_opt,
                  profile_dir: list[Path] = dirs_opt) -> None:
        """Say which profile a device (or a recording) matches, why, and the identity found."""
        if (host is None) == (snmprec is None):
            raise typer.BadParameter(_("give either HOST or --snmprec FILE"))
        ps = profiles(profile_dir)
        if snmprec is not None:
            if not snmprec.is_file():
                raise fail(_("{file}: no such recording").format(file=snmprec))
            client: Any = RecordingClient(snmprec)
        else:
            assert host is not None
            client = build_target(host, community, snmp_version, user, auth_proto, auth_key_file, priv_proto,
                                  priv_key_file, timeout, retries, config).client(host)
        try:
            ident = asyncio.run(DevicePoller(client, ps).identify())
        except (SnmpRequestError, ProfileError) as e:
            raise fail(str(e)) from None
        if as_json:
            typer.echo(json.dumps(ident.to_dict(), ensure_ascii=False))
            return
        grid = Table.grid(padding=(0, 2))
        add(grid, _("profile:"), f"{ident.profile}  ({ident.matched_by})")
        for fld, label in _FIELDS.items():
            add(grid, _(label), getattr(ident, fld) or "-")
        terminal().print(grid)

    @profile_app.command("check")
    def check_cmd(profile_dir: list[Path] = typer.Argument(None, help="site profile directories")) -> None:
        """Load the bundled (and given) profiles; print every refused one and exit 2 if any."""
        ps = load_profiles(profile_dir or [])
        for err in ps.errors:
            typer.echo(err, err=True)
        typer.echo(_("{loaded} profiles loaded, {problems} problems").format(loaded=len(ps.concrete()),
                                                                           problems=len(ps.errors)))
        if ps.errors:
            raise typer.Exit(2)
