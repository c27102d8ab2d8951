"""A device's sensors as `eduedge poll` shows them: words for the metrics, and many alike readings in one row.

A 48-port PoE switch reports `poe.port_power_w` for every port, most of them 0 W; a controller reports nine
`wifi.radio_*` readings for every radio of every AP. Row by row that is hundreds of lines in which the few that
matter hide. So the readings of one metric that share a value become one row ("0 W on 44 ports"), and a metric
that still has more than `MANY` rows becomes one row of its range or its states ("online 23, offline 2");
`--json` keeps every reading.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eduedge.core.i18n import N_, _, ngettext

SAME = 4        # this many readings of one metric with one value are shown as one row
MANY = 8        # a metric with more rows than this is shown as one row: its range, or its states

# Words for the canonical metrics a device reports (firmware_profiles/canonical-metrics.yaml); a metric without
# words here is shown by its name.
LABELS = {
    "device.uptime_s": N_("up for"),
    "device.cpu_percent": N_("CPU load"),
    "device.memory_percent": N_("memory in use"),
    "device.temperature_c": N_("temperature"),
    "device.fan_status": N_("fan"),
    "device.psu_status": N_("power supply"),
    "device.power_w": N_("power drawn"),
    "device.sensor_power_w": N_("power sensor"),
    "device.fan_rpm": N_("fan speed"),
    "device.voltage_v": N_("voltage"),
    "device.current_a": N_("current"),
    "device.humidity_percent": N_("humidity"),
    "device.storage_used_percent": N_("storage in use"),
    "poe.port_status": N_("PoE port"),
    "poe.port_power_w": N_("PoE power on a port"),
    "poe.budget_w": N_("PoE budget"),
    "poe.consumed_w": N_("PoE power drawn"),
    "poe.supply_status": N_("PoE power source"),
    "poe.powered_devices": N_("devices powered over PoE"),
    "printer.supply_level_percent": N_("toner or ink left"),
    "printer.input_level_percent": N_("paper tray filled"),
    "printer.device_status": N_("printer"),
    "ups.battery_charge_percent": N_("battery charge"),
    "ups.runtime_s": N_("runtime on battery"),
    "ups.battery_temperature_c": N_("battery temperature"),
    "ups.battery_voltage_v": N_("battery voltage"),
    "ups.battery_replace": N_("battery replacement"),
    "ups.battery_status": N_("battery"),
    "ups.on_battery_s": N_("on battery for"),
    "ups.input_voltage_v": N_("input voltage"),
    "ups.input_frequency_hz": N_("input frequency"),
    "ups.output_voltage_v": N_("output voltage"),
    "ups.output_frequency_hz": N_("output frequency"),
    "ups.output_current_a": N_("output current"),
    "ups.output_power_w": N_("output power"),
    "ups.load_percent": N_("load"),
    "ups.output_status": N_("output"),
    "ups.alarms": N_("alarms"),
    "projector.lamp_hours": N_("lamp hours"),
    "wifi.ap_count": N_("APs"),
    "wifi.clients": N_("Wi-Fi clients"),
    "wifi.ap_status": N_("AP state"),
    "wifi.ap_model": N_("AP model"),
    "wifi.ap_group": N_("AP group"),
    "wifi.ap_clients": N_("clients of an AP"),
    "wifi.radio_status": N_("radio state"),
    "wifi.radio_band": N_("radio band"),
    "wifi.radio_channel": N_("radio channel"),
    "wifi.radio_width_mhz": N_("channel width"),
    "wifi.radio_tx_power_dbm": N_("transmit power"),
    "wifi.radio_noise_dbm": N_("noise floor"),
    "wifi.radio_utilization_percent": N_("channel busy"),
    "wifi.radio_clients": N_("clients of a radio"),
    "wifi.radio_phy_mbps": N_("radio PHY rate"),
    "wifi.ssid_clients": N_("clients of an SSID"),
}
UNITS = {"percent": "%", "celsius": "°C", "state": "", "info": "", "count": "", "channel": ""}
_HIDDEN_TAGS = ("if_index", "entity_index", "ap_mac", "mac")     # indexes and addresses: the names say where


@dataclass
class Row:
    what: str        # the metric in words
    value: str
    unit: str
    where: str       # the port, sensor or radio; or how many the row stands for


def label(metric: str) -> str:
    return _(LABELS[metric]) if metric in LABELS else metric


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.1f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:,.0f}"
    return str(v)


def _where(tags: dict[str, str]) -> str:
    parts = []
    for k, v in tags.items():
        if k in _HIDDEN_TAGS or not v:
            continue
        parts.append(f"radio {v}" if k == "radio" else str(v))
    return " ".join(parts)


def _how_many(sensors: Sequence[dict[str, Any]]) -> str:
    """What `n` readings stand for: ports, radios, APs, sensors."""
    n = len(sensors)
    keys = set.intersection(*(set(s["tags"]) for s in sensors)) if sensors else set()
    if "interface" in keys:
        return ngettext("{n} port", "{n} ports", n).format(n=n)
    if "radio" in keys:
        return ngettext("{n} radio", "{n} radios", n).format(n=n)
    if "ap" in keys:
        return ngettext("{n} AP", "{n} APs", n).format(n=n)
    return ngettext("{n} reading", "{n} readings", n).format(n=n)


def _range(sensors: Sequence[dict[str, Any]]) -> str:
    values = [s["value"] for s in sensors]
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        lo, hi = min(values), max(values)
        return _value(lo) if lo == hi else f"{_value(lo)}–{_value(hi)}"
    counts = Counter(_value(v) for v in values)
    return ", ".join(f"{v} {n}" for v, n in counts.most_common())


def rows(sensors: Sequence[dict[str, Any]]) -> list[Row]:
    """The rows to show for `sensors` (poll's summary: metric, value, unit, tags), metric by metric in the
    order the device reported them."""
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for s in sensors:
        by_metric.setdefault(s["metric"], []).append(s)
    out: list[Row] = []
    for metric, group in by_metric.items():
        unit = UNITS.get(group[0]["unit"], group[0]["unit"])
        if unit == "s" and all(isinstance(s["value"], int | float) and s["value"] >= 2 * 86400 for s in group):
            # an uptime of 1,375,190 s reads as 15.9 days
            group = [{**s, "value": round(s["value"] / 86400, 1)} for s in group]
            unit = _("days")
        by_value: dict[str, list[dict[str, Any]]] = {}
        for s in group:
            by_value.setdefault(_value(s["value"]), []).append(s)
        shown: list[Row] = []
        for value, alike in by_value.items():
            if len(alike) >= SAME:
                shown.append(Row(label(metric), value, unit, _how_many(alike)))
            else:
                shown += [Row(label(metric), value, unit, _where(s["tags"])) for s in alike]
        if len(shown) > MANY:
            shown = [Row(label(metric), _range(group), unit, _how_many(group))]
        out += shown
    return out
