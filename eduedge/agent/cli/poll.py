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
    typer.echo(f"{summary['device']}  profile {summary['profile']}  "
               f"{ident.get('vendor') or ''} {ident.get('model') or ''} {ident.get('os_version') or ''}".rstrip())
    if ident.get("serial"):
        typer.echo(f"serial {ident['serial']}")
    typer.echo(f"{'if':>5} {'name':<28} {'admin':<6} {'oper':<8} {'Mbit/s':>7} {'in bit/s':>12} {'out bit/s':>12}"
               f" {'err/s':>6}  alias")
    for i in summary["interfaces"]:
        errs = (i.get("in_errors_pps") or 0) + (i.get("out_errors_pps") or 0)
        typer.echo(f"{i['index']:>5} {i['name'][:28]:<28} {i.get('admin_status', '-'):<6} "
                   f"{i.get('oper_status', '-'):<8} {i.get('speed_mbps', '-')!s:>7} "
                   f"{_fmt(i.get('in_bps')):>12} {_fmt(i.get('out_bps')):>12} {errs:>6.2f}  {i.get('alias', '')}")
    for n in summary["neighbors"]:
        typer.echo(f"{n['protocol']:<5} {n['local_port']} -> {n['remote_name']} {n['remote_port']}")
    for s in summary["sensors"]:
        tags = ",".join(f"{k}={v}" for k, v in s["tags"].items())
        typer.echo(f"{s['metric']:<24} {s['value']} {s['unit']}  {tags}")
    for e in summary["errors"]:
        typer.echo(f"error: {e}", err=True)
    typer.echo(f"{len(summary['interfaces'])} interfaces, {summary['values']} values in "
               f"{summary['requests']} requests, {summary['duration_s']}s")


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:,.0f}"
