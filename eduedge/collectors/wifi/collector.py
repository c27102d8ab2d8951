"""Wi-Fi as the APs and controllers report it, whatever the vendor: APs, radios, SSIDs and clients, each AP
placed in the school's zone.

The firmware profiles turn every vendor's tables into the canonical `wifi.*` samples (canonical-metrics.yaml);
`snapshot(polls, cfg.wifi, cfg.snmp.devices)` turns one round of SNMP polls into a `WifiSnapshot`:

| object   | from                                                   | fields                                      |
|----------|--------------------------------------------------------|---------------------------------------------|
| `Ap`     | wifi.ap_* (tag `ap`; a standalone AP is its own device) | name, mac, model, status, group, clients,  |
|          |                                                        | zone, zone_type, room, placed_by            |
| `Radio`  | wifi.radio_* (tags `ap`, `radio`)                      | band, channel, width, tx power, noise,      |
|          |                                                        | utilisation, clients, PHY rate, status      |
| `Client` | wifi.client_* (tag `client`: a pseudonym, never a MAC) | ap, radio, band, ssid, RSSI, SNR, PHY rate  |
| `ssids`  | wifi.ssid_clients without an AP (the controller's)     | clients per SSID                            |

What a vendor does not report stays None and is said to be missing, never guessed, with two exceptions
stated where they happen: a radio's band comes from its channel when the vendor gives no band, and its
clients are the sum of its SSIDs' clients (UniFi, Huawei VAPs) when it reports no count of its own. An AP's
state is its controller's word; where the controller gives none, an AP it lists with a radio up (or with no
radio state at all) is up, and a standalone AP is up when it answered its poll.

Placement (`wifi` in the configuration): a standalone AP takes its snmp.devices `zone` and `room`; a
controller's AP the first `wifi.aps` entry whose `ap` (name or glob) matches, else its AP group when that
names a zone under `wifi.zones`. A zone that is only a type word makes the AP's room a zone of that type.

>>> band_of_channel(6), band_of_channel(149), band_of_channel(53), band_of_channel(300)
('2.4', '5', '6', None)
"""

from __future__ import annotations

import fnmatch
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from eduedge.collectors.snmp.config import SnmpDevice
from eduedge.collectors.snmp.poller import DevicePoll
from eduedge.collectors.wifi.config import ZONE_TYPES, WifiConfig
from eduedge.core.samples import Sample

_5GHZ = {*range(32, 145, 4), *range(149, 178, 4)}


def band_of_channel(channel: float | None) -> str | None:
    """The band a channel number belongs to: 1-14 are 2.4 GHz, 5 GHz channels are 32-144 and 149-177 in
    steps of 4, and 6 GHz channels are 1, 5, 9 … 233 (4n+1) beyond those; anything else is not known."""
    if channel is None:
        return None
    ch = int(channel)
    if 1 <= ch <= 14:
        return "2.4"
    if ch in _5GHZ:
        return "5"
    if 1 <= ch <= 233 and ch % 4 == 1:
        return "6"
    return None


@dataclass
class Radio:
    id: str
    status: str | None = None
    band: str | None = None
    band_from: str | None = None            # "reported" or "channel"
    channel: float | None = None
    width_mhz: float | None = None
    tx_power_dbm: float | None = None
    noise_dbm: float | None = None
    utilization_percent: float | None = None
    clients: int | None = None
    clients_from: str | None = None         # "reported" or "ssids"
    phy_mbps: float | None = None

    @property
    def up(self) -> bool:
        return self.status != "down"


@dataclass
class Client:
    client: str                             # the pseudonym
    device: str
    ap: str
    radio: str | None = None
    band: str | None = None
    ssid: str | None = None
    rssi_dbm: float | None = None
    snr_db: float | None = None
    phy_mbps: float | None = None


@dataclass
class Ap:
    device: str                             # the polled device: the controller, or the AP itself
    name: str
    standalone: bool
    mac: str | None = None
    model: str | None = None
    status: str | None = None               # as reported: up / down; None: not reported
    group: str | None = None
    clients: int | None = None
    radios: dict[str, Radio] = field(default_factory=dict)
    zone: str | None = None
    zone_type: str | None = None
    room: str | None = None
    placed_by: str = "not placed: no wifi.aps entry, AP group or snmp.devices zone names its zone"

    @property
    def up(self) -> bool:
        """Up by its controller's word, else by its radios, else because its controller lists it."""
        if self.status is not None:
            return self.status == "up"
        states = [r.status for r in self.radios.values() if r.status is not None]
        return any(s == "up" for s in states) if states else True

    @property
    def up_reason(self) -> str:
        if self.status is not None:
            return f"its {'state' if self.standalone else 'controller'} says {self.status}"
        if any(r.status is not None for r in self.radios.values()):
            return "no AP state reported; judged by its radios' state"
        return "answered its poll" if self.standalone else "no AP state reported; listed by its controller"


@dataclass
class WifiSnapshot:
    """One round of polls of the Wi-Fi devices, vendor-neutral."""

    time: float
    aps: list[Ap]
    clients: list[Client]
    ssids: dict[str, int]                   # the controllers' own counts per SSID (summed over bands and devices)
    devices: dict[str, dict[str, Any]]      # per polled device: answered, errors, its AP, client and SSID counts

    def zone_aps(self) -> dict[str, list[Ap]]:
        out: dict[str, list[Ap]] = {}
        for ap in self.aps:
            if ap.zone is not None:
                out.setdefault(ap.zone, []).append(ap)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time, "aps": [asdict(a) for a in self.aps], "clients": [asdict(c) for c in self.clients],
                "ssids": self.ssids, "devices": self.devices}


def wireless_devices(devices: Iterable[SnmpDevice]) -> list[SnmpDevice]:
    """The snmp.devices that report Wi-Fi: controllers and APs."""
    return [d for d in devices if d.role in ("wlc", "ap")]


def snapshot(polls: Iterable[DevicePoll], cfg: WifiConfig, snmp_devices: Iterable[SnmpDevice],
             now: float | None = None) -> WifiSnapshot:
    """The APs, radios, clients and SSIDs in these polls, each AP placed in its zone (by the `wifi` section,
    and a standalone AP by its entry in `snmp_devices`)."""
    polls = list(polls)
    devices = {d.name: d for d in snmp_devices}
    aps: dict[tuple[str, str], Ap] = {}
    clients: dict[str, Client] = {}
    ssids: dict[str, int] = {}
    ssid_by_radio: dict[tuple[str, str, str], int] = {}
    info: dict[str, dict[str, Any]] = {}
    for poll in polls:
        wifi = [s for s in poll.samples if s.metric.startswith("wifi.")]
        dev = devices.get(poll.device)
        standalone_role = dev is not None and dev.role == "ap"
        info[poll.device] = {"answered": poll.identity is not None and bool(poll.samples), "errors": poll.errors[:3],
                             "profile": poll.identity.profile if poll.identity else None}
        if standalone_role and (poll.identity is None or not poll.samples):
            aps[(poll.device, poll.device)] = Ap(poll.device, poll.device, True, status="down")
            continue
        for s in wifi:
            name = s.tags.get("ap") or s.tags.get("ap_mac", poll.device)
            if s.metric == "wifi.ap_count":
                info[poll.device]["ap_count"] = s.value
            elif s.metric == "wifi.clients":
                info[poll.device]["clients"] = s.value
            elif s.metric.startswith("wifi.client_"):
                _client(clients, poll.device, name, s)
            elif s.metric == "wifi.ssid_clients" and "ap" not in s.tags and "radio" not in s.tags:
                name = s.tags.get("ssid", "?")
                ssids[name] = ssids.get(name, 0) + int(s.value)
                own = info[poll.device].setdefault("ssids", {})
                own[name] = own.get(name, 0) + int(s.value)
            else:
                ap = aps.get((poll.device, name))
                if ap is None:
                    ap = aps[(poll.device, name)] = Ap(poll.device, name, "ap" not in s.tags and "ap_mac" not in s.tags)
                if s.metric == "wifi.ssid_clients":
                    key = (poll.device, name, s.tags["radio"])
                    ssid_by_radio[key] = ssid_by_radio.get(key, 0) + int(s.value)
                    ap.radios.setdefault(s.tags["radio"], Radio(s.tags["radio"]))
                else:
                    _ap_or_radio(ap, s)
    for (device, name, radio), n in ssid_by_radio.items():
        r = aps[(device, name)].radios[radio]
        if r.clients is None:
            r.clients, r.clients_from = n, "ssids"
    for ap in aps.values():
        for r in ap.radios.values():
            if r.band is None and r.channel is not None:
                r.band = band_of_channel(r.channel)
                r.band_from = "channel" if r.band else None
        _place(ap, cfg, devices)
    t = now if now is not None else max((p.time for p in polls), default=0.0)
    return WifiSnapshot(t, sorted(aps.values(), key=lambda a: (a.zone or "~", a.name)),
                        sorted(clients.values(), key=lambda c: (c.ap, c.client)), ssids, info)


_RADIO_FIELDS = {"wifi.radio_channel": "channel", "wifi.radio_width_mhz": "width_mhz",
                 "wifi.radio_tx_power_dbm": "tx_power_dbm", "wifi.radio_noise_dbm": "noise_dbm",
                 "wifi.radio_utilization_percent": "utilization_percent", "wifi.radio_phy_mbps": "phy_mbps"}


def _ap_or_radio(ap: Ap, s: Sample) -> None:
    if s.tags.get("ap_mac") and ap.mac is None:
        ap.mac = s.tags["ap_mac"]
    m = s.metric
    if m == "wifi.ap_status":
        ap.status = str(s.value)
    elif m == "wifi.ap_model":
        ap.model = str(s.value)
    elif m == "wifi.ap_mac":
        ap.mac = str(s.value)
    elif m == "wifi.ap_group":
        ap.group = str(s.value)
    elif m == "wifi.ap_clients":
        ap.clients = int(s.value)
    elif m.startswith("wifi.radio_"):
        r = ap.radios.setdefault(s.tags.get("radio", "0"), Radio(s.tags.get("radio", "0")))
        if m == "wifi.radio_status":
            r.status = str(s.value)
        elif m == "wifi.radio_band":
            r.band, r.band_from = str(s.value), "reported"
        elif m == "wifi.radio_clients":
            r.clients, r.clients_from = int(s.value), "reported"
        elif m in _RADIO_FIELDS:
            setattr(r, _RADIO_FIELDS[m], float(s.value))


def _client(clients: dict[str, Client], device: str, ap: str, s: Sample) -> None:
    pseudonym = s.tags.get("client")
    if not pseudonym:
        return
    c = clients.get(pseudonym)
    if c is None:
        c = clients[pseudonym] = Client(pseudonym, device, ap)
    c.radio = s.tags.get("radio", c.radio)
    c.band = s.tags.get("band", c.band)
    c.ssid = s.tags.get("ssid", c.ssid)
    field_ = {"wifi.client_rssi_dbm": "rssi_dbm", "wifi.client_snr_db": "snr_db",
              "wifi.client_phy_mbps": "phy_mbps"}.get(s.metric)
    if field_:
        setattr(c, field_, float(s.value))


def _place(ap: Ap, w: WifiConfig, devices: dict[str, SnmpDevice]) -> None:
    zone, room = None, None
    if ap.standalone:
        dev = devices.get(ap.device)
        if dev is not None and dev.zone:
            zone, room = dev.zone, dev.room
            ap.placed_by = f"snmp.devices {ap.device}: zone {dev.zone}"
    else:
        entry = next((a for a in w.aps if (a.controller is None or a.controller == ap.device)
                      and fnmatch.fnmatchcase(ap.name, a.ap)), None)
        if entry is not None:
            zone, room = entry.zone, entry.room
            ap.placed_by = f"wifi.aps entry {entry.ap!r}"
        elif w.zone_from_ap_group and ap.group and ap.group in w.zones:
            zone = ap.group
            ap.placed_by = f"its AP group on {ap.device}: {ap.group}"
    if zone is None:
        return
    ap.room = room
    if zone in w.zones:
        ap.zone, ap.zone_type = zone, w.zones[zone].type
    elif zone in ZONE_TYPES:
        ap.zone, ap.zone_type = room or ap.name, zone
    else:
        ap.placed_by += f" - but zone {zone!r} is not under wifi.zones, so its type is not known"
        ap.zone, ap.zone_type = zone, None


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None
