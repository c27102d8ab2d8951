"""What a broadband test found, as plain data: echo probes (RTT, RFC 3550 jitter, loss), each direction's
goodput with its per-interval series, and the ceiling of the gateway's WAN port.

collectors/broadband/collector.py turns a `BroadbandResult` into samples; `eduedge speedtest` prints it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Direction = Literal["down", "up"]
PORT_LIMITED_SHARE = 0.95        # a result this close to the port's ceiling says more about the port than the line
_WIRE = 38                       # preamble+SFD 8, Ethernet header 14, FCS 4, inter-frame gap 12


def rfc3550_jitter(rtts_ms: Iterable[float | None], jitter: float = 0.0) -> float:
    """RFC 3550 (6.4.1) interarrival jitter of echo probes, in ms: J += (|D| - J) / 16.

    For probe i, D = (R_i - R_i-1) - (S_i - S_i-1), which for an echo is RTT_i - RTT_i-1: the clocks of
    the two ends never meet, so their offset cannot leak in. Unanswered probes are skipped. `jitter`
    carries the estimate over from an earlier batch, as RTCP keeps it for a whole session.

    >>> round(rfc3550_jitter([10.0, 12.0, 10.0, None, 12.0]), 4)
    0.3521
    """
    last = None
    for rtt in rtts_ms:
        if rtt is None:
            continue
        if last is not None:
            jitter += (abs(rtt - last) - jitter) / 16
        last = rtt
    return jitter


def median(values: Sequence[float]) -> float:
    """The middle value (the mean of the two middle ones for an even count).

    >>> median([3.0, 1.0, 2.0]), median([1.0, 2.0])
    (2.0, 1.5)
    """
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


@dataclass
class Probes:
    """One batch of UDP echo probes: the RTT in ms of each, in the order sent (None: no answer)."""

    rtts_ms: list[float | None]

    @property
    def sent(self) -> int:
        return len(self.rtts_ms)

    @property
    def answered(self) -> list[float]:
        return [r for r in self.rtts_ms if r is not None]

    @property
    def loss_percent(self) -> float | None:
        return 100.0 * (self.sent - len(self.answered)) / self.sent if self.sent else None

    @property
    def median_ms(self) -> float | None:
        return median(self.answered) if self.answered else None

    @property
    def min_ms(self) -> float | None:
        return min(self.answered) if self.answered else None

    @property
    def jitter_ms(self) -> float | None:
        return rfc3550_jitter(self.rtts_ms) if len(self.answered) >= 2 else None

    def summary(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 3)
        return {"sent": self.sent, "answered": len(self.answered), "loss_percent": r(self.loss_percent),
                "median_ms": r(self.median_ms), "min_ms": r(self.min_ms), "jitter_ms": r(self.jitter_ms)}


@dataclass
class PortInfo:
    """The gateway's WAN interface: what it can carry at best."""

    interface: str
    speed_mbps: int | None          # None where the driver does not say (virtual interfaces, some PPPoE)
    mtu: int | None
    ipv6: bool = False

    @property
    def ceiling_mbps(self) -> float | None:
        """TCP goodput at line rate: (MTU - IP/TCP headers with timestamps) / (MTU + Ethernet's 38 B).

        >>> round(PortInfo("eth0", 1000, 1500).ceiling_mbps, 2), round(PortInfo("eth0", 100, 1500).ceiling_mbps, 2)
        (941.48, 94.15)
        """
        if not self.speed_mbps or not self.mtu:
            return None
        headers = (40 if self.ipv6 else 20) + 20 + 12
        return self.speed_mbps * (self.mtu - headers) / (self.mtu + _WIRE)

    def limits(self, mbps: float | None) -> bool:
        """True when a result reached the port's own ceiling: the line may well be faster than the port."""
        ceiling = self.ceiling_mbps
        return mbps is not None and ceiling is not None and mbps >= PORT_LIMITED_SHARE * ceiling


@dataclass
class Throughput:
    """One direction of a capacity test: goodput over the measurement window, after the ramp-up."""

    direction: Direction
    engine: str
    streams: int
    mbps: float | None = None                 # None with `error`: never a made-up figure
    error: str | None = None
    seconds: float = 0.0                      # length of the measurement window
    warmup_s: float = 0.0                     # ramp-up excluded before it
    stable: bool = True                       # False: the ramp-up never settled; measured from warmup_max
    intervals_mbps: list[float] = field(default_factory=list)          # 1 s sub-intervals of the window
    series: list[tuple[float, float]] = field(default_factory=list)    # (s since start, Mbit/s) per 0.25 s
    bytes_total: int = 0                      # everything this direction moved, ramp-up included
    measured_at: str = "receiver"
    loaded: Probes | None = None              # echo probes during the measurement window
    cross_mbps: float | None = None           # other traffic on the WAN interface during the window

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["loaded"] = self.loaded.summary() if self.loaded else None
        out["intervals_mbps"] = [round(v, 3) for v in self.intervals_mbps]
        out["series"] = [(round(t, 3), round(v, 3)) for t, v in self.series]
        for k in ("mbps", "cross_mbps", "seconds", "warmup_s"):
            if out[k] is not None:
                out[k] = round(out[k], 3)
        return out


@dataclass
class BroadbandResult:
    """A whole test: idle latency, then each direction under load."""

    time: float                               # wall clock at the start
    server: str                               # HOST:PORT of the eduedge test server; "" when none was used
    engine: str
    reachable: bool = False                   # the test server answered at all
    error: str | None = None                  # the test as a whole could not run (no figures at all)
    idle: Probes | None = None
    down: Throughput | None = None
    up: Throughput | None = None
    port: PortInfo | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def directions(self) -> list[Throughput]:
        return [t for t in (self.down, self.up) if t is not None]

    @property
    def bytes_total(self) -> int:
        return sum(t.bytes_total for t in self.directions)

    @property
    def problems(self) -> list[str]:
        """Every reason a figure is missing, in words."""
        out = [self.error] if self.error else []
        return out + [f"{t.direction}load: {t.error}" for t in self.directions if t.error]

    def to_dict(self) -> dict[str, Any]:
        port = None
        if self.port is not None:
            ceiling = self.port.ceiling_mbps
            port = {**asdict(self.port), "ceiling_mbps": round(ceiling, 2) if ceiling else None,
                    "limited": [t.direction for t in self.directions if self.port.limits(t.mbps)]}
        return {"time": self.time, "server": self.server, "engine": self.engine, "reachable": self.reachable,
                "error": self.error, "idle": self.idle.summary() if self.idle else None,
                "down": self.down.to_dict() if self.down else None, "up": self.up.to_dict() if self.up else None,
                "port": port, "bytes_total": self.bytes_total, "problems": self.problems, "notes": self.notes}


def mbps(nbytes: float, seconds: float) -> float:
    """Bytes over seconds in Mbit/s.

    >>> mbps(1_250_000, 1.0)
    10.0
    """
    return nbytes * 8 / seconds / 1e6 if seconds > 0 else math.nan
