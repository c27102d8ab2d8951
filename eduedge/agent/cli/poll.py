"""`eduedge poll HOST`: poll one device once through its profile, as the agent would, and show it."""

from __future__ import annotations

import asyncio
import json
import time
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
from eduedge.agent.cli._progress import Activity, activity
from eduedge.agent.cli._sensors import rows
from eduedge.agent.cli._snmp import build_target, fail, profiles
from eduedge.collectors.snmp.poller import DevicePoller
from eduedge.collectors.snmp.profiles import ProfileError
from eduedge.collectors.snmp.report import summarise
from eduedge.core.i18n import N_, _
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

        async def twice(act: Activity) -> Any:
            act.stage(_("polling {device}").format(device=host))
            first = await poller.poll()
            if rate_interval <= 0 or first.identity is None:
                return first
            # the rates need a second poll: count the wait down, so that a quiet screen is not a hung one
            steps = max(1, round(rate_interval / 0.25))
            act.stage(_("waiting {seconds:g} s to measure the rates").format(seconds=rate_interval), total=steps)
            for _step in range(steps):
                await asyncio.sleep(rate_interval / steps)
                act.advance()
            act.stage(_("polling {device} again, for the rates").format(device=host))
            return await poller.poll()

        started = time.monotonic()
        with activity(as_json) as act:
            result = asyncio.run(twice(act))
        summary = summarise(result)
        # what the technician waited for (both polls and the wait between), beside what the last poll took
        summary["wall_s"] = round(time.monotonic() - started, 3)
        if as_json:
            typer.echo(json.dumps(summary, ensure_ascii=False, default=str))
        else:
            _print_poll(summary)
        if result.identity is None:
            raise typer.Exit(1)


def _print_poll(summary: dict[str, Any]) -> None:
    if summary["identity"] is None:
        for e in summary["errors"]:
            typer.echo(_("error: {problem}").format(problem=e), err=True)
        return
    ident = summary["identity"]
    console = terminal()
    what = " ".join(str(ident.get(k) or "") for k in ("vendor", "model", "os_version")).strip()
    typer.echo((_("{device}  profile {profile}  {what}").format(device=summary["device"], profile=summary["profile"],
                                                               what=what)).rstrip())
    if ident.get("serial"):
        typer.echo(_("serial {serial}").format(serial=ident["serial"]))
    t = table(key(_("interface")), key(_("state")), num(_("speed\nMbit/s")), num(_("in\nMbit/s")),
              num(_("out\nMbit/s")), num(_("errors\n/s")), _("alias"))
    for i in summary["interfaces"]:
        errs = (i.get("in_errors_pps") or 0) + (i.get("out_errors_pps") or 0)
        add(t, i["name"], _state(i), i.get("speed_mbps"),
            _mbps(i.get("in_bps")), _mbps(i.get("out_bps")), f"{errs:.2f}", i.get("alias", ""))
    console.print(t)
    if summary["neighbors"]:
        t = table(key(_("local port")), key(_("neighbour")), key(_("its port")), key(_("seen by")))
        for n in summary["neighbors"]:
            add(t, n["local_port"], n["remote_name"], n["remote_port"], n["protocol"].upper())
        console.print(t)
    if summary["sensors"]:
        t = table(key(_("sensor")), num(_("value")), _("unit"), _("where"))
        for r in rows(summary["sensors"]):
            add(t, r.what, r.value, r.unit, r.where)
        console.print(t)
    for e in summary["errors"]:
        typer.echo(_("error: {problem}").format(problem=e), err=True)
    typer.echo(footer(summary))


def footer(summary: dict[str, Any]) -> str:
    """The last line: how much was read, and how long the technician waited (not only the last poll's time)."""
    counts = _("{interfaces} interfaces, {values} values in {requests} requests").format(
        interfaces=len(summary["interfaces"]), values=summary["values"], requests=summary["requests"])
    wall = summary.get("wall_s")
    if wall is None:
        return _("{counts}, {seconds:.1f} s").format(counts=counts, seconds=summary["duration_s"])
    return _("{counts}; {seconds:.1f} s in all (the last poll {poll:.2f} s)").format(
        counts=counts, seconds=wall, poll=summary["duration_s"])


def _state(i: dict[str, Any]) -> str:
    """One word for admin and oper status: `disabled` when switched off, else what the link is."""
    admin, oper = i.get("admin_status"), i.get("oper_status")
    return _("disabled") if admin == "down" else _state_word(oper or admin or "-")


# ifOperStatus's words (RFC 2863) as the reader says them
_STATES = {"up": N_("up"), "down": N_("down"), "testing": N_("testing"), "unknown": N_("unknown"),
           "dormant": N_("dormant"), "notPresent": N_("notPresent"), "lowerLayerDown": N_("lowerLayerDown")}


def _state_word(state: str) -> str:
    return _(_STATES[state]) if state in _STATES else state


def _mbps(bps: Any) -> str:
    return "-" if bps is None else f"{bps / 1e6:,.2f}"
