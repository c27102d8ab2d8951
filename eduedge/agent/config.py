"""The agent's configuration: one YAML file, validated by pydantic, every error with file and line.

Each collector owns the model of its own section (collectors/snmp/config.py, collectors/wifi/config.py,
collectors/broadband/config.py, collectors/discovery/config.py, collectors/host.py, collectors/reachability.py,
collectors/service_probes_config.py); this module composes them with the agent's own sections (school, mqtt,
outbox, commands, standards, topology, privacy) into `AgentConfig` and checks what crosses sections (a
device named in topology, discovery or wifi must be under snmp.devices).

`eduedge/config/example-school.yaml` is the complete, commented reference. Secrets (SNMP communities and
keys, MQTT passwords) are never written in the file itself: each comes from a file (`*_file`) or an
environment variable (`*_env`), read when it is used, and never logged.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from eduedge.agent.health import PrometheusConfig
from eduedge.collectors.broadband.config import BroadbandConfig
from eduedge.collectors.discovery.config import DiscoveryConfig
from eduedge.collectors.host import HostConfig
from eduedge.collectors.reachability_config import ReachabilityConfig
from eduedge.collectors.service_probes_config import LiveClassConfig
from eduedge.collectors.snmp.config import DeviceRole, SnmpConfig
from eduedge.collectors.wifi.config import WifiConfig
from eduedge.core.i18n import N_, _
from eduedge.core.model import ByteSize, Duration, Strict
from eduedge.core.netaddr import split_host_port
from eduedge.core.secrets import Secret
from eduedge.core.timeofday import Weekday, is_clock
from eduedge.core.yamlfile import YamlDoc, YamlFileError, load_model

# The bundled standards rule packs; a school names the ones that apply in `standards.packs`.
STANDARDS_DIR = Path(__file__).resolve().parents[1] / "config" / "standards"

SchoolType = Literal["primary", "secondary", "secondary-vocational", "kindergarten", "vocational-college",
                     "nine-year", "teaching-point"]
# What each type is called where a person reads it (translated where shown).
_SCHOOL_TYPES = {"primary": N_("primary"), "secondary": N_("secondary"),
                 "secondary-vocational": N_("secondary-vocational"), "kindergarten": N_("kindergarten"),
                 "vocational-college": N_("vocational-college"), "nine-year": N_("nine-year"),
                 "teaching-point": N_("teaching-point")}


def school_type_word(school_type: str) -> str:
    return _(_SCHOOL_TYPES[school_type]) if school_type in _SCHOOL_TYPES else school_type


_ROLES = {"core": N_("core"), "distribution": N_("distribution"), "access": N_("access"), "router": N_("router"),
          "firewall": N_("firewall"), "wlc": N_("wlc"), "ap": N_("ap"), "printer": N_("printer"), "ups": N_("ups"),
          "projector": N_("projector"), "nvr": N_("nvr"), "other": N_("other")}


def role_word(role: str) -> str:
    """A device's role (snmp.devices[].role) as the reader calls it."""
    return _(_ROLES[role]) if role in _ROLES else role


class Enrolment(Strict):
    students: int = Field(ge=0)
    teachers: int = Field(ge=0)

class School(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    name: str
    city: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    district: str | None = None
    type: SchoolType
    enrolment: Enrolment | None = None

class UiConfig(Strict):
    """What the technician reads: `lang` zh (Simplified Chinese) or en; unset, the locale decides
    (`--lang` on the command line comes first; core/i18n.py)."""

    lang: Literal["zh", "en"] | None = None

class AgentSection(Strict):
    id: str | None = None
    data_dir: Path = Path("/var/lib/eduedge")
    log_level: Literal["debug", "info", "warning", "error"] = "info"

class MqttTls(Strict):
    """TLS towards the broker; the client certificate and key are needed where the cloud asks for them."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _pair(self) -> MqttTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give `cert_file` and `key_file` together")
        return self

class MqttConfig(Strict):
    broker: str
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str | None = None
    keepalive: Duration = 30.0
    tls: MqttTls | None = None
    username: str | None = None
    password: Secret | None = None
    max_inflight: int = Field(100, ge=1, le=1000)
    max_message_bytes: ByteSize = Field(256 * 1024, ge=4096, le=256 * 2**20)
    compression: Literal["none", "gzip"] = "none"
    reconnect_min: Duration = 1.0
    reconnect_max: Duration = 120.0
    ack_timeout: Duration = 60.0

    @model_validator(mode="before")
    @classmethod
    def _protocol_str(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("protocol"), int | float):
            data = {**data, "protocol": {5: "5", 3.1: "3.1.1", 311: "3.1.1"}.get(data["protocol"],
                                                                               str(data["protocol"]))}
        return data

    @model_validator(mode="after")
    def _check(self) -> MqttConfig:
        split_host_port(self.broker, 1883)
        if self.password is not None and self.username is None:
            raise ValueError("`password` needs `username`")
        if self.reconnect_min <= 0 or self.reconnect_max < self.reconnect_min:
            raise ValueError("need 0 < reconnect_min <= reconnect_max")
        return self

class OutboxConfig(Strict):
    path: Path | None = None
    max_bytes: ByteSize = 512 * 2**20
    min_free_bytes: ByteSize = 64 * 2**20
    synchronous: Literal["full", "normal"] = "full"

class CommandsConfig(Strict):
    enabled: bool = True
    rate_per_minute: float = Field(10, gt=0)
    burst: int = Field(5, ge=1)
    interval_min: Duration = 10.0
    interval_max: Duration = 3600.0

    @model_validator(mode="after")
    def _bounds(self) -> CommandsConfig:
        if not 0 < self.interval_min <= self.interval_max:
            raise ValueError("need 0 < interval_min <= interval_max")
        return self

class SchoolHours(Strict):
    """When the school is in session: rules "in school hours" judge only samples taken then."""

    days: list[Weekday] = ["mon", "tue", "wed", "thu", "fri"]
    start: str = "08:00"
    end: str = "17:00"
    timezone: str = "Asia/Shanghai"

    @model_validator(mode="after")
    def _check(self) -> SchoolHours:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        for what in ("start", "end"):
            if not is_clock(getattr(self, what)):
                raise ValueError(f"`{what}` must be HH:MM (24-hour clock), not {getattr(self, what)!r}")
        if self.start >= self.end:
            raise ValueError("`start` must be before `end`")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r} (e.g. Asia/Shanghai)") from None
        return self

class WifiSignal(Strict):
    rssi_dbm: float = Field(le=0)
    snr_db: float = Field(ge=0)

class StandardsConfig(Strict):
    """Which rule packs (eduedge/config/standards/*.yaml) judge this school, and what the city changed in them.

    `overrides` sets a threshold, in the rule's own unit, by rule id (`ningxia-2019.egress: 300`) or, for
    a rule made of parts, by part (`moe-2019.fast-stable.loss: 0.5`).
    """

    packs: list[str] = []
    pack_dirs: list[Path] = []
    overrides: dict[str, float] = {}
    assess_interval: Duration = Field(300.0, ge=5)   # how often the daemon judges the rules and reports findings
    school_hours: SchoolHours = SchoolHours()
    # What a Wi-Fi client-minute needs to count as covered, by zone type: the project's proposal
    # (Cisco's video-grade -67 dBm / 25 dB for teaching; see docs/STANDARDS.md), a city may change it.
    wifi_signal: dict[str, WifiSignal] = {"teaching": WifiSignal(rssi_dbm=-67, snr_db=25),
                                          "office": WifiSignal(rssi_dbm=-70, snr_db=20),
                                          "public": WifiSignal(rssi_dbm=-72, snr_db=20)}

    @model_validator(mode="after")
    def _unique(self) -> StandardsConfig:
        twice = sorted({p for p in self.packs if self.packs.count(p) > 1})
        if twice:
            raise ValueError(f"packs named twice: {', '.join(twice)}")
        return self

class PortRef(Strict):
    device: str
    port: str

class ManualLink(Strict):
    """A link LLDP does not show (the far end does not speak LLDP): `device` `port` goes to `neighbor`."""

    device: str
    port: str
    neighbor: str
    neighbor_port: str | None = None

class ClassroomDrop(Strict):
    """The switch port that feeds a classroom, where LLDP cannot say so (nothing LLDP-capable in the room)."""

    device: str
    port: str
    room: str

class TopologyConfig(Strict):
    """What LLDP cannot know: where the school's access link lands, links to devices without LLDP, the
    classroom drops, and which device roles form the campus backbone (core and distribution by default;
    a two-tier campus names core and access)."""

    uplink: PortRef | None = None
    backbone_roles: list[DeviceRole] = ["core", "distribution"]
    links: list[ManualLink] = []
    classroom_drops: list[ClassroomDrop] = []

class PrivacyConfig(Strict):
    """Client MACs and host names leave the box only as HMAC pseudonyms keyed per school (agent/pseudonym.py).
    Without `pseudonym_key` the agent makes a random key in `agent.data_dir` on first use."""

    pseudonym_key: Secret | None = None

class AgentConfig(Strict):
    school: School
    agent: AgentSection = AgentSection()
    snmp: SnmpConfig = SnmpConfig()
    host: HostConfig = HostConfig()
    mqtt: MqttConfig | None = None
    outbox: OutboxConfig = OutboxConfig()
    commands: CommandsConfig = CommandsConfig()
    standards: StandardsConfig = StandardsConfig()
    topology: TopologyConfig = TopologyConfig()
    discovery: DiscoveryConfig = DiscoveryConfig()
    reachability: ReachabilityConfig = ReachabilityConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    broadband: BroadbandConfig = BroadbandConfig()
    wifi: WifiConfig = WifiConfig()
    live_class: LiveClassConfig = LiveClassConfig()
    ui: UiConfig = UiConfig()
    prometheus: PrometheusConfig = PrometheusConfig()

    @model_validator(mode="after")
    def _topology_refs(self) -> AgentConfig:
        known = {d.name for d in self.snmp.devices}
        t = self.topology
        refs = [("topology.uplink.device", t.uplink.device)] if t.uplink else []
        refs += [(f"topology.links[{i}].device", x.device) for i, x in enumerate(t.links)]
        refs += [(f"topology.classroom_drops[{i}].device", x.device) for i, x in enumerate(t.classroom_drops)]
        refs += [(f"discovery.bridge_devices[{i}]", n) for i, n in enumerate(self.discovery.bridge_devices)]
        refs += [(f"wifi.aps[{i}].controller", a.controller) for i, a in enumerate(self.wifi.aps) if a.controller]
        for where, name in refs:
            if name not in known:
                raise ValueError(f"{where}: {name!r} is not a device under snmp.devices")
        for i, c in enumerate(self.discovery.snmp_credentials):
            if c not in self.snmp.credentials:
                raise ValueError(f"discovery.snmp_credentials[{i}]: {c!r} is not defined under snmp.credentials")
        return self

class ConfigError(YamlFileError):
    pass

def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]

def pack_problems(path: Path | str, doc: YamlDoc, packs: list[str], pack_dirs: list[Path]) -> list[str]:
    """Lines for `standards.pack_dirs` that are not directories and `standards.packs` that name no pack."""
    problems = [f"{path}:{doc.line_of(('standards', 'pack_dirs', i)) or 1}: standards.pack_dirs[{i}]: "
                f"{d} is not a directory" for i, d in enumerate(pack_dirs) if not d.is_dir()]
    available = {p.stem for d in (STANDARDS_DIR, *pack_dirs) if d.is_dir() for p in d.glob("*.yaml")}
    problems += [f"{path}:{doc.line_of(('standards', 'packs', i)) or 1}: standards.packs[{i}]: no rule pack "
                 f"{name!r} (available: {', '.join(sorted(available)) or 'none'})"
                 for i, name in enumerate(packs) if name not in available]
    return problems

def load_config(path: Path | str) -> AgentConfig:
    """Read and validate a configuration file; raise `ConfigError` listing every problem."""
    doc, cfg = load_model(path, AgentConfig, ConfigError)
    base = Path(path).resolve().parent
    for d in cfg.snmp.profile_dirs:
        if not (base / d).is_dir():
            raise ConfigError(path, [f"{path}: snmp.profile_dirs: {d} is not a directory"])
    cfg.snmp.profile_dirs = [base / d for d in cfg.snmp.profile_dirs]
    cfg.standards.pack_dirs = [base / d for d in cfg.standards.pack_dirs]
    problems = pack_problems(path, doc, cfg.standards.packs, cfg.standards.pack_dirs)
    if problems:
        raise ConfigError(path, problems)
    return cfg

def config_digest(path: Path | str) -> str:
    """A short digest of the configuration file, reported in the agent's birth message."""
    return _digest(Path(path).read_text(encoding="utf-8"))
