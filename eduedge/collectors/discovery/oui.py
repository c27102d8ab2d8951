"""The maker of a network card from its MAC address, offline.

The data is Wireshark's `manuf` file (IEEE MA-L, MA-M and MA-S registries merged with Wireshark's own
corrections), as scapy ships it compressed in `scapy.libs.manuf`: a maintained database that comes with a
package the agent already needs, so nothing is fetched at run time and nothing is kept by hand here.
It is read once, on first use (about 0.3 s), and kept as its UTF-8 text with a sorted index of the
prefixes (3.3 MB; a dict of every prefix held 26 MB of Python objects, 58 MB resident).

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

import bisect
import contextlib
import sys
from array import array
from dataclasses import dataclass
from functools import cache

from eduedge.core import memory
from eduedge.core.pseudonym import normalise_mac


@dataclass(frozen=True)
class Vendor:
    vendor: str | None          # "Seiko Epson Corporation"
    short: str | None           # "SeikoEpson"
    prefix_bits: int = 0        # 24 (MA-L), 28 (MA-M) or 36 (MA-S); 0 when unknown
    randomised: bool = False    # locally administered: made up by the device, no vendor


@cache
def _index() -> tuple[bytes, dict[int, tuple[array, array]]]:
    """The database's text (UTF-8), and per prefix length the sorted prefixes with the offset of each one's
    line."""
    from scapy.libs.manuf import DATA  # the import decompresses the database; only here, only once

    data = DATA.encode("utf-8")
    del DATA
    # scapy's module keeps the text as a str, which its non-ASCII names make two bytes a character (5.4 MB);
    # it is imported again should anything else want it
    sys.modules.pop("scapy.libs.manuf", None)
    with contextlib.suppress(AttributeError, KeyError):
        delattr(sys.modules["scapy.libs"], "manuf")
    rows: dict[int, list[tuple[int, int]]] = {24: [], 28: [], 36: []}
    at = 0
    for line in data.splitlines(keepends=True):
        start, at = at, at + len(line)
        if line.startswith(b"#") or b"\t" not in line:
            continue
        prefix, _, bits_text = line.partition(b"\t")[0].strip().partition(b"/")
        bits = int(bits_text) if bits_text else 24
        if bits not in rows:
            continue
        digits = prefix.replace(b":", b"").replace(b"-", b"")
        try:
            value = int(digits, 16) << (48 - 4 * len(digits))
        except ValueError:
            continue
        rows[bits].append((value >> (48 - bits), start))
    index = {}
    for bits, found in rows.items():
        found.sort()
        index[bits] = (array("Q", (k for k, _ in found)), array("L", (o for _, o in found)))
    del rows
    memory.give_back()          # the decompressed text and the parse: ~20 MB the heap would keep
    return data, index


def _names(data: bytes, at: int) -> tuple[str, str]:
    """(short, long) from the line at `at`: `prefix<TAB>short[<TAB>long]`."""
    end = data.find(b"\n", at)
    parts = data[at:end if end >= 0 else len(data)].decode("utf-8").rstrip("\r").split("\t")
    short = parts[1].strip() if len(parts) > 1 else ""
    return short, (parts[2].strip() if len(parts) > 2 else "") or short


def lookup(mac: str) -> Vendor:
    """The registered vendor of `mac` (the longest registered prefix wins)."""
    text = normalise_mac(mac)
    value = int(text.replace(":", ""), 16)
    if value >> 40 & 0x02:
        return Vendor(None, None, 0, randomised=True)
    data, index = _index()
    for bits in (36, 28, 24):
        keys, offsets = index[bits]
        key = value >> (48 - bits)
        i = bisect.bisect_right(keys, key) - 1       # a prefix listed twice: its last line, as the file reads
        if i >= 0 and keys[i] == key:
            short, name = _names(data, offsets[i])
            return Vendor(name, short, bits)
    return Vendor(None, None)
