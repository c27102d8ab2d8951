"""Broadband: the school's WAN link, measured against the city's test server and watched for load.

Three things run on the gateway box:
- capacity tests (collectors/broadband/engine.py, imported when one runs; iperf3 optionally,
  collectors/broadband/iperf3.py):
  idle latency, then download and upload over several TCP streams with the ramp-up excluded, with
  latency measured under that load. They start at random times in the configured windows (school
  hours, overnight), never two at once, within a daily byte budget, and are skipped - with the reason,
  as an event - when the school's own traffic keeps the link busy;
- an echo monitor every `monitor_interval`: does the city's server answer, RTT, jitter, loss;
- the WAN interface's byte counters every `utilisation_interval` (agent/rates.RateTracker makes them
  rates): how busy the link is, and an event when it stays saturated. Readings taken while a test runs
  are left out: a test's own load is not the school's.

Metrics (device = the agent's own name, e.g. `gateway`):

| metric                     | unit    | tags                        | what                                            |
|----------------------------|---------|-----------------------------|-------------------------------------------------|
| wan.down_mbps              | Mbit/s  | method=tcp, engine, window  | download goodput of one test, ramp-up excluded  |
| wan.up_mbps                | Mbit/s  | method=tcp, engine, window  | upload goodput, as the server received it       |
| wan.down_interval_mbps     | Mbit/s  | test, second                | each 1 s sub-interval of the download window    |
| wan.up_interval_mbps       | Mbit/s  | test, second                | each 1 s sub-interval of the upload window      |
| wan.rtt_ms                 | ms      | source=test/monitor         | median round trip of idle UDP echoes            |
| wan.jitter_ms              | ms      | source=test/monitor         | RFC 3550 interarrival jitter of those echoes    |
| wan.loss_percent           | percent | source=test/monitor         | echoes not answered (idle)                      |
| wan.reachable              | bool    | source=test/monitor         | 1 when the test server answered, else 0         |
| wan.rtt_loaded_ms          | ms      | direction=down/up           | median round trip during the throughput window  |
| wan.loss_loaded_percent    | percent | direction=down/up           | echoes not answered during the window           |
| wan.cross_traffic_mbps     | Mbit/s  | direction=down/up           | other traffic on the WAN port during the window |
| wan.port_ceiling_mbps      | Mbit/s  | interface, method=tcp       | best TCP goodput the WAN port can carry         |
| wan.test_bytes             | bytes   | window                      | bytes one test moved (both directions)          |
| wan.traffic_down_mbps      | Mbit/s  | interface                   | mean receive rate over the report interval      |
| wan.traffic_up_mbps        | Mbit/s  | interface                   | mean send rate over the report interval         |
| wan.traffic_down_peak_mbps | Mbit/s  | interface                   | highest reading in it                           |
| wan.traffic_up_peak_mbps   | Mbit/s  | interface                   | highest reading in it                           |
| wan.saturated_s            | s       | interface, direction        | seconds of it at or above `saturation_percent`  |

Events: `broadband.test_failed` (warning: no figure, and why), `broadband.test_skipped` (info: why),
`broadband.port_limited` (info: a result reached the WAN port's own ceiling), `broadband.saturated`
(warning) and `broadband.saturation_ended` (info).

A failed part of a test gives no figure, never a zero: a dead link is an outage (wan.reachable), not a
capacity of 0 Mbit/s.

>>> from eduedge.collectors.broadband.result import BroadbandResult, Probes, Throughput
>>> r = BroadbandResult(0.0, "city:5201", "builtin", reachable=True, idle=Probes([20.0, 21.0]),
...                     down=Throughput("down", "builtin", 8, mbps=93.9, seconds=10))
>>> sorted({s.metric for s in result_samples(r, "gateway")})
['wan.down_mbps', 'wan.jitter_ms', 'wan.loss_percent', 'wan.reachable', 'wan.rtt_ms', 'wan.test_bytes']
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import psutil

from eduedge.collectors.broadband.config import BroadbandConfig
from eduedge.collectors.broadband.probe import (
    COUNTER_BITS,
    ProbeResult,
    parse_server,
    port_info,
    probe_once,
    route_interface,
)
from eduedge.collectors.broadband.result import BroadbandResult, median, rfc3550_jitter
from eduedge.collectors.broadband.schedule import Budget, DailyPlan, ExclusiveLock
from eduedge.core.events import Event
from eduedge.core.i18n import _, clauses
from eduedge.core.rates import RateTracker
from eduedge.core.samples import Sample

if TYPE_CHECKING:    # the throughput test (and the bytes it sends) loads when a test runs
    from eduedge.collectors.broadband.engine import Engine, MeasureOptions, ProgressFn

log = logging.getLogger("eduedge.broadband")
BUSY_WINDOW_S = 60.0
KEEP_RESULTS = 5                  # recent tests whose median is the capacity when none is configured


def result_samples(r: BroadbandResult, device: str, window: str = "manual") -> list[Sample]:
    """The samples of one test (see the table above)."""
    t = r.time
    out: list[Sample] = []
    if r.server:
        out.append(Sample(t, device, "wan.reachable", 1 if r.reachable else 0, "bool", {"source": "test"}))
    out += probe_samples(t, device, r.idle.rtts_ms if r.idle else [], "test")
    test_id = str(int(t))
    for th in r.directions:
        if th.mbps is None:
            continue
        d = th.direction
        out.append(Sample(t, device, f"wan.{d}_mbps", round(th.mbps, 3), "Mbit/s",
                          {"method": "tcp", "engine": th.engine, "window": window}))
        out += [Sample(t, device, f"wan.{d}_interval_mbps", round(v, 3), "Mbit/s", {"test": test_id, "second": str(k)})
                for k, v in enumerate(th.intervals_mbps)]
        loaded = th.loaded
        if loaded is not None and loaded.answered:
            out.append(Sample(t, device, "wan.rtt_loaded_ms", round(loaded.median_ms or 0, 3), "ms", {"direction": d}))
        if loaded is not None and loaded.sent:
            out.append(Sample(t, device, "wan.loss_loaded_percent", round(loaded.loss_percent or 0, 3), "percent",
                              {"direction": d}))
        if th.cross_mbps is not None:
            out.append(Sample(t, device, "wan.cross_traffic_mbps", round(th.cross_mbps, 3), "Mbit/s", {"direction": d}))
    if r.port is not None and r.port.ceiling_mbps:
        out.append(Sample(t, device, "wan.port_ceiling_mbps", round(r.port.ceiling_mbps, 2), "Mbit/s",
                          {"interface": r.port.interface, "method": "tcp"}))
    out.append(Sample(t, device, "wan.test_bytes", r.bytes_total, "bytes", {"window": window}))
    return out


def probe_samples(t: float, device: str, rtts_ms: list[float | None], source: str,
                  jitter_from: float = 0.0) -> list[Sample]:
    """RTT, jitter and loss of a batch of echoes; nothing when none came back (no echo is no evidence)."""
    answered = [x for x in rtts_ms if x is not None]
    if not answered:
        return []
    tags = {"source": source}
    out = [Sample(t, device, "wan.rtt_ms", round(median(answered), 3), "ms", tags),
           Sample(t, device, "wan.loss_percent", round(100 * (len(rtts_ms) - len(answered)) / len(rtts_ms), 3),
                  "percent", tags)]
    if len(answered) >= 2 or jitter_from:
        out.append(Sample(t, device, "wan.jitter_ms", round(rfc3550_jitter(rtts_ms, jitter_from), 3), "ms", tags))
    return out


def result_events(r: BroadbandResult, device: str, window: str = "manual") -> list[Event]:
    """What a person should hear about a test: why a figure is missing, or that the port limited it."""
    out = []
    if r.problems:
        out.append(Event(r.time, device, "broadband.test_failed", "warning",
                         _("broadband test ({window}): {problems}").format(window=window, problems=clauses(r.problems)),
                         {"server": r.server, "problems": r.problems, "window": window}))
    if r.port is not None:
        for th in r.directions:
            if r.port.limits(th.mbps):
                out.append(Event(r.time, device, "broadband.port_limited", "info",
                                 (_("download reached {mbps} Mbit/s, the ceiling of the gateway's WAN port "
                                    "{interface} ({speed} Mbit/s carries at most {ceiling}): the line may be faster "
                                    "than the port") if th.direction == "down" else
                                  _("upload reached {mbps} Mbit/s, the ceiling of the gateway's WAN port {interface} "
                                    "({speed} Mbit/s carries at most {ceiling}): the line may be faster than the "
                                    "port")).format(mbps=f"{th.mbps:.1f}", interface=r.port.interface,
                                                    speed=r.port.speed_mbps, ceiling=f"{r.port.ceiling_mbps:.2f}"),
                                 {"direction": th.direction, "mbps": th.mbps, "port_speed_mbps": r.port.speed_mbps,
                                  "ceiling_mbps": r.port.ceiling_mbps}))
    return out


# -- passive utilisation ------------------------------------------------------------------------------

@dataclass
class Reading:
    mono: float
    wall: float
    seconds: float                 # the span this rate covers
    down_mbps: float
    up_mbps: float
    testing: bool                  # a test ran during the span


@dataclass
class Utilisation:
    """WAN rates every few seconds: the last hour kept, summarised per report, saturation followed."""

    interface: str
    device: str
    rates: RateTracker
    saturation_percent: float = 90.0
    saturation_after: float = 300.0
    readings: collections.deque[Reading] = field(default_factory=lambda: collections.deque(maxlen=3600))
    reported: float | None = None            # wall time of the last report
    _streak: dict[str, float | None] = field(default_factory=lambda: {"down": None, "up": None})
    _announced: dict[str, bool] = field(default_factory=lambda: {"down": False, "up": False})
    last_mono: float | None = None           # of the last counter reading

    def read(self, mono: float, wall: float, testing: bool) -> Reading | None:
        c = psutil.net_io_counters(pernic=True, nowrap=False).get(self.interface)
        if c is None:
            return None
        return self.add(mono, wall, c.bytes_recv, c.bytes_sent, testing)

    def add(self, mono: float, wall: float, rx_bytes: int, tx_bytes: int, testing: bool) -> Reading | None:
        """Feed one counter reading; a rate comes from the second one on."""
        try:
            ifindex = socket.if_nametoindex(self.interface)
        except OSError:
            ifindex = 0
        key = (self.device, "wan.util", self.interface, ifindex)
        rx = self.rates.update((*key, "rx"), rx_bytes, COUNTER_BITS, mono)
        tx = self.rates.update((*key, "tx"), tx_bytes, COUNTER_BITS, mono)
        last, self.last_mono = self.last_mono, mono
        if rx is None or tx is None or last is None:
            return None
        reading = Reading(mono, wall, mono - last, rx * 8 / 1e6, tx * 8 / 1e6, testing)
        self.readings.append(reading)
        return reading

    def recent(self, mono: float, seconds: float = BUSY_WINDOW_S) -> tuple[float, float] | None:
        """Mean (down, up) Mbit/s of the school's own traffic over the last `seconds`."""
        rs = [r for r in self.readings if r.mono > mono - seconds and not r.testing]
        total = sum(r.seconds for r in rs)
        if not rs or total <= 0:
            return None
        return (sum(r.down_mbps * r.seconds for r in rs) / total, sum(r.up_mbps * r.seconds for r in rs) / total)

    def saturation(self, reading: Reading, capacity: dict[str, float | None]) -> list[Event]:
        """Follow each direction's streak at or above the threshold; announce it once it lasts."""
        out = []
        for d in ("down", "up"):
            cap = capacity.get(d)
            rate = reading.down_mbps if d == "down" else reading.up_mbps
            hot = cap is not None and not reading.testing and rate >= self.saturation_percent / 100 * cap
            since = self._streak[d]
            if hot and since is None:
                self._streak[d] = reading.wall - reading.seconds
            elif hot and since is not None and not self._announced[d] and reading.wall - since >= self.saturation_after:
                self._announced[d] = True
                minutes = (reading.wall - since) / 60
                out.append(Event(reading.wall, self.device, "broadband.saturated", "warning",
                                 (_("the WAN link has been saturated downstream for {minutes} min: {rate} of {cap} "
                                    "Mbit/s") if d == "down" else
                                  _("the WAN link has been saturated upstream for {minutes} min: {rate} of {cap} "
                                    "Mbit/s")).format(minutes=f"{minutes:.0f}", rate=f"{rate:.1f}", cap=f"{cap:.1f}"),
                                 {"direction": d, "since": since, "mbps": rate, "capacity_mbps": cap}))
            elif not hot and since is not None:
                minutes = (reading.wall - since) / 60
                if self._announced[d]:
                    out.append(Event(reading.wall, self.device, "broadband.saturation_ended", "info",
                                     (_("the WAN link is no longer saturated downstream (it was for {minutes} min)")
                                      if d == "down" else
                                      _("the WAN link is no longer saturated upstream (it was for {minutes} min)"))
                                     .format(minutes=f"{minutes:.0f}"),
                                     {"direction": d, "since": since, "minutes": round(minutes, 1)}))
                self._streak[d], self._announced[d] = None, False
        return out

    def report(self, wall: float, capacity: dict[str, float | None]) -> list[Sample]:
        """Mean, peak and saturated seconds since the last report (test spans left out)."""
        since, self.reported = self.reported, wall
        rs = [r for r in self.readings if (since is None or r.wall > since) and not r.testing]
        total = sum(r.seconds for r in rs)
        if not rs or total <= 0:
            return []
        tags = {"interface": self.interface}
        out = []
        for d in ("down", "up"):
            rates = [(r.down_mbps if d == "down" else r.up_mbps, r.seconds) for r in rs]
            out.append(Sample(wall, self.device, f"wan.traffic_{d}_mbps",
                              round(sum(v * s for v, s in rates) / total, 3), "Mbit/s", tags))
            out.append(Sample(wall, self.device, f"wan.traffic_{d}_peak_mbps", round(max(v for v, _ in rates), 3),
                              "Mbit/s", tags))
            cap = capacity.get(d)
            if cap is not None:
                hot = sum(s for v, s in rates if v >= self.saturation_percent / 100 * cap)
                out.append(Sample(wall, self.device, "wan.saturated_s", round(hot, 1), "s", {**tags, "direction": d}))
        return out


# -- the collector the daemon runs --------------------------------------------------------------------

@dataclass
class Collected:
    samples: list[Sample] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


class BroadbandCollector:
    """Two jobs for the daemon: `tick()` every `utilisation_interval` (counters, monitor) and
    `run_due()` every half minute or so (a scheduled test, when one is due)."""

    def __init__(self, cfg: BroadbandConfig, device: str, data_dir: Path, tz: ZoneInfo,
                 wan_interface: str | None = None, token: str | None = None, rates: RateTracker | None = None):
        self.cfg, self.device, self.tz, self.token = cfg, device, tz, token
        self.server = parse_server(cfg.server) if cfg.server else None
        self.rates = rates or RateTracker()
        self.interface = wan_interface or (route_interface(*self.server) if self.server else None)
        self.utilisation = (Utilisation(self.interface, device, self.rates, cfg.saturation_percent,
                                        cfg.saturation_after) if self.interface else None)
        self.plan = DailyPlan(cfg.windows, tz)
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.budget = Budget(data_dir / "broadband-budget.json", cfg.daily_budget, tz)
        self.lock = ExclusiveLock(data_dir / "broadband.lock")
        self.results: collections.deque[BroadbandResult] = collections.deque(maxlen=KEEP_RESULTS)
        self._testing: tuple[float, float] | None = None      # (start, end) monotonic of the latest test
        self._next_monitor = 0.0
        self._jitter = 0.0
        self._mutex = threading.Lock()

    @classmethod
    def from_config(cls, cfg: BroadbandConfig, device: str, data_dir: Path, timezone: str,
                    wan_interface: str | None = None, rates: RateTracker | None = None) -> BroadbandCollector:
        """From the `broadband` section, reading its token; the agent says where its data lives, the school's
        time zone (the windows' clock) and the WAN port (`host.wan_interface`)."""
        token = cfg.token.read("broadband.token") if cfg.token else None
        return cls(cfg, device, data_dir, ZoneInfo(timezone), wan_interface, token, rates)

    def options(self) -> MeasureOptions:
        from eduedge.collectors.broadband.engine import MeasureOptions

        c = self.cfg
        return MeasureOptions(streams=c.streams, duration=c.duration, warmup_max=c.warmup_max,
                              directions=tuple(c.directions), idle_probes=c.idle_probes)

    # -- capacity as a reference for "busy" and "saturated" --

    def capacity(self) -> dict[str, float | None]:
        """Per direction: the contracted rate if configured, else the median of recent tests, else the
        port's ceiling (for downloads and uploads alike), else None."""
        port = port_info(self.interface) if self.interface else None
        ceiling = port.ceiling_mbps if port else None
        out: dict[str, float | None] = {}
        for d, configured in (("down", self.cfg.capacity_down_mbps), ("up", self.cfg.capacity_up_mbps)):
            measured = [getattr(r, d).mbps for r in list(self.results) if getattr(r, d) and getattr(r, d).mbps]
            out[d] = configured or (median(measured) if measured else None) or ceiling
        return out

    def _estimate_bytes(self) -> int | None:
        cap = self.capacity()
        per = self.cfg.warmup_max + self.cfg.duration
        known = [cap[d] for d in self.cfg.directions if cap[d]]
        return int(sum(known) * 1e6 / 8 * per) if known else None   # type: ignore[misc]

    def skip_reason(self, now: float, mono: float) -> str | None:
        """Why a scheduled test should not run now, or None."""
        refused = self.budget.refuses(now, self._estimate_bytes())
        if refused:
            return refused
        if self.cfg.skip_when_busy and self.utilisation is not None:
            busy = self.utilisation.recent(mono)
            cap = self.capacity()
            for i, d in enumerate(("down", "up")):
                c = cap[d]
                if busy is not None and c and busy[i] > self.cfg.busy_percent / 100 * c:
                    return (f"the link is busy with the school's own traffic: {busy[i]:.1f} Mbit/s {d}stream over "
                            f"the last minute, {100 * busy[i] / c:.0f} % of {c:.1f} Mbit/s (broadband.busy_percent "
                            f"is {self.cfg.busy_percent:g})")
        return None

    # -- the jobs --

    def tick(self, now: float | None = None, mono: float | None = None) -> Collected:
        """Read the WAN counters; report utilisation when due; run the echo monitor when due."""
        now = time.time() if now is None else now
        mono = time.monotonic() if mono is None else mono
        out = Collected()
        u = self.utilisation
        if u is not None:
            span, last = self._testing, u.last_mono
            testing = self.lock_held() or (span is not None and last is not None and span[1] >= last)
            reading = u.read(mono, now, testing)
            cap = self.capacity()
            if reading is not None:
                out.events += u.saturation(reading, cap)
            if u.reported is None or now - u.reported >= self.cfg.report_interval:
                out.samples += u.report(now, cap)
        if self.server and self.cfg.monitor_interval and mono >= self._next_monitor and not self.lock_held():
            self._next_monitor = mono + self.cfg.monitor_interval
            out.samples += self.monitor(now)
        return out

    def lock_held(self) -> bool:
        """A test runs now: this agent's, or a technician's `eduedge speedtest` on the same box."""
        if not self._mutex.acquire(blocking=False):
            return True
        try:                                  # the mutex keeps run_test off the lock file meanwhile
            return self.lock.busy()
        finally:
            self._mutex.release()

    def monitor(self, now: float) -> list[Sample]:
        assert self.server is not None
        res: ProbeResult = asyncio.run(probe_once(*self.server, self.token, self.cfg.monitor_probes))
        out = [Sample(now, self.device, "wan.reachable", 1 if res.reachable else 0, "bool", {"source": "monitor"})]
        if res.probes is not None:
            out += probe_samples(now, self.device, res.probes.rtts_ms, "monitor", self._jitter)
            self._jitter = rfc3550_jitter(res.probes.rtts_ms, self._jitter)
        elif res.error:
            log.warning("broadband monitor: %s", res.error)
        return out

    def run_due(self, now: float | None = None) -> Collected:
        """Run the scheduled test if one is due (or say why it was skipped)."""
        now = time.time() if now is None else now
        window = self.plan.due(now)
        if window is None:
            return Collected()
        reason = self.skip_reason(now, time.monotonic())
        if reason is None:
            return self.run_test(window, now)
        log.info("broadband test (%s window) skipped: %s", window, reason)
        return Collected(events=[Event(now, self.device, "broadband.test_skipped", "info",
                                       _("broadband test ({window} window) skipped: {reason}").format(
                                           window=window, reason=reason),
                                       {"window": window, "reason": reason})])

    def run_test(self, window: str = "manual", now: float | None = None) -> Collected:
        """One test now, unless another is running on this box."""
        now = time.time() if now is None else now
        busy = _("another broadband test is running in this agent")
        if self._mutex.acquire(timeout=1.0):          # tick() holds it for a moment; a test, for its length
            try:
                busy = _("another broadband test is running on this box (eduedge speedtest?)")
                if self.lock.acquire():
                    start = time.monotonic()
                    try:
                        result = asyncio.run(self.engine().run())
                    finally:
                        self._testing = (start, time.monotonic())
                        self.lock.release()
                    busy = ""
            finally:
                self._mutex.release()
        if busy:
            return Collected(events=[Event(now, self.device, "broadband.test_skipped", "info",
                                           _("broadband test ({window} window) skipped: {reason}").format(
                                               window=window, reason=busy),
                                           {"window": window, "reason": busy})])
        self.budget.add(now, result.bytes_total)
        if result.down is not None or result.up is not None:
            self.results.append(result)
        return Collected(result_samples(result, self.device, window), result_events(result, self.device, window))

    def engine(self, progress: ProgressFn | None = None) -> Engine:
        from eduedge.collectors.broadband.engine import Engine

        host, port = self.server if self.server else (None, 0)
        runner = None
        if self.cfg.engine == "iperf3":
            from eduedge.collectors.broadband.iperf3 import iperf3_runner

            assert self.cfg.iperf3_server is not None
            runner = iperf3_runner(*parse_server(self.cfg.iperf3_server))
        return Engine(host, port, self.token, self.options(), progress, self.interface, self.rates, runner,
                      self.cfg.engine)

