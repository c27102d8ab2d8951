"""`eduedge poll HOST`: poll one device once through its profile, as the agent would, and show it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer

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
from eduedge.collectors.snmp.poller import DevicePoller
from eduedge.collectors.snmp.profiles import ProfileError
from eduedge.collectors.snmp.report import summarise
from eduedge.core.tables import add, key, num, table, terminal


def register(app: typer.Typer) -> None:
    @app.command("poll")
    def poll_cmd(host: str = typer.Argument(..., help="HOST or HOST:PORT"),
                 community: str = community_opt, snmp_version: str | None = version_opt,
                 user: str | None = user_opt, auth_proto: str = auth_proto_opt,
                 auth_key_file: Path | None = auth_key_opt, priv_proto: str = priv_proto_opt,
                 priv_key_file: Path | None = priv_key_opt, timeout: float = timeout_opt,
                 retries: int = retries_opt, as_json: bool = json_opt, config: Path | None = device_config_opt,
                 profile: str | None = typer.Option(None, "--profile", help="use this profile, not the match"),
                 profile_dir: list[Path] = dirs_opt,
                 rate_interval: float = typer.Option(
                     3.0, "--rate-interval", help="seconds between the two polls that give rates (0: no rates)"),
                 deadline: float = typer.Option(30.0, "--deadline", help="give up on the device after this")) -> None:
        """Poll HOST once through its profile: identity, interfaces, rates, LLDP neighbours, sensors."""
        target = build_target(host, community, snmp_version, user, auth_proto, auth_key_file, priv_proto,
                              priv_key_file, timeout, retries, config)
        ps = profiles(profile_dir)
        if profile:
            try:
                ps.get(profile)
            except ProfileError as e:
                raise fail(str(e)) from None
        poller = DevicePoller(target.client(host), ps, forced_profile=profile, deadline=deadline)

        async def twice() -> Any:
            first = await poller.poll()
            if rate_interval <= 0 or first.identity is None:
                return first
            await asyncio.sleep(rate_interval)
            return await poller.poll()

        result = asyncio.run(twice())
        summary = summarise(result)
        if as_json:
            typer.echo(json.dumps(summary, ensure_ascii=False, default=str))
        else:
            _print_poll(summary)
        if result.identity is None:
            raise typer.Exit(1)


def _print_poll(summary: dict[str, Any]) -> None:
    if summary["identity"] is None:
        for e in summary["errors"]:
            typer.echo(f"error: {e}", err=True)
        return
    ident = summary["identity"]
    console = terminal()
    typer.echo(f"{summary['device']}  profile {summary['profile']}  "
               f"{ident.get('vendor') or ''} {ident.get('model') or ''} {ident.get('os_version') or ''}".rstrip())
    if ident.get("serial"):
        typer.echo(f"serial {ident['serial']}")
    t = table(key("interface"), key("state"), num("speed\nMbit/s"), num("in\nMbit/s"), num("out\nMbit/s"),
              num("errors\n/s"), "alias")
    for i in summary["interfaces"]:
        errs = (i.get("in_errors_pps") or 0) + (i.get("out_errors_pps") or 0)
        add(t, i["name"], _state(i), i.get("speed_mbps"),
            _mbps(i.get("in_bps")), _mbps(i.get("out_bps")), f"{errs:.2f}", i.get("alias", ""))
    console.print(t)
    if summary["neighbors"]:
        t = table(key("local port"), key("neighbour"), key("its port"), key("seen by"))
        for n in summary["neighbors"]:
            add(t, n["local_port"], n["remote_name"], n["remote_port"], n["protocol"].upper())
        console.print(t)
    if summary["sensors"]:
        t = table(key("metric"), num("value"), "unit", "tags")
        for s in summary["sensors"]:
            add(t, s["metric"], s["value"], s["unit"], ",".join(f"{k}={v}" for k, v in s["tags"].items()))
        console.print(t)
    for e in summary["errors"]:
        typer.echo(f"error: {e}", err=True)
    typer.echo(f"{len(summary['interfaces'])} interfaces, {summary['values']} values in "
               f"{summary['requests']} requests, {summary['duration_s']}s")


def _state(i: dict[str, Any]) -> str:
    """One word for admin and oper status: `disabled` when switched off, else what the link is."""
    admin, oper = i.get("admin_status"), i.get("oper_status")
    return "disabled" if admin == "down" else oper or admin or "-"


def _mbps(bps: Any) -> str:
    return "-" if bps is None else f"{bps / 1e6:,.2f}"
