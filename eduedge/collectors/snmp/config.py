"""The `snmp` section: credentials, defaults, the devices to poll, and the trap receiver.

Every SNMP tool of the agent (the daemon's polls, discovery's switch tables, `eduedge diag`, `eduedge wifi`)
builds its poller from these with `collectors/snmp/build.poller_for`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from eduedge.core.model import Duration, Strict
from eduedge.core.netaddr import split_host_port
from eduedge.core.secrets import Secret


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
    # rows per GETBULK: a controller's station table of thousands of clients is read in fewer requests
    max_repetitions: int | None = Field(None, ge=1, le=100)
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
