"""What kind of device a discovered MAC is, and the evidence that decided it.

Classes: projector, panel, printer, ups, camera, nvr, learning (a student's or teacher's learning device,
the e-schoolbag of the 1:1 rule), other. The first rule that applies decides, strongest first:

1. the configuration lists the device (`snmp.devices` with a role, matched by address);
2. SNMP identity through the firmware profiles (`device_class` of the matched profile: printer, ups, nvr,
   display -> projector), when `discovery.snmp_credentials` let the agent ask;
3. PJLink answers on TCP 4352: a projector, or a panel when it reports no lamp (`LAMP` -> ERR1) or calls
   itself a panel/flat panel;
4. the school's learning-device rules (`discovery.learning`): OUI prefix, vendor, DHCP host name, Wi-Fi
   SSID, subnet;
5. the OUI vendor of makers that build nothing else for a school network (cameras, UPSes) - a weak hint,
   said so in the evidence;
6. otherwise `other`.

`personal` says whether the device may belong to a person, and so is pseudonymised in everything that
leaves the box: learning devices, anything with a randomised (locally administered) MAC, and anything
not positively identified as school equipment. Only classes 1-3 and 5 are not personal.

>>> from eduedge.collectors.discovery.config import LearningDeviceRules
>>> rules = LearningDeviceRules(hostnames=["^stu-"], oui=["3c:5a:b4"])
>>> i = classify("3c:5a:b4:00:00:01", "198.18.10.20", rules=rules)
>>> i.device_class, i.personal, i.evidence[0]
('learning', True, 'MAC prefix 3c:5a:b4 is in discovery.learning.oui')
>>> classify("4c:11:bf:00:00:01", None).device_class
'camera'
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from eduedge.collectors.discovery.config import LearningDeviceRules
from eduedge.collectors.discovery.oui import Vendor, lookup
from eduedge.collectors.pjlink import PjlinkStatus

INFRASTRUCTURE = ("projector", "panel", "printer", "ups", "camera", "nvr")
# firmware-profile device_class -> discovery class
PROFILE_CLASS = {"printer": "printer", "ups": "ups", "nvr": "nvr", "display": "projector", "camera": "camera"}
ROLE_CLASS = {"printer": "printer", "ups": "ups", "projector": "projector", "nvr": "nvr"}
# Makers whose network devices in a school are one kind only (a weak hint, used last).
VENDOR_HINTS = [(re.compile(p, re.I), c) for p, c in (
    (r"hikvision|dahua|zhejiang uniview|axis communications|hanwha|vivotek", "camera"),
    (r"american power conversion|\bapc\b|eaton|schneider electric", "ups"),
    (r"guangzhou shiyuan|seewo|hitevision|honghe", "panel"),
)]


@dataclass
class Identification:
    device_class: str
    personal: bool
    evidence: list[str] = field(default_factory=list)
    vendor: str | None = None          # OUI vendor
    model: str | None = None           # from SNMP or PJLink, where the device says


def _learning_rule(mac: str, ip: str | None, vendor: Vendor, hostname: str | None, ssid: str | None,
                   rules: LearningDeviceRules) -> str | None:
    for prefix in rules.oui:
        p = re.sub(r"[:\-]", "", prefix.lower())
        if mac.replace(":", "").startswith(p):
            return f"MAC prefix {prefix} is in discovery.learning.oui"
    for pattern in rules.vendors:
        if vendor.vendor and re.search(pattern, vendor.vendor, re.I):
            return f"vendor {vendor.vendor!r} matches discovery.learning.vendors /{pattern}/"
    for pattern in rules.hostnames:
        if hostname and re.search(pattern, hostname, re.I):
            return f"DHCP host name matches discovery.learning.hostnames /{pattern}/"
    for pattern in rules.ssids:
        if ssid and re.search(pattern, ssid, re.I):
            return f"Wi-Fi client of SSID {ssid!r} (discovery.learning.ssids /{pattern}/)"
    if ip:
        for net in rules.subnets:
            if ipaddress.IPv4Address(ip) in net:
                return f"address in {net} (discovery.learning.subnets)"
    return None


def classify(mac: str, ip: str | None, *, rules: LearningDeviceRules | None = None, hostname: str | None = None,
             dhcp_vendor: str | None = None, ssid: str | None = None, configured: tuple[str, str] | None = None,
             snmp: dict | None = None, pjlink: PjlinkStatus | None = None) -> Identification:
    """Decide one device's class. `configured` is (name, role) of a listed device at this address; `snmp` is
    an `Identity.to_dict()` from the profile engine; `pjlink` what a PJLink session found."""
    vendor = lookup(mac)
    out = Identification("other", True, [], vendor.vendor)
    if vendor.vendor:
        out.evidence.append(f"OUI {mac[:8]} is registered to {vendor.vendor}")
    elif vendor.randomised:
        out.evidence.append("randomised (locally administered) MAC: a phone, tablet or laptop's private address")
    if configured is not None:
        name, role = configured
        out.device_class = ROLE_CLASS.get(role, "other")
        out.personal = False
        out.evidence.insert(0, f"listed in snmp.devices as {name} (role {role})")
        return out
    if snmp and snmp.get("device_class") in PROFILE_CLASS:
        out.device_class, out.personal = PROFILE_CLASS[snmp["device_class"]], False
        out.model = snmp.get("model")
        out.evidence.insert(0, f"SNMP: profile {snmp.get('profile')} ({snmp.get('matched_by')}) says "
                               f"{snmp['device_class']}" + (f", model {out.model}" if out.model else ""))
        return out
    if snmp and snmp.get("device_class"):
        out.personal = False
        out.evidence.insert(0, f"SNMP: profile {snmp.get('profile')} says {snmp['device_class']}")
    if pjlink is not None and pjlink.status in ("ok", "auth_failed", "password_needed"):
        words = " ".join(x for x in (pjlink.name, pjlink.model) if x)
        no_lamp = pjlink.ok and not pjlink.lamps and "LAMP" in pjlink.refused
        panel = no_lamp or re.search(r"\bpanel\b|flat ?panel|\bIFP\b", words, re.I)
        out.device_class, out.personal = ("panel" if panel else "projector"), False
        out.model = pjlink.model
        why = "answers PJLink on TCP 4352" + (f" ({pjlink.manufacturer} {pjlink.model})" if pjlink.model else "")
        if panel:
            why += ", without a lamp" if no_lamp else f", calls itself {words!r}"
        out.evidence.insert(0, why)
        return out
    if rules is not None:
        why = _learning_rule(mac, ip, vendor, hostname, ssid, rules)
        if why:
            out.device_class, out.personal = "learning", True
            out.evidence.insert(0, why)
            return out
    if vendor.vendor and not out.evidence[0].startswith("SNMP"):
        for pattern, cls in VENDOR_HINTS:
            if pattern.search(vendor.vendor):
                out.device_class, out.personal = cls, False
                out.evidence.insert(0, f"weak: {vendor.vendor} makes {cls}s (OUI vendor only)")
                return out
    if dhcp_vendor:
        out.evidence.append(f"DHCP vendor class {dhcp_vendor!r}")
    if out.personal:
        out.evidence.append("not identified as school equipment: treated as personal (pseudonymised)")
    return out
