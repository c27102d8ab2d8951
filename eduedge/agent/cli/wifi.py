"""`eduedge wifi`: the technician's view of the school's Wi-Fi, now - zones, APs, radios, clients, and what is
weak and where.

It polls the configured controllers and APs (snmp.devices with role wlc or ap) once, places every AP in its
zone (collectors/wifi/collector.py) and says, zone by zone: which APs are down, which radios are busy or noisy for the
zone's type (wifi.capacity; a noise floor above the zone's RSSI minus SNR), which clients are below the
signal the zone needs (standards.wifi_signal), and which APs no zone claims. Clients appear only as counts
and pseudonyms: their MACs never leave the poller in clear, here neither. The verdicts over school hours
(the standards rules) are the daemon's: the latest of them, from the data directory, closes the report.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from eduedge.agent.cli._options import config_option, config_or_exit
from eduedge.agent.cli._progress import Activity, activity
from eduedge.agent.compliance.findings import status_word
from eduedge.agent.compliance.wifi_coverage import capacity_for, good_signal, signal_for, zone_type_word
from eduedge.agent.config import AgentConfig
from eduedge.collectors.snmp.poller import DevicePoll
from eduedge.collectors.wifi.collector import Ap, WifiSnapshot, median, snapshot, wireless_devices
from eduedge.core.i18n import _
from eduedge.core.secrets import SecretError
from eduedge.core.tables import add, key, num, table


def poll_wireless(cfg: AgentConfig, only: str | None = None, act: Activity | None = None) -> list[DevicePoll]:
    """Poll the configured controllers and APs once (clients pseudonymised with the school's key); `act` shows
    how many have answered."""
    from eduedge.collectors.snmp.build import poller_for
    from eduedge.collectors.snmp.poller import poll_many
    from eduedge.collectors.snmp.profiles import load_profiles
    from eduedge.core.pseudonym import pseudonymizer

    devices = [d for d in wireless_devices(cfg.snmp.devices) if only is None or d.name == only]
    if not devices:
        raise ValueError(_("no device {device} with role wlc or ap under snmp.devices").format(device=repr(only))
                         if only else _("no Wi-Fi controller or AP under snmp.devices (role wlc or ap)"))
    profiles = load_profiles(cfg.snmp.profile_dirs)
    pseudo = pseudonymizer(cfg.privacy.pseudonym_key, cfg.agent.data_dir)
    pollers = [poller_for(d, cfg.snmp, profiles, pseudonymizer=pseudo) for d in devices]
    act = act or Activity()
    act.stage(_("polling the Wi-Fi controllers and APs"), total=len(pollers))
    silent: list[str] = []

    def done(poll: DevicePoll) -> None:
        if poll.identity is None:
            silent.append(poll.device)
        act.advance(note=_("{n} did not answer").format(n=len(silent)) if silent else None)

    return asyncio.run(poll_many(pollers, cfg.snmp.defaults.concurrency, on_done=done))


def report(snap: WifiSnapshot, cfg: AgentConfig) -> dict[str, Any]:
    """Zones, their APs and radios, client counts and signal, and what is weak and where (JSON-ready)."""
    zones: dict[str, dict[str, Any]] = {}
    for name, z in cfg.wifi.zones.items():
        zones[name] = {"zone": name, "type": z.type, "aps": [], "issues": []}
    by_ap: dict[tuple[str, str], list] = {}
    for c in snap.clients:
        by_ap.setdefault((c.device, c.ap), []).append(c)
    weak: list[str] = []
    unplaced: list[dict[str, Any]] = []
    for ap in snap.aps:
        row = _ap_row(ap, by_ap.get((ap.device, ap.name), []), cfg)
        if ap.zone is None:
            unplaced.append(row)
            continue
        z = zones.setdefault(ap.zone, {"zone": ap.zone, "type": ap.zone_type, "aps": [], "issues": []})
        z["aps"].append(row)
        z["issues"] += row.pop("issues")
    for z in zones.values():
        need = signal_for(cfg, z["type"])
        rows = z["aps"]
        z["signal_needed"] = {"rssi_dbm": need.rssi_dbm, "snr_db": need.snr_db}
        z["aps_up"] = sum(1 for a in rows if a["up"])
        z["clients"] = sum(a["clients"] for a in rows)
        judged = [c for a in rows for c in a.pop("_signals")]
        z["clients_with_signal"] = len(judged)
        z["good_signal_percent"] = round(100.0 * sum(judged) / len(judged), 1) if judged else None
        rates = [r for a in rows for r in a.pop("_rates")]
        z["phy_median_mbps"] = median(rates)
        if not rows:
            z["issues"].append(_("zone {zone}: no AP is placed in it (wifi.aps, or a controller AP group)").format(
                zone=z["zone"]))
        elif not z["aps_up"]:
            z["issues"].append(_("zone {zone}: every AP is down").format(zone=z["zone"]))
        weak += z["issues"]
    for a in unplaced:
        a.pop("_signals")
        a.pop("_rates")
        weak += a.pop("issues")
    if unplaced:
        weak.append(_("{n} AP(s) in no zone: {aps} - place them under wifi.aps").format(
            n=len(unplaced), aps=", ".join(a["name"] for a in unplaced[:8])))
    return {"time": snap.time, "devices": snap.devices, "ssids": snap.ssids,
            "zones": sorted(zones.values(), key=lambda z: z["zone"]), "unplaced_aps": unplaced, "weak": weak,
            "co_channel": co_channel(zones.values())}


def co_channel(zones: Any) -> list[dict[str, Any]]:
    """APs of one zone whose radios are up on the same channel of the same band: they hear each other and
    share the channel's airtime, whatever their signal. One entry per zone, band and channel with two APs or
    more, the most crowded first."""
    out = []
    for z in zones:
        on: dict[tuple[str, int], list[str]] = {}
        for a in z["aps"]:
            if not a["up"]:
                continue
            for r in a["radios"]:
                if r.get("channel") is not None and r.get("status") in (None, "up"):
                    names = on.setdefault((str(r.get("band") or "?"), int(r["channel"])), [])
                    if a["name"] not in names:
                        names.append(a["name"])
        out += [{"zone": z["zone"], "band": band, "channel": ch, "aps": names}
                for (band, ch), names in on.items() if len(names) > 1]
    return sorted(out, key=lambda c: (-len(c["aps"]), c["zone"], c["band"], c["channel"]))


def co_channel_lines(entries: list[dict[str, Any]]) -> list[str]:
    """`zone teaching-a: 12 APs share channel 1 (2.4 GHz), 36 (5 GHz): ap-a01, ap-a02, ... and 6 more`: one line
    per zone and set of APs (the same APs on one channel in each band are one line)."""
    together: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = {}
    for c in entries:
        together.setdefault((c["zone"], tuple(c["aps"])), []).append(c)
    lines = []
    for (zone, names), same in together.items():
        channels = ", ".join(_("{channel} ({band} GHz)").format(channel=c["channel"], band=c["band"]) for c in same)
        shown = ", ".join(names[:6]) + (" " + _("and {n} more").format(n=len(names) - 6) if len(names) > 6 else "")
        lines.append(_("zone {zone}: {n} APs share channel {channels}: {aps}").format(
            zone=zone, n=len(names), channels=channels, aps=shown))
    return lines


def _bullets(console: Any, lines: list[str]) -> None:
    """`  - line`, a line too long for the terminal carried on under its own start."""
    grid = Table.grid()
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for line in lines:
        grid.add_row("  - ", Text(line))
    console.print(grid)


def _ap_row(ap: Ap, clients: list, cfg: AgentConfig) -> dict[str, Any]:
    need, cap = signal_for(cfg, ap.zone_type), capacity_for(cfg, ap.zone_type)
    where = ap.name + (" " + _("(room {room})").format(room=ap.room) if ap.room else "") + (
        _(", zone {zone}").format(zone=ap.zone) if ap.zone else "")
    issues: list[str] = []
    if not ap.up:
        issues.append(_("{ap}: down ({reason})").format(ap=where, reason=ap.up_reason))
    radios = []
    for r in sorted(ap.radios.values(), key=lambda r: r.id):
        flags = []
        if r.utilization_percent is not None and r.utilization_percent >= cap.utilization_percent:
            flags.append(_("utilisation {util} % (limit {limit} %)").format(
                util=f"{r.utilization_percent:g}", limit=f"{cap.utilization_percent:g}"))
        if r.clients is not None and r.clients > cap.clients_per_radio:
            flags.append(_("{n} clients (limit {limit})").format(n=r.clients, limit=cap.clients_per_radio))
        if r.noise_dbm is not None and r.noise_dbm > need.rssi_dbm - need.snr_db:
            flags.append(_("noise floor {noise} dBm (above {floor})").format(
                noise=f"{r.noise_dbm:g}", floor=f"{need.rssi_dbm - need.snr_db:g}"))
        down = _("radio down")
        if not r.up:
            flags.append(down)
        band = _("{band} GHz").format(band=r.band) if r.band else _("band ?")
        issues += [_("{ap} radio {radio} ({band}): {flag}").format(ap=where, radio=r.id, band=band, flag=f)
                   for f in flags if f != down or ap.up]
        radios.append({"radio": r.id, "band": r.band, "band_from": r.band_from, "status": r.status,
                       "channel": r.channel, "width_mhz": r.width_mhz, "tx_power_dbm": r.tx_power_dbm,
                       "noise_dbm": r.noise_dbm, "utilization_percent": r.utilization_percent, "clients": r.clients,
                       "clients_from": r.clients_from, "phy_mbps": r.phy_mbps, "flags": flags})
    signals = [ok for c in clients if (ok := good_signal(c.rssi_dbm, c.snr_db, need)) is not None]
    bad = [c for c in clients if good_signal(c.rssi_dbm, c.snr_db, need) is False]
    if bad:
        weakest = min((c.rssi_dbm for c in bad if c.rssi_dbm is not None), default=None)
        issues.append((_("{ap}: {bad} of {n} clients below {rssi} dBm / SNR {snr} dB (weakest {weakest} dBm)")
                       if weakest is not None else _("{ap}: {bad} of {n} clients below {rssi} dBm / SNR {snr} dB"))
                      .format(ap=where, bad=len(bad), n=len(clients), rssi=f"{need.rssi_dbm:g}",
                              snr=f"{need.snr_db:g}", weakest=f"{weakest:g}" if weakest is not None else ""))
    n_clients = len(clients) or sum(r.clients or 0 for r in ap.radios.values()) or (ap.clients or 0)
    return {"name": ap.name, "device": ap.device, "zone": ap.zone, "room": ap.room, "placed_by": ap.placed_by,
            "up": ap.up, "status": ap.status, "up_reason": ap.up_reason, "model": ap.model, "mac": ap.mac,
            "group": ap.group, "clients": n_clients, "clients_reported_one_by_one": bool(clients),
            "weak_clients": len(bad), "radios": radios, "issues": issues, "_signals": signals,
            "_rates": [c.phy_mbps for c in clients if c.phy_mbps is not None]}


def latest_findings(cfg: AgentConfig) -> list[dict[str, Any]]:
    """The daemon's latest Wi-Fi verdicts from the data directory (none when it has not judged yet)."""
    from eduedge.agent.samplestore import DB_NAME, SampleStore

    if not (Path(cfg.agent.data_dir) / DB_NAME).exists():
        return []
    store = SampleStore.in_data_dir(Path(cfg.agent.data_dir), readonly=True)
    try:
        return [{"rule": f.rule, "status": f.status, "why": f.why} for f in store.findings()
                if f.evidence.get("rule", {}).get("kind") in ("wifi-coverage", "wifi-access")]
    finally:
        store.close()


def _print(rep: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console(highlight=False)
    for z in rep["zones"]:
        need = z["signal_needed"]
        share = "-" if z["good_signal_percent"] is None else f"{z['good_signal_percent']:g} %"
        t = table(key("AP"), key(_("room")), key(_("state")), key(_("radio")), num(_("band\nGHz")), num(_("channel")),
                  num(_("width\nMHz")), num(_("power\ndBm")), num(_("noise\ndBm")), num(_("util\n%")),
                  num(_("clients")),
                  title=_("zone {zone} ({type}): {up}/{aps} APs up, {clients} clients, {share} at >= {rssi} dBm / "
                          "{snr} dB").format(zone=z["zone"], type=zone_type_word(z["type"]) if z["type"] else
                                             _("type ?"), up=z["aps_up"], aps=len(z["aps"]), clients=z["clients"],
                                             share=share, rssi=f"{need['rssi_dbm']:g}", snr=f"{need['snr_db']:g}"))
        for a in z["aps"]:
            first = True
            for r in a["radios"] or [{}]:
                add(t, a["name"] if first else "", (a["room"] or "-") if first else "",
                    (_("up") if a["up"] else _("DOWN")) if first else "", r.get("radio"), r.get("band"),
                    r.get("channel"),
                    r.get("width_mhz"), r.get("tx_power_dbm"), r.get("noise_dbm"), r.get("utilization_percent"),
                    r.get("clients"))
                first = False
        console.print(t)
    if rep["ssids"]:
        console.print("SSIDs: " + ", ".join(f"{k} {v}" for k, v in sorted(rep["ssids"].items())), markup=False)
    for name, d in sorted(rep["devices"].items()):
        if not d.get("answered"):
            errors = "; ".join(d.get("errors") or []) or _("no data")
            console.print("[red]" + escape(_("{device} did not answer").format(device=name)) + "[/]: " + escape(errors))
    console.print(_("What is weak and where") if rep["weak"] else
                  _("Nothing weak seen now (APs up, radios' load and noise, clients' signal)"),
                  style="bold", markup=False)
    _bullets(console, rep["weak"])
    if rep.get("co_channel"):
        # not a fault by itself, but what to look at first when a zone is slow: neighbours that share airtime
        console.print(_("Co-channel neighbours (APs of one zone on one channel share its airtime):"), markup=False,
                      style="bold")
        _bullets(console, co_channel_lines(rep["co_channel"]))
    for f in rep.get("findings", []):
        console.print(f"{f['rule']}: {status_word(f['status'])} - {f['why']}", markup=False)


def register(app: typer.Typer) -> None:
    @app.command("wifi")
    def wifi_cmd(
        config: Path = config_option(),
        device: str | None = typer.Option(None, "--device", help="only this controller or AP (its snmp.devices name)"),
        as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
    ) -> None:
        """Poll the Wi-Fi controllers and APs now: zones, APs, radios, clients, and what is weak and where."""
        cfg = config_or_exit(config)
        try:
            with activity(as_json) as act:
                polls = poll_wireless(cfg, device, act)
        except (ValueError, SecretError) as e:
            typer.echo(_("error: {problem}").format(problem=e), err=True)
            raise typer.Exit(2) from None
        rep = report(snapshot(polls, cfg.wifi, cfg.snmp.devices), cfg)
        rep["findings"] = latest_findings(cfg)
        if as_json:
            typer.echo(json.dumps(rep, indent=2, ensure_ascii=False))
        else:
            _print(rep)
