"""The agent's configuration: one YAML file, validated by pydantic, every error with file and line.

`eduedge/config/example-school.yaml` is the complete, commented reference. Secrets (SNMP communities and
keys, MQTT passwords) are never written in the file itself: each comes from a file (`*_file`) or an
environment variable (`*_env`), read when it is used, and never logged.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from eduedge.core.model import ByteSize, Duration, Strict
from eduedge.core.netaddr import split_host_port
from eduedge.core.secrets import Secret
from eduedge.core.yamlfile import YamlDoc, YamlFileError, load_model

# The bundled standards rule packs; a school names the ones that apply in `standards.packs`.
STANDARDS_DIR = Path(__file__).resolve().parents[1] / "config" / "standards"

class SnmpCredentials(Strict):
    version: Literal["1", "2c", "3"] = "2c"
    community: Secret | None = None
    user: str | None = None
    auth_proto: Literal["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"] | None = None
    auth_key: Secret | None = None
    priv_proto: Literal["DES", "AES", "AES128", "AES192", "AES256"] | None = None
    priv_key: Secret | None = None

    @model_validator(mode="before")
    @classmethod
    def _version_str(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("version"), int | float):
            data = {**data, "version": {1: "1", 2: "2c", 3: "3"}.get(int(data["version"]), str(data["version"]))}
        return data

    @model_validator(mode="after")
    def _complete(self) -> SnmpCredentials:
        if self.version in ("1", "2c"):
            if self.community is None:
                raise ValueError("SNMP v1/v2c credentials need `community` (from a file or env)")
            if self.user or self.auth_key or self.priv_key:
                raise ValueError("`user`, `auth_key`, `priv_key` are for version 3 only")
        else:
            if not self.user:
                raise ValueError("SNMPv3 credentials need `user`")
            if (self.auth_proto is None) != (self.auth_key is None):
                raise ValueError("give `auth_proto` and `auth_key` together")
            if (self.priv_proto is None) != (self.priv_key is None):
                raise ValueError("give `priv_proto` and `priv_key` together")
            if self.priv_proto and not self.auth_proto:
                raise ValueError("privacy (`priv_*`) needs authentication (`auth_*`) too")
        return self


class SnmpDefaults(Strict):
    timeout: Duration = 2.0
    retries: int = Field(1, ge=0, le=5)
    max_repetitions: int = Field(20, ge=1, le=100)
    oids_per_request: int = Field(20, ge=1, le=60)
    rate_limit_rps: float | None = Field(50, gt=0)
    deadline: Duration = 20.0
    interval: Duration = 60.0
    static_refresh: Duration = 3600.0
    concurrency: int = Field(64, ge=1, le=4096)


DeviceRole = Literal["core", "distribution", "access", "router", "firewall", "wlc", "ap", "printer",
                     "ups", "projector", "nvr", "other"]


class SnmpDevice(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    host: str
    credentials: str
    role: DeviceRole = "other"
    profile: str | None = None
    interval: Duration | None = None
    timeout: Duration | None = None
    retries: int | None = Field(None, ge=0, le=5)
    deadline: Duration | None = None
    rate_limit_rps: float | None = Field(None, gt=0)
    zone: str | None = None
    room: str | None = None

    @model_validator(mode="after")
    def _host(self) -> SnmpDevice:
        split_host_port(self.host)
        return self


class TrapConfig(Strict):
    """Traps and informs (collectors/snmp/traps.py); only listed devices are heard, matched by address."""

    enabled: bool = False
    listen: str = "0.0.0.0:162"
    # v1/v2c: this community; without it, the communities of the listed devices' v1/v2c credentials
    community: Secret | None = None
    # SNMPv3: these credentials (names under snmp.credentials); without them, the listed devices' v3 ones
    users: list[str] = []

    @model_validator(mode="after")
    def _listen(self) -> TrapConfig:
        split_host_port(self.listen, 162)
        return self


class SnmpConfig(Strict):
    defaults: SnmpDefaults = SnmpDefaults()
    credentials: dict[str, SnmpCredentials] = {}
    devices: list[SnmpDevice] = []
    profile_dirs: list[Path] = []
    traps: TrapConfig = TrapConfig()

    @model_validator(mode="after")
    def _refs(self) -> SnmpConfig:
        names: set[str] = set()
        for i, d in enumerate(self.devices):
            if d.credentials not in self.credentials:
                known = ", ".join(sorted(self.credentials)) or "none defined"
                raise ValueError(f"devices[{i}] ({d.name}): credentials {d.credentials!r} are not defined "
                                 f"under snmp.credentials ({known})")
            if d.name in names:
                raise ValueError(f"devices[{i}]: device name {d.name!r} is used twice")
            names.add(d.name)
        for u in self.traps.users:
            if u not in self.credentials or self.credentials[u].version != "3":
                raise ValueError(f"traps.users: {u!r} is not an SNMPv3 entry under snmp.credentials")
        return self


SchoolType = Literal["primary", "secondary", "secondary-vocational", "kindergarten", "vocational-college",
                     "nine-year", "teaching-point"]


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


class AgentSection(Strict):
    id: str | None = None
    data_dir: Path = Path("/var/lib/eduedge")
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class HostConfig(Strict):
    enabled: bool = True
    interval: Duration = 60.0
    wan_interface: str | None = None


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


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


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
            if not _CLOCK.match(getattr(self, what)):
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


DeviceClass = Literal["projector", "panel", "printer", "ups", "camera", "nvr", "learning", "other"]


class LearningDeviceRules(Strict):
    """What makes a discovered device a learning device (e-schoolbag); the first rule that matches decides
    and is named as the evidence. Patterns are regular expressions, matched case-insensitively."""

    oui: list[str] = []          # MAC prefixes the school's tablets are bought with: "3c:5a:b4", "3c:5a:b4:1"
    vendors: list[str] = []      # the OUI vendor name: "Lenovo", "Huawei Device"
    hostnames: list[str] = []    # DHCP host names (option 12): "^stu-", "^tab-\\d+"
    ssids: list[str] = []        # Wi-Fi clients of these SSIDs: "^EDU-Student$"
    subnets: list[ipaddress.IPv4Network] = []   # an address plan that keeps learning devices apart

    @model_validator(mode="after")
    def _check(self) -> LearningDeviceRules:
        for what in ("vendors", "hostnames", "ssids"):
            for pattern in getattr(self, what):
                try:
                    re.compile(pattern)
                except re.error as e:
                    raise ValueError(f"{what}: {pattern!r} is not a regular expression: {e}") from None
        for prefix in self.oui:
            if not re.fullmatch(r"[0-9a-fA-F]{2}([:-]?[0-9a-fA-F]{1,2}){2,4}", prefix):
                raise ValueError(f"oui: {prefix!r} is not a MAC prefix like 3c:5a:b4")
        return self


class PjlinkConfig(Strict):
    """PJLink (TCP 4352) on projectors and panels: the password the school set on them, if any."""

    enabled: bool = True
    port: int = Field(4352, ge=1, le=65535)
    password: Secret | None = None
    timeout: Duration = 3.0


class DiscoveryConfig(Strict):
    """What is on the campus network (collectors/discovery.py). Only `subnets` are ever swept: an address
    outside them is refused before a packet is built."""

    enabled: bool = False
    subnets: list[ipaddress.IPv4Network] = []
    interface: str | None = None             # where to sweep and listen; default: the kernel's route
    interval: Duration = 300.0
    sweep_timeout: Duration = Field(1.0, gt=0, le=30)
    passive: bool = False                    # learn from ARP and DHCP seen on `interface` (needs CAP_NET_RAW)
    bridge_tables: bool = True               # read the switches' MAC and ARP tables (which port, which room)
    bridge_devices: list[str] = []           # default: snmp.devices with role core, distribution, access, router
    snmp_credentials: list[str] = []         # try these (snmp.credentials) on discovered hosts to identify them
    absent_after: Duration = 3600.0          # projectors, printers ... not seen for this long: disappeared
    personal_absent_after: Duration = 86400.0  # learning and personal devices go home every evening
    ratio_window: Duration = 7 * 86400.0     # learning devices seen in this window count towards 1:1
    learning: LearningDeviceRules = LearningDeviceRules()
    pjlink: PjlinkConfig = PjlinkConfig()

    @model_validator(mode="after")
    def _check(self) -> DiscoveryConfig:
        if self.enabled and not self.subnets:
            raise ValueError("discovery needs `subnets`: the agent sweeps nothing it is not told to")
        for i, n in enumerate(self.subnets):
            if n.prefixlen < 16:
                raise ValueError(f"subnets[{i}]: {n} is larger than a /16; list the classroom subnets instead")
        return self


class ReachabilityTarget(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    host: str
    tcp_port: int | None = Field(None, ge=1, le=65535)   # TCP connect instead, where ICMP is blocked
    room: str | None = None


class ReachabilityConfig(Strict):
    """ICMP echo (TCP connect where ICMP is blocked) with loss and RTT (collectors/reachability.py)."""

    enabled: bool = False
    interval: Duration = 60.0
    count: int = Field(3, ge=1, le=20)
    timeout: Duration = Field(1.0, gt=0, le=10)
    concurrency: int = Field(256, ge=1, le=4096)
    targets: list[ReachabilityTarget] = []
    snmp_devices: bool = True                 # also every device under snmp.devices
    discovered_classes: list[DeviceClass] = ["projector", "panel", "printer", "ups", "camera", "nvr"]
    tcp_ports: list[int] = [4352, 80, 443, 9100, 554]   # tried in turn on a device that does not answer ICMP


class PrivacyConfig(Strict):
    """Client MACs and host names leave the box only as HMAC pseudonyms keyed per school (agent/pseudonym.py).
    Without `pseudonym_key` the agent makes a random key in `agent.data_dir` on first use."""

    pseudonym_key: Secret | None = None


class BroadbandWindow(Strict):
    """Part of the week in which scheduled tests may start, and how many start in it each day."""

    name: str
    days: list[Weekday] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    start: str
    end: str                                  # "24:00" for midnight
    tests: int = Field(2, ge=0, le=48)

    @model_validator(mode="after")
    def _check(self) -> BroadbandWindow:
        for what in ("start", "end"):
            value = getattr(self, what)
            if not (_CLOCK.match(value) or (what == "end" and value == "24:00")):
                raise ValueError(f"`{what}` must be HH:MM (24-hour clock), not {value!r}")
        if self.start >= self.end:
            raise ValueError("`start` must be before `end` (split a window that crosses midnight in two)")
        return self


class BroadbandConfig(Strict):
    """Broadband tests against the city's test server (collectors/broadband.py) and the WAN port's load.
    The WAN interface is `host.wan_interface`; the windows are in `standards.school_hours.timezone`."""

    enabled: bool = False
    server: str | None = None                 # HOST:PORT of the city's eduedge test server
    token: Secret | None = None               # when the server asks schools for one
    engine: Literal["builtin", "iperf3"] = "builtin"
    iperf3_server: str | None = None          # HOST:PORT of an iperf3 server, for engine iperf3
    streams: int = Field(8, ge=1, le=16)
    duration: Duration = Field(10.0, ge=2, le=60)
    warmup_max: Duration = Field(4.0, ge=0.5, le=20)
    directions: list[Literal["down", "up"]] = ["down", "up"]
    idle_probes: int = Field(50, ge=5, le=10000)
    # a few echo probes this often (availability, loss), checked on the utilisation tick; 0: off
    monitor_interval: Duration = 60.0
    monitor_probes: int = Field(10, ge=1, le=1000)
    utilisation_interval: Duration = Field(5.0, ge=1, le=300)
    report_interval: Duration = Field(60.0, ge=5, le=3600)
    windows: list[BroadbandWindow] = [
        BroadbandWindow(name="school", days=["mon", "tue", "wed", "thu", "fri"], start="08:00", end="17:00", tests=4),
        BroadbandWindow(name="overnight", start="00:00", end="06:00", tests=2)]
    daily_budget: ByteSize = 4 * 10**9
    skip_when_busy: bool = True
    busy_percent: float = Field(20.0, gt=0, le=100)
    capacity_down_mbps: float | None = Field(None, gt=0)   # the contracted rates, where known
    capacity_up_mbps: float | None = Field(None, gt=0)
    saturation_percent: float = Field(90.0, gt=0, le=100)
    saturation_after: Duration = 300.0

    @model_validator(mode="after")
    def _check(self) -> BroadbandConfig:
        for what in ("server", "iperf3_server"):
            if getattr(self, what) is not None:
                split_host_port(getattr(self, what), 5201)
        if self.enabled and self.server is None and not (self.engine == "iperf3" and self.iperf3_server):
            raise ValueError("broadband tests need `server` (HOST:PORT of the city's test server)")
        if self.engine == "iperf3" and self.iperf3_server is None:
            raise ValueError("engine iperf3 needs `iperf3_server` (HOST:PORT)")
        if not self.directions:
            raise ValueError("`directions` needs down, up or both")
        return self


ZoneType = Literal["teaching", "office", "public", "dormitory", "outdoor", "other"]
ZONE_TYPES: tuple[str, ...] = ZoneType.__args__  # type: ignore[attr-defined]


class WifiZone(Strict):
    type: ZoneType
    rooms: list[str] = []                  # where it is, for people reading findings


class WifiAp(Strict):
    """Where a controller's AP is: `ap` is its name as the controller reports it, or a glob (`ap-a*`)."""

    ap: str = Field(min_length=1)
    zone: str
    room: str | None = None
    controller: str | None = None          # only this controller's APs (a name under snmp.devices)


class WifiCapacity(Strict):
    utilization_percent: float = Field(gt=0, le=100)
    clients_per_radio: int = Field(ge=1)


class WifiConfig(Strict):
    """The school's Wi-Fi zones and where each AP is (agent/wifi_coverage.py judges zone by zone).

    An AP polled on its own (snmp.devices, role ap) takes that device's `zone` and `room`; an AP a controller
    manages is placed by the first `aps` entry that matches its name, else by its AP group or location on
    the controller when that names a zone here (`zone_from_ap_group`). A `zone` that is a zone type word
    (teaching, office …) and not a declared zone makes the AP's room (else the AP) a zone of that type.
    """

    zones: dict[str, WifiZone] = {}
    aps: list[WifiAp] = []
    zone_from_ap_group: bool = True
    # A radio over either limit is busy (STANDARDS-RESEARCH B.2.1: < 50 % utilisation and <= 30 active clients
    # per radio for classrooms; < 70 % and 50 in public areas); the project's proposal, like the signal levels.
    capacity: dict[str, WifiCapacity] = {
        "teaching": WifiCapacity(utilization_percent=50, clients_per_radio=30),
        "office": WifiCapacity(utilization_percent=70, clients_per_radio=50),
        "public": WifiCapacity(utilization_percent=70, clients_per_radio=50),
        "dormitory": WifiCapacity(utilization_percent=70, clients_per_radio=50),
        "outdoor": WifiCapacity(utilization_percent=70, clients_per_radio=50),
        "other": WifiCapacity(utilization_percent=70, clients_per_radio=50)}
    max_poll_gap: Duration = 300.0         # a client seen twice further apart than this counts only this long

    @model_validator(mode="after")
    def _zones(self) -> WifiConfig:
        for i, a in enumerate(self.aps):
            if a.zone not in self.zones and a.zone not in ZONE_TYPES:
                raise ValueError(f"aps[{i}] ({a.ap}): zone {a.zone!r} is neither under wifi.zones "
                                 f"({', '.join(sorted(self.zones)) or 'none declared'}) nor a zone type")
        return self


EndpointRole = Literal["national-platform", "provincial-platform", "city-cloud", "live-class"]


class LiveClassEndpoint(Strict):
    """A service the school's lessons depend on (collectors/service_probes.py probes it, and nothing else):
    `url` is fetched with one GET, every stage timed (redirects are not followed: only this URL is ever
    asked); `echo` is the HOST:PORT of an eduedge test server beside a live-class server, for UDP quality."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    role: EndpointRole
    url: str | None = None
    echo: str | None = None
    token: Secret | None = None            # the test server's token, when it asks schools for one
    ca_file: Path | None = None            # the CA its certificate chains to, when that is not a public one
    timeout: Duration = Field(10.0, gt=0, le=60)

    @model_validator(mode="after")
    def _check(self) -> LiveClassEndpoint:
        if self.url is None and self.echo is None:
            raise ValueError("an endpoint needs `url`, `echo` or both")
        if self.url is not None and not re.match(r"^https?://[^/\s?#]+", self.url):
            raise ValueError(f"url {self.url!r} must start with http:// or https:// and a host")
        if self.echo is not None:
            split_host_port(self.echo, 5201)
        return self


class VideoProbe(Strict):
    """The UDP echo burst that stands for a video stream: datagrams of `packet_bytes` at `packets_per_second`
    for `seconds` (1200 B at 100/s is about 1 Mbit/s, a 720p stream's packet rate; 2 s every 5 min is about
    70 MB a day to the city's server)."""

    packets_per_second: int = Field(100, ge=1, le=1000)
    packet_bytes: int = Field(1200, ge=64, le=1472)     # 1472: one IPv4 datagram in a 1500-byte MTU
    seconds: Duration = Field(2.0, gt=0, le=30)


class LiveClassConfig(Strict):
    """Live classes (agent/live_class.py): the endpoints to probe, and which classrooms and profiles
    `eduedge liveclass` judges (the profiles are the rules of the `live-class` rule pack)."""

    enabled: bool = False
    interval: Duration = Field(300.0, ge=10)   # probe rounds (SmokePing's step); loads follow the SNMP polls
    resolver: str | None = None      # HOST[:PORT] of the DNS server lookups are timed against; default: the system's
    endpoints: list[LiveClassEndpoint] = []
    server: str | None = None        # the endpoint whose path judges readiness; default: the first with `echo`
    profiles: list[str] = []         # profiles `eduedge liveclass` shows (the first by default); default: all
    rooms: list[str] = []            # classrooms to judge; default: rooms of teaching zones and classroom drops
    video_probe: VideoProbe = VideoProbe()

    @model_validator(mode="after")
    def _check(self) -> LiveClassConfig:
        if self.resolver is not None:
            split_host_port(self.resolver, 53)
        names = [e.name for e in self.endpoints]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"endpoint names used twice: {', '.join(twice)}")
        if self.server is not None:
            found = next((e for e in self.endpoints if e.name == self.server), None)
            if found is None or found.echo is None:
                raise ValueError(f"server: {self.server!r} is not an endpoint with `echo` "
                                 f"({', '.join(e.name for e in self.endpoints if e.echo) or 'none has one'})")
        if self.enabled and not self.endpoints:
            raise ValueError("live classes need `endpoints`: the agent probes nothing it is not told to")
        return self


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
