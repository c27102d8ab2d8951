"""`eduedge devices`: the devices discovery knows, from the inventory the daemon keeps in the data
directory, without sending anything. Clear MACs and host names are shown here, on the box, to the
technician; they never leave it."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import typer

from eduedge.agent.cli._options import config_option, config_or_exit
from eduedge.agent.config import AgentConfig
from eduedge.core.i18n import _, ngettext
from eduedge.core.tables import add, key, table, terminal


def why_none(cfg: AgentConfig, state: Path, known: int, device_class: str | None) -> str:
    """Why `eduedge devices` lists nothing: discovery is off or has no subnet, it never saved an inventory,
    the inventory is empty (since when), or no known device is of the class asked for."""
    if known and device_class is not None:
        return _("no {cls} among the {n} devices known").format(cls=device_class, n=known)
    if not cfg.discovery.enabled:
        return _("no devices: discovery is off (discovery.enabled in the configuration)")
    if not cfg.discovery.subnets:
        return _("no devices: discovery lists no subnets to sweep (discovery.subnets in the configuration)")
    subnets = ", ".join(map(str, cfg.discovery.subnets))
    if not state.exists():
        return _("no devices yet: the agent has not saved an inventory ({file} does not exist); it sweeps {subnets} "
                 "when `eduedge run` runs, and `eduedge scan` looks now").format(file=state, subnets=subnets)
    since = datetime.fromtimestamp(state.stat().st_mtime, ZoneInfo(cfg.standards.school_hours.timezone))
    return _("no devices: the agent's inventory was empty when it last saved it, {when}; it sweeps {subnets} "
             "(`eduedge scan` looks now)").format(when=since.strftime("%Y-%m-%d %H:%M %Z"), subnets=subnets)


def register(app: typer.Typer) -> None:
    @app.command("devices")
    def devices_cmd(
        config: Path = config_option(),
        device_class: str | None = typer.Option(None, "--class", help="only this class (projector, learning, ...)"),
        as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    ) -> None:
        """The devices discovery knows (from the daemon's inventory in the data directory); sends nothing."""
        from eduedge.agent.compliance.device_inventory import STATE_FILE, DeviceInventory
        from eduedge.core.pseudonym import pseudonymizer

        cfg = config_or_exit(config)
        state = Path(cfg.agent.data_dir) / STATE_FILE
        inv = DeviceInventory(cfg, pseudonymizer(cfg.privacy.pseudonym_key, cfg.agent.data_dir), state)
        rows = [d for d in inv.devices.values() if device_class is None or d.device_class == device_class]
        if as_json:
            typer.echo(json.dumps([{**d.__dict__, "name": inv.device_id(d)} for d in rows], indent=2))
            return
        t = table(key(_("class")), key(_("address")), key("MAC"), _("vendor"), _("where"), _("state"))
        for d in sorted(rows, key=lambda d: (d.device_class, d.ip or "")):
            room = _("room {room}").format(room=d.room) if d.room else None
            where = " ".join(x for x in (d.switch, d.interface, room) if x)
            up = {True: _("up"), False: _("down"), None: "?"}[d.reachable]
            add(t, d.device_class, d.ip, d.mac, d.vendor or "?", where or "-",
                up + ("" if d.present else " " + _("(absent)")))
        if rows:
            terminal().print(t)
            typer.echo(ngettext("{n} device", "{n} devices", len(rows)).format(n=len(rows)))
        else:
            typer.echo(why_none(cfg, state, len(inv.devices), device_class))
