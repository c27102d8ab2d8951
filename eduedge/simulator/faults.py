"""Faults on a simulated campus: what is wrong with which device, from when until when.

Scheduled faults (the campus file's `faults:`) and live ones (`eduedge sim fault ...`, tests) are the
same `Fault` entries; a live one starts `at` after the moment it is injected. Everything the
simulated devices do wrong is asked here, with the request time:

| kind           | effect                                                                              |
|----------------|-------------------------------------------------------------------------------------|
| down           | the device answers nothing (SNMP, PJLink), its switch port goes down                |
| slow           | every SNMP answer is held back by `delay`                                           |
| loss           | `percent` of SNMP requests are dropped                                              |
| reboot         | silent for `down_for`, then back with uptime from zero and counters from zero      |
| counter_wrap   | the device's 32-bit octet counters pass 2^32 at `at` (a real wrap, not a jump)      |
| link_flap      | `port` goes down and up every `period` for `for`, on both ends of the cable         |
| clients_lost   | an AP's Wi-Fi clients drop to zero                                                  |
| broker_outage  | the campus's MQTT broker is stopped for `for` (through the broker hook)            |
| wan_degraded   | the WAN link is shaped to `down_mbps`/`up_mbps` for `for`                          |

A counter wrap cannot be injected live: moving a counter to just below 2^32 would itself be a jump
that an agent must (rightly) read as traffic, so it is only scheduled from the campus file.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from eduedge.simulator.campus import Fault


class FaultError(ValueError):
    pass


@dataclass
class ActiveFault:
    fault: Fault
    start: float
    end: float            # math.inf while it lasts until cleared

    @property
    def kind(self) -> str:
        return self.fault.kind

    def active(self, now: float) -> bool:
        return self.start <= now < self.end

    def to_dict(self) -> dict:
        d = self.fault.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)
        d.update(kind=self.kind, start=self.start, end=None if math.isinf(self.end) else self.end)
        return d


class FaultBook:
    """All faults of one campus run. `version(now)` changes whenever any fault starts, ends or flips,
    so that tables built from the campus state know when to rebuild."""

    def __init__(self, launch: float, scheduled: list[Fault]):
        self.launch = launch
        self.faults: list[ActiveFault] = []
        self._edges: list[float] = []
        for f in scheduled:
            self._add(f, launch + f.at)

    def inject(self, fault: Fault, now: float) -> ActiveFault:
        if fault.kind == "counter_wrap":
            raise FaultError("a counter wrap can only be scheduled in the campus file: moving a live counter "
                             "next to 2^32 would itself look like traffic")
        return self._add(fault, now + fault.at)

    def clear(self, now: float, device: str | None = None, kind: str | None = None) -> int:
        """End matching faults now; return how many were active."""
        n = 0
        for a in self.faults:
            if a.active(now) and (device is None or a.fault.device == device) and (kind is None or a.kind == kind):
                a.end = now
                bisect.insort(self._edges, now)
                n += 1
        return n

    def _add(self, fault: Fault, start: float) -> ActiveFault:
        if fault.kind == "reboot":
            end = start + fault.down_for
        elif fault.kind == "counter_wrap":
            end = start
        else:
            end = start + fault.duration if fault.duration is not None else math.inf
        a = ActiveFault(fault, start, end)
        self.faults.append(a)
        edges = [start, end]
        if fault.kind == "link_flap":
            stop = end if not math.isinf(end) else start + 86400
            k = 1
            while start + k * fault.period < stop:
                edges.append(start + k * fault.period)
                k += 1
        for e in edges:
            if not math.isinf(e):
                bisect.insort(self._edges, e)
        return a

    def version(self, now: float) -> int:
        return bisect.bisect_right(self._edges, now)

    def _active(self, kind: str, device: str | None, now: float) -> list[ActiveFault]:
        return [a for a in self.faults if a.kind == kind and a.active(now)
                and (device is None or a.fault.device == device)]

    def down(self, device: str, now: float) -> bool:
        """Silent: switched off, or in the middle of a reboot."""
        return bool(self._active("down", device, now) or self._active("reboot", device, now))

    def delay(self, device: str, now: float) -> float:
        return max((a.fault.delay or 0.0 for a in self._active("slow", device, now)), default=0.0)

    def loss(self, device: str, now: float) -> float:
        """Fraction of requests to drop."""
        return max((a.fault.percent or 0.0 for a in self._active("loss", device, now)), default=0.0) / 100

    def boot_times(self, device: str) -> list[float]:
        """When the device came back from each scripted reboot, in order."""
        return sorted(a.end for a in self.faults if a.kind == "reboot" and a.fault.device == device)

    def port_flapped_down(self, device: str, port: int, now: float) -> bool:
        for a in self._active("link_flap", device, now):
            if a.fault.port == port and int((now - a.start) // a.fault.period) % 2 == 0:
                return True
        return False

    def flap_changes(self, device: str, port: int, now: float) -> list[float]:
        """Times at which a flap changed this port's state, up to `now` (for ifLastChange)."""
        out: list[float] = []
        for a in self.faults:
            if a.kind != "link_flap" or a.fault.device != device or a.fault.port != port or a.start > now:
                continue
            t = a.start
            while t <= min(now, a.end):
                out.append(t)
                t += a.fault.period
            if a.end <= now:
                out.append(a.end)
        return sorted(out)

    def clients_lost(self, device: str, now: float) -> bool:
        return bool(self._active("clients_lost", device, now))

    def wrap_time(self, device: str) -> float | None:
        times = [a.start for a in self.faults if a.kind == "counter_wrap" and a.fault.device == device]
        return min(times) if times else None

    def wan(self, now: float) -> tuple[float | None, float | None] | None:
        """(down, up) Mbit/s the WAN is degraded to now, or None."""
        active = self._active("wan_degraded", None, now)
        if not active:
            return None
        f = active[-1].fault
        return f.down_mbps, f.up_mbps

    def broker_down(self, now: float) -> bool:
        return bool(self._active("broker_outage", None, now))

    def listing(self, now: float) -> list[dict]:
        return [dict(a.to_dict(), active=a.active(now)) for a in self.faults]
