"""The maker of any device from its sysObjectID: IANA's Private Enterprise Numbers registry.

A sysObjectID under 1.3.6.1.4.1.N belongs to enterprise N. `firmware_profiles/enterprises.tsv` is a
dated copy of IANA's registry (its header says which), so a device no profile claims still gets a
vendor. Names are shown as registered, less the legal form ("Dell Inc." -> "Dell", "Oki Data
Corporation" -> "Oki Data") and a trailing note in brackets; IANA's name is the organisation that holds
the number, which for an OEM (a UTAX printer under KYOCERA's number) is the maker of the firmware, not
the badge.

The copy was made from Debian's libwireshark-data (nothing needs Wireshark at run time):

    apt-get install libwireshark-data    # /usr/share/wireshark/enterprises.tsv
    # keep "<number>\\t<name>" lines, drop comments and Reserved/Unassigned, write a dated header

>>> enterprise_of("1.3.6.1.4.1.674.10898.2.100"), enterprise_of(".1.3.6.1.2.1.33"), enterprise_of("1.3.6.1.4.1.9")
(674, None, 9)
>>> vendor_for("1.3.6.1.4.1.2001.1.1.1.1"), vendor_for("1.3.6.1.4.1.3902.3.100"), vendor_for("1.3.6.1.2.1.33")
('Oki Data', 'Zhongxing Telecom', None)
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

ENTERPRISES_FILE = Path(__file__).resolve().parents[2] / "firmware_profiles" / "enterprises.tsv"
_PREFIX = ("1", "3", "6", "1", "4", "1")
# Enterprises whose numbers name the SNMP agent's software, not the device's maker: any Linux box answers
# with net-snmp's 1.3.6.1.4.1.8072.3.2.10, so "net-snmp" would be the vendor of every NAS, AP and server.
AGENT_SOFTWARE = {8072: "net-snmp", 2021: "UCD-SNMP (net-snmp's predecessor)"}
# legal forms at the end of a registered name, removed one after another ("Co., Ltd.", "Inc.")
_LEGAL = re.compile(r"[\s,]+(inc|incorporated|corp|corporation|co|ltd|limited|llc|gmbh|ag|s\.?p\.?a|s\.?a|"
                    r"b\.?v|plc|oy|ab|a/s|pty|k\.?k|sas|srl)\.?$", re.I)


def enterprise_of(sys_object_id: str) -> int | None:
    """The enterprise number of a sysObjectID, or None when it is not under 1.3.6.1.4.1."""
    arcs = sys_object_id.strip().lstrip(".").split(".")
    if len(arcs) < 7 or tuple(arcs[:6]) != _PREFIX or not arcs[6].isdigit():
        return None
    return int(arcs[6])


@lru_cache(maxsize=1024)
def registered(number: int, path: Path = ENTERPRISES_FILE) -> str | None:
    """IANA's name for an enterprise number, looked up in the file: a campus has a few dozen makers, each
    read once, so the 62,000 names (8 MB as a dict) are not kept in memory.

    >>> registered(2011), registered(0x7fffffff)
    ('HUAWEI Technology Co.,Ltd', None)
    """
    data = path.read_bytes()
    at = data.find(b"\n%d\t" % number)
    if at < 0:
        return None
    end = data.find(b"\n", at + 1)
    name = data[at + 1:end if end >= 0 else len(data)].partition(b"\t")[2].decode("utf-8").strip()
    return name or None


def display_name(registered: str) -> str:
    """A registered organisation name without its legal form.

    >>> display_name("Samsung Electronics Co., LTD."), display_name("HUAWEI Technology Co.,Ltd")
    ('Samsung Electronics', 'HUAWEI Technology')
    >>> display_name("Fortinet, Inc."), display_name("Aruba, a Hewlett Packard Enterprise company")
    ('Fortinet', 'Aruba, a Hewlett Packard Enterprise company')
    """
    name = re.sub(r"\s+#.*$", "", registered.strip())      # "Vertiv # formerly 'Emerson Computer Power'"
    name = re.sub(r"\s*\([^()]*\)\s*$", "", name) or name  # "(abbr. ZTE)"
    while True:
        shorter = _LEGAL.sub("", name).rstrip(" ,.")
        if shorter == name or not shorter:
            return name
        name = shorter


def vendor_for(sys_object_id: str) -> str | None:
    """The maker a sysObjectID names, from the registry; None outside 1.3.6.1.4.1, for an unknown number and
    for the agent-software enterprises (net-snmp), which say nothing of the maker.

    >>> vendor_for("1.3.6.1.4.1.476.1.42"), vendor_for("1.3.6.1.4.1.8072.3.2.10")
    ('Vertiv', None)
    """
    number = enterprise_of(sys_object_id)
    if number is None or number in AGENT_SOFTWARE:
        return None
    name = registered(number)
    return display_name(name) if name else None
