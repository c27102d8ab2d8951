"""The maker of a network card from its MAC address, offline.

The data is Wireshark's `manuf` file (IEEE MA-L, MA-M and MA-S registries merged with Wireshark's own
corrections), as scapy ships it compressed in `scapy.libs.manuf`: a maintained database that comes with a
package the agent already needs, so nothing is fetched at run time and nothing is kept by hand here.
Loading it costs about 0.3 s and 10 MB, once, on first use.

A MAC with the locally-administered bit set (the second-lowest bit of the first octet) belongs to no
vendor: phones and tablets make such addresses up per network ("private Wi-Fi address"), which is itself
evidence that the device is somebody's personal one.

>>> lookup("00:26:ab:12:34:56").vendor
'Seiko Epson Corporation'
>>> lookup("00:1b:c5:00:00:42").vendor, lookup("00:1b:c5:00:00:42").prefix_bits
('Converging Systems Inc.', 36)
>>> lookup("da:a1:19:00:00:01").randomised
True
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from eduedge.core.pseudonym import normalise_mac


@dataclass(frozen=True)
class Vendor:
    vendor: str | None          # "Seiko Epson Corporation"
    short: str | None           # "SeikoEpson"
    prefix_bits: int = 0        # 24 (MA-L), 28 (MA-M) or 36 (MA-S); 0 when unknown
    randomised: bool = False    # locally administered: made up by the device, no vendor


@cache
def _table() -> dict[int, dict[int, tuple[str, str]]]:
    from scapy.libs.manuf import DATA  # the import decompresses the database; only here, only once

    out: dict[int, dict[int, tuple[str, str]]] = {24: {}, 28: {}, 36: {}}
    for line in DATA.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        prefix, _, bits_text = parts[0].strip().partition("/")
        bits = int(bits_text) if bits_text else 24
        if bits not in out:
            continue
        digits = prefix.replace(":", "").replace("-", "")
        try:
            value = int(digits, 16) << (48 - 4 * len(digits))
        except ValueError:
            continue
        short = parts[1].strip()
        out[bits][value >> (48 - bits)] = (short, (parts[2].strip() if len(parts) > 2 else "") or short)
    return out


def lookup(mac: str) -> Vendor:
    """The registered vendor of `mac` (the longest registered prefix wins)."""
    text = normalise_mac(mac)
    value = int(text.replace(":", ""), 16)
    if value >> 40 & 0x02:
        return Vendor(None, None, 0, randomised=True)
    table = _table()
    for bits in (36, 28, 24):
        hit = table[bits].get(value >> (48 - bits))
        if hit:
            return Vendor(hit[1], hit[0], bits)
    return Vendor(None, None)
