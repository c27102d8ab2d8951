"""Read a real device's recording (`.snmprec`) into ready-encoded values, and read values back.

The recordings' quirks (leading dots, duplicated unsorted walks, hex strings with CR/LF, variation
module tags) are absorbed here: what comes out is `{oid: value TLV}` that the simulator can edit and
serve. See eduedge/simulator/realdevices/README.md.

>>> recs = parse_snmprec(".1.3.6.1.2.1.1.5.0|4|sw1\\n1.3.6.1.2.1.2.2.1.5.1|66|1000\\n")
>>> text_of(recs[(1, 3, 6, 1, 2, 1, 1, 5, 0)]), int_of(recs[(1, 3, 6, 1, 2, 1, 2, 2, 1, 5, 1)])
('sw1', 1000)
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from eduedge.simulator.ber import OID, encode_value, parse_oid, read_tlv

_NUMERIC = {2, 65, 66, 67, 70}


def parse_snmprec(text: str) -> dict[OID, bytes]:
    out: dict[OID, bytes] = {}
    for line in text.splitlines():
        oid_text, sep, rest = line.partition("|")
        tag_text, sep2, value = rest.partition("|")
        if not sep or not sep2 or line.startswith("#"):
            continue
        try:
            oid = parse_oid(oid_text)
            tag_base, _, module = tag_text.partition(":")
            hexed = tag_base.endswith("x")
            tag = int(tag_base.rstrip("x"))
            if module:   # a variation module's parameters: serve its starting value
                params = dict(p.split("=", 1) for p in value.split(",") if "=" in p)
                value = params.get("initial", params.get("value", "0"))
            if hexed:
                raw: object = bytes.fromhex(value.strip())
                if tag in _NUMERIC:
                    raw = int.from_bytes(raw, "big")  # type: ignore[arg-type]
            elif tag in _NUMERIC:
                raw = int(value)
            elif tag == 4:
                raw = value.encode("utf-8", errors="surrogateescape")
            else:
                raw = value
            out.setdefault(oid, encode_value(tag, raw))  # type: ignore[arg-type]
        except (ValueError, IndexError):
            continue   # a line a real agent could not have sent; skip it rather than serve garbage
    return out


@lru_cache(maxsize=64)
def _load(path: str, mtime: float) -> dict[OID, bytes]:
    return parse_snmprec(Path(path).read_text(encoding="utf-8", errors="surrogateescape"))


def load_snmprec(path: Path) -> dict[OID, bytes]:
    """The recording at `path` (cached; the caller gets its own copy to edit)."""
    return dict(_load(str(path), path.stat().st_mtime))


def body_of(tlv: bytes) -> tuple[int, bytes]:
    tag, s, e = read_tlv(tlv, 0)
    return tag, tlv[s:e]


def text_of(tlv: bytes | None) -> str:
    if tlv is None:
        return ""
    _, body = body_of(tlv)
    return body.decode("utf-8", errors="replace")


def int_of(tlv: bytes | None) -> int | None:
    if tlv is None:
        return None
    tag, body = body_of(tlv)
    if tag not in _NUMERIC or not body:
        return None
    return int.from_bytes(body, "big", signed=(tag == 2))


def column(records: dict[OID, bytes], col: OID) -> dict[OID, bytes]:
    """{index: value} of one table column."""
    n = len(col)
    return {k[n:]: v for k, v in records.items() if k[:n] == col and len(k) > n}
