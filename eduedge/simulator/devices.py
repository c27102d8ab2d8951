"""Each simulated SNMP agent's MIB: a real recording, edited to its place in the campus.

What is edited, and what is left as recorded:
- system group: sysName is the campus name, sysLocation says zone and room; sysUpTime (and
  snmpEngineTime/Boots where the recording has them) count from the device's last boot;
- interfaces: a switch keeps exactly its described front-panel ports (the recording's extra ports are
  removed from ifTable/ifXTable/EtherLike), each with the described speed, up or down as cabled,
  ifAlias naming what is plugged in, and octet/packet counters that follow the campus's traffic; the
  64-bit ifHC* columns exist only where the recording has them (so 32-bit-only devices stay so);
  virtual interfaces (VLANs, loopbacks) stay as recorded;
- LLDP-MIB (every switch; controllers and APs whose recording has it): local system and port tables,
  and one remote entry per cable to another LLDP speaker (switches, controllers, APs) that is up at the
  moment of the request;
- ENTITY-MIB serial numbers are made unique per device;
- wireless tables follow the vendor MIB of the recording: HUAWEI-WLAN-* on a Huawei AC (the managed
  APs with their run state, their radios with state, width, noise floor and client count, VAPs, SSID
  counts and one station row per client with RSSI, SNR in 0.1 dB as STATION-MIB V1.47 says, and the PHY
  rate its SNR allows), UBNT-UniFi VAP rows on a UniFi AP. A radio's noise floor is its zone's RSSI mean
  minus its SNR mean, so that the described signal and noise agree. Other wireless recordings serve their
  tables as recorded.
Everything else (vendor CPU/memory tables, sensors, printer supplies, UPS state) is served as recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import lru_cache

from eduedge.collectors.snmp.poller import DevicePoller
from eduedge.collectors.snmp.profiles import load_profiles
from eduedge.collectors.snmp.recording import RecordingClient
from eduedge.simulator.ber import (
    COUNTER32,
    COUNTER64,
    GAUGE32,
    INTEGER,
    IP_ADDRESS,
    OCTET_STRING,
    OID,
    TIMETICKS,
    encode_value,
)
from eduedge.simulator.campus import recording_path
from eduedge.simulator.mib import Mib, Table, Value
from eduedge.simulator.snmprec import column, load_snmprec, text_of
from eduedge.simulator.world import OCTETS_PER_PACKET, Node, World, physical_ports, seed

SYS = (1, 3, 6, 1, 2, 1, 1)
IF_NUMBER = (1, 3, 6, 1, 2, 1, 2, 1, 0)
IF_ENTRY = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IFX_ENTRY = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
DOT3_ENTRY = (1, 3, 6, 1, 2, 1, 10, 7, 2, 1)
ENGINE_BOOTS = (1, 3, 6, 1, 6, 3, 10, 2, 1, 2, 0)
ENGINE_TIME = (1, 3, 6, 1, 6, 3, 10, 2, 1, 3, 0)
ENT_SERIAL = (1, 3, 6, 1, 2, 1, 47, 1, 1, 1, 1, 11)
LLDP_LOC = (1, 0, 8802, 1, 1, 2, 1, 3)
LLDP_REM = (1, 0, 8802, 1, 1, 2, 1, 4)
# Neighbour tables a recording carries besides LLDP-MIB: they name the recorded device's real neighbours, not
# the campus's cabling, so a simulated switch serves none of them (the topology would see phantom links).
FOREIGN_NEIGHBOURS = ((1, 3, 6, 1, 4, 1, 11863, 6, 35, 1, 2, 2),   # TPLINK-LLDPINFO-MIB lldpNeighborInfoTable
                      (1, 3, 6, 1, 4, 1, 9, 9, 23, 1, 2, 1))      # CISCO-CDP-MIB cdpCacheTable
HW_WLAN = (1, 3, 6, 1, 4, 1, 2011, 6, 139)
HW_AP_COUNT = (*HW_WLAN, 12, 1, 2, 1, 0)          # hwWlanCurJointApNum
HW_AP_ENTRY = (*HW_WLAN, 13, 3, 3, 1)              # hwWlanApTable, index AP MAC
HW_RADIO_ENTRY = (*HW_WLAN, 16, 1, 2, 1)           # hwWlanRadioInfoTable, index AP MAC . radio
HW_VAP_ENTRY = (*HW_WLAN, 17, 1, 1, 1)             # hwWlanVapTable, index AP MAC . radio . WLAN id
HW_SSID_ENTRY = (*HW_WLAN, 17, 1, 2, 1)            # per-SSID station counts, index = length-prefixed SSID
HW_STA_ENTRY = (*HW_WLAN, 18, 1, 2, 1)             # hwWlanStationTable, index station MAC
UNIFI = (1, 3, 6, 1, 4, 1, 41112, 1, 6)
UNIFI_VAP_ENTRY = (*UNIFI, 1, 2, 1)

LLDP_CAP = {"switch": b"\x20", "controller": b"\x28", "ap": b"\x10"}   # bridge / bridge+router / wlanAccessPoint


class DeviceBuildError(ValueError):
    pass


def _s(text: str | bytes) -> bytes:
    return encode_value(OCTET_STRING, text if isinstance(text, bytes) else text.encode())


def _i(v: int) -> bytes:
    return encode_value(INTEGER, v)


def _g(v: int) -> bytes:
    return encode_value(GAUGE32, v)


def mac_plus(mac: bytes, n: int) -> bytes:
    return (int.from_bytes(mac, "big") + n).to_bytes(6, "big")


def sys_descr(world: World, node: Node) -> str:
    if node.recorded:
        return text_of(world.records[node.model or ""].get((*SYS, 1, 0))).strip()
    return f"{node.model} access point"


def build_mib(world: World, node: Node) -> Mib:
    """The MIB `node` serves; raises `DeviceBuildError` naming the device when it cannot be built."""
    recs = load_snmprec(recording_path(node.model or ""))
    values: dict[OID, Value] = dict(recs)
    tables: list[Table] = []
    _system(world, node, values)
    _interfaces(world, node, recs, values)
    _serials(node, values)
    # every switch serves LLDP-MIB (the trimmed recordings may lack it); other devices only if theirs has it
    if node.kind == "switch" or (node.speaks_lldp and any(k[:len(LLDP_LOC) - 1] == LLDP_LOC[:-1] for k in recs)):
        tables.append(_lldp(world, node, values))
        for oid in [k for k in values if any(k[:len(t)] == t for t in FOREIGN_NEIGHBOURS)]:
            del values[oid]
    if node.kind == "controller":
        if not any(k[:len(HW_WLAN)] == HW_WLAN for k in recs):
            raise DeviceBuildError(f"{node.name}: wireless tables are simulated for Huawei ACs (HUAWEI-WLAN-*) "
                                   f"only; recording {node.model} has none")
        tables.append(_huawei_wlan(world, node, values))
    elif node.kind == "ap" and any(k[:len(UNIFI)] == UNIFI for k in recs):
        _unifi_vaps(world, node, values)
    return Mib(values, tables)


# -- system -----------------------------------------------------------------------------------------

def _system(world: World, node: Node, values: dict[OID, Value]) -> None:
    name = node.name

    def uptime(now: float) -> bytes:
        return encode_value(TIMETICKS, int((now - world.boot_time(name, now)) * 100))

    values[(*SYS, 3, 0)] = uptime
    values[(*SYS, 5, 0)] = _s(node.name)
    values[(*SYS, 6, 0)] = _s(f"{world.campus.school.name}, {node.zone}, {node.room or ''}".rstrip(", "))
    if ENGINE_TIME in values:
        values[ENGINE_TIME] = lambda now: _i(int(now - world.boot_time(name, now)))
    if ENGINE_BOOTS in values:
        values[ENGINE_BOOTS] = lambda now: _i(world.boots(name, now))


def _serials(node: Node, values: dict[OID, Value]) -> None:
    """Give the device its own serial number wherever its recording carries one: the serial the
    firmware profiles read (vendor scalars, ENTITY-MIB, or inside sysDescr), and every ENTITY-MIB serial."""
    recorded = recorded_serial(node.model or "")
    if recorded:
        old, new = recorded.encode(), _new_serial(recorded, node.name).encode()
        for k, v in list(values.items()):
            if isinstance(v, bytes) and v[:1] == b"\x04" and old in v:
                values[k] = _s(text_of(v).encode().replace(old, new))
    for k, v in list(values.items()):
        if k[:len(ENT_SERIAL)] == ENT_SERIAL and isinstance(v, bytes):
            text = text_of(v).strip()
            if len(text) > 4 and text != recorded:
                values[k] = _s(_new_serial(text, f"{node.name}/{k[-1]}"))


def _new_serial(old: str, key: str) -> str:
    """Same length and shape (digits stay digits, letters letters), different last six characters."""
    h = seed(key, "serial")
    tail = []
    for ch in old[-6:]:
        h, r = divmod(h, 36)
        tail.append(str(r % 10) if ch.isdigit() else chr(ord("A") + r % 26) if ch.isalpha() else ch)
    return old[:-6] + "".join(tail) if len(old) > 6 else "".join(tail)


@lru_cache(maxsize=64)
def recorded_serial(model: str) -> str | None:
    """The serial number an agent reads from this recording, through the firmware profiles."""
    profiles = _profiles()
    client = RecordingClient(recording_path(model))
    try:
        identity = asyncio.run(DevicePoller(client, profiles).identify())  # type: ignore[arg-type]
    except Exception:   # a recording too thin to identify has no serial to hide
        return None
    return identity.serial


@lru_cache(maxsize=1)
def _profiles():
    return load_profiles()


# -- interfaces -------------------------------------------------------------------------------------

def _interfaces(world: World, node: Node, recs: dict[OID, bytes], values: dict[OID, Value]) -> None:
    kept = {p.if_index for p in node.ports.values()}
    if node.kind == "switch":
        spec = node.spec
        dropped = {i for i, _ in physical_ports(recs, spec.port_names)} - kept  # type: ignore[union-attr]
        for k in list(values):
            for entry in (IF_ENTRY, IFX_ENTRY, DOT3_ENTRY):
                if k[:len(entry)] == entry and len(k) == len(entry) + 2 and k[-1] in dropped:
                    del values[k]
        if IF_NUMBER in values:
            values[IF_NUMBER] = _i(len({k[-1] for k in values if k[:len(IF_ENTRY)] == IF_ENTRY}))
    has_ifx = any(k[:len(IFX_ENTRY)] == IFX_ENTRY for k in recs)
    has_hc = bool(column(recs, (*IFX_ENTRY, 6)))
    for port in node.ports.values():
        _port(world, node, port.number, values, has_ifx, has_hc)


def _port(world: World, node: Node, number: int, values: dict[OID, Value], has_ifx: bool, has_hc: bool) -> None:
    name = node.name
    port = node.ports[number]
    i = port.if_index
    speed_bps = port.speed_mbps * 1_000_000

    def oper(now: float) -> bytes:
        return _i(1 if world.port_up(name, number, now) else 2)

    def last_change(now: float) -> bytes:
        t = world.last_change(name, number, now)
        return encode_value(TIMETICKS, int((t - world.boot_time(name, now)) * 100))

    def counter(direction: int, bits: int, per: int = 1) -> Callable[[float], bytes]:
        tag = COUNTER64 if bits == 64 else COUNTER32
        mask = (1 << bits) - 1

        def value(now: float) -> bytes:
            return encode_value(tag, (world.octets(name, number, now)[direction] // per) & mask)
        return value

    values[(*IF_ENTRY, 1, i)] = _i(i)
    if (*IF_ENTRY, 2, i) not in values:
        values[(*IF_ENTRY, 2, i)] = _s(port.name)
    values.setdefault((*IF_ENTRY, 3, i), _i(6))
    values[(*IF_ENTRY, 5, i)] = _g(min(speed_bps, 0xFFFFFFFF))
    values[(*IF_ENTRY, 6, i)] = _s(mac_plus(node.mac, number))
    values[(*IF_ENTRY, 7, i)] = _i(1)
    values[(*IF_ENTRY, 8, i)] = oper
    values[(*IF_ENTRY, 9, i)] = last_change
    values[(*IF_ENTRY, 10, i)] = counter(0, 32)
    values[(*IF_ENTRY, 11, i)] = counter(0, 32, OCTETS_PER_PACKET)
    values[(*IF_ENTRY, 16, i)] = counter(1, 32)
    values[(*IF_ENTRY, 17, i)] = counter(1, 32, OCTETS_PER_PACKET)
    for col in (13, 14, 19, 20):      # discards and errors: a healthy network
        values[(*IF_ENTRY, col, i)] = encode_value(COUNTER32, 0)
    values[(*DOT3_ENTRY, 19, i)] = lambda now: _i(3 if world.port_up(name, number, now) else 1)
    if has_ifx:
        if (*IFX_ENTRY, 1, i) not in values:
            values[(*IFX_ENTRY, 1, i)] = _s(port.name)
        values[(*IFX_ENTRY, 15, i)] = _g(port.speed_mbps)
        values[(*IFX_ENTRY, 18, i)] = _s(port.alias)
    if has_hc:
        values[(*IFX_ENTRY, 6, i)] = counter(0, 64)
        values[(*IFX_ENTRY, 7, i)] = counter(0, 64, OCTETS_PER_PACKET)
        values[(*IFX_ENTRY, 10, i)] = counter(1, 64)
        values[(*IFX_ENTRY, 11, i)] = counter(1, 64, OCTETS_PER_PACKET)


# -- LLDP -------------------------------------------------------------------------------------------

def _lldp(world: World, node: Node, values: dict[OID, Value]) -> Table:
    for k in list(values):
        if k[:len(LLDP_LOC)] == LLDP_LOC:
            del values[k]
    values[(*LLDP_LOC, 1, 0)] = _i(4)                       # lldpLocChassisIdSubtype: macAddress
    values[(*LLDP_LOC, 2, 0)] = _s(node.mac)
    values[(*LLDP_LOC, 3, 0)] = _s(node.name)
    values[(*LLDP_LOC, 4, 0)] = _s(sys_descr(world, node))
    values[(*LLDP_LOC, 5, 0)] = _s(LLDP_CAP[node.kind])
    values[(*LLDP_LOC, 6, 0)] = _s(LLDP_CAP[node.kind])
    for p in node.ports.values():
        values[(*LLDP_LOC, 7, 1, 2, p.number)] = _i(5)      # lldpLocPortIdSubtype: interfaceName
        values[(*LLDP_LOC, 7, 1, 3, p.number)] = _s(p.name)
        values[(*LLDP_LOC, 7, 1, 4, p.number)] = _s(p.alias or p.name)
    rem = (*LLDP_REM, 1, 1)

    def build(now: float) -> dict[OID, Value]:
        rows: dict[OID, Value] = {}
        for p in node.ports.values():
            peer = world.nodes.get(p.peer or "")
            if peer is None or not peer.speaks_lldp or p.peer_port is None:
                continue
            if not world.port_up(node.name, p.number, now):
                continue
            idx = (0, p.number, 1)
            pp = peer.ports[p.peer_port]
            rows[(*rem, 4, *idx)] = _i(4)
            rows[(*rem, 5, *idx)] = _s(peer.mac)
            rows[(*rem, 6, *idx)] = _i(5)
            rows[(*rem, 7, *idx)] = _s(pp.name)
            rows[(*rem, 8, *idx)] = _s(pp.alias or pp.name)
            rows[(*rem, 9, *idx)] = _s(peer.name)
            rows[(*rem, 10, *idx)] = _s(sys_descr(world, peer))
            rows[(*rem, 11, *idx)] = _s(LLDP_CAP[peer.kind])
            rows[(*rem, 12, *idx)] = _s(LLDP_CAP[peer.kind])
        return rows

    return Table(LLDP_REM, build, world.shape)


# -- wireless ---------------------------------------------------------------------------------------

def _mac_index(mac: bytes) -> tuple[int, ...]:
    return tuple(mac)


def _ssids(world: World) -> list[str]:
    ctl = world.campus.wireless.controller
    return [s.name for s in ctl.ssids] if ctl else ["School"]


def _huawei_wlan(world: World, node: Node, values: dict[OID, Value]) -> Table:
    for k in list(values):
        if k[:len(HW_WLAN) + 1] in ((*HW_WLAN, 13), (*HW_WLAN, 16), (*HW_WLAN, 17), (*HW_WLAN, 18)):
            del values[k]
    aps = world.managed_aps(node.name)
    ssids = _ssids(world)
    version = text_of(values.get((*HW_WLAN, 11, 1, 83, 6, 1, 6, 0))) or "V200R019C10SPC300"  # type: ignore[arg-type]

    def count(ap: str, radio: int | None, ssid: int | None) -> Callable[[float], bytes]:
        def value(now: float) -> bytes:
            stas = world.stations(now).get(ap, [])
            return _g(sum(1 for s in stas if (radio is None or s.radio == radio) and (ssid is None or s.ssid == ssid)))
        return value

    def band_count(ssid: int, bands: tuple[str, ...]) -> Callable[[float], bytes]:
        def value(now: float) -> bytes:
            n = 0
            for ap in aps:
                radios = ap.spec.radios  # type: ignore[union-attr]
                n += sum(1 for s in world.stations(now).get(ap.name, [])
                         if s.ssid == ssid and radios[s.radio].band in bands)
            return _g(n)
        return value

    values[HW_AP_COUNT] = lambda now: _g(sum(1 for a in aps if not world.is_down(a.name, now)))
    for n, ap in enumerate(aps, 1):
        idx = _mac_index(ap.mac)
        values[(*HW_AP_ENTRY, 1, *idx)] = _s(ap.mac)
        values[(*HW_AP_ENTRY, 2, *idx)] = _s(f"2102350PKF10J{seed(ap.name) % 10 ** 7:07d}")
        values[(*HW_AP_ENTRY, 3, *idx)] = _s(ap.model or "")
        values[(*HW_AP_ENTRY, 4, *idx)] = _s(ap.name)
        values[(*HW_AP_ENTRY, 5, *idx)] = _s(ap.zone)
        values[(*HW_AP_ENTRY, 6, *idx)] = _run_state(world, ap.name, 8, 4)   # hwWlanApRunState normal / fault
        values[(*HW_AP_ENTRY, 7, *idx)] = _s(version)
        values[(*HW_AP_ENTRY, 13, *idx)] = encode_value(IP_ADDRESS, f"198.18.{128 + n // 250}.{n % 250 + 1}")
        for r, radio in enumerate(ap.spec.radios):  # type: ignore[union-attr]
            ridx = (*idx, r)
            rmac = mac_plus(ap.mac, 16 * r)
            values[(*HW_RADIO_ENTRY, 5, *ridx)] = _i(1 if radio.band == "2.4" else 2)
            values[(*HW_RADIO_ENTRY, 6, *ridx)] = _run_state(world, ap.name, 1, 2)   # hwWlanRadioRunState up / down
            values[(*HW_RADIO_ENTRY, 7, *ridx)] = _i(radio.channel)
            values[(*HW_RADIO_ENTRY, 10, *ridx)] = _i(1 if radio.band == "2.4" else 4)    # ht20 / ht80
            zone = world.campus.zone(ap.zone)
            values[(*HW_RADIO_ENTRY, 24, *ridx)] = _i(round(zone.rssi_dbm.mean - zone.snr_db.mean))
            values[(*HW_RADIO_ENTRY, 40, *ridx)] = count(ap.name, r, None)
            values[(*HW_RADIO_ENTRY, 20, *ridx)] = _s(rmac)
            values[(*HW_RADIO_ENTRY, 25, *ridx)] = _utilisation(world, ap.name, r)
            values[(*HW_RADIO_ENTRY, 29, *ridx)] = _g(seed(ap.name, r, "interference") % 5)
            values[(*HW_RADIO_ENTRY, 45, *ridx)] = _g(radio.eirp_dbm)
            for w, ssid in enumerate(ssids, 1):
                vidx = (*ridx, w)
                values[(*HW_VAP_ENTRY, 4, *vidx)] = _s(ssid)
                values[(*HW_VAP_ENTRY, 5, *vidx)] = _s(mac_plus(rmac, w - 1))
                values[(*HW_VAP_ENTRY, 6, *vidx)] = _s(ssid)
                values[(*HW_VAP_ENTRY, 7, *vidx)] = _s(ap.name)
                values[(*HW_VAP_ENTRY, 9, *vidx)] = count(ap.name, r, w - 1)
    for w, ssid in enumerate(ssids):
        raw = ssid.encode()
        sidx = (len(raw), *raw)
        values[(*HW_SSID_ENTRY, 2, *sidx)] = band_count(w, ("2.4",))
        values[(*HW_SSID_ENTRY, 3, *sidx)] = band_count(w, ("5", "6"))

    by_name = {a.name: a for a in aps}

    def stations(now: float) -> dict[OID, Value]:
        rows: dict[OID, Value] = {}
        for ap_name, stas in world.stations(now).items():
            ap = by_name.get(ap_name)
            if ap is None:
                continue
            radios = ap.spec.radios  # type: ignore[union-attr]
            for s in stas:
                idx = _mac_index(s.mac)
                radio = radios[s.radio]
                rows[(*HW_STA_ENTRY, 3, *idx)] = _s(ap.mac)
                rows[(*HW_STA_ENTRY, 4, *idx)] = _s(ap.name)
                rows[(*HW_STA_ENTRY, 6, *idx)] = _g(s.radio)
                rows[(*HW_STA_ENTRY, 7, *idx)] = _i(1 if radio.band == "2.4" else 2)
                rows[(*HW_STA_ENTRY, 9, *idx)] = _i(radio.channel)
                rate = phy_rate(radio.band, s.snr_db)
                rows[(*HW_STA_ENTRY, 14, *idx)] = _g(rate)
                rows[(*HW_STA_ENTRY, 15, *idx)] = _g(rate)
                rows[(*HW_STA_ENTRY, 16, *idx)] = _s(ssids[s.ssid] if s.ssid < len(ssids) else ssids[0])
                rows[(*HW_STA_ENTRY, 24, *idx)] = _i(100 + s.ssid)
                rows[(*HW_STA_ENTRY, 30, *idx)] = _online(s.since)
                rows[(*HW_STA_ENTRY, 42, *idx)] = _i(s.rssi_dbm)
                rows[(*HW_STA_ENTRY, 44, *idx)] = _i(s.snr_db * 10)     # hwWlanStaSnrUs is in 0.1 dB
        return rows

    return Table((*HW_WLAN, 18), stations, world.shape)


def _run_state(world: World, ap: str, up: int, down: int) -> Callable[[float], bytes]:
    return lambda now: _i(down if world.is_down(ap, now) else up)


# PHY rates (Mbit/s) two spatial streams reach at an SNR, 20 MHz at 2.4 GHz and 80 MHz at 5/6 GHz (802.11n/ac
# MCS tables, long guard interval), for the minimum SNR each MCS needs: a client's rate follows its signal.
_RATES = {"2.4": ((35, 144), (30, 130), (25, 117), (20, 87), (15, 58), (10, 29), (0, 13)),
          "5": ((35, 866), (30, 702), (25, 585), (20, 390), (15, 234), (10, 117), (0, 58))}


def phy_rate(band: str, snr_db: int) -> int:
    """The PHY rate a client with this SNR is served at.

    >>> phy_rate("5", 33), phy_rate("2.4", 12), phy_rate("6", 40)
    (702, 29, 866)
    """
    return next(rate for need, rate in _RATES["2.4" if band == "2.4" else "5"] if snr_db >= need)


def _online(since: float) -> Callable[[float], bytes]:
    return lambda now: _g(max(0, int(now - since)))


def _utilisation(world: World, ap: str, radio: int) -> Callable[[float], bytes]:
    def value(now: float) -> bytes:
        n = sum(1 for s in world.stations(now).get(ap, []) if s.radio == radio)
        return _g(min(95, 3 + 2 * n))
    return value


def _unifi_vaps(world: World, node: Node, values: dict[OID, Value]) -> None:
    for k in list(values):
        if k[:len(UNIFI_VAP_ENTRY)] == UNIFI_VAP_ENTRY:
            del values[k]
    ssids = _ssids(world)
    row = 0
    for r, radio in enumerate(node.spec.radios):  # type: ignore[union-attr]
        for w in range(len(ssids)):
            row += 1

            def stations(now: float, r: int = r, w: int = w) -> bytes:
                return _i(sum(1 for s in world.stations(now).get(node.name, []) if s.radio == r and s.ssid == w))

            values[(*UNIFI_VAP_ENTRY, 4, row)] = _i(radio.channel)
            values[(*UNIFI_VAP_ENTRY, 6, row)] = _s(ssids[w])
            values[(*UNIFI_VAP_ENTRY, 8, row)] = stations
            values[(*UNIFI_VAP_ENTRY, 9, row)] = _s("ng" if radio.band == "2.4" else "na")
            values[(*UNIFI_VAP_ENTRY, 21, row)] = _i(radio.eirp_dbm)

