"""`eduedge scan`: the technician's view of what is on the classroom subnets, now.

`eduedge scan` sweeps the configured subnets now (or one of them with `--subnet`), reads the switches'
tables, identifies what answered (vendor, class and why, PJLink state, port and room) and pings what is
school equipment. A subnet outside `discovery.subnets` is refused unless `--i-own-this-network` says the
technician owns it.
Clear MACs and host names are shown here, on the box, to the technician; they never leave it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from pathlib import Path
from typing import Any

import typer

from eduedge.agent.cli._options import config_option, config_or_exit
from eduedge.agent.cli._progress import Activity, activity
from eduedge.core.i18n import _, ngettext
from eduedge.core.tables import add, key, table, terminal


def scan(cfg: Any, subnets: list[str], own: bool, state_path: Path | None = None,
         act: Activity | None = None) -> dict[str, Any]:
    """One scan as a JSON-ready dict; raises `OutOfScope` for a subnet the configuration does not list.
    `act` shows the stages."""
    from eduedge.agent.compliance.device_inventory import DiscoveryJob, apply_reachability, reachability_targets
    from eduedge.collectors.discovery.discovery import OutOfScope, Scope
    from eduedge.collectors.reachability import probe
    from eduedge.core.pseudonym import pseudonymizer

    nets = [ipaddress.IPv4Network(s) for s in subnets] or list(cfg.discovery.subnets)
    if not nets:
        raise OutOfScope(_("no subnet to scan: list discovery.subnets in the configuration or give --subnet"))
    job = DiscoveryJob(cfg, pseudonymizer(cfg.privacy.pseudonym_key, cfg.agent.data_dir), state_path)
    if own:
        job.scope = Scope(tuple({*job.scope.subnets, *nets}), job.scope.hosts)
    for n in nets:
        job.scope.check_subnet(n)
    act = act or Activity()
    act.stage(_("sweeping {subnets} and reading the switches' tables").format(subnets=", ".join(map(str, nets))))
    t0 = time.monotonic()
    cycle = asyncio.run(job.run(nets))
    took = time.monotonic() - t0
    r = cfg.reachability
    targets = [t for t in reachability_targets(cfg, job.inventory) if job.scope.allows(t.address) or t.listed]
    if targets:
        act.stage(_("pinging {n} devices").format(n=len(targets)))
    reach = asyncio.run(probe(targets, job.scope, r.count, r.timeout, r.concurrency, r.tcp_ports)) if targets else []
    apply_reachability(job.inventory, reach)
    by_ip = {x.address: x for x in reach}
    rows = []
    for mac, o in sorted(cycle.observed.items(), key=lambda kv: ipaddress.IPv4Address(kv[1].ip or "0.0.0.0")):
        ident = cycle.identified[mac]
        d = job.inventory.devices[mac]
        pj = cycle.pjlink.get(mac)
        rx = by_ip.get(o.ip or "")
        rows.append({"ip": o.ip, "mac": mac, "name": job.inventory.device_id(d), "class": ident.device_class,
                     "personal": ident.personal, "vendor": ident.vendor, "model": ident.model,
                     "hostname": o.hostname, "evidence": ident.evidence, "switch": o.switch, "port": o.interface,
                     "room": d.room, "sources": sorted(o.sources),
                     "pjlink": {"status": pj.status, "summary": pj.message, "power": pj.power,
                                "lamps": [lamp.hours for lamp in pj.lamps], "errors": pj.errors} if pj else None,
                     "reachability": {"reachable": rx.reachable, "method": rx.method, "rtt_ms": rx.rtt_ms,
                                      "loss_percent": rx.loss_percent, "summary": rx.summary()} if rx else None})
    listed = [{"name": x.name, "address": x.address, "summary": x.summary(), "reachable": x.reachable}
              for x in reach if x.address not in {row["ip"] for row in rows}]
    return {"subnets": [str(n) for n in nets], "seconds": round(took, 2), "devices": rows, "listed": listed,
            "errors": cycle.errors}


def nothing_found(result: dict[str, Any]) -> list[str]:
    """Why a scan shows no device: what was asked and where, and what cannot answer there."""
    why = [_("no device discovered on {subnets} in {seconds:g} s: no reply to the ARP sweep and no address in the "
             "switches' tables").format(subnets=", ".join(result["subnets"]), seconds=result["seconds"])]
    for net in result["subnets"]:
        n = ipaddress.ip_network(net)
        if n.is_loopback:
            why.append(_("{subnet} is loopback: nothing answers ARP there; scan the campus's own subnets "
                         "(discovery.subnets)").format(subnet=net))
    if result["errors"]:
        why.append(_("and the scan itself had trouble (below)"))
    return why


def _print(result: dict[str, Any]) -> None:
    console = terminal()
    if not result["devices"]:
        for line in nothing_found(result):
            console.print(line, markup=False)
    n = len(result["devices"])
    t = table(key(_("address")), key("MAC"), key(_("class")), _("vendor"), _("where"), _("status"),
              title=ngettext("{n} device on {subnets} ({seconds} s)", "{n} devices on {subnets} ({seconds} s)",
                             n).format(n=n, subnets=", ".join(result["subnets"]), seconds=f"{result['seconds']:g}"))
    for d in result["devices"]:
        room = _("room {room}").format(room=d["room"]) if d["room"] else None
        where = " ".join(x for x in (d["switch"], d["port"], room) if x)
        status = []
        if d["reachability"]:
            status.append(d["reachability"]["summary"])
        if d["pjlink"]:
            status.append(f"PJLink {d['pjlink']['summary']}")
        add(t, d["ip"] or "", d["mac"], d["class"] + (" " + _("(personal)") if d["personal"] else ""),
            d["vendor"] or "?", where or "-", "; ".join(status) or "-")
    if result["devices"]:
        console.print(t)
    for d in result["devices"]:
        if not d["personal"] or d["class"] == "learning":
            evidence = d["evidence"][0] if d["evidence"] else _("no evidence")
            console.print(f"  {d['ip']} {d['class']}: {evidence}", markup=False)
    for x in result["listed"]:
        console.print("  " + _("listed {name} ({address}): {summary}").format(
            name=x["name"], address=x["address"], summary=x["summary"]), markup=False)
    for e in result["errors"]:
        console.print(_("warning: {problem}").format(problem=e), markup=False, style="yellow")


def register(app: typer.Typer) -> None:
    @app.command("scan")
    def scan_cmd(
        config: Path = config_option(),
        subnet: list[str] = typer.Option([], "--subnet", help="scan only this subnet (CIDR); repeatable"),
        as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
        own: bool = typer.Option(False, "--i-own-this-network",
                                 help="allow a --subnet that discovery.subnets does not list"),
    ) -> None:
        """Sweep the configured subnets now: what is there, its class and vendor, its port and room, up or not."""
        from eduedge.collectors.discovery.discovery import OutOfScope

        cfg = config_or_exit(config)
        try:
            with activity(as_json) as act:
                result = scan(cfg, subnet, own, act=act)
        except OutOfScope as e:
            typer.echo(_("refused: {problem} (pass --i-own-this-network if it is yours to scan)").format(problem=e),
                       err=True)
            raise typer.Exit(2) from None
        except ValueError as e:
            typer.echo(_("error: {problem}").format(problem=e), err=True)
            raise typer.Exit(2) from None
        if as_json:
            typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
        else:
            _print(result)
