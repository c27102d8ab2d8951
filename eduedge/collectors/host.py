"""The gateway box itself, read with psutil: CPU, memory, the data directory's disk, interfaces, sensors.

Metrics (device = the agent's own name, e.g. `gateway`):

| metric                      | unit      | tags                  | what                                          |
|-----------------------------|-----------|-----------------------|-----------------------------------------------|
| host.uptime_s               | s         |                       | time since the box booted                     |
| host.cpu_percent            | percent   |                       | CPU busy since the last collection, all cores |
| host.memory_percent         | percent   |                       | memory in use (total - available)             |
| host.memory_available_bytes | bytes     |                       | memory available to new programs              |
| host.disk_used_percent      | percent   | path                  | filesystem holding the data directory         |
| host.disk_free_bytes        | bytes     | path                  | free space there for the agent's user         |
| host.if_in_bps              | bit/s     | interface[, role=wan] | receive rate                                  |
| host.if_out_bps             | bit/s     | interface[, role=wan] | send rate                                     |
| host.if_in_errors_pps       | packets/s | interface[, role=wan] | receive errors per second                     |
| host.if_out_errors_pps      | packets/s | interface[, role=wan] | send errors per second                        |
| host.if_in_discards_pps     | packets/s | interface[, role=wan] | received packets dropped per second           |
| host.if_out_discards_pps    | packets/s | interface[, role=wan] | packets to send dropped per second            |
| host.if_oper_status         | state     | interface[, role=wan] | `up` (running: link/carrier) or `down`        |
| host.if_speed_mbps          | Mbit/s    | interface[, role=wan] | link speed, only where the driver knows it    |
| host.if_mtu_bytes           | bytes     | interface[, role=wan] | MTU                                           |
| host.temperature_c          | celsius   | sensor, label         | each temperature sensor psutil can read       |

Rates need two collections: the first one yields no rates and no CPU percent. Counters become rates in
agent/rates.RateTracker (wrap and reset handling); an interface that is deleted and re-created (a PPPoE
redial) gets a new ifindex and so starts afresh instead of showing a spike.

>>> c = HostCollector("gateway", Path("/"))
>>> sorted({s.metric for s in c.collect()} & {"host.memory_percent", "host.if_in_bps"})
['host.memory_percent']
"""

from __future__ import annotations

import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from eduedge.core.model import Duration, Strict
from eduedge.core.rates import RateTracker
from eduedge.core.samples import Sample


class HostConfig(Strict):
    """The `host` section: the box itself, and which of its interfaces is the WAN port."""

    enabled: bool = True
    interval: Duration = 60.0
    wan_interface: str | None = None


# The kernel's interface counters are `unsigned long`: 32 bits on a 32-bit ARM box, 64 elsewhere.
COUNTER_BITS = 64 if sys.maxsize > 2**32 else 32

# counter field of NicReading -> (rate metric, unit, factor from counter units to the rate's units)
_NIC_RATES = (
    ("bytes_recv", "host.if_in_bps", "bit/s", 8),
    ("bytes_sent", "host.if_out_bps", "bit/s", 8),
    ("errin", "host.if_in_errors_pps", "packets/s", 1),
    ("errout", "host.if_out_errors_pps", "packets/s", 1),
    ("dropin", "host.if_in_discards_pps", "packets/s", 1),
    ("dropout", "host.if_out_discards_pps", "packets/s", 1),
)


@dataclass(frozen=True)
class NicReading:
    bytes_recv: int
    bytes_sent: int
    errin: int = 0
    errout: int = 0
    dropin: int = 0
    dropout: int = 0
    ifindex: int = 0
    up: bool | None = None
    speed_mbps: int = 0
    mtu: int = 0


@dataclass(frozen=True)
class HostReading:
    """One snapshot of the box; `read_host` takes it, tests build it by hand."""

    uptime_s: float
    cpu_busy_s: float
    cpu_total_s: float
    memory_percent: float
    memory_available_bytes: int
    disk_path: str
    disk_used_percent: float
    disk_free_bytes: int
    nics: dict[str, NicReading] = field(default_factory=dict)
    temperatures: list[tuple[str, str, float]] = field(default_factory=list)   # (sensor, label, °C)


def existing_ancestor(path: Path) -> Path:
    """The path itself or its nearest existing parent: the data dir may not be created yet."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _cpu_busy_total(t: psutil._common.scputimes) -> tuple[float, float]:
    # As psutil.cpu_percent does: guest time is already inside user time on Linux, and idle + iowait
    # is the time nobody wanted the CPU.
    total = sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
    return total - t.idle - getattr(t, "iowait", 0.0), total


def _ifindex(name: str) -> int:
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return 0


def read_host(data_dir: Path) -> HostReading:
    """Read everything psutil knows about this box (one snapshot, no sleeping)."""
    busy, total = _cpu_busy_total(psutil.cpu_times())
    mem = psutil.virtual_memory()
    disk_path = existing_ancestor(data_dir)
    disk = psutil.disk_usage(str(disk_path))
    stats = psutil.net_if_stats()
    nics = {}
    # nowrap=False: wraps and resets are RateTracker's job, psutil's own guess would hide resets.
    for name, c in psutil.net_io_counters(pernic=True, nowrap=False).items():
        st = stats.get(name)
        nics[name] = NicReading(c.bytes_recv, c.bytes_sent, c.errin, c.errout, c.dropin, c.dropout,
                                _ifindex(name), st.isup if st else None, st.speed if st else 0,
                                st.mtu if st else 0)
    temps = []
    sensors = getattr(psutil, "sensors_temperatures", None)   # absent on some platforms
    for chip, entries in (sensors() if sensors else {}).items():
        for i, e in enumerate(entries):
            temps.append((chip, e.label or f"{chip}{i}", float(e.current)))
    return HostReading(uptime_s=time.time() - psutil.boot_time(), cpu_busy_s=busy, cpu_total_s=total,
                       memory_percent=mem.percent, memory_available_bytes=mem.available,
                       disk_path=str(data_dir), disk_used_percent=disk.percent, disk_free_bytes=disk.free,
                       nics=nics, temperatures=temps)


class HostCollector:
    """Turns successive `HostReading`s of the box into samples; keeps the state rates need."""

    def __init__(self, device: str, data_dir: Path, wan_interface: str | None = None,
                 rates: RateTracker | None = None):
        self.device = device
        self.data_dir = Path(data_dir)
        self.wan_interface = wan_interface
        self.rates = rates if rates is not None else RateTracker()
        self._cpu: tuple[float, float] | None = None

    def collect(self, now: float | None = None, mono: float | None = None) -> list[Sample]:
        """Read the box now and return its samples."""
        return self.samples(read_host(self.data_dir), time.time() if now is None else now,
                            time.monotonic() if mono is None else mono)

    def samples(self, r: HostReading, now: float, mono: float) -> list[Sample]:
        dev = self.device
        out = [Sample(now, dev, "host.uptime_s", round(r.uptime_s, 1), "s"),
               Sample(now, dev, "host.memory_percent", r.memory_percent, "percent"),
               Sample(now, dev, "host.memory_available_bytes", r.memory_available_bytes, "bytes"),
               Sample(now, dev, "host.disk_used_percent", r.disk_used_percent, "percent", {"path": r.disk_path}),
               Sample(now, dev, "host.disk_free_bytes", r.disk_free_bytes, "bytes", {"path": r.disk_path})]
        cpu = self._cpu_percent(r.cpu_busy_s, r.cpu_total_s)
        if cpu is not None:
            out.append(Sample(now, dev, "host.cpu_percent", cpu, "percent"))
        for name, nic in sorted(r.nics.items()):
            tags = {"interface": name, "role": "wan"} if name == self.wan_interface else {"interface": name}
            for fld, metric, unit, factor in _NIC_RATES:
                rate = self.rates.update((dev, "host.if", name, nic.ifindex, fld), getattr(nic, fld),
                                         COUNTER_BITS, mono)
                if rate is not None:
                    out.append(Sample(now, dev, metric, rate * factor, unit, tags))
            if nic.up is not None:
                out.append(Sample(now, dev, "host.if_oper_status", "up" if nic.up else "down", "state", tags))
            if nic.speed_mbps > 0:
                out.append(Sample(now, dev, "host.if_speed_mbps", nic.speed_mbps, "Mbit/s", tags))
            if nic.mtu > 0:
                out.append(Sample(now, dev, "host.if_mtu_bytes", nic.mtu, "bytes", tags))
        for sensor, label, celsius in r.temperatures:
            out.append(Sample(now, dev, "host.temperature_c", celsius, "celsius", {"sensor": sensor, "label": label}))
        return out

    def _cpu_percent(self, busy: float, total: float) -> float | None:
        # A ratio of two counters over the same interval, not a rate per second, so it lives here.
        last, self._cpu = self._cpu, (busy, total)
        if last is None or total <= last[1]:
            return None
        return round(min(100.0, max(0.0, 100.0 * (busy - last[0]) / (total - last[1]))), 1)
