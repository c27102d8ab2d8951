"""The discovered-device inventory: what changed since the last cycle, what the cloud may see of it, and
the learning-device count for the 1:1 rule.

`DeviceInventory` keeps every device discovery found (by MAC, on the box only, in
`<data_dir>/discovery.json`, so a restart does not make the whole campus "appear" again) and turns a
discovery cycle into changes: `appeared`, `disappeared` (not seen for `discovery.absent_after`, or
`personal_absent_after` for personal devices, which go home every evening), `moved` (another switch port)
and `changed` (another class). Each change becomes an entry of an `inventory` message with
`scope: discovered` (agent/contract/inventory.schema.json); messages are split to fit the size cap.

What leaves the box: school equipment (projectors, panels, printers, UPSes, cameras, NVRs) with its MAC,
address and host name; every personal device (learning devices, randomised MACs, anything unidentified)
only as its pseudonym (agent/pseudonym.py) - no MAC, no host name, no address - with its class, the
evidence, and where it sits. The contract refuses an entry marked personal that carries any of the three.

`DiscoveryJob.run()` is one whole cycle for the daemon: sweep, listen, switch tables, identify, PJLink,
inventory changes and samples (`inventory.devices` by class, `inventory.learning_devices`, `pjlink.*`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eduedge.agent.config import AgentConfig
from eduedge.collectors.discovery.discovery import (
    IPNet,
    Observed,
    PassiveListener,
    Scope,
    Sighting,
    bridge_devices,
    bridge_sightings,
    merge,
    poll_bridge_tables,
    sweep_async,
)
from eduedge.collectors.discovery.identify import Identification, classify
from eduedge.collectors.pjlink import PjlinkStatus, query
from eduedge.core.netaddr import split_host_port
from eduedge.core.pseudonym import Pseudonymizer
from eduedge.core.samples import Sample

log = logging.getLogger("eduedge.inventory")

STATE_FILE = "discovery.json"
SUMMARY_DEVICE = "gateway"     # the campus-wide counts are the gateway's own view
ENVELOPE_ROOM = 2048           # bytes kept free in each inventory message for the envelope


@dataclass
class KnownDevice:
    mac: str
    ip: str | None = None
    hostname: str | None = None
    dhcp_vendor: str | None = None
    vendor: str | None = None
    model: str | None = None
    device_class: str = "other"
    personal: bool = True
    evidence: list[str] = field(default_factory=list)
    configured: str | None = None          # the name under snmp.devices, when it is a listed device
    switch: str | None = None
    interface: str | None = None
    room: str | None = None
    sources: list[str] = field(default_factory=list)
    first_seen: float = 0.0
    last_seen: float = 0.0
    present: bool = True
    reachable: bool | None = None


@dataclass
class Change:
    change: str                            # appeared, disappeared, moved, changed
    device: KnownDevice
    previous: dict[str, str | None] | None = None


@dataclass
class WifiClient:
    """A Wi-Fi client as the Wi-Fi collector reports it, for the 1:1 count: by its pseudonym, which the poller
    made with the same school key (agent/pseudonym.py) as discovery's, so one tablet is one pseudonym."""

    pseudonym: str
    ssid: str
    last_seen: float


class DeviceInventory:
    def __init__(self, cfg: AgentConfig, pseudo: Pseudonymizer, path: Path | None = None):
        self.cfg = cfg
        self.pseudo = pseudo
        self.path = path
        self.devices: dict[str, KnownDevice] = {}
        # Wi-Fi clients of the learning SSIDs seen in the ratio window, by pseudonym; kept across restarts
        # like the devices, so that an evening restart does not drop the day's tablets from the 1:1 count
        self.wifi: dict[str, WifiClient] = {}
        if path is not None and path.exists():
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                self.devices = {m: KnownDevice(**d) for m, d in raw.get("devices", {}).items()}
                self.wifi = {p: WifiClient(**w) for p, w in raw.get("wifi_clients", {}).items()}
            except (ValueError, TypeError) as e:
                log.warning("%s: unreadable (%s); starting an empty inventory", path, e)

    def save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"devices": {m: asdict(d) for m, d in self.devices.items()},
                                   "wifi_clients": {p: asdict(w) for p, w in self.wifi.items()}}), encoding="utf-8")
        os.chmod(tmp, 0o600)       # clear MACs and host names of students' devices: the box's eyes only
        os.replace(tmp, self.path)

    # -- names and where --------------------------------------------------------------------------------

    def device_id(self, d: KnownDevice) -> str:
        if d.configured:
            return d.configured
        if d.personal:
            return self.pseudo.mac(d.mac)
        return "mac-" + d.mac.replace(":", "")

    def room_of(self, switch: str | None, interface: str | None) -> str | None:
        for drop in self.cfg.topology.classroom_drops:
            if drop.device == switch and drop.port == interface:
                return drop.room
        dev = next((d for d in self.cfg.snmp.devices if d.name == switch), None)
        return dev.room if dev else None

    # -- one cycle ---------------------------------------------------------------------------------------

    def update(self, observed: dict[str, Observed], idents: dict[str, Identification], now: float) -> list[Change]:
        changes: list[Change] = []
        for mac, o in observed.items():
            ident = idents[mac]
            d = self.devices.get(mac)
            port_before = (d.switch, d.interface, d.room) if d else None
            class_before = d.device_class if d else None
            was_present = d.present if d else False
            if d is None:
                d = self.devices[mac] = KnownDevice(mac, first_seen=now)
            d.ip, d.hostname = o.ip or d.ip, o.hostname or d.hostname
            d.dhcp_vendor = o.dhcp_vendor or d.dhcp_vendor
            d.vendor, d.model = ident.vendor, ident.model or d.model
            d.device_class, d.personal, d.evidence = ident.device_class, ident.personal, ident.evidence
            d.configured = next((x.name for x in self.cfg.snmp.devices if o.ip and split_host_port(x.host)[0] == o.ip),
                                None)
            if o.switch:
                d.switch, d.interface = o.switch, o.interface
                d.room = self.room_of(o.switch, o.interface)
            d.sources = sorted(o.sources)
            d.last_seen, d.present = max(d.last_seen, o.last_seen or now), True
            if not was_present:
                changes.append(Change("appeared", d))
            elif port_before and port_before[:2] != (d.switch, d.interface) and port_before[0] is not None:
                changes.append(Change("moved", d, {"switch": port_before[0], "port": port_before[1],
                                                   "room": port_before[2]}))
            elif class_before != d.device_class:
                changes.append(Change("changed", d))
        disc = self.cfg.discovery
        for mac, d in list(self.devices.items()):
            if mac in observed:
                continue
            absent = disc.personal_absent_after if d.personal else disc.absent_after
            if d.present and now - d.last_seen >= absent:
                d.present = False
                changes.append(Change("disappeared", d))
            if not d.present and now - d.last_seen > max(disc.ratio_window, absent):
                del self.devices[mac]
        return changes

    def entry(self, c: Change) -> dict[str, Any]:
        """One change as the contract's `discovered_entry`: personal devices by pseudonym only."""
        d = c.device
        e: dict[str, Any] = {"device": self.device_id(d), "collector": "discovery", "change": c.change,
                             "class": d.device_class, "personal": d.personal, "evidence": d.evidence,
                             "vendor": d.vendor, "switch": d.switch, "port": d.interface, "room": d.room,
                             "sources": d.sources, "first_seen": round(d.first_seen, 3),
                             "last_seen": round(d.last_seen, 3)}
        if d.model:
            e["model"] = d.model
        if d.reachable is not None:
            e["reachable"] = d.reachable
        if c.previous:
            e["previous"] = c.previous
        if not d.personal:
            e["mac"] = d.mac
            if d.ip:
                e["address"] = d.ip
            if d.hostname:
                e["hostname"] = d.hostname
        else:
            # evidence may quote what matched; never the clear host name or MAC of a person's device
            e["evidence"] = [_scrub(x, d) for x in d.evidence]
        return e

    def messages(self, changes: Sequence[Change], max_bytes: int) -> list[dict[str, Any]]:
        """`inventory` bodies (scope discovered) holding the changes, each within `max_bytes`."""
        room = max_bytes - ENVELOPE_ROOM
        out: list[dict[str, Any]] = []
        cur: list[dict[str, Any]] = []
        used = 0
        for c in changes:
            e = self.entry(c)
            size = len(json.dumps(e, ensure_ascii=False).encode()) + 1
            if cur and used + size > room:
                out.append({"scope": "discovered", "devices": cur})
                cur, used = [], 0
            cur.append(e)
            used += size
        if cur:
            out.append({"scope": "discovered", "devices": cur})
        return out

    # -- the 1:1 rule's input -------------------------------------------------------------------------

    def see_wifi(self, clients: Iterable[WifiClient], now: float) -> None:
        """Remember the clients of a Wi-Fi round that use a learning SSID (`discovery.learning.ssids`);
        forget those not seen within `discovery.ratio_window` of `now`."""
        ssids = [re.compile(p, re.I) for p in self.cfg.discovery.learning.ssids]
        for w in clients:
            if any(p.search(w.ssid) for p in ssids):
                old = self.wifi.get(w.pseudonym)
                if old is None or w.last_seen >= old.last_seen:
                    self.wifi[w.pseudonym] = w
        since = now - self.cfg.discovery.ratio_window
        self.wifi = {p: w for p, w in self.wifi.items() if w.last_seen >= since}

    def learning_devices(self, now: float) -> dict[str, set[str]]:
        """Pseudonyms of the learning devices seen in `discovery.ratio_window`, by where they were seen; one
        device seen by discovery and on a learning SSID is the same pseudonym, so it counts once."""
        since = now - self.cfg.discovery.ratio_window
        seen: dict[str, set[str]] = {"discovered": set(), "wifi": set()}
        for d in self.devices.values():
            if d.device_class == "learning" and d.last_seen >= since:
                seen["discovered"].add(self.pseudo.mac(d.mac))
        seen["wifi"] = {p for p, w in self.wifi.items() if w.last_seen >= since}
        return seen

    def samples(self, now: float) -> list[Sample]:
        by_class = Counter(d.device_class for d in self.devices.values() if d.present)
        out = [Sample(now, SUMMARY_DEVICE, "inventory.devices", n, "devices", {"class": c})
               for c, n in sorted(by_class.items())]
        seen = self.learning_devices(now)
        learning = len(seen["discovered"] | seen["wifi"])
        if learning:       # none seen is no count (the 1:1 rule stays unknown), not a count of zero devices
            out.append(Sample(now, SUMMARY_DEVICE, "inventory.learning_devices", learning, "devices"))
        return out


def _scrub(text: str, d: KnownDevice) -> str:
    for secret in (d.hostname, d.mac, d.ip):
        if secret:
            text = re.sub(re.escape(secret), "<hidden>", text, flags=re.I)
    return text


@dataclass
class Cycle:
    """What one discovery cycle found and what it hands to the daemon."""

    time: float
    observed: dict[str, Observed]
    identified: dict[str, Identification]
    changes: list[Change]
    messages: list[dict[str, Any]]             # inventory bodies for outbox.add("inventory", body)
    samples: list[Sample]                      # for outbox.add_samples
    pjlink: dict[str, PjlinkStatus] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def probe_scope(cfg: AgentConfig) -> Scope:
    """Where the agent may probe: `discovery.subnets`, and the SNMP devices and reachability targets it lists."""
    listed = [d.host for d in cfg.snmp.devices] + [t.host for t in cfg.reachability.targets]
    return Scope.from_config(cfg.discovery, listed)


class DiscoveryJob:
    """One discovery cycle at a time; keeps the inventory and (when passive) the listener between cycles."""

    def __init__(self, cfg: AgentConfig, pseudo: Pseudonymizer, state_path: Path | None = None):
        self.cfg = cfg
        self.scope = probe_scope(cfg)
        self.inventory = DeviceInventory(cfg, pseudo, state_path)
        self.listener: PassiveListener | None = None

    def start_passive(self) -> None:
        if self.cfg.discovery.passive and self.listener is None:
            self.listener = PassiveListener(self.cfg.discovery.interface, self.scope)
            self.listener.start()

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.stop()
            self.listener = None

    async def run(self, subnets: Sequence[IPNet] | None = None, now: float | None = None) -> Cycle:
        cfg, disc = self.cfg, self.cfg.discovery
        now = time.time() if now is None else now
        errors: list[str] = []
        sightings: list[Sighting] = []
        targets = list(subnets) if subnets is not None else list(disc.subnets)
        try:
            sightings += await sweep_async(targets, self.scope, disc.interface, disc.sweep_timeout)
        except PermissionError as e:
            errors.append(f"ARP sweep: no permission for raw sockets ({e}); run as root or with CAP_NET_RAW")
        except OSError as e:
            errors.append(f"ARP sweep: {e}")
        if self.listener is not None:
            sightings += self.listener.drain()
        if disc.bridge_tables:
            polls = await poll_bridge_tables(cfg.snmp, bridge_devices(disc, cfg.snmp.devices))
            errors += [e for p in polls for e in p.errors]
            sightings += bridge_sightings([s for p in polls for s in p.samples], self.scope, now)
        observed = merge(sightings)
        identified, pj = await self.identify(observed)
        changes = self.inventory.update(observed, identified, now)
        max_bytes = cfg.mqtt.max_message_bytes if cfg.mqtt else 256 * 1024
        samples = self.inventory.samples(now)
        for mac, st in pj.items():
            samples += st.samples(self.inventory.device_id(self.inventory.devices[mac]), now)
        self.inventory.save()
        return Cycle(now, observed, identified, changes, self.inventory.messages(changes, max_bytes), samples,
                     pj, errors)

    async def identify(self, observed: dict[str, Observed]) -> tuple[dict[str, Identification],
                                                                      dict[str, PjlinkStatus]]:
        """Classify every observed MAC: configuration, SNMP identity, PJLink, rules
        (collectors/discovery/identify.py)."""
        cfg, disc = self.cfg, self.cfg.discovery
        listed = {split_host_port(d.host)[0]: (d.name, d.role) for d in cfg.snmp.devices}
        first = {mac: classify(mac, o.ip, rules=disc.learning, hostname=o.hostname, dhcp_vendor=o.dhcp_vendor,
                               configured=listed.get(o.ip or "")) for mac, o in observed.items()}
        unsure = [m for m, i in first.items() if i.personal and i.device_class != "learning"
                  and not i.evidence[0].startswith("randomised")]
        snmp = await self._snmp_identities({m: observed[m].ip for m in unsure if observed[m].ip})
        ask_pjlink = [m for m, i in first.items() if i.device_class in ("projector", "panel")
                      or (m in unsure and m not in snmp)]
        password = disc.pjlink.password.read("discovery.pjlink.password") if disc.pjlink.password else None
        pj: dict[str, PjlinkStatus] = {}
        if disc.pjlink.enabled and ask_pjlink:
            results = await asyncio.gather(*(query(observed[m].ip or "", disc.pjlink.port, password,
                                                   disc.pjlink.timeout) for m in ask_pjlink if observed[m].ip))
            pj = {m: r for m, r in zip([m for m in ask_pjlink if observed[m].ip], results, strict=True)
                  if r.status != "refused"}
        out = {}
        for mac, o in observed.items():
            if mac in snmp or mac in pj:
                out[mac] = classify(mac, o.ip, rules=disc.learning, hostname=o.hostname, dhcp_vendor=o.dhcp_vendor,
                                    configured=listed.get(o.ip or ""), snmp=snmp.get(mac), pjlink=pj.get(mac))
            else:
                out[mac] = first[mac]
        return out, {m: st for m, st in pj.items() if out[m].device_class in ("projector", "panel")}

    async def _snmp_identities(self, hosts: dict[str, str]) -> dict[str, dict]:
        """SNMP identity of discovered hosts, with each of `discovery.snmp_credentials` in turn (1 s, no retry)."""
        cfg = self.cfg
        if not cfg.discovery.snmp_credentials or not hosts:
            return {}
        from eduedge.collectors.snmp.client import SnmpAuth, SnmpClient, SnmpRequestError
        from eduedge.collectors.snmp.poller import DevicePoller
        from eduedge.collectors.snmp.profiles import load_profiles

        profiles = load_profiles(cfg.snmp.profile_dirs)
        auths = [SnmpAuth.from_config(cfg.snmp.credentials[c], c) for c in cfg.discovery.snmp_credentials]
        sem = asyncio.Semaphore(cfg.snmp.defaults.concurrency)

        async def one(mac: str, ip: str) -> tuple[str, dict | None]:
            host, port = split_host_port(ip)
            async with sem:
                for auth in auths:
                    client = SnmpClient(f"discovered {ip}", host, port, auth, timeout=1.0, retries=0)
                    try:
                        ident = await DevicePoller(client, profiles).identify()
                        return mac, ident.to_dict()
                    except (SnmpRequestError, TimeoutError, OSError):
                        continue
            return mac, None

        found = await asyncio.gather(*(one(m, ip) for m, ip in hosts.items()))
        return {m: i for m, i in found if i}


def reachability_targets(cfg: AgentConfig, inventory: DeviceInventory | None) -> list[Any]:
    """What `collectors.reachability.probe` should try: listed targets and devices, and (with discovery on,
    `inventory` given) the discovered devices of `reachability.discovered_classes` that are present."""
    from eduedge.collectors.reachability import Target

    r = cfg.reachability
    out = [Target(t.name, split_host_port(t.host, 0)[0], t.tcp_port, True,
                  (("room", t.room),) if t.room else ()) for t in r.targets]
    if r.snmp_devices:
        out += [Target(d.name, split_host_port(d.host)[0], None, True, (("room", d.room),) if d.room else ())
                for d in cfg.snmp.devices]
    if inventory is None:
        return out
    names = {t.name for t in out}
    for d in inventory.devices.values():
        name = inventory.device_id(d)
        if d.present and d.ip and d.device_class in r.discovered_classes and name not in names:
            tags = (("class", d.device_class),) + ((("room", d.room),) if d.room else ())
            out.append(Target(name, d.ip, 4352 if d.device_class in ("projector", "panel") else None, False, tags))
    return out


def apply_reachability(inventory: DeviceInventory, results: Iterable[Any]) -> None:
    """Remember which discovered devices answered, for the inventory's `reachable` field."""
    by_ip = {d.ip: d for d in inventory.devices.values() if d.ip}
    for r in results:
        d = by_ip.get(r.address)
        if d is not None:
            d.reachable = r.reachable
