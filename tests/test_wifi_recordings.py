"""The wireless profiles against the recorded controllers and APs, served by snmpsim, compared with what
LibreNMS's wireless sensors read from the same recordings (eduedge/simulator/realdevices/expected/*.json).

Every LibreNMS wireless sensor of these recordings is either matched here (`MATCHED`: our reading equals
theirs; frequencies are compared as the channel they stand for) or has a stated reason (`DIFFERENT`); a
sensor nobody accounted for fails, and so does a reason for a sensor that is not there. Then the units: a
noise floor or RSSI in dBm is negative, a transmit power 0-36 dBm, a utilisation 0-100 %, a channel one of
its band, whatever the vendor stored.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from eduedge.agent.config import AgentConfig
from eduedge.collectors.snmp.client import SnmpAuth, SnmpClient
from eduedge.collectors.snmp.poller import DevicePoll, DevicePoller, poll_many
from eduedge.collectors.snmp.profiles import load_profiles
from eduedge.collectors.wifi.collector import Radio, WifiSnapshot, band_of_channel, snapshot
from eduedge.core.pseudonym import Pseudonymizer
from eduedge.simulator.snmpsim import start_snmpsim

pytestmark = pytest.mark.integration

# recording -> role in snmp.devices (an AP answers for itself; a controller for the APs it manages)
WIRELESS = {"vrp_ac6605-26": "wlc", "ciscowlc_cbw240ac": "wlc", "arubaos_vmc": "wlc", "aruba-instant": "wlc",
            "ruckuswireless-sz": "wlc", "ruckuswireless_zd1200": "wlc", "unifi_nanohd": "ap",
            "unifi_ukultra": "ap", "hiveos-wireless_650ax": "ap"}

Get = Callable[[WifiSnapshot, str], object]


def mhz(channel: float | None) -> int | None:
    """The centre frequency LibreNMS shows for a channel (WirelessSensor::channelToFrequency)."""
    band = band_of_channel(channel)
    if channel is None or band is None:
        return None
    ch = int(channel)
    return {"2.4": 2484 if ch == 14 else 2407 + 5 * ch, "5": 5000 + 5 * ch, "6": 5950 + 5 * ch}[band]


def radio(ap: str | None, rid: str, field: str) -> Get:
    """A radio's field; `ap` is the AP's name or MAC (None: the AP is the device itself)."""
    def get(snap: WifiSnapshot, device: str) -> object:
        found = [a for a in snap.aps if a.device == device and (ap is None or ap in (a.name, a.mac))]
        assert len(found) == 1, f"{device}: AP {ap} is {len(found)} APs"
        r: Radio = found[0].radios[rid]
        return mhz(r.channel) if field == "frequency" else getattr(r, field)
    return get


def device(key: str) -> Get:
    return lambda snap, dev: snap.devices[dev].get(key)


def ssid(name: str) -> Get:
    return lambda snap, dev: snap.devices[dev].get("ssids", {}).get(name)


def ssid_on_aps(name: str) -> Get:
    """Clients of an SSID summed over the device's own radios (a UniFi AP's VAPs)."""
    def get(snap: WifiSnapshot, dev: str) -> object:
        return sum(n for a in snap.aps if a.device == dev for n in _vap_counts(snap, a.name, name))
    return get


def _vap_counts(snap: WifiSnapshot, ap: str, name: str) -> list[int]:
    return [v for (a, s), v in snap_vaps[id(snap)].items() if a == ap and s == name]


snap_vaps: dict[int, dict[tuple[str, str], int]] = {}


def aps_listed(snap: WifiSnapshot, dev: str) -> object:
    return sum(1 for a in snap.aps if a.device == dev)


def ssids_total(snap: WifiSnapshot, dev: str) -> object:
    return sum(snap.devices[dev].get("ssids", {}).values())


AI = {"6828cfc7e9c0": "68:28:cf:c7:e9:c0", "6828cfc80448": "68:28:cf:c8:04:48", "703a0ec9c246": "70:3a:0e:c9:c2:46"}

# (recording, LibreNMS sensor class, sensor index) -> how to read ours
MATCHED: dict[tuple[str, str, str], Get] = {
    ("vrp_ac6605-26", "ap-count", "ap-count"): device("ap_count"),
    ("vrp_ac6605-26", "clients", "total-all-ssids"): ssids_total,
    ("vrp_ac6605-26", "clients", "total-WIFIOG"): ssid("WIFIOG"),
    ("vrp_ac6605-26", "clients", "total-WIFIOG-BYOD"): ssid("WIFIOG-BYOD"),
    ("vrp_ac6605-26", "clients", "total-WIFIOG-Guest"): ssid("WIFIOG-Guest"),
    ("ciscowlc_cbw240ac", "ap-count", "0"): device("ap_count"),
    ("ciscowlc_cbw240ac", "clients", "0"): ssids_total,
    ("ciscowlc_cbw240ac", "clients", "1"): ssid("MGMT"),
    ("ciscowlc_cbw240ac", "clients", "2"): ssid("ssid1"),
    ("ciscowlc_cbw240ac", "clients", "4"): ssid("ssid2"),
    ("ciscowlc_cbw240ac", "clients", "5"): ssid("ssid3"),
    ("ciscowlc_cbw240ac", "clients", "16"): ssid("DEFAULT_RLAN"),
    ("arubaos_vmc", "ap-count", "1"): device("ap_count"),
    ("arubaos_vmc", "clients", "1"): device("clients"),
    ("aruba-instant", "ap-count", "total-aps"): aps_listed,
    ("aruba-instant", "clients", "0"): ssid("EOU-Regional"),
    ("aruba-instant", "clients", "1"): ssid("ECA-Corp"),
    ("aruba-instant", "clients", "2"): ssid("ECA-Public"),
    ("aruba-instant", "clients", "total-clients"): ssids_total,
    **{("aruba-instant", cls, f"{k}.{r}"): radio(mac, r, field)
       for k, mac in AI.items() for r in ("0", "1", "2") if not (k == "703a0ec9c246" and r == "2")
       for cls, field in (("clients", "clients"), ("noise-floor", "noise_dbm"), ("power", "tx_power_dbm"),
                          ("utilization", "utilization_percent"), ("frequency", "frequency"))
       if not (cls == "frequency" and r == "2")},
    ("ruckuswireless-sz", "ap-count", "total"): device("ap_count"),
    ("ruckuswireless-sz", "clients", "total"): device("clients"),
    **{("ruckuswireless-sz", "clients", f"private{i}"): ssid(f"private{i}") for i in (1, 2, 3, 6, 7, 8)},
    ("ruckuswireless_zd1200", "ap-count", "1"): device("ap_count"),
    ("ruckuswireless_zd1200", "clients", "9"): device("clients"),
    ("unifi_nanohd", "clients", "ng"): radio(None, "ng", "clients"),
    ("unifi_nanohd", "clients", "na"): radio(None, "na", "clients"),
    ("unifi_nanohd", "clients", "homewifi_ac"): ssid_on_aps("homewifi_ac"),
    ("unifi_nanohd", "clients", "vwire-d4aebb3212a82cd8"): ssid_on_aps("vwire-d4aebb3212a82cd8"),
    ("unifi_nanohd", "frequency", "ng"): radio(None, "ng", "frequency"),
    ("unifi_nanohd", "frequency", "na"): radio(None, "na", "frequency"),
    ("unifi_nanohd", "power", "ng"): radio(None, "ng", "tx_power_dbm"),
    ("unifi_nanohd", "power", "na"): radio(None, "na", "tx_power_dbm"),
    ("unifi_nanohd", "utilization", "1/unifi-total"): radio(None, "ng", "utilization_percent"),
    ("unifi_nanohd", "utilization", "2/unifi-total"): radio(None, "na", "utilization_percent"),
    ("unifi_ukultra", "clients", "ng"): radio(None, "ng", "clients"),
    ("unifi_ukultra", "clients", "myssid"): ssid_on_aps("myssid"),
    ("unifi_ukultra", "frequency", "ng"): radio(None, "ng", "frequency"),
    ("unifi_ukultra", "power", "ng"): radio(None, "ng", "tx_power_dbm"),
    ("unifi_ukultra", "utilization", "1/unifi-total"): radio(None, "ng", "utilization_percent"),
    ("unifi_ukultra", "utilization", "2/unifi-total"): radio(None, "na", "utilization_percent"),
    ("hiveos-wireless_650ax", "clients", "1"): device("clients"),
    **{("hiveos-wireless_650ax", cls, idx): radio(None, name, field)
       for idx, name in (("12", "wifi0"), ("13", "wifi1"))
       for cls, field in (("frequency", "frequency"), ("noise-floor", "noise_dbm"), ("power", "tx_power_dbm"))},
}

# LibreNMS sensors we do not read, or read differently, and why.
_SPLIT = "LibreNMS also shows each SSID's clients per band; we keep the band split in the samples " \
         "(tag band) and compare the SSID totals above"
_UTIL_PARTS = "the parts of UniFi's utilisation (self rx, self tx, other BSS); we read the total, compared above"
DIFFERENT: dict[tuple[str, str, str], str] = {
    **{("vrp_ac6605-26", "clients", f"hwWlanSsid{b}gStaCnt-{s}"): _SPLIT
       for b in (2, 5) for s in ("WIFIOG", "WIFIOG-BYOD", "WIFIOG-Guest")},
    **{("aruba-instant", "frequency", f"{k}.2"): "a 6 GHz radio (channels 53S, 69S): LibreNMS has no 6 GHz channel "
       "plan and shows 0 MHz; we read channel 53/69 and band 6 GHz" for k in ("6828cfc7e9c0", "6828cfc80448")},
    ("ruckuswireless-sz", "ap-count", "211838000212"): "the cluster node's own count of connected APs "
    "(RUCKUS-SZ-SYSTEM-MIB node table); we read the system's count of APs (40), compared above",
    ("ruckuswireless_zd1200", "ap-count", "2"): "registered APs, connected or not "
    "(ruckusZDSystemStatsNumRegisteredAP); we read the connected ones (4), compared above",
    **{("ruckuswireless_zd1200", "clients", str(i)): "SSID counts whose names the recording replaced by '<private>': "
       "eight SSIDs of one name; ours are the same eight rows (see test_zonedirector_ssid_rows)" for i in range(1, 9)},
    **{(rec, "utilization", f"{i}/unifi-{part}"): _UTIL_PARTS
       for rec in ("unifi_nanohd", "unifi_ukultra") for i in (1, 2) for part in ("rx", "tx", "other")},
}


def _sensors(realdevices: Path, name: str) -> dict[tuple[str, str], float]:
    """(class, index) -> current value of LibreNMS's wireless sensors; where one class has several sensors of
    one index (UniFi's utilisation parts), the index is `index/type`."""
    doc = json.loads((realdevices / "expected" / f"{name}.json").read_text())["wireless"]
    phase = doc["poller"] if isinstance(doc["poller"], dict) else doc["discovery"]
    sensors = phase["wireless_sensors"]
    seen = [(s["sensor_class"], str(s["sensor_index"])) for s in sensors]
    return {(c, i if seen.count((c, i)) == 1 else f"{i}/{s['sensor_type']}"): s["sensor_current"]
            for (c, i), s in zip(seen, sensors, strict=True)}


@pytest.fixture(scope="module")
def polled(realdevices: Path) -> tuple[dict[str, DevicePoll], WifiSnapshot, AgentConfig]:
    server = start_snmpsim([realdevices / "snmprec" / f"{n}.snmprec" for n in WIRELESS])
    try:
        profiles = load_profiles()
        cfg = AgentConfig.model_validate({
            "school": {"id": "rec-school", "name": "R", "city": "yc", "type": "primary"},
            "snmp": {"credentials": {"c": {"version": "2c", "community": {"env": "UNUSED"}}},
                     "devices": [{"name": n, "host": f"{server.host}:{server.port}", "credentials": "c", "role": r}
                                 for n, r in WIRELESS.items()]}})
        pollers = [DevicePoller(SnmpClient(n, server.host, server.port, SnmpAuth(community=n), timeout=5, retries=1),
                                profiles, deadline=60, pseudonymizer=Pseudonymizer(b"recordings-key-0123456789abcdef"))
                   for n in server.names]
        polls = {p.device: p for p in asyncio.run(poll_many(pollers, concurrency=4))}
    finally:
        server.stop()
    snap = snapshot(polls.values(), cfg.wifi, cfg.snmp.devices)
    vaps: dict[tuple[str, str], int] = {}
    for p in polls.values():
        for s in p.samples:
            if s.metric == "wifi.ssid_clients" and "radio" in s.tags:
                key = (s.tags.get("ap", p.device), s.tags["ssid"])
                vaps[key] = vaps.get(key, 0) + int(s.value)
    snap_vaps[id(snap)] = vaps
    return polls, snap, cfg


def test_every_recording_polls_without_error(polled):
    polls, _, _ = polled
    assert {n: p.errors for n, p in polls.items() if p.errors or not p.complete} == {}


@pytest.mark.parametrize("name", sorted(WIRELESS))
def test_wireless_readings_agree_with_librenms(polled, realdevices, name):
    _, snap, _ = polled
    theirs = _sensors(realdevices, name)
    unaccounted = sorted(k for k in theirs if (name, *k) not in MATCHED and (name, *k) not in DIFFERENT)
    assert unaccounted == [], "LibreNMS sensors neither matched nor explained"
    stale = sorted(k[1:] for k in (*MATCHED, *DIFFERENT) if k[0] == name and k[1:] not in theirs)
    assert stale == [], "rows for sensors LibreNMS does not have"
    ours = {k: MATCHED[(name, *k)](snap, name) for k in theirs if (name, *k) in MATCHED}
    assert ours == {k: pytest.approx(theirs[k]) for k in ours}


def test_zonedirector_ssid_rows(polled, realdevices):
    polls, _, _ = polled
    ours = sorted(s.value for s in polls["ruckuswireless_zd1200"].samples if s.metric == "wifi.ssid_clients")
    theirs = sorted(v for (cls, idx), v in _sensors(realdevices, "ruckuswireless_zd1200").items()
                    if cls == "clients" and idx != "9")
    assert ours == theirs == [0, 0, 0, 0, 1, 1, 2, 2]


def test_units_are_right_whatever_the_vendor_stored(polled):
    polls, snap, _ = polled
    samples = [s for p in polls.values() for s in p.samples if s.metric.startswith("wifi.")]
    assert {s.metric for s in samples} >= {"wifi.radio_noise_dbm", "wifi.radio_utilization_percent",
                                           "wifi.radio_tx_power_dbm", "wifi.radio_channel", "wifi.ssid_clients"}
    for s in samples:
        if s.metric in ("wifi.radio_noise_dbm", "wifi.client_rssi_dbm"):
            assert -120 <= s.value < 0, s                       # Aruba stores 94, Aerohive 165: both -9x dBm
        elif s.metric == "wifi.radio_tx_power_dbm":
            assert 0 <= s.value <= 36, s
        elif s.metric.endswith("_percent"):
            assert 0 <= s.value <= 100, s
        elif s.metric == "wifi.radio_channel":
            assert band_of_channel(s.value) is not None, s
    for ap in snap.aps:
        for r in ap.radios.values():
            assert r.band in ("2.4", "5", "6"), (ap.device, ap.name, r)
