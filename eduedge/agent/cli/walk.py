"""`eduedge walk HOST`: walk a subtree of one device and print OID = value."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer

from eduedge.agent.cli._oid import resolve_oid
from eduedge.agent.cli._options import (
    auth_key_opt,
    auth_proto_opt,
    community_opt,
    device_config_opt,
    json_opt,
    priv_key_opt,
    priv_proto_opt,
    retries_opt,
    timeout_opt,
    user_opt,
    version_opt,
)
from eduedge.agent.cli._snmp import Target, build_target, fail, json_value
from eduedge.collectors.snmp.client import SnmpRequestError
from eduedge.core.i18n import _


async def walk(target: Target, oid: str) -> list[tuple[str, Any]]:
    """Walk `oid` on the target; [(oid, value)] in the agent's order."""
    client = target.client()
    rows = await client.walk(oid)
    return [(f"{oid}.{idx}", value) for idx, value in rows.items()]


def register(app: typer.Typer) -> None:
    @app.command("walk")
    def walk_cmd(host: str = typer.Argument(..., help="HOST or HOST:PORT"),
                 oid: str = typer.Option("1.3.6.1.2.1.1", "--oid",
                                         help="subtree to walk: numeric, or a name (system, SNMPv2-MIB::sysDescr)"),
                 community: str = community_opt, snmp_version: str | None = version_opt,
                 user: str | None = user_opt, auth_proto: str = auth_proto_opt,
                 auth_key_file: Path | None = auth_key_opt, priv_proto: str = priv_proto_opt,
                 priv_key_file: Path | None = priv_key_opt, timeout: float = timeout_opt,
                 retries: int = retries_opt, as_json: bool = json_opt,
                 config: Path | None = device_config_opt) -> None:
        """Walk a subtree of HOST (GETBULK on v2c/v3) and print OID = value."""
        try:
            numeric = resolve_oid(oid)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--oid") from None
        target = build_target(host, community, snmp_version, user, auth_proto, auth_key_file, priv_proto,
                              priv_key_file, timeout, retries, config)
        try:
            rows = asyncio.run(walk(target, numeric))
        except SnmpRequestError as e:
            raise fail(str(e)) from None
        if as_json:
            typer.echo(json.dumps([{"oid": o, "value": json_value(v)} for o, v in rows], ensure_ascii=False))
            return
        for o, v in rows:
            typer.echo(f"{o} = {json_value(v)}")
        if not rows:
            typer.echo(_("(nothing under {oid})").format(oid=oid), err=True)
