"""`eduedge devices`: the devices discovery knows, from the inventory the daemon keeps in the data
directory, without sending anything. Clear MACs and host names are shown here, on the box, to the
technician; they never leave it."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from eduedge.agent.cli._options import config_option, config_or_exit
from eduedge.core.i18n import _, ngettext
from eduedge.core.tables import add, key, table, terminal


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
        inv = DeviceInventory(cfg, pseudonymizer(cfg.privacy.pseudonym_key, cfg.agent.data_dir),
                              Path(cfg.agent.data_dir) / STATE_FILE)
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
