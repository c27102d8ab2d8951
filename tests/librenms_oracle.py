"""The oracle: every recording polled as a device, compared field by field with what LibreNMS found in it.

Each recording in eduedge/simulator/realdevices/snmprec is served by one snmpsim, polled once through
whatever profile it matches (for most of the second batch that is `generic`: no profile was written for
them) and compared with LibreNMS's results for the same recording (`expected/<name>.json`):

field: LibreNMS's value -> ours
- model, os_version, serial: os.hardware, os.version, os.serial -> Identity.model, os_version, serial
- class: os.type (printer, power, network, wireless, server, storage) -> Identity.device_class
- interfaces: each port's ifName, speed and oper status -> the same port, all three equal
- neighbours: discovery-protocols links -> lldp.neighbor / cdp.neighbor with the same remote name on the
  same local port
- supplies: printer-supplies (percent) -> printer.supply_level_percent / input_level_percent of the
  same description, within 1
- battery: sensors of class charge and runtime -> ups.battery_charge_percent, ups.runtime_s and
  ups.on_battery_s (in minutes, as LibreNMS shows them)
- sensors: the other numeric sensors read from a standard MIB (UPS-MIB, ENTITY-SENSOR-MIB, net-snmp's
  LM-SENSORS-MIB: temperature, voltage, current, power, frequency, load, fan speed) -> a reading of that
  class's canonical metrics, equal within 1 %; vendor_sensors: the same for sensors LibreNMS reads from
  a vendor's MIB
- clients: wireless sensors of class clients -> wifi.clients (a total), wifi.ssid_clients (by SSID,
  and band where LibreNMS splits it), wifi.radio_clients
- cpu, memory: processors, mempools of class system -> device.cpu_percent, device.memory_percent, within 1

Only what LibreNMS has a value for is counted. LibreNMS's own conventions that are not readings are left
out and counted apart ("not comparable"): a supply level of -3 ("some remaining") that LibreNMS shows as
50 %, and identity values it does not have ('' or None). Numeric sensors are paired one to one: each of
LibreNMS's takes an unused reading of its class with the same value, preferring one whose tags name it.

    .venv/bin/python -m tests.librenms_oracle              # the table and the totals per field
    .venv/bin/python -m tests.librenms_oracle --details    # every disagreement
    .venv/bin/python -m tests.librenms_oracle --write-baseline

`tests/librenms_oracle_baseline.json` holds every item that agreed when it was written; the test
(tests/test_librenms_oracle.py) fails when one of them stops agreeing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from eduedge.collectors.snmp.client import SnmpAuth, SnmpClient
from eduedge.collectors.snmp.poller import DevicePoll, DevicePoller, poll_many
from eduedge.collectors.snmp.profiles import ProfileSet, load_profiles
from eduedge.collectors.snmp.report import summarise
from eduedge.core.samples import Sample
from eduedge.simulator.snmpsim import start_snmpsim

BASELINE = Path(__file__).with_name("librenms_oracle_baseline.json")
FIELDS = ("model", "os_version", "serial", "class", "interfaces", "neighbours", "supplies", "battery",
          "sensors", "vendor_sensors", "clients", "cpu", "memory")
# where a sensor is read from a standard MIB: mib-2 (UPS-MIB, ENTITY-SENSOR-MIB, ...) and net-snmp's
# LM-SENSORS-MIB; anything else is a vendor MIB ("vendor_sensors")
STANDARD_SENSOR_OIDS = ("1.3.6.1.2.1.", "1.3.6.1.4.1.2021.13.16.")
# LibreNMS's device type -> the classes that agree with it
LIBRENMS_TYPE = {"printer": {"printer"}, "power": {"ups"}, "network": {"switch", "router", "wlc"},
                 "wireless": {"wifi_ap", "wlc"}, "server": {"server"}, "storage": {"server"},
                 "collaboration": {"display"}}
# LibreNMS sensor class -> our metrics, and the factor that turns ours into LibreNMS's unit
SENSOR_METRICS: dict[str, tuple[tuple[str, float], ...]] = {
    "charge": (("ups.battery_charge_percent", 1),),
    "runtime": (("ups.runtime_s", 1 / 60), ("ups.on_battery_s", 1 / 60)),
    "temperature": (("device.temperature_c", 1), ("ups.battery_temperature_c", 1)),
    "voltage": (("device.voltage_v", 1), ("ups.battery_voltage_v", 1), ("ups.input_voltage_v", 1),
                ("ups.output_voltage_v", 1), ("ups.bypass_voltage_v", 1)),
    "current": (("device.current_a", 1), ("ups.battery_current_a", 1), ("ups.input_current_a", 1),
                ("ups.output_current_a", 1), ("ups.bypass_current_a", 1)),
    "power": (("device.sensor_power_w", 1), ("device.power_w", 1), ("ups.input_power_w", 1),
              ("ups.output_power_w", 1), ("ups.bypass_power_w", 1), ("poe.port_power_w", 1)),
    "frequency": (("ups.input_frequency_hz", 1), ("ups.output_frequency_hz", 1), ("ups.bypass_frequency_hz", 1)),
    "load": (("ups.load_percent", 1),),
    "fanspeed": (("device.fan_rpm", 1),),
    "humidity": (("device.humidity_percent", 1),),
}
BATTERY = {"charge", "runtime"}


@dataclass
class Item:
    """One value LibreNMS has, and whether ours agrees."""

    recording: str
    field: str
    what: str
    theirs: object
    ours: object = None
    agrees: bool = False

    @property
    def key(self) -> str:
        return f"{self.recording}|{self.field}|{self.what}"


@dataclass
class Report:
    items: list[Item] = field(default_factory=list)
    not_comparable: list[Item] = field(default_factory=list)

    def totals(self) -> dict[str, tuple[int, int]]:
        out = {f: [0, 0] for f in FIELDS}
        for i in self.items:
            out[i.field][1] += 1
            out[i.field][0] += i.agrees
        return {f: (a, n) for f, (a, n) in out.items()}

    def agreed(self) -> set[str]:
        return {i.key for i in self.items if i.agrees}


def _norm(text: object) -> str:
    return " ".join(str(text or "").split()).casefold()


def _close(ours: float, theirs: float, rel: float = 0.01, absolute: float = 0.0) -> bool:
    return abs(ours - theirs) <= max(absolute, rel * abs(theirs), 1e-9)


def _words(text: str) -> set[str]:
    return {w for w in re.split(r"[^0-9a-z]+", text.casefold()) if w}


def _raw_values(snmprec: Path) -> dict[str, str]:
    out = {}
    for line in snmprec.read_text(encoding="utf-8", errors="replace").splitlines():
        oid, _, rest = line.partition("|")
        out[oid.strip().lstrip(".")] = rest.partition("|")[2]
    return out


def _section(doc: dict, module: str, key: str) -> list[dict]:
    return (doc.get(module) or {}).get("discovery", {}).get(key, []) or []


def compare_identity(name: str, doc: dict, poll: DevicePoll, rep: Report) -> None:
    devices = _section(doc, "os", "devices")
    if not devices or poll.identity is None:
        return
    theirs, ident = devices[0], poll.identity
    for fld, ours, lib in (("model", ident.model, theirs.get("hardware")),
                           ("os_version", ident.os_version, theirs.get("version")),
                           ("serial", ident.serial, theirs.get("serial"))):
        item = Item(name, fld, fld, lib, ours, _norm(ours) == _norm(lib))
        (rep.items if _norm(lib) else rep.not_comparable).append(item)
    if theirs.get("type") in LIBRENMS_TYPE:
        rep.items.append(Item(name, "class", "class", theirs["type"], ident.device_class,
                              ident.device_class in LIBRENMS_TYPE[theirs["type"]]))


def _snake(status: str | None) -> str | None:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", status).lower() if status else None


def compare_interfaces(name: str, doc: dict, poll: DevicePoll, rep: Report) -> None:
    if "ports" not in doc:
        return
    poller = doc["ports"].get("poller")
    ports = poller["ports"] if isinstance(poller, dict) else _section(doc, "ports", "ports")
    ours = {i["index"]: i for i in summarise(poll)["interfaces"]}
    for p in ports:
        mine = ours.get(p["ifIndex"], {})
        speed = p["ifSpeed"] / 1e6 if p["ifSpeed"] else None
        got = mine.get("speed_mbps") or None
        agrees = (bool(mine) and (p["ifName"] or "") == mine.get("name")
                  and (got is None if speed is None else got is not None and _close(got, speed, 0, 0.001))
                  and mine.get("oper_status") == _snake(p["ifOperStatus"]))
        rep.items.append(Item(name, "interfaces", str(p["ifIndex"]),
                              (p["ifName"], speed, p["ifOperStatus"]),
                              (mine.get("name"), got, mine.get("oper_status")) if mine else None, agrees))


def _port(text: str) -> str:
    return re.sub(r"\s+", "", text or "").casefold()


def compare_neighbours(name: str, doc: dict, poll: DevicePoll, rep: Report) -> None:
    links = _section(doc, "discovery-protocols", "links")
    ours = [s for s in poll.samples if s.metric in ("lldp.neighbor", "cdp.neighbor")]
    used: set[int] = set()
    for link in links:
        local = {_port(link.get(k) or "") for k in ("ifName", "ifDescr")} - {""}
        proto = "cdp.neighbor" if link.get("protocol") == "cdp" else "lldp.neighbor"
        remote = _norm(link.get("remote_hostname"))
        found = None
        for i, s in enumerate(ours):
            if i in used or s.metric != proto or _norm(s.value) != remote:
                continue
            if _port(s.tags.get("local_port", "")) in local:
                found = i
                break
        if found is not None:
            used.add(found)
        what = f"{link.get('protocol')} {link.get('ifName')} -> {link.get('remote_hostname')}"
        rep.items.append(Item(name, "neighbours", what, link.get("remote_port"),
                              ours[found].tags.get("local_port") if found is not None else None, found is not None))


def compare_supplies(name: str, doc: dict, poll: DevicePoll, raw: dict[str, str], rep: Report) -> None:
    supplies = _section(doc, "printer-supplies", "printer_supplies")
    ours = defaultdict(list)
    for s in poll.samples:
        if s.metric in ("printer.supply_level_percent", "printer.input_level_percent"):
            ours[_norm(s.tags.get("supply") or s.tags.get("tray"))].append(s.value)
    for sup in supplies:
        item = Item(name, "supplies", f"{sup['supply_descr']}", sup["supply_current"])
        level = raw.get(sup["supply_oid"].lstrip("."), "")
        if level.strip() == "-3":       # "some remaining": LibreNMS shows 50 %, no reading says so
            item.ours = "no percentage ('some remaining', -3)"
            rep.not_comparable.append(item)
            continue
        values = ours.get(_norm(sup["supply_descr"]), [])
        item.ours = values
        item.agrees = any(_close(v, sup["supply_current"], 0, 1.0) for v in values)
        rep.items.append(item)


def _pair(candidates: list[tuple[Sample, float]], theirs: float, descr: str, used: set[int]) -> int | None:
    """An unused reading with LibreNMS's value, preferring one whose tags share words with its name."""
    want = _words(descr)
    best, best_score = None, -1
    for i, (s, value) in enumerate(candidates):
        if i in used or not _close(value, theirs, 0.01, 0.051):
            continue
        score = len(want & _words(" ".join([s.metric, *s.tags.values()])))
        if score > best_score:
            best, best_score = i, score
    return best


def compare_sensors(name: str, doc: dict, poll: DevicePoll, rep: Report) -> None:
    used: dict[str, set[int]] = defaultdict(set)
    pools: dict[str, list[tuple[Sample, float]]] = {}
    for cls, metrics in SENSOR_METRICS.items():
        factor = dict(metrics)
        pools[cls] = [(s, s.value * factor[s.metric]) for s in poll.samples
                      if s.metric in factor and isinstance(s.value, int | float)]
    sensors = [x for x in _section(doc, "sensors", "sensors")
               if x["sensor_class"] in SENSOR_METRICS and x.get("sensor_current") is not None]
    # the standard-MIB sensors are paired first: a vendor MIB's copy of a reading does not take its match
    sensors.sort(key=lambda x: not x["sensor_oid"].lstrip(".").startswith(STANDARD_SENSOR_OIDS))
    for sensor in sensors:
        cls = sensor["sensor_class"]
        standard = sensor["sensor_oid"].lstrip(".").startswith(STANDARD_SENSOR_OIDS)
        fld = "battery" if cls in BATTERY else "sensors" if standard else "vendor_sensors"
        found = _pair(pools[cls], float(sensor["sensor_current"]), sensor["sensor_descr"], used[cls])
        if found is not None:
            used[cls].add(found)
        ours = pools[cls][found][0] if found is not None else None
        rep.items.append(Item(name, fld, f"{cls} {sensor['sensor_descr']} ({sensor['sensor_oid']})",
                              sensor["sensor_current"], f"{ours.metric} {ours.value:g} {ours.tags}" if ours else None,
                              found is not None))


def _client_kind(descr: str) -> tuple[str, str]:
    """What a LibreNMS client sensor counts: ('ssid', name[, band]), ('radio', ''), ('total', '')."""
    m = re.match(r"^SSID:?\s+(.+?)(?:\s+Clients)?(?:\s+\((2\.4|5|6) GHz\))?$", descr)
    if m:
        return "ssid", _norm(m.group(1)) + (f"|{m.group(2)}" if m.group(2) else "")
    if re.search(r"radio|\(n?[abgx]+\)", descr, re.I):
        return "radio", ""
    return "total", ""


def compare_clients(name: str, doc: dict, poll: DevicePoll, rep: Report) -> None:
    sensors = [s for s in _section(doc, "wireless", "wireless_sensors") if s["sensor_class"] == "clients"]
    if not sensors:
        return
    by_ssid: dict[str, float] = defaultdict(float)
    rows: dict[str, list[float]] = defaultdict(list)      # each row of an SSID (one SSID name may recur)
    radios, totals = [], []
    for s in poll.samples:
        if s.metric == "wifi.ssid_clients":
            ssid = _norm(s.tags.get("ssid"))
            by_ssid[ssid] += s.value
            rows[ssid].append(s.value)
            if s.tags.get("band"):
                by_ssid[f"{ssid}|{s.tags['band']}"] += s.value
        elif s.metric == "wifi.radio_clients":
            radios.append(s.value)
        elif s.metric == "wifi.clients":
            totals.append(s.value)
    if by_ssid:
        totals.append(sum(v for k, v in by_ssid.items() if "|" not in k))
    if radios:
        totals.append(sum(radios))
    radio_used: set[int] = set()
    row_used: set[tuple[str, int]] = set()
    for sensor in sensors:
        kind, key = _client_kind(sensor["sensor_descr"])
        theirs = float(sensor["sensor_current"])
        if kind == "ssid":
            ours: object = by_ssid.get(key)
            agrees = ours is not None and ours == theirs
            if not agrees and "|" not in key:   # several SSIDs of one name: LibreNMS lists each row
                idx = next((i for i, v in enumerate(rows.get(key, [])) if (key, i) not in row_used and v == theirs),
                           None)
                if idx is not None:
                    row_used.add((key, idx))
                    ours, agrees = rows[key][idx], True
        elif kind == "radio":
            idx = next((i for i, v in enumerate(radios) if i not in radio_used and v == theirs), None)
            if idx is not None:
                radio_used.add(idx)
            ours, agrees = (radios[idx] if idx is not None else radios), idx is not None
        else:
            ours, agrees = totals, theirs in totals
        rep.items.append(Item(name, "clients", sensor["sensor_descr"], sensor["sensor_current"], ours, agrees))


def compare_cpu_memory(name: str, doc: dict, poll: DevicePoll, rep: Report) -> None:
    for fld, metric, rows, value_key, descr_key in (
            ("cpu", "device.cpu_percent", _section(doc, "processors", "processors"), "processor_usage",
             "processor_descr"),
            ("memory", "device.memory_percent",
             [m for m in _section(doc, "mempools", "mempools") if m.get("mempool_class") == "system"],
             "mempool_perc", "mempool_descr")):
        pool = [(s, float(s.value)) for s in poll.samples if s.metric == metric and isinstance(s.value, int | float)]
        used: set[int] = set()
        for row in rows:
            if row.get(value_key) is None:
                continue
            theirs = float(row[value_key])
            best = None
            for i, (_, v) in enumerate(pool):
                if i not in used and abs(v - theirs) <= 1.0:
                    best = i
                    break
            if best is not None:
                used.add(best)
            rep.items.append(Item(name, fld, str(row.get(descr_key)), row[value_key],
                                  pool[best][1] if best is not None else [round(v, 1) for _, v in pool],
                                  best is not None))


def compare(realdevices: Path, polls: dict[str, DevicePoll]) -> Report:
    rep = Report()
    for device in sorted(polls):
        name = device.removeprefix(GENERIC)
        path = realdevices / "expected" / f"{name}.json"
        if not path.exists():
            continue
        doc = json.loads(path.read_text())
        poll = polls[device]
        raw = _raw_values(realdevices / "snmprec" / f"{name}.snmprec")
        compare_identity(device, doc, poll, rep)
        compare_interfaces(device, doc, poll, rep)
        compare_neighbours(device, doc, poll, rep)
        compare_supplies(device, doc, poll, raw, rep)
        compare_sensors(device, doc, poll, rep)
        compare_clients(device, doc, poll, rep)
        compare_cpu_memory(device, doc, poll, rep)
    return rep


# The second batch of recordings (realdevices/README.md): families no profile was written for when they
# came. Besides the normal poll, each is also polled with `generic` forced, and what that gives is held
# to the baseline too (keys "generic:<name>|..."): the standard-MIB data must keep coming through the
# generic path whatever vendor profiles are written for these families later.
SECOND_BATCH = (
    "ciscosb_sg350x-24p", "nxos_n3k-3064pq", "cumulus_cumulus", "voss_xa1440", "edgecos_ecs2100-10t",
    "linksys-ss_lgs318p", "routeros_crs317", "zynos_mgs3712", "dell-laser_s5830dn", "fujifilmprinter_c7580",
    "okilan_9450g", "samsungprinter_m4080fx", "utax", "xerox", "deltaups", "generex-ups_cs141", "liebert_apm",
    "netmanplus_204", "poweralert_ups", "fortiap_fap831f", "zyxelwlc_nxc2500", "grandstream-ap_gwn7660",
    "pmp_450", "windows_svr_2019_1809", "dsm_ds214se-dsm7")
GENERIC = "generic:"


def poll_recordings(realdevices: Path, profiles: ProfileSet | None = None) -> dict[str, DevicePoll]:
    """Serve every recording with one snmpsim and poll each once through the profile it matches, and each
    of the second batch once more through `generic` (as "generic:<name>")."""
    profiles = profiles or load_profiles()
    server = start_snmpsim(sorted((realdevices / "snmprec").glob("*.snmprec")))
    try:
        def poller(device: str, community: str, forced: str | None = None) -> DevicePoller:
            return DevicePoller(SnmpClient(device, server.host, server.port, SnmpAuth(community=community),
                                           timeout=5, retries=1), profiles, forced_profile=forced, deadline=120)
        pollers = [poller(name, name) for name in server.names]
        pollers += [poller(GENERIC + name, name, "generic") for name in server.names if name in SECOND_BATCH]
        return {p.device: p for p in asyncio.run(poll_many(pollers, concurrency=8))}
    finally:
        server.stop()


def table(rep: Report, names: list[str], generic: set[str] | None = None) -> str:
    """Agreements per recording and field ('3/4'; '' where LibreNMS has nothing), then the totals."""
    cells: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for i in rep.items:
        c = cells[(i.recording, i.field)]
        c[0] += i.agrees
        c[1] += 1
    width = max(len(n) for n in names)
    lines = [f"{'recording':{width}}  " + " ".join(f"{f[:10]:>10}" for f in FIELDS)]
    for n in names:
        row = [f"{a}/{t}" if t else "" for a, t in (cells[(n, f)] for f in FIELDS)]
        lines.append(f"{n:{width}}  " + " ".join(f"{c:>10}" for c in row))
    lines[0] = f"{'recording':{width}}  " + " ".join(f"{f.replace('vendor_', 'v.')[:10]:>10}" for f in FIELDS)
    totals = rep.totals()
    lines.append(f"{'agree':{width}}  " + " ".join(f"{f'{a}/{t}':>10}" for a, t in totals.values()))
    lines.append(f"{'share':{width}}  " + " ".join(f"{(f'{100 * a / t:.0f} %' if t else '-'):>10}"
                                                  for a, t in totals.values()))
    if generic:     # the recordings no vendor profile claims: what the standard MIBs alone give
        sub = Report([i for i in rep.items if i.recording in generic])
        lines.append(f"{'generic path':{width}}  " + " ".join(
            f"{(f'{a}/{t}' if t else '-'):>10}" for a, t in sub.totals().values()))
    return "\n".join(lines)


def split(rep: Report) -> tuple[Report, Report]:
    """The polls through the matched profiles, and the second batch's polls through `generic`."""
    forced = [i for i in rep.items if i.recording.startswith(GENERIC)]
    return (Report([i for i in rep.items if not i.recording.startswith(GENERIC)],
                   [i for i in rep.not_comparable if not i.recording.startswith(GENERIC)]), Report(forced))


def main(argv: list[str] | None = None) -> int:
    from tests.conftest import REALDEVICES

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--details", action="store_true", help="list every disagreement")
    ap.add_argument("--write-baseline", action="store_true", help=f"write the agreements to {BASELINE.name}")
    args = ap.parse_args(argv)
    polls = poll_recordings(REALDEVICES)
    rep = compare(REALDEVICES, polls)
    matched, forced = split(rep)
    names = sorted({i.recording for i in matched.items})
    generic = {n for n, p in polls.items() if p.identity is not None and p.identity.profile == "generic"
               and not n.startswith(GENERIC)}
    print(table(matched, names, generic))
    print(f"(generic path: the {len(generic)} recordings no vendor profile claims, read through `generic`)")
    print("\nthe second batch polled through `generic` forced (standard MIBs only, whatever profile exists):")
    print(table(forced, sorted({i.recording for i in forced.items})).split("\n", 1)[0])
    print("\n".join(table(forced, sorted({i.recording for i in forced.items})).splitlines()[-2:]))
    print(f"\nnot comparable (LibreNMS conventions, not readings): {len(matched.not_comparable)}")
    if args.details:
        for i in matched.items:
            if not i.agrees:
                print(f"  {i.key}: LibreNMS {i.theirs!r}, ours {i.ours!r}")
    base = set(json.loads(BASELINE.read_text())) if BASELINE.exists() else set()
    lost = sorted(base - rep.agreed())
    if lost:
        print(f"\n{len(lost)} agreed before and do not now:", *lost, sep="\n  ")
    if args.write_baseline:
        BASELINE.write_text(json.dumps(sorted(rep.agreed()), indent=0) + "\n")
        print(f"\nwrote {len(rep.agreed())} agreements to {BASELINE}")
    return 1 if lost and not args.write_baseline else 0


if __name__ == "__main__":
    sys.exit(main())
