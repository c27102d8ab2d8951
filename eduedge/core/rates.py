"""Counters become rates here, and only here.

SNMP counters (and the host's own interface counters) only go up, until they wrap at 2^32 or 2^64, or
the device reboots and they start again from zero. A rate is the difference between two readings over
the monotonic time between them. What this module refuses to do is invent traffic:

- a reading lower than the last one is a wrap only when the wrapped difference is below half the
  counter's range; otherwise the counter was reset and the delta is discarded;
- a device reboot (sysUpTime or snmpEngineTime going backwards) discards every delta of that device;
- a missing reading simply spans a longer interval next time; nothing is interpolated.

So a rate is never negative, and a reboot never shows as a spike.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Hashable
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Last:
    value: int
    mono: float


Column = dict[Hashable, _Last]          # one column of one device: row -> its last reading


@dataclass
class RateTracker:
    """Remembers the last reading of each counter and turns the next one into a per-second rate.

    >>> r = RateTracker()
    >>> r.update(("sw1", "if.in_octets", "1"), 1000, bits=64, mono=0.0) is None
    True
    >>> r.update(("sw1", "if.in_octets", "1"), 3000, bits=64, mono=2.0)
    1000.0

    The readings are kept device -> column -> row, so a counter costs its row's entry and its last reading,
    not a key tuple of its own (a 356-device campus keeps ~29,000), and a reboot drops a device's readings
    at once.
    """

    _devices: dict[Hashable, dict[Hashable, Column]] = field(default_factory=dict)
    _uptime: dict[Hashable, float] = field(default_factory=dict)
    discarded: int = 0

    def observe_uptime(self, device: Hashable, uptime_s: float) -> bool:
        """Record a device's uptime; return True (and forget its counters) if it went backwards."""
        last = self._uptime.get(device)
        self._uptime[device] = uptime_s
        if last is not None and uptime_s < last:
            self._devices.pop(device, None)
            return True
        return False

    def column(self, device: Hashable, column: Hashable) -> Column:
        """The rows of one column of one device, for `update_row`: a poll looks a column up once, not per row.
        Look it up again for each poll (a reboot replaces it)."""
        cols = self._devices.get(device)
        if cols is None:
            cols = self._devices[device] = {}
        rows = cols.get(column)
        if rows is None:
            rows = cols[column] = {}
        return rows

    def update(self, key: tuple[Hashable, ...], value: int, bits: int, mono: float) -> float | None:
        """Feed a counter reading; return its rate per second since the last one, or None.

        `key` is (device, column..., row): `key[0]` is the device, so that a reboot of that device invalidates
        all its counters; `update(("sw1", oid, "5"), ...)` and `update_row(column("sw1", (oid,)), "5", ...)`
        are the same counter.
        """
        return self.update_row(self.column(key[0], key[1:-1]), key[-1], value, bits, mono)

    def update_row(self, rows: Column, row: Hashable, value: int, bits: int, mono: float) -> float | None:
        """`update` for one row of a column from `column()`."""
        last = rows.get(row)
        if last is None:
            # row indexes ("1".."48") repeat in every column of every device: one string for them all
            rows[sys.intern(row) if type(row) is str else row] = _Last(value, mono)
            return None
        # updated in place: no allocation per reading, this runs for every counter value polled
        prev_value, prev_mono = last.value, last.mono
        last.value, last.mono = value, mono
        dt = mono - prev_mono
        if dt <= 0:
            return None
        delta = value - prev_value
        if delta < 0:
            wrapped = delta + (1 << bits)
            if wrapped >= 1 << (bits - 1):
                self.discarded += 1
                return None
            delta = wrapped
        return delta / dt

    @staticmethod
    def retain(rows: Column, present: Collection[Hashable]) -> int:
        """Drop the readings of the rows of a column that a complete walk of it no longer has (a client that
        left, a port removed): the device forgot their counters too, so a row that comes back starts again
        rather than taking a delta from a reading of another life; and a campus whose clients change keeps
        only those it has now. The rows dropped.

        >>> r = RateTracker(); col = r.column("wlc", ("bytes",))
        >>> for row in ("aa", "bb"): _ = r.update_row(col, row, 10, 64, 0.0)
        >>> RateTracker.retain(col, {"bb": 12}), sorted(col)
        (1, ['bb'])
        """
        gone = [row for row in rows if row not in present]
        for row in gone:
            del rows[row]
        return len(gone)

    def forget(self, device: Hashable) -> None:
        """Drop every counter of a device (it was removed from the configuration)."""
        self._uptime.pop(device, None)
        self._devices.pop(device, None)
