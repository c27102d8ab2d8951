"""Printers, UPSes, projectors and NVRs recorded from real devices (eduedge/simulator/realdevices), polled through
their profiles by one snmpsim: class and identity, and every supply, tray, battery, lamp and memory value
LibreNMS shows for the same recording (`expected/<name>.json`).

LibreNMS's values are read from its files, not copied here: `SENSORS` says which of our metrics each
LibreNMS sensor is and how its unit converts; `NOT_COMPARED` lists the LibreNMS readings we do not carry
and why; `SUPPLY_DIFFS` the supplies where we differ on purpose. A LibreNMS reading in neither table fails,
and so does an entry of those tables that no longer matches anything.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from eduedge.collectors.snmp.client import SnmpAuth, SnmpClient
from eduedge.collectors.snmp.poller import DevicePoll, DevicePoller, poll_many
from eduedge.collectors.snmp.profiles import load_profiles
from eduedge.simulator.snmpsim import start_snmpsim

pytestmark = pytest.mark.integration

# recording -> (profile, device class, vendor, model, serial)
DEVICES: dict[str, tuple[str, str, str, str | None, str | None]] = {
    "jetdirect_m252dw": ("hp-jetdirect", "printer", "HP", "Color LaserJet Pro M252dw", "VNB3J99999"),
    "ricoh_mpc3002": ("ricoh-printer", "printer", "Ricoh", "Aficio MP C3002", "W492KB03439"),
    "canonprinter_lbp": ("canon-printer", "printer", "Canon", "LBP6670", "MKRA012345"),
    "epson": ("epson-printer", "printer", "Epson", "WF-C5790BA", "X3B8022793"),
    "apc_smart1500": ("apc-ups", "ups", "APC", "AP9631", "5A1274T28648"),
    "epson-projector_eb-4770w": ("epson-projector", "display", "Epson", None, None),
    "hikvision-nvr": ("hikvision-nvr", "nvr", "Hikvision", None, "0820160719AARR624053979WCVU"),
}

_HR_DEVICE_STATUS = {1: "unknown", 2: "running", 3: "warning", 4: "testing", 5: "down"}


def _same(v: float) -> float:
    return v


# (recording, LibreNMS sensor class, sensor descr) -> (our metric, our tags, LibreNMS value -> ours)
SENSORS: dict[tuple[str, str, str], tuple[str, dict[str, str], Callable[[float], object]]] = {
    **{(rec, "state", "Printer Device Status"): ("printer.device_status", {}, lambda v: _HR_DEVICE_STATUS[int(v)])
       for rec in ("jetdirect_m252dw", "ricoh_mpc3002", "canonprinter_lbp", "epson")},
    ("apc_smart1500", "charge", "Battery Charge"): ("ups.battery_charge_percent", {}, _same),
    ("apc_smart1500", "runtime", "Runtime"): ("ups.runtime_s", {}, lambda v: v * 60),     # LibreNMS: minutes
    ("apc_smart1500", "temperature", "Internal Temperature"): ("ups.battery_temperature_c", {}, _same),
    ("apc_smart1500", "temperature", "Temp. Rack"): ("device.temperature_c", {"sensor": "Temp. Rack"}, _same),
    ("apc_smart1500", "temperature", "Temp. Room"): ("device.temperature_c", {"sensor": "Temp. Room"}, _same),
    ("apc_smart1500", "voltage", "Battery Bus"): ("ups.battery_voltage_v", {}, _same),
    ("apc_smart1500", "voltage", "Input"): ("ups.input_voltage_v", {}, _same),
    ("apc_smart1500", "voltage", "Output"): ("ups.output_voltage_v", {}, _same),
    ("apc_smart1500", "frequency", "Input"): ("ups.input_frequency_hz", {}, _same),
    ("apc_smart1500", "frequency", "Output"): ("ups.output_frequency_hz", {}, _same),
    ("apc_smart1500", "load", "Load(VA)"): ("ups.load_percent", {}, _same),
    ("apc_smart1500", "current", "Phase 0 Output"): ("ups.output_current_a", {}, _same),
    ("apc_smart1500", "power", "Active Power"): ("ups.output_power_w", {}, _same),
    ("apc_smart1500", "state", "UPS Battery Replacement Status"):
        ("ups.battery_replace", {}, lambda v: {1: "ok", 2: "replace"}[int(v)]),
    ("apc_smart1500", "state", "Output Status"):
        ("ups.output_status", {}, lambda v: {2: "online", 3: "on_battery"}[int(v)]),
    ("epson-projector_eb-4770w", "count", "Lamp Hours"): ("projector.lamp_hours", {}, _same),
}

# LibreNMS readings we do not carry, and why
NOT_COMPARED: dict[tuple[str, str, str], str] = {
    **{(rec, "state", "Printer Error Status"): "hrPrinterDetectedErrorState is a bit string of error "
       "conditions; both recordings that have it say 'no error' (00), so nothing would prove a decoding"
       for rec in ("jetdirect_m252dw", "ricoh_mpc3002")},
    ("ricoh_mpc3002", "count", "Life time sheets"): "page counters are usage, not supply or health; not asked for",
    ("ricoh_mpc3002", "count", "Sheets since powered on"): "as above",
    ("apc_smart1500", "runtime", "Battery Recommended Days Remaining"): "LibreNMS turns a date string "
        "(upsAdvBatteryRecommendedReplaceDate) into seconds relative to the day it ran; not a reading",
    ("apc_smart1500", "runtime", "Last Battery Replacement"): "as above, upsBasicBatteryLastReplaceDate",
    ("apc_smart1500", "state", "Last failure cause"): "an event log entry (upsAdvInputLineFailCause), not a state",
    ("apc_smart1500", "state", "UPS diagnostics status"): "result of the last self-test; not asked for",
    ("apc_smart1500", "state", "Main: UPS Outlets"): "outlet-group switch state; not asked for",
    ("apc_smart1500", "state", "Outlet Group 1"): "outlet-group switch state; not asked for",
}

# (recording, supply or tray) -> why our reading differs from LibreNMS's
SUPPLY_DIFFS: dict[tuple[str, str], str] = {
    ("jetdirect_m252dw", "Tray 2"): "prtInputCurrentLevel is -3, 'at least one unit remains'; LibreNMS "
                                    "shows that as 50%, we give no percentage rather than an invented one",
}


def _librenms(realdevices: Path, name: str) -> dict:
    return json.loads((realdevices / "expected" / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def polls(realdevices: Path) -> dict[str, DevicePoll]:
    """One snmpsim serving the classroom recordings, each polled once through the profile it matches."""
    profiles = load_profiles()
    assert profiles.errors == []
    server = start_snmpsim([realdevices / "snmprec" / f"{name}.snmprec" for name in DEVICES])
    try:
        pollers = [DevicePoller(SnmpClient(name, server.host, server.port, SnmpAuth(community=name),
                                           timeout=5, retries=1), profiles, deadline=20)
                   for name in server.names]
        return {p.device: p for p in asyncio.run(poll_many(pollers, concurrency=8))}
    finally:
        server.stop()


def _values(poll: DevicePoll, metric: str, tags: dict[str, str]) -> list:
    return [s.value for s in poll.samples
            if s.metric == metric and all(s.tags.get(k) == v for k, v in tags.items())]


@pytest.mark.parametrize("name", sorted(DEVICES))
def test_class_and_identity(polls, name):
    ident = polls[name].identity
    got = (ident.profile, ident.device_class, ident.vendor, ident.model, ident.serial)
    assert got == DEVICES[name]
    assert polls[name].errors == []


@pytest.mark.parametrize("name", ["jetdirect_m252dw", "ricoh_mpc3002", "canonprinter_lbp", "epson"])
def test_supplies_and_trays_agree_with_librenms(polls, realdevices, name):
    rows = _librenms(realdevices, name)["printer-supplies"]["discovery"]["printer_supplies"]
    assert rows, f"{name}: LibreNMS lists no supplies"
    poll = polls[name]
    seen_diffs = set()
    for row in rows:
        descr, want = row["supply_descr"], row["supply_current"]
        metric, tag = (("printer.input_level_percent", "tray") if row["supply_type"] == "input"
                       else ("printer.supply_level_percent", "supply"))
        got = _values(poll, metric, {tag: descr})
        if (name, descr) in SUPPLY_DIFFS:
            seen_diffs.add((name, descr))
            assert got == [], f"{name} {descr}: {got} - remove the SUPPLY_DIFFS entry"
            continue
        # LibreNMS rounds level / capacity x 100 to a whole percent
        assert [round(v) for v in got] == [want], f"{name} {metric} {descr}: ours {got}, LibreNMS {want}"
    librenms_descrs = {r["supply_descr"] for r in rows}
    ours = {s.tags.get("supply") or s.tags.get("tray") for s in poll.samples
            if s.metric in ("printer.supply_level_percent", "printer.input_level_percent")}
    assert ours <= librenms_descrs, f"{name}: supplies only we report: {ours - librenms_descrs}"
    assert seen_diffs == {k for k in SUPPLY_DIFFS if k[0] == name}


def test_supply_type_tags(polls):
    """prtMarkerSuppliesType becomes a word, where the printer gives one (Canon's recording lacks it)."""
    kinds = {(s.device, s.tags["supply"]): s.tags.get("type") for s in polls["ricoh_mpc3002"].samples
             + polls["epson"].samples + polls["canonprinter_lbp"].samples
             if s.metric == "printer.supply_level_percent"}
    assert kinds[("ricoh_mpc3002", "Waste Toner")] == "waste_toner"
    assert kinds[("ricoh_mpc3002", "Cyan Toner")] == "toner"
    assert kinds[("epson", "Black Ink Supply Unit T9441/T9451/T9461")] == "ink"
    assert kinds[("canonprinter_lbp", "Canon Cartridge 719/719H")] is None


@pytest.mark.parametrize("name", sorted(DEVICES))
def test_sensors_agree_with_librenms(polls, realdevices, name):
    doc = _librenms(realdevices, name)
    rows = doc["sensors"]["discovery"]["sensors"] if "sensors" in doc else []
    keys = set()
    for row in rows:
        key = (name, row["sensor_class"], row["sensor_descr"])
        keys.add(key)
        if key in NOT_COMPARED:
            continue
        assert key in SENSORS, f"LibreNMS sensor {key} is neither compared nor explained"
        metric, tags, convert = SENSORS[key]
        want = convert(row["sensor_current"])
        got = _values(polls[name], metric, tags)
        assert got == [pytest.approx(want) if isinstance(want, float | int) else want], \
            f"{name} {metric} {tags}: ours {got}, LibreNMS {row['sensor_current']}"
    stale = {k for k in (*SENSORS, *NOT_COMPARED) if k[0] == name} - keys
    assert stale == set(), "table entries for sensors LibreNMS no longer shows"


def test_nvr_memory_agrees_with_librenms(polls, realdevices):
    (pool,) = _librenms(realdevices, "hikvision-nvr")["mempools"]["discovery"]["mempools"]
    assert _values(polls["hikvision-nvr"], "device.memory_percent", {}) == [pool["mempool_perc"]]
