"""SNMP traps and informs become events, from the devices the configuration lists and from no one else.

The receiver is pysnmp's notification receiver (v1, v2c, v3; informs are acknowledged) on the address
in `snmp.traps.listen`. What it hears:

- A datagram whose source address is not one of the configured devices' addresses is counted
  (`TrapStats.dropped_unknown_source`, per address) and dropped before it is even decoded.
- v1/v2c must carry `snmp.traps.community` (or, without it, a community of the listed devices' v1/v2c
  credentials); v3 must be signed by one of `snmp.traps.users` (or the listed devices' v3 users).
  A v3 *trap* is signed with its sender's engine ID, which the receiver learns from the message header
  the first time a listed device sends one (at most 8 per address); keys are never guessed.
- The notification's OID is looked up in firmware_profiles/traps.yaml: linkDown/linkUp, coldStart/
  warmStart, authenticationFailure and the wireless controllers' AP-offline/online notifications
  (Huawei, Cisco AireOS, Aruba, Ruckus ZoneDirector and SmartZone) become `eduedge.core.events.Event`s.
  Others from listed devices are counted per OID (`TrapStats.unmapped`) and dropped.

Event kinds: link.down, link.up (warning/info), device.cold_start, device.warm_start,
snmp.auth_failure, ap.offline (error), ap.online. `details` holds the trap's name, MIB and OID, the
source address, the SNMP version, the fields read from its varbinds (if_index, interface, ap_name,
ap_mac, ...), the sender's uptime and every other varbind by OID.

>>> cat = load_catalogue()
>>> e = to_event("sw-1", "10.0.0.2", [("1.3.6.1.6.3.1.1.4.1.0", "1.3.6.1.6.3.1.1.5.3"),
...                                   ("1.3.6.1.2.1.2.2.1.1.7", 7), ("1.3.6.1.2.1.2.2.1.2.7", b"Gi0/7")], cat, 1.0)
>>> e.kind, e.severity, e.message
('link.down', 'warning', 'sw-1: link down on Gi0/7')
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyasn1.codec.ber import decoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config as snmp_config
from pysnmp.entity.engine import SnmpEngine
from pysnmp.entity.rfc3413 import ntfrcv
from pysnmp.proto import rfc1902
from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message
from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters

from eduedge.collectors.snmp.client import SnmpAuth
from eduedge.collectors.snmp.config import SnmpConfig
from eduedge.collectors.snmp.poller import as_text
from eduedge.collectors.snmp.profiles import BUNDLED_DIR
from eduedge.core.events import Event, Severity
from eduedge.core.netaddr import split_host_port
from eduedge.core.yamlfile import YamlFileError, load_yaml, validation_errors

log = logging.getLogger("eduedge.traps")

TRAPS_FILE = BUNDLED_DIR / "traps.yaml"
SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
# sysUpTime, snmpTrapOID, and what RFC 3584 adds to a v1 trap: snmpTrapAddress, -Community, -Enterprise
HEADER_OIDS = frozenset({SYS_UPTIME, SNMP_TRAP_OID, "1.3.6.1.6.3.18.1.3.0", "1.3.6.1.6.3.18.1.4.0",
                         "1.3.6.1.6.3.1.1.4.3.0"})
MAX_ENGINE_IDS_PER_SOURCE = 8
MAX_COUNTED_KEYS = 256          # unknown sources / unmapped OIDs remembered by name; the rest only counted
MAX_VARBINDS_KEPT = 32
MAX_TEXT = 256

_OID = re.compile(r"^\d+(\.\d+)+$")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")

_AUTH = {"MD5": snmp_config.USM_AUTH_HMAC96_MD5, "SHA": snmp_config.USM_AUTH_HMAC96_SHA,
         "SHA224": snmp_config.USM_AUTH_HMAC128_SHA224, "SHA256": snmp_config.USM_AUTH_HMAC192_SHA256,
         "SHA384": snmp_config.USM_AUTH_HMAC256_SHA384, "SHA512": snmp_config.USM_AUTH_HMAC384_SHA512}
_PRIV = {"DES": snmp_config.USM_PRIV_CBC56_DES, "AES": snmp_config.USM_PRIV_CFB128_AES,
         "AES128": snmp_config.USM_PRIV_CFB128_AES, "AES192": snmp_config.USM_PRIV_CFB192_AES,
         "AES256": snmp_config.USM_PRIV_CFB256_AES}


# -- the catalogue: which notifications become which events ----------------------------------------

class TrapSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    mib: str
    oid: str
    kind: str
    severity: Severity
    message: str
    fields: dict[str, tuple[str, ...]] = {}
    mappings: dict[str, dict[int, str]] = {}
    subject: tuple[str, ...] = ()
    subject_default: str = "it"
    verified: str

    @field_validator("oid")
    @classmethod
    def _oid(cls, v: str) -> str:
        if not _OID.match(v.strip(".")):
            raise ValueError(f"{v!r} is not a numeric OID")
        return v.strip(".")

    @field_validator("fields")
    @classmethod
    def _field_oids(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for name, oids in v.items():
            for o in oids:
                if not _OID.match(o):
                    raise ValueError(f"fields.{name}: {o!r} is not a numeric OID")
        return v

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if not re.match(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$", v):
            raise ValueError(f"{v!r} is not a dotted event kind like link.down")
        return v

    @model_validator(mode="after")
    def _placeholders(self) -> TrapSpec:
        for t in self.subject:
            unknown = set(_PLACEHOLDER.findall(t)) - set(self.fields)
            if unknown:
                raise ValueError(f"subject {t!r} uses {', '.join(sorted(unknown))}, which `fields` does not define")
        unknown = set(_PLACEHOLDER.findall(self.message)) - {"device", "subject"}
        if unknown:
            raise ValueError(f"message may use only {{device}} and {{subject}}, not {', '.join(sorted(unknown))}")
        return self


class _CatalogueFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    traps: list[TrapSpec]


class TrapCatalogueError(YamlFileError):
    pass


@dataclass(frozen=True)
class TrapCatalogue:
    by_oid: Mapping[str, TrapSpec]

    def lookup(self, trap_oid: str) -> TrapSpec | None:
        """The spec for a notification OID; a v1 trap's ENTERPRISE.0.SPECIFIC also finds ENTERPRISE.SPECIFIC.

        >>> load_catalogue().lookup("1.3.6.1.4.1.14179.2.6.3.0.8").name
        'bsnAPDisassociated'
        """
        spec = self.by_oid.get(trap_oid)
        if spec is None:
            head, _, specific = trap_oid.rpartition(".")
            if head.endswith(".0"):
                spec = self.by_oid.get(f"{head[:-2]}.{specific}")
        return spec


def load_catalogue(path: Path = TRAPS_FILE) -> TrapCatalogue:
    """Read and validate the notification catalogue; every problem is reported with file and line."""
    try:
        doc = load_yaml(path)
        parsed = _CatalogueFile.model_validate(doc.data)
    except YamlFileError as e:
        raise TrapCatalogueError(path, e.problems) from None
    except ValidationError as e:
        raise TrapCatalogueError(path, validation_errors(doc, e)) from None
    by_oid: dict[str, TrapSpec] = {}
    for spec in parsed.traps:
        if spec.oid in by_oid:
            raise TrapCatalogueError(path, [f"{path}: {spec.name} and {by_oid[spec.oid].name} share OID {spec.oid}"])
        by_oid[spec.oid] = spec
    return TrapCatalogue(by_oid)


# -- varbinds -> event --------------------------------------------------------------------------

def plain(value: Any) -> int | str | bytes | None:
    """A pysnmp value as plain Python: numbers as int, OIDs and addresses as text, strings as bytes."""
    # pyasn1 base types: the SMI ones (Counter32, TimeTicks, ...) derive from them, and snmpTrapOID's
    # value arrives as a bare univ.ObjectIdentifier
    if isinstance(value, univ.Null):                 # a subclass of OctetString in pyasn1
        return None
    if isinstance(value, rfc1902.IpAddress):
        return ".".join(str(b) for b in value.asNumbers())
    if isinstance(value, univ.OctetString):         # also Opaque, Bits
        return bytes(value)
    if isinstance(value, univ.ObjectIdentifier):
        return str(value)
    if isinstance(value, univ.Integer):
        return int(value)
    return None                                      # Null, noSuchObject, ...


def _text(value: int | str | bytes | None) -> str:
    return as_text(value)[:MAX_TEXT] if isinstance(value, bytes) else "" if value is None else str(value)


def _under(oid: str, prefixes: Sequence[str]) -> bool:
    return any(oid == p or oid.startswith(p + ".") for p in prefixes)


def to_event(device: str, source: str, varbinds: Sequence[tuple[str, int | str | bytes | None]],
             catalogue: TrapCatalogue, now: float, version: str = "2c") -> Event | None:
    """The event a notification from `device` stands for, or None if the catalogue does not know it."""
    values = dict(varbinds)
    trap_oid = _text(values.get(SNMP_TRAP_OID)).strip(".")
    spec = catalogue.lookup(trap_oid) if trap_oid else None
    if spec is None:
        return None
    fields: dict[str, str] = {}
    used: set[str] = set()
    for name, prefixes in spec.fields.items():
        found = next(((oid, value) for p in prefixes for oid, value in varbinds     # in the order of `prefixes`
                      if _under(oid, (p,)) and _text(value).strip()), None)
        if found is not None:
            oid, value = found
            text = _text(value).strip()
            fields[name] = spec.mappings.get(name, {}).get(value, text) if isinstance(value, int) else text
            used.add(oid)
    subject = next((t.format(**fields) for t in spec.subject
                    if all(p in fields for p in _PLACEHOLDER.findall(t))), spec.subject_default)
    details: dict[str, Any] = {"trap": spec.name, "mib": spec.mib, "oid": trap_oid, "source": source,
                               "snmp_version": version, **fields}
    uptime = values.get(SYS_UPTIME)
    if isinstance(uptime, int):
        details["uptime_s"] = uptime / 100
    rest = {oid: _text(v) for oid, v in varbinds if oid not in HEADER_OIDS and oid not in used}
    if rest:
        details["varbinds"] = dict(list(rest.items())[:MAX_VARBINDS_KEPT])
    return Event(now, device, spec.kind, spec.severity, spec.message.format(device=device, subject=subject),
                 details)


# -- the receiver ---------------------------------------------------------------------------------

def _address(host: str) -> str:
    """Canonical text of an IP address; an IPv4-mapped IPv6 address is the IPv4 one."""
    ip = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def _bump(counts: dict[str, int], key: str) -> None:
    if key in counts or len(counts) < MAX_COUNTED_KEYS:
        counts[key] = counts.get(key, 0) + 1
    else:
        counts["(others)"] = counts.get("(others)", 0) + 1


@dataclass
class TrapStats:
    received: int = 0                   # datagrams from listed devices (before credentials are checked)
    events: int = 0
    dropped_unknown_source: int = 0
    unknown_sources: dict[str, int] = field(default_factory=dict)
    unmapped: dict[str, int] = field(default_factory=dict)     # notification OID -> count


class _Admission:
    """Mixed into pysnmp's UDP transports: decides per datagram, before any decoding by pysnmp."""

    admit: Callable[[str, bytes], bool]

    def datagram_received(self, datagram: bytes, address: Any) -> None:
        if self.admit(address[0], datagram):
            super().datagram_received(datagram, address)  # type: ignore[misc]


class _Udp4(_Admission, udp.UdpAsyncioTransport):
    pass


class _Udp6(_Admission, udp6.Udp6AsyncioTransport):
    pass


class TrapReceiver:
    """Listens for notifications and calls `on_event` for those of listed devices that the catalogue knows.

    `devices` maps source IP address -> device name. Use `async with TrapReceiver(...)` or start()/close().
    """

    def __init__(self, devices: Mapping[str, str], on_event: Callable[[Event], None],
                 listen: tuple[str, int] = ("0.0.0.0", 162), communities: Sequence[str] = (),
                 users: Sequence[SnmpAuth] = (), catalogue: TrapCatalogue | None = None):
        self.devices = {_address(a): d for a, d in devices.items()}
        self.on_event = on_event
        self.listen = listen
        self.communities = list(dict.fromkeys(communities))
        self.users = list(users)
        self.catalogue = catalogue or load_catalogue()
        self.stats = TrapStats()
        self.address: tuple[str, int] | None = None
        self._engine: SnmpEngine | None = None
        self._engine_ids: dict[str, set[bytes]] = {}

    async def start(self) -> None:
        host, port = self.listen
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
        except OSError as e:
            sock.close()
            raise OSError(e.errno, f"snmp.traps.listen {host}:{port}: cannot listen there: {e.strerror}") from None
        sock.setblocking(False)
        self.address = sock.getsockname()[:2]
        engine = SnmpEngine()
        transport = (_Udp6 if family == socket.AF_INET6 else _Udp4)()
        transport.admit = self._admit
        snmp_config.add_transport(engine, udp6.DOMAIN_NAME if family == socket.AF_INET6 else udp.DOMAIN_NAME,
                                  transport.open_server_mode(sock=sock))
        for i, community in enumerate(self.communities):
            snmp_config.add_v1_system(engine, f"eduedge-trap-{i}", community)
        for user in self.users:
            self._add_user(engine, user, None)      # the receiver's own engine ID: informs
        ntfrcv.NotificationReceiver(engine, self._on_notification)
        self._engine = engine
        log.info("listening for SNMP traps and informs on %s:%d from %d devices", *self.address, len(self.devices))

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None

    async def __aenter__(self) -> TrapReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await asyncio.sleep(0)          # let the transport finish closing inside the loop

    def refused(self) -> dict[str, int]:
        """Notifications from listed devices that pysnmp refused for their credentials, by reason."""
        if self._engine is None:
            return {}
        mib = self._engine.get_mib_builder()
        out = {}
        for module, name in (("__SNMPv2-MIB", "snmpInBadCommunityNames"),
                             ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownUserNames"),
                             ("__SNMP-USER-BASED-SM-MIB", "usmStatsWrongDigests"),
                             ("__SNMP-USER-BASED-SM-MIB", "usmStatsDecryptionErrors")):
            (sym,) = mib.import_symbols(module, name)
            out[name] = int(sym.syntax)
        return out

    def _add_user(self, engine: SnmpEngine, user: SnmpAuth, engine_id: bytes | None) -> None:
        auth = _AUTH[user.auth_proto] if user.auth_proto and user.auth_key else snmp_config.USM_AUTH_NONE
        priv = _PRIV[user.priv_proto] if user.priv_proto and user.priv_key else snmp_config.USM_PRIV_NONE
        snmp_config.add_v3_user(engine, user.user, auth, user.auth_key, priv, user.priv_key,
                                securityEngineId=None if engine_id is None else rfc1902.OctetString(engine_id))

    def _admit(self, host: str, datagram: bytes) -> bool:
        try:
            source = _address(host)
        except ValueError:
            source = host
        if source not in self.devices:
            self.stats.dropped_unknown_source += 1
            _bump(self.stats.unknown_sources, source)
            return False
        self.stats.received += 1
        if self.users and self._engine is not None:
            self._learn_engine_id(source, datagram)
        return True

    def _learn_engine_id(self, source: str, datagram: bytes) -> None:
        # A v3 trap is authenticated with keys localised to its sender's engine ID; register the users for
        # that ID before pysnmp sees the message. Informs and discovery carry ours or none.
        try:
            msg, _ = decoder.decode(datagram, asn1Spec=SNMPv3Message())
            params, _ = decoder.decode(bytes(msg["msgSecurityParameters"]), asn1Spec=UsmSecurityParameters())
        except (PyAsn1Error, ValueError, TypeError):
            return                                      # not SNMPv3 (or garbage: pysnmp will drop it)
        engine_id = bytes(params["msgAuthoritativeEngineId"])
        assert self._engine is not None
        if not engine_id or engine_id == bytes(self._engine.snmpEngineID):
            return
        known = self._engine_ids.setdefault(source, set())
        if engine_id in known or len(known) >= MAX_ENGINE_IDS_PER_SOURCE:
            return
        known.add(engine_id)
        for user in self.users:
            self._add_user(self._engine, user, engine_id)
        log.info("%s (%s): SNMPv3 engine ID %s learnt for its traps", self.devices[source], source, engine_id.hex())

    def _on_notification(self, engine: SnmpEngine, state_reference: Any, context_engine_id: Any,
                         context_name: Any, varbinds: Any, cb_ctx: Any) -> None:
        ctx = engine.observer.get_execution_context("rfc3412.receiveMessage:request")
        source = _address(str(ctx["transportAddress"][0]))
        device = self.devices.get(source)
        if device is None:      # cannot happen: _admit let it in; never make an event of it
            return
        version = {0: "1", 1: "2c", 3: "3"}.get(int(ctx["messageProcessingModel"]), "?")
        plain_vbs = [(str(oid), plain(value)) for oid, value in varbinds]
        event = to_event(device, source, plain_vbs, self.catalogue, time.time(), version)
        if event is None:
            oid = _text(dict(plain_vbs).get(SNMP_TRAP_OID)) or "(no snmpTrapOID)"
            _bump(self.stats.unmapped, oid)
            log.debug("%s (%s): notification %s is not in %s; dropped", device, source, oid, TRAPS_FILE.name)
            return
        self.stats.events += 1
        try:
            self.on_event(event)
        except Exception:
            log.exception("%s: handling the %s event failed", device, event.kind)


def device_addresses(cfg: SnmpConfig) -> tuple[dict[str, str], list[str]]:
    """Source address -> device name for every configured device, and the problems met resolving names."""
    out: dict[str, str] = {}
    problems = []
    for d in cfg.devices:
        host, _ = split_host_port(d.host)
        try:
            out[_address(host)] = d.name
            continue
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
        except OSError as e:
            problems.append(f"{d.name}: cannot resolve {host} ({e}); its traps will be dropped")
            continue
        for info in infos:
            out[_address(str(info[4][0]))] = d.name
    return out, problems


def receiver_from_config(cfg: SnmpConfig, on_event: Callable[[Event], None],
                         catalogue: TrapCatalogue | None = None) -> TrapReceiver:
    """A receiver for `snmp.traps`: its listen address, communities and users, the listed devices only."""
    traps = cfg.traps
    devices, problems = device_addresses(cfg)
    for p in problems:
        log.warning(p)
    used = {d.credentials for d in cfg.devices}
    if traps.community is not None:
        communities = [traps.community.read("snmp.traps.community")]
    else:
        communities = [SnmpAuth.from_config(cfg.credentials[c], c).community for c in sorted(used)
                       if cfg.credentials[c].version in ("1", "2c")]
    user_names = traps.users or sorted(c for c in used if cfg.credentials[c].version == "3")
    users = [SnmpAuth.from_config(cfg.credentials[u], u) for u in user_names]
    return TrapReceiver(devices, on_event, split_host_port(traps.listen, 162), communities, users, catalogue)
