"""One simulated agent's MIB, and the SNMP semantics of answering from it (GET, GETNEXT, GETBULK).

A `Mib` holds sorted OIDs whose values are either ready-encoded value TLVs (what never changes) or
functions of the request time returning one (counters, uptime, status). Tables whose *rows* come and
go (LLDP neighbours, Wi-Fi stations) are `Table`s under their own root, rebuilt only when the campus
state changes; GETNEXT looks in the static part and in each table and takes the smallest successor.

`answer` follows RFC 3416 (v2c: noSuchObject/noSuchInstance/endOfMibView, GETBULK row by row, the
response cut to fit) and RFC 1157 for v1 (noSuchName, no Counter64: v1 GETNEXT skips over them, as
net-snmp does).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

from eduedge.simulator.ber import (
    COUNTER64,
    END_OF_MIB_VIEW,
    GET,
    GETBULK,
    GETNEXT,
    NO_ACCESS,
    NO_SUCH_INSTANCE,
    NO_SUCH_NAME,
    NO_SUCH_OBJECT,
    OID,
    TOO_BIG,
    Request,
    encode_oid,
    encode_response,
)

Value = bytes | Callable[[float], bytes]     # a value TLV, or a function of the request time giving one
MAX_RESPONSE = 65000                         # bytes; a UDP datagram's limit, less headroom

_NO_SUCH_OBJECT = bytes((NO_SUCH_OBJECT, 0))
_NO_SUCH_INSTANCE = bytes((NO_SUCH_INSTANCE, 0))
_END = bytes((END_OF_MIB_VIEW, 0))


@dataclass
class Table:
    """Rows under `root` that are recomputed by `build(now)` whenever `shape(now)` changes."""

    root: OID
    build: Callable[[float], dict[OID, Value]]
    shape: Callable[[float], object]
    _key: object = None
    _keys: list[OID] = field(default_factory=list)
    _vals: list[Value] = field(default_factory=list)
    _built: bool = False

    def rows(self, now: float) -> tuple[list[OID], list[Value]]:
        key = self.shape(now)
        if not self._built or key != self._key:
            rows = self.build(now)
            self._keys = sorted(rows)
            self._vals = [rows[k] for k in self._keys]
            self._key, self._built = key, True
        return self._keys, self._vals


class Mib:
    def __init__(self, values: dict[OID, Value], tables: list[Table] | None = None):
        self.tables = tables or []
        roots = [t.root for t in self.tables]
        kept = {k: v for k, v in values.items() if not any(k[:len(r)] == r for r in roots)}
        self.keys = sorted(kept)
        self.vals = [kept[k] for k in self.keys]
        self._oids = [_oid_tlv(k) for k in self.keys]

    def __len__(self) -> int:
        return len(self.keys)

    def get(self, oid: OID, now: float) -> bytes | None:
        for t in self.tables:
            if oid[:len(t.root)] == t.root:
                keys, vals = t.rows(now)
                i = bisect.bisect_left(keys, oid)
                return _value(vals[i], now) if i < len(keys) and keys[i] == oid else None
        i = bisect.bisect_left(self.keys, oid)
        if i < len(self.keys) and self.keys[i] == oid:
            return _value(self.vals[i], now)
        return None

    def next(self, oid: OID, now: float) -> tuple[OID, bytes, bytes] | None:
        """(oid, oid TLV, value TLV) of the first object after `oid`, or None at the end of the MIB."""
        best: tuple[OID, bytes, Value] | None = None
        i = bisect.bisect_right(self.keys, oid)
        if i < len(self.keys):
            best = (self.keys[i], self._oids[i], self.vals[i])
        for t in self.tables:
            if oid[:len(t.root)] > t.root:   # every row of this table sorts before `oid`
                continue
            keys, vals = t.rows(now)
            j = bisect.bisect_right(keys, oid)
            if j < len(keys) and (best is None or keys[j] < best[0]):
                best = (keys[j], b"", vals[j])
        if best is None:
            return None
        key, oid_tlv, val = best
        return key, oid_tlv or encode_oid(key), _value(val, now)

    def exists_under(self, prefix: OID) -> bool:
        i = bisect.bisect_left(self.keys, prefix)
        return i < len(self.keys) and self.keys[i][:len(prefix)] == prefix


_OID_TLVS: dict[OID, bytes] = {}


def _oid_tlv(oid: OID) -> bytes:
    """Encoded OIDs are shared by every device built from the same recording (memory, not speed)."""
    tlv = _OID_TLVS.get(oid)
    if tlv is None:
        tlv = _OID_TLVS[oid] = encode_oid(oid)
    return tlv


def _value(v: Value, now: float) -> bytes:
    return v if isinstance(v, bytes) else v(now)


def answer(mib: Mib, req: Request, now: float) -> bytes:
    """The encoded Response to a decoded request."""
    v1 = req.version == 0
    if req.pdu not in (GET, GETNEXT, GETBULK):   # SET: this agent is read-only
        return encode_response(req, [], NO_SUCH_NAME if v1 else NO_ACCESS, 1)
    out: list[bytes] = []
    size = 0
    if req.pdu == GET:
        for n, oid in enumerate(req.varbinds, 1):
            val = mib.get(oid, now)
            if val is None or (v1 and val[0] == COUNTER64):
                if v1:
                    return encode_response(req, [], NO_SUCH_NAME, n)
                val = _NO_SUCH_INSTANCE if mib.exists_under(oid[:-1]) else _NO_SUCH_OBJECT
            out.append(encode_oid(oid) + val)
            size += len(out[-1])
    elif req.pdu == GETNEXT:
        for n, oid in enumerate(req.varbinds, 1):
            nxt = _next(mib, oid, now, v1)
            if nxt is None:
                if v1:
                    return encode_response(req, [], NO_SUCH_NAME, n)
                out.append(encode_oid(oid) + _END)
            else:
                out.append(nxt[1] + nxt[2])
            size += len(out[-1])
    else:
        nr = max(0, min(req.non_repeaters, len(req.varbinds)))
        for oid in req.varbinds[:nr]:
            nxt = _next(mib, oid, now, v1)
            out.append(encode_oid(oid) + _END if nxt is None else nxt[1] + nxt[2])
            size += len(out[-1])
        cursors: list[OID] = list(req.varbinds[nr:])
        ended = [False] * len(cursors)
        for _ in range(max(0, req.max_repetitions) if cursors else 0):
            if all(ended):
                break
            for k, cur in enumerate(cursors):
                nxt = None if ended[k] else _next(mib, cur, now, v1)
                if nxt is None:
                    vb = encode_oid(cur) + _END     # a column at its end stays there, keeping the rows' shape
                    ended[k] = True
                else:
                    vb = nxt[1] + nxt[2]
                    cursors[k] = nxt[0]
                if size + len(vb) + 4 > MAX_RESPONSE:
                    return encode_response(req, out)
                out.append(vb)
                size += len(vb) + 4
    if size > MAX_RESPONSE:
        return encode_response(req, [], TOO_BIG, 0)
    return encode_response(req, out)


def _next(mib: Mib, oid: OID, now: float, v1: bool) -> tuple[OID, bytes, bytes] | None:
    nxt = mib.next(oid, now)
    while v1 and nxt is not None and nxt[2][0] == COUNTER64:
        nxt = mib.next(nxt[0], now)
    return nxt
