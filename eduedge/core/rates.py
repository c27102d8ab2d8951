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

from collections.abc import Hashable
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Last:
    value: int
    mono: float
    epoch: int


@dataclass
class RateTracker:
    """Remembers the last reading of each counter and turns the next one into a per-second rate.

    >>> r = RateTracker()
    >>> r.update(("sw1", "if.in_octets", "1"), 1000, bits=64, mono=0.0) is None
    True
    >>> r.update(("sw1", "if.in_octets", "1"), 3000, bits=64, mono=2.0)
    1000.0
    """

    _last: dict[Hashable, _Last] = field(default_factory=dict)
    _epoch: dict[Hashable, int] = field(default_factory=dict)
    _uptime: dict[Hashable, float] = field(default_factory=dict)
    discarded: int = 0

    def observe_uptime(self, device: Hashable, uptime_s: float) -> bool:
        """Record a device's uptime; return True (and forget its counters) if it went backwards."""
        last = self._uptime.get(device)
        self._uptime[device] = uptime_s
        if last is not None and uptime_s < last:
            self._epoch[device] = self._epoch.get(device, 0) + 1
            return True
        return False

    def update(self, key: tuple[Hashable, ...], value: int, bits: int, mono: float) -> float | None:
        """Feed a counter reading; return its rate per second since the last one, or None.

        `key[0]` is the device, so that a reboot of that device invalidates all its counters.
        """
        epoch = self._epoch.get(key[0], 0)
        last = self._last.get(key)
        if last is None:
            self._last[key] = _Last(value, mono, epoch)
            return None
        # updated in place: no allocation per reading, this runs for every counter value polled
        prev_value, prev_mono, prev_epoch = last.value, last.mono, last.epoch
        last.value, last.mono, last.epoch = value, mono, epoch
        if prev_epoch != epoch:
            return None
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

    def forget(self, device: Hashable) -> None:
        """Drop every counter of a device (it was removed from the configuration)."""
        self._uptime.pop(device, None)
        self._epoch.pop(device, None)
        for k in [k for k in self._last if k[0] == device]:
            del self._last[k]
