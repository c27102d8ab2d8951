"""Answer SNMP questions from a recording (`.snmprec`) without a network: for `eduedge profile match
--snmprec FILE`, and for unit tests of profiles that need no agent.

`RecordingClient` has the same `get_many`/`walk` surface as `SnmpClient` and returns values the way
gufo-snmp does (bytes for strings, str for OIDs and IP addresses, int for numbers), so a
`DevicePoller` cannot tell the difference.
"""

from __future__ import annotations

import bisect
from pathlib import Path

from eduedge.collectors.snmp.client import Value

_INT_TAGS = {"2", "65", "66", "67", "70"}


def parse_value(tag: str, text: str) -> Value:
    """One snmprec value as gufo-snmp would return it.

    >>> parse_value("4x", "00ff"), parse_value("67", "100"), parse_value("6", ".1.3.6")
    (b'\\x00\\xff', 100, '1.3.6')
    """
    base, _, module = tag.partition(":")
    if module:
        # variation modules (e.g. `numeric|initial=5,rate=1`): the starting value is the recorded one
        params = dict(p.split("=", 1) for p in text.split(",") if "=" in p)
        text = params.get("initial", params.get("value", "0"))
    if base.endswith("x"):
        return bytes.fromhex(text.strip())
    if base in _INT_TAGS:
        return int(text)
    if base in ("6", "64"):
        return text.strip().lstrip(".")
    return text.encode("utf-8", errors="surrogateescape")


def _key(oid: str) -> tuple[int, ...]:
    return tuple(int(a) for a in oid.split("."))


class RecordingClient:
    """A device that is a recording. Malformed lines are skipped and counted in `skipped`."""

    def __init__(self, path: Path | str, device: str | None = None):
        path = Path(path)
        self.device = device or path.stem
        self.host, self.port = str(path), 0
        self.requests = 0
        self.values = 0
        self.skipped = 0
        data: dict[tuple[int, ...], Value] = {}
        for line in path.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
            parts = line.split("|", 2)
            if len(parts) != 3:
                continue
            oid, tag, text = parts
            try:
                data.setdefault(_key(oid.strip().lstrip(".")), parse_value(tag, text))
            except ValueError:
                self.skipped += 1
        self._keys = sorted(data)
        self._data = data

    async def get_many(self, oids: list[str]) -> dict[str, Value]:
        self.requests += 1
        out = {o: self._data[_key(o)] for o in oids if _key(o) in self._data}
        self.values += len(out)
        return out

    async def get_rows(self, rows: dict[str, list[str]]) -> dict[str, dict[str, Value]]:
        self.requests += 1
        out = {c: {i: self._data[_key(f"{c}.{i}")] for i in indexes if _key(f"{c}.{i}") in self._data}
               for c, indexes in rows.items()}
        self.values += sum(len(r) for r in out.values())
        return out

    async def first_row(self, oid: str) -> str | None:
        self.requests += 1
        prefix = _key(oid)
        i = bisect.bisect_right(self._keys, prefix)
        if i < len(self._keys) and self._keys[i][:len(prefix)] == prefix:
            self.values += 1
            return ".".join(map(str, self._keys[i]))
        return None

    async def walk(self, oid: str) -> dict[str, Value]:
        self.requests += 1
        prefix = _key(oid)
        rows: dict[str, Value] = {}
        i = bisect.bisect_right(self._keys, prefix)
        while i < len(self._keys) and self._keys[i][:len(prefix)] == prefix:
            k = self._keys[i]
            rows[".".join(map(str, k[len(prefix):]))] = self._data[k]
            i += 1
        self.values += len(rows)
        return rows
