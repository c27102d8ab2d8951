"""The `discovery` section: the subnets swept, the sources listened to, what makes a learning device, PJLink."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, model_validator

from eduedge.core.model import Duration, Strict
from eduedge.core.secrets import Secret

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
    """What is on the campus network (collectors/discovery/discovery.py). Only `subnets` are ever swept: an address
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
