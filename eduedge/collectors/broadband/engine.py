"""The built-in broadband test: the client of the city's test server (cloud/speedtest_server.py, EEST/1).

A test is one `session` (the control connection) and, in order:
1. idle latency: `idle_probes` UDP echoes 20 ms apart;
2. per direction, `streams` TCP connections at once (download, then upload), while echo probes go on
   every 50 ms (latency under load). Goodput is counted where the data arrives: downloads by this
   client, uploads by the server, which reports its byte count on the control connection every 100 ms.
   The ramp-up is excluded: measuring starts once the rate of the last four 250 ms slots varies by at
   most 5 % (the responsiveness draft's stability rule; at least `warmup_min`, at most `warmup_max`
   seconds in), then runs for exactly `duration` seconds;
3. the WAN interface's counters at both ends of each window (agent/rates.RateTracker) tell how much
   other traffic shared the link while measuring.

Echo answers are timed with the kernel's receive time stamps (SO_TIMESTAMPNS), so a busy event loop
cannot inflate the latency. Whatever goes wrong - server unreachable or refusing, a stream cut off, a
link that stops moving data for `stall_after` seconds - ends that part of the test with the reason and
no figure.

Why a protocol of our own (EEST/1) and not iperf3's: an iperf3 server runs one test at a time, while one
city server takes every school's tests at once (`max_tests`), with tokens, and answers the echo probes of
the loaded-latency phase during the same test; and measured against iperf3 it costs no accuracy:
bench/broadband.py on a tc-tbf-shaped 100 Mbit/s link between two namespaces, 8 streams, 5 s measured
(2026-12-06): eduedge 95.7 / iperf3 93.8 Mbit/s down (ratio 1.02), 95.6 / 95.4 up (1.00), at 1.7-2.1x
iperf3's CPU per GB moved (4.6-5.0 s/GB). iperf3 stays available as the capacity engine (iperf3.py).

The requests, the echo prober and the WAN port's figures are in probe.py (what runs between tests); this
module is imported when a test runs, and builds the bytes it uploads then.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
import socket
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import psutil

from eduedge.collectors.broadband.probe import (
    COUNTER_BITS,
    MeasureError,
    Prober,
    port_info,
    request,
    route_interface,
    server_text,
)
from eduedge.collectors.broadband.result import BroadbandResult, Direction, PortInfo, Throughput, mbps
from eduedge.core.eest import DISCARD, RECV_BUF, Payload, pump
from eduedge.core.rates import RateTracker

READ_PAUSE = 0.005
IDLE_INTERVAL = 0.02
LOADED_INTERVAL = 0.05
SLOT = 0.25                             # the series and the stability rule work in 250 ms slots
STABLE_SLOTS = 4
STABLE_CV = 0.05
TICK = 0.1
STALL_IN_WINDOW = 1.0                   # this long without a byte inside the window: the link dropped, no figure
GAP = 0.5                               # quiet between phases, so one direction's queue does not reach the next


@dataclass
class MeasureOptions:
    streams: int = 8
    duration: float = 10.0
    warmup_min: float = 1.0
    warmup_max: float = 4.0
    directions: tuple[Direction, ...] = ("down", "up")
    idle_probes: int = 50
    stall_after: float = 3.0
    connect_timeout: float = 5.0

    def session_seconds(self) -> float:
        """What the session must last: idle probes, then each direction's longest run, with margins."""
        per = self.warmup_max + self.duration + self.stall_after + GAP
        return round(self.idle_probes * IDLE_INTERVAL + 1 + len(self.directions) * per + 3, 1)


@dataclass
class Progress:
    """What the test is doing now, for a progress display."""

    phase: str                          # connect, idle, down, up, done
    elapsed: float = 0.0                # seconds into the phase
    planned: float = 0.0                # seconds the phase will probably take
    mbps: float | None = None           # rate of the last slot
    rtt_ms: float | None = None         # the latest echo's round trip
    measuring: bool = False             # past the ramp-up


ProgressFn = Callable[[Progress], None]


def _noop(_: Progress) -> None:
    pass


@dataclass
class _Control:
    """The session's control connection: the server's receive counts for uploads, and its end."""

    sock: socket.socket
    test_id: str
    granted: float
    reports: list[tuple[float, int, int]] = field(default_factory=list)   # (server s, up bytes, down bytes)
    ended: str | None = None

    async def read(self, rest: bytes) -> None:
        loop = asyncio.get_running_loop()
        data = rest
        try:
            while True:
                while b"\n" in data:
                    line, _, data = data.partition(b"\n")
                    self._line(line.decode("ascii", errors="replace").split())
                more = await loop.sock_recv(self.sock, 4096)
                if not more:
                    self.ended = self.ended or "the test server closed the session"
                    return
                data += more
        except OSError as e:
            self.ended = f"the session connection failed: {e.strerror or e}"

    def _line(self, words: list[str]) -> None:
        if words[:1] == ["R"] and len(words) == 4:
            try:
                self.reports.append((float(words[1]), int(words[2]), int(words[3])))
            except ValueError:
                self.ended = f"the test server sent a report that is not EEST/1: {' '.join(words)[:60]!r}"
        elif words[:1] == ["END"]:
            self.ended = f"the test server ended the session ({' '.join(words[1:]) or 'no reason'})"


class WanCounters:
    """Byte counters of the WAN interface, turned into rates by RateTracker (wraps on 32-bit boxes)."""

    def __init__(self, interface: str, rates: RateTracker | None = None):
        self.interface = interface
        self.rates = rates or RateTracker()

    def read(self) -> tuple[int, int] | None:
        c = psutil.net_io_counters(pernic=True, nowrap=False).get(self.interface)
        return (c.bytes_recv, c.bytes_sent) if c is not None else None

    def rate_bps(self, key: str, mono: float) -> tuple[float | None, float | None]:
        """(receive, send) bit/s since the last call with this key; None the first time."""
        r = self.read()
        if r is None:
            return None, None
        rx = self.rates.update(("wan", key, self.interface, "rx"), r[0], COUNTER_BITS, mono)
        tx = self.rates.update(("wan", key, self.interface, "tx"), r[1], COUNTER_BITS, mono)
        return (None if rx is None else rx * 8, None if tx is None else tx * 8)


# -- measuring one direction ------------------------------------------------------------------------

def bytes_at(points: list[tuple[float, int]], t: float) -> float:
    """Bytes at time `t`, linear between the two snapshots around it.

    >>> bytes_at([(0.0, 0), (1.0, 100), (2.0, 300)], 1.5)
    200.0
    """
    i = bisect.bisect_left(points, (t, -1))
    if i == 0:
        return float(points[0][1])
    if i == len(points):
        return float(points[-1][1])
    (t0, b0), (t1, b1) = points[i - 1], points[i]
    return b0 + (b1 - b0) * (t - t0) / (t1 - t0) if t1 > t0 else float(b1)


def slot_rates(points: list[tuple[float, int]], until: float, last: int | None = None) -> list[tuple[float, float]]:
    """Mbit/s per 250 ms slot from the snapshots: [(end of slot, Mbit/s)], only the `last` ones if given."""
    n = int(until / SLOT + 1e-9)
    first = 1 if last is None else max(1, n - last + 1)
    return [(k * SLOT, mbps(bytes_at(points, k * SLOT) - bytes_at(points, (k - 1) * SLOT), SLOT))
            for k in range(first, n + 1)]


def settled(points: list[tuple[float, int]], now: float, warmup_min: float) -> bool:
    """Past the ramp-up: the last four 250 ms slots within 5 % of their mean (coefficient of variation).

    >>> settled([(0.0, 0), (1.0, 100), (2.0, 1000), (3.0, 2000)], 3.0, 1.0)
    True
    >>> settled([(0.0, 0), (1.0, 100), (2.0, 1000), (3.0, 2000)], 1.5, 1.0)
    False
    """
    if now < max(warmup_min, STABLE_SLOTS * SLOT):
        return False
    rates = [r for _, r in slot_rates(points, now, STABLE_SLOTS)]
    mean = statistics.fmean(rates)
    return mean > 0 and statistics.pstdev(rates) / mean <= STABLE_CV


def window(points: list[tuple[float, int]], start: float, seconds: float) -> tuple[float, list[float]]:
    """Goodput over [start, start + seconds] and its 1 s sub-intervals, Mbit/s."""
    end = start + seconds
    total = mbps(bytes_at(points, end) - bytes_at(points, start), seconds)
    subs = []
    t = start
    while t + 1 <= end + 1e-9:
        subs.append(mbps(bytes_at(points, t + 1) - bytes_at(points, t), 1.0))
        t += 1
    return total, subs


def longest_silence(points: list[tuple[float, int]], start: float, end: float) -> tuple[float, float]:
    """The longest run of 250 ms slots in [start, end] in which nothing arrived: (seconds, when it began).

    >>> longest_silence([(0.0, 0), (1.0, 1000), (2.5, 1000), (3.0, 2000)], 0.0, 3.0)
    (1.5, 1.0)
    """
    best, best_at, run, run_at = 0.0, start, 0.0, start
    k = math.ceil(start / SLOT - 1e-9)
    while (k + 1) * SLOT <= end + 1e-9:
        if bytes_at(points, (k + 1) * SLOT) - bytes_at(points, k * SLOT) <= 0:
            run_at = run_at if run else k * SLOT
            run += SLOT
            if run > best:
                best, best_at = run, run_at
        else:
            run = 0.0
        k += 1
    return best, best_at


@dataclass
class PhaseState:
    """Snapshots of one direction in progress: (seconds since the phase began, bytes that arrived)."""

    points: list[tuple[float, int]] = field(default_factory=list)
    start: float | None = None            # measurement window start (phase seconds), once settled
    stable: bool = True
    window_mono: tuple[float, float] | None = None
    cross: tuple[float | None, float | None] | None = None


class Engine:
    """One test against one server; `await Engine(...).run()` returns a `BroadbandResult`."""

    def __init__(self, host: str | None, port: int, token: str | None = None, options: MeasureOptions | None = None,
                 progress: ProgressFn | None = None, wan_interface: str | None = None,
                 rates: RateTracker | None = None,
                 phase_runner: Callable[[Engine, Direction], Awaitable[Throughput]] | None = None,
                 engine_name: str = "builtin"):
        self.host, self.port, self.token = host, port, token
        self.opts = options or MeasureOptions()
        self.progress = progress or _noop
        self.wan_interface = wan_interface
        self.rates = rates or RateTracker()
        self.phase_runner = phase_runner
        self.engine_name = engine_name
        self.control: _Control | None = None
        self.prober: Prober | None = None
        self.wan: WanCounters | None = None
        self.port_info: PortInfo | None = None

    async def run(self) -> BroadbandResult:
        opts = self.opts
        result = BroadbandResult(time.time(), server_text(self.host, self.port) if self.host else "", self.engine_name)
        iface = self.wan_interface or (route_interface(self.host, self.port) if self.host else None)
        if iface:
            result.port = self.port_info = port_info(iface, ":" in (self.host or ""))
            self.wan = WanCounters(iface, self.rates)
        self.progress(Progress("connect"))
        stop = asyncio.Event()
        tasks: list[asyncio.Task] = []
        try:
            if self.host is not None:
                await self._open(result, tasks)
                tasks.append(asyncio.create_task(self.prober.run(LOADED_INTERVAL, until=stop)))  # type: ignore[union-attr]
            else:
                result.notes.append("no eduedge test server configured: latency, jitter and loss are not measured")
            for direction in opts.directions:
                if self.control is not None and self.control.ended:
                    th = Throughput(direction, self.engine_name, opts.streams,
                                    error=f"not measured: {self.control.ended}")
                else:
                    await asyncio.sleep(GAP)
                    th = await (self.phase_runner or _builtin_phase)(self, direction)
                setattr(result, direction, th)
        except MeasureError as e:
            result.error = str(e)
        except OSError as e:                       # a socket this side could not make (no memory, no ports...)
            result.error = f"the test could not run here: {e.strerror or e}"
        finally:
            stop.set()
            for t in tasks:
                t.cancel()
            if self.control is not None:
                self.control.sock.close()
            if self.prober is not None:
                self.prober.close()
        self.progress(Progress("done"))
        return result

    async def _open(self, result: BroadbandResult, tasks: list[asyncio.Task]) -> None:
        """The session (or, for another engine, a probe), then the idle latency."""
        assert self.host is not None
        opts = self.opts
        verb = "session" if self.phase_runner is None else "probe"
        auth = f" token={self.token}" if self.token else ""
        need = opts.session_seconds()
        sock, answer, rest = await request(self.host, self.port, f"EEST/1 {verb} {need:g}{auth}",
                                            opts.connect_timeout, f"{verb} request")
        result.reachable = True
        words = answer.split()
        self.control = _Control(sock, words[2] if len(words) > 2 else "", float(words[1]) if len(words) > 1 else 0)
        if self.control.granted < need:
            raise MeasureError(f"the test server grants {self.control.granted:g} s, the test needs {need:g} s "
                               "(shorten broadband.duration or raise the server's --max-seconds)")
        tasks.append(asyncio.create_task(self.control.read(rest)))
        self.prober = Prober(self.host, self.port)
        idle_start = time.monotonic()
        self.progress(Progress("idle", planned=opts.idle_probes * IDLE_INTERVAL))
        await self.prober.run(IDLE_INTERVAL, opts.idle_probes)
        await self._settle(idle_start, 1.0)
        result.idle = self.prober.batch(idle_start, time.monotonic())
        if not result.idle.answered:
            why = ("the server's address refuses UDP" if self.prober.refused else
                   "UDP to the test server is blocked, or the server does not echo this address")
            result.notes.append(f"no echo came back ({why}): latency, jitter and loss are not known")

    async def _settle(self, since: float, limit: float) -> None:
        """Wait (up to `limit` s) for the answers to probes still on their way."""
        assert self.prober is not None
        deadline = time.monotonic() + limit
        while self.prober.outstanding(since) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def loaded_probes(self, th: Throughput, phase: PhaseState) -> None:
        """Fill in what the echo probes saw during the window (answers may still be on their way)."""
        if self.prober is None or phase.window_mono is None:
            return
        await self._settle(phase.window_mono[0], 1.0)
        batch = self.prober.batch(*phase.window_mono)
        th.loaded = batch if batch.sent else None

    def mark_window(self, phase: PhaseState, edge: str) -> None:
        """At the window's start and end: the WAN counters, for the traffic that was not ours."""
        now = time.monotonic()
        if edge == "start":
            phase.window_mono = (now, now)
        elif phase.window_mono is not None:
            phase.window_mono = (phase.window_mono[0], now)
        if self.wan is not None:
            rx_tx = self.wan.rate_bps("test", now)
            if edge == "end":
                phase.cross = rx_tx

    def cross_traffic(self, th: Throughput, phase: PhaseState) -> None:
        """Interface rate minus this test's goodput (grossed up by the TCP/IP/Ethernet header share)."""
        if phase.cross is None or th.mbps is None:
            return
        rate = phase.cross[0] if th.direction == "down" else phase.cross[1]
        if rate is None:
            return
        mtu = self.port_info.mtu if self.port_info and self.port_info.mtu else 1500
        on_wire = th.mbps * (mtu + 14) / (mtu - 52)          # what the interface counts of our bytes
        th.cross_mbps = max(0.0, rate / 1e6 - on_wire)


async def _builtin_phase(engine: Engine, direction: Direction) -> Throughput:
    """One direction over `streams` TCP connections of the session."""
    opts, control = engine.opts, engine.control
    assert control is not None
    th = Throughput(direction, "builtin", opts.streams, measured_at="client" if direction == "down" else "server")
    verb = "download" if direction == "down" else "upload"
    seconds = opts.warmup_max + opts.duration + opts.stall_after
    phase = PhaseState()
    socks: list[socket.socket] = []
    tasks: list[asyncio.Task] = []
    moved = [0]                                   # bytes received (download) or written (upload) here
    data: Payload | None = None
    try:
        opened = await asyncio.gather(*(request(engine.host, engine.port, f"EEST/1 {verb} {seconds:g} "
                                                 f"test={control.test_id}", opts.connect_timeout, f"{verb} stream")
                                        for _ in range(opts.streams)), return_exceptions=True)
        for o in opened:
            if not isinstance(o, BaseException):
                socks.append(o[0])
        failed = [o for o in opened if isinstance(o, BaseException)]
        if failed:
            e = failed[0]
            raise e if isinstance(e, MeasureError) else MeasureError(f"opening the streams: {e}")
        ended: list[str] = []
        moved[0] += sum(len(o[2]) for o in opened if not isinstance(o, BaseException))
        if direction == "down":
            tasks.append(asyncio.create_task(_receive(socks, moved, ended)))
        else:
            data = Payload()
            tasks += [asyncio.create_task(_send(sock, moved, data)) for sock in socks]
        await _measure(engine, th, phase, moved, ended)
    except MeasureError as e:
        th.error = str(e)
    finally:
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)     # their writers removed before the close
        for s in socks:
            s.close()
        if data is not None:
            data.close()
    th.bytes_total = moved[0]
    if th.error is None:
        engine.cross_traffic(th, phase)
        await engine.loaded_probes(th, phase)
    return th


async def _receive(socks: list[socket.socket], moved: list[int], ended: list[str]) -> None:
    """Drain every download stream every READ_PAUSE: one wake-up for all of them, however fast or slow the
    link (a wake-up per arriving segment and stream would cost the small box more than the test)."""
    buf = bytearray(RECV_BUF)
    open_socks = list(socks)
    while open_socks:
        for sock in list(open_socks):
            try:
                while n := sock.recv_into(buf, RECV_BUF, DISCARD):    # counted, not copied out (eest.DISCARD)
                    moved[0] += n
            except BlockingIOError:
                continue
            except OSError as e:
                ended.append(f"a download stream failed: {e.strerror or e}")
            else:
                ended.append("a download stream was closed by the server")
            open_socks.remove(sock)
        await asyncio.sleep(READ_PAUSE)


async def _send(sock: socket.socket, moved: list[int], data: Payload) -> None:
    def sent(n: int) -> None:
        moved[0] += n

    with contextlib.suppress(OSError):          # the server cuts the stream: the control channel says why
        await pump(sock, data, sent)


async def _measure(engine: Engine, th: Throughput, phase: PhaseState, moved: list[int], ended: list[str]) -> None:
    """Snapshot the arriving bytes every 100 ms; find the end of the ramp-up; measure `duration` seconds."""
    opts, control, prober = engine.opts, engine.control, engine.prober
    assert control is not None
    t0 = time.monotonic()
    seen = len(control.reports)                   # server reports from before this phase
    up0 = control.reports[-1][1] if control.reports else 0
    origin: float | None = None                   # server time at the phase's start
    last_bytes, last_change = -1, t0
    limit = opts.warmup_max + opts.duration + opts.stall_after + 2
    while True:
        await asyncio.sleep(TICK)
        now = time.monotonic()
        if th.direction == "down":
            phase.points.append((now - t0, moved[0]))
        else:
            new, seen = control.reports[seen:], len(control.reports)
            if new and origin is None:
                origin = new[0][0] - (now - t0)
                phase.points.append((0.0, 0))
            phase.points += [(t - origin, up - up0) for t, up, _ in new if origin is not None]
        t, arrived = phase.points[-1] if phase.points else (now - t0, 0)
        if phase.start is not None and t >= phase.start + opts.duration:
            engine.mark_window(phase, "end")
            break
        if ended or control.ended:
            raise MeasureError(f"the test was cut off {t:.1f} s in: {(ended or [control.ended])[0]}")
        if arrived != last_bytes:
            last_bytes, last_change = arrived, now
        elif now - last_change >= opts.stall_after:
            raise MeasureError(f"no data arrived for {now - last_change:.1f} s, from {t - (now - last_change):.1f} s "
                               f"into the {th.direction}load: the link stalled")
        if now - t0 > limit:
            raise MeasureError(f"the {th.direction}load did not finish within {limit:g} s")
        if phase.start is None and phase.points:
            stable = settled(phase.points, t, opts.warmup_min)
            if stable or t >= opts.warmup_max:
                phase.start, phase.stable = t, stable
                engine.mark_window(phase, "start")
        rate = slot_rates(phase.points, t, 1)[-1][1] if phase.points and t >= SLOT else None
        engine.progress(Progress(th.direction, now - t0, opts.warmup_max + opts.duration, rate,
                                 prober.last_rtt if prober else None, phase.start is not None))
    gap, at = longest_silence(phase.points, phase.start, phase.start + opts.duration)
    if gap >= STALL_IN_WINDOW:
        raise MeasureError(f"no data arrived for {gap:.1f} s, from {at:.1f} s into the {th.direction}load: "
                           "the link stalled")
    th.mbps, th.intervals_mbps = window(phase.points, phase.start, opts.duration)
    th.seconds, th.warmup_s, th.stable = opts.duration, phase.start, phase.stable
    th.series = slot_rates(phase.points, phase.points[-1][0])
