"""The built-in engine against the real test server on loopback, through the simulator's WAN link relay
(simulator/wanlink.py: rate, latency and loss in user space): the figures it reports, and a clear reason
instead of a figure for every way a test goes wrong."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from eduedge.cloud.speedtest_server import SpeedtestServer
from eduedge.collectors.broadband.collector import BroadbandCollector
from eduedge.collectors.broadband.config import BroadbandConfig
from eduedge.collectors.broadband.engine import Engine, MeasureOptions
from eduedge.collectors.broadband.probe import Prober, probe_once
from eduedge.collectors.broadband.result import BroadbandResult
from eduedge.collectors.broadband.schedule import ExclusiveLock
from eduedge.simulator.wanlink import LinkParams, WanLink

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
MBPS = 125000.0
QUICK = MeasureOptions(streams=4, duration=3, warmup_max=2, idle_probes=25)


@dataclass
class Wan:
    loop: asyncio.AbstractEventLoop
    server: SpeedtestServer
    link: WanLink | None
    port: int                     # where the client connects: the relay, or the server itself

    def call(self, fn, *args) -> None:
        self.loop.call_soon_threadsafe(fn, *args)


def _bound(kind: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s


def _port_pair() -> tuple[socket.socket, socket.socket]:
    """A listening TCP socket and a UDP one on the same loopback port: the relay's address for both. The
    kernel picks the TCP port; its UDP twin may be taken (another process on the machine), then another."""
    for _ in range(20):
        tcp = _bound(socket.SOCK_STREAM)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind(("127.0.0.1", tcp.getsockname()[1]))
        except OSError:
            tcp.close()
            udp.close()
            continue
        tcp.listen(128)
        tcp.setblocking(False)
        udp.setblocking(False)
        return tcp, udp
    raise OSError("no loopback port free for both TCP and UDP in 20 tries")


@contextmanager
def wan(params: LinkParams | None = None, **server_kwargs: object) -> Iterator[Wan]:
    """The test server on loopback, behind the simulator's WAN relay when `params` are given."""
    loop = asyncio.new_event_loop()
    server = SpeedtestServer("127.0.0.1", 0, **server_kwargs)  # type: ignore[arg-type]
    loop.run_until_complete(server.start())
    link, port = None, server.port
    if params is not None:
        link = WanLink(params, ("127.0.0.1", server.port))
        tcp, udp = _port_pair()
        port = tcp.getsockname()[1]
        loop.run_until_complete(link.start(tcp, udp))
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    try:
        yield Wan(loop, server, link, port)
    finally:
        for closer in (server, link):
            if closer is not None:
                loop.call_soon_threadsafe(closer.close)
        asyncio.run_coroutine_threadsafe(_cancel_all(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        t.join(5)
        loop.close()


async def _cancel_all() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def measure(port: int, opts: MeasureOptions = QUICK, **kwargs: object) -> BroadbandResult:
    return asyncio.run(Engine("127.0.0.1", port, options=opts, **kwargs).run())  # type: ignore[arg-type]


def show(r: BroadbandResult) -> str:
    parts = [f"idle {r.idle.summary() if r.idle else None}"]
    for th in r.directions:
        loaded = th.loaded.summary() if th.loaded else None
        parts.append(f"{th.direction} {th.mbps and round(th.mbps, 2)} Mbit/s warm-up {th.warmup_s:.2f} s "
                     f"stable={th.stable} intervals {[round(v, 1) for v in th.intervals_mbps]} loaded {loaded}")
    return "\n".join(parts)


# -- what it measures ---------------------------------------------------------------------------------

def test_through_a_paced_link_it_measures_the_links_rate_in_each_direction():
    with wan(LinkParams(40 * MBPS, 8 * MBPS, 0.010)) as w:
        r = measure(w.port)
    print(show(r))
    assert r.problems == [] and r.reachable
    assert r.down is not None and r.up is not None
    assert r.down.mbps == pytest.approx(40.0, rel=0.03)         # the relay paces payload bytes: goodput = rate
    assert r.up.mbps == pytest.approx(8.0, rel=0.03)             # counted by the server, where it arrived
    assert len(r.down.intervals_mbps) == 3 and r.down.warmup_s >= 1.0
    assert r.up.measured_at == "server"
    assert r.idle is not None and r.idle.loss_percent == 0 and r.idle.median_ms >= 10.0
    assert r.down.loaded is not None and r.down.loaded.sent >= 50   # probes every 50 ms during the window
    assert r.bytes_total >= (40 + 8) * MBPS * 3


class DelayLine:
    """UDP only, precise: each datagram to the server is held `delays[i % n]` seconds (a thread timing with
    select's microsecond timeout), the answer comes straight back. A known latency, free of the event-loop
    timer granularity the asyncio relay has."""

    def __init__(self, upstream: tuple[str, int], delays: list[float]):
        self.front = _bound(socket.SOCK_DGRAM)
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.connect(upstream)
        self.port = self.front.getsockname()[1]
        self.delays = itertools.cycle(delays)
        self.client: tuple | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        due: list[tuple[float, int, bytes]] = []
        n = 0
        while not self.stop.is_set():
            wait = max(0.0, due[0][0] - time.monotonic()) if due else 0.05
            ready, _, _ = select.select([self.front, self.back], [], [], wait)
            if self.front in ready:
                data, self.client = self.front.recvfrom(4096)
                n += 1
                heapq.heappush(due, (time.monotonic() + next(self.delays), n, data))
            if self.back in ready and self.client is not None:
                self.front.sendto(self.back.recv(4096), self.client)
            while due and due[0][0] <= time.monotonic():
                self.back.send(heapq.heappop(due)[2])

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.front.close()
        self.back.close()


async def _probe(port: int, count: int, interval: float):
    p = Prober("127.0.0.1", port)
    try:
        t0 = time.monotonic()
        await p.run(interval, count)
        await asyncio.sleep(0.3)
        return p.batch(t0, time.monotonic()), p.kernel_stamps
    finally:
        p.close()


def test_a_known_added_latency_is_measured_within_a_millisecond():
    with wan() as w:
        line = DelayLine(("127.0.0.1", w.server.port), [0.020])
        try:
            batch, kernel = asyncio.run(_probe(line.port, 200, 0.01))
        finally:
            line.close()
    print(f"20 ms added: {batch.summary()} (kernel receive time stamps: {kernel})")
    assert kernel and batch.loss_percent == 0
    assert 20.0 <= batch.median_ms <= 21.0 and batch.min_ms >= 20.0


def test_jitter_follows_rfc3550_on_a_line_that_alternates_its_delay():
    with wan() as w:
        line = DelayLine(("127.0.0.1", w.server.port), [0.010, 0.012])
        try:
            batch, _ = asyncio.run(_probe(line.port, 200, 0.01))
        finally:
            line.close()
    print(f"10/12 ms alternating: {batch.summary()}")
    assert batch.jitter_ms == pytest.approx(2.0, abs=0.25)        # |D| = 2 ms every time: J converges to 2


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("iperf3") is not None,
                    reason="as root test_broadband_netns measures this through the namespace WAN's relay")
def test_one_percent_injected_loss_is_reported_as_one_percent():
    with wan(LinkParams(None, None, 0.002, 0.01)) as w:
        r = asyncio.run(probe_once("127.0.0.1", w.port, count=10000, interval=0.001))
    print(f"1 % loss injected by the relay: {r.probes.summary() if r.probes else r.error}")
    assert r.reachable and r.probes is not None
    assert r.probes.loss_percent == pytest.approx(1.0, abs=0.3)


def test_a_token_server_echoes_to_the_test_that_authenticated():
    with wan(None, tokens=frozenset({"s3cret"})) as w:
        r = measure(w.port, MeasureOptions(streams=2, duration=2, warmup_max=1, idle_probes=10, directions=("down",)),
                    token="s3cret")
    assert r.problems == [] and r.idle is not None and r.idle.loss_percent == 0 and r.down.mbps > 0


@pytest.mark.skipif(shutil.which("iperf3") is None, reason="iperf3 is not installed")
def test_iperf3_as_the_capacity_engine_with_eduedges_probes_for_latency():
    from eduedge.collectors.broadband.iperf3 import iperf3_runner

    s = _bound(socket.SOCK_STREAM)
    port = s.getsockname()[1]
    s.close()
    iperf = subprocess.Popen(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        with wan(None) as w:
            r = measure(w.port, MeasureOptions(streams=2, duration=2, warmup_max=1, idle_probes=10),
                        phase_runner=iperf3_runner("127.0.0.1", port), engine_name="iperf3")
    finally:
        iperf.terminate()
        iperf.wait(10)
    print(show(r))
    assert r.problems == [] and r.engine == "iperf3"
    assert all(t.engine == "iperf3" and t.mbps > 100 and len(t.intervals_mbps) == 2 for t in r.directions)
    assert r.idle.answered and r.down.loaded is not None and r.down.loaded.answered


# -- every way it can go wrong: a reason, never a figure ---------------------------------------------

def no_figures(r: BroadbandResult) -> bool:
    return all(t.mbps is None for t in r.directions)


def test_an_unreachable_server():
    s = _bound(socket.SOCK_STREAM)
    port = s.getsockname()[1]
    s.close()                                                     # nothing listens there now
    r = measure(port)
    assert r.error == f"cannot reach the test server 127.0.0.1:{port}: connection refused"
    assert not r.reachable and r.directions == [] and r.idle is None


def test_a_server_that_accepts_but_never_answers():
    with _bound(socket.SOCK_STREAM) as s:
        s.listen(8)
        r = measure(s.getsockname()[1], MeasureOptions(connect_timeout=0.5))
    assert r.error == "the test server did not answer the session request within 0.5 s" and r.directions == []


def test_something_that_is_not_a_test_server():
    with _bound(socket.SOCK_STREAM) as s:
        s.listen(8)

        def answer() -> None:
            c, _ = s.accept()
            c.recv(100)
            c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            c.close()

        threading.Thread(target=answer, daemon=True).start()
        r = measure(s.getsockname()[1])
    assert r.error == "the test server answered the session request with 'HTTP/1.1 400 Bad Request', not EEST/1"


def test_a_server_that_refuses():
    with wan(None, tokens=frozenset({"s3cret"})) as w:
        assert measure(w.port).error == "the test server refused the session request: unauthorised"
    with wan(None, max_tests=1) as w:
        held = socket.create_connection(("127.0.0.1", w.port))
        held.sendall(b"EEST/1 session 30\n")
        held.recv(100)
        r = measure(w.port)
        held.close()
    assert r.error == "the test server refused the session request: busy: 1 tests running (max 1); try again later"
    with wan(None, max_seconds=10) as w:
        r = measure(w.port)
    assert r.error == (f"the test server grants 10 s, the test needs {QUICK.session_seconds():g} s (shorten "
                       "broadband.duration or raise the server's --max-seconds)")
    assert r.reachable and r.directions == []


def test_a_test_cut_off_mid_way():
    with wan(LinkParams(20 * MBPS, 20 * MBPS, 0.0)) as w:
        threading.Timer(QUICK.idle_probes * 0.02 + 2.0, w.call, [w.server.close]).start()
        r = measure(w.port)
    print(r.problems)
    assert r.down is not None and r.down.mbps is None and no_figures(r)
    assert r.down.error.startswith("the test was cut off ") or r.down.error.startswith("no data arrived")
    assert r.up is not None and r.up.mbps is None and r.up.error == "not measured: the test server closed the session"


def test_a_link_that_drops_to_zero():
    with wan(LinkParams(20 * MBPS, 20 * MBPS, 0.0)) as w:
        assert w.link is not None

        def drop() -> None:
            w.link.params.down_Bps = 1.0                           # 8 bit/s: nothing gets through any more
        threading.Timer(QUICK.idle_probes * 0.02 + 2.5, drop).start()
        r = measure(w.port, MeasureOptions(streams=4, duration=3, warmup_max=2, idle_probes=25, directions=("down",)))
    print(r.problems)
    assert r.down is not None and r.down.mbps is None
    assert r.down.error.startswith("no data arrived for ") and r.down.error.endswith(" into the download: the link "
                                                                                      "stalled")


# -- the collector and the command, end to end ----------------------------------------------------------

def test_the_collector_runs_a_test_monitors_and_keeps_its_budget(tmp_path):
    from zoneinfo import ZoneInfo

    with wan(LinkParams(30 * MBPS, 10 * MBPS, 0.004)) as w:
        cfg = BroadbandConfig(server=f"127.0.0.1:{w.port}", streams=2, duration=2, warmup_max=1, idle_probes=10,
                              monitor_probes=20)
        c = BroadbandCollector(cfg, "gateway", tmp_path, ZoneInfo("Asia/Shanghai"), wan_interface="lo")
        out = c.run_test("overnight")
        first = c.tick()                                           # a counter reading, then the monitor
        holder = ExclusiveLock(tmp_path / "broadband.lock")
        assert holder.acquire()
        blocked = c.run_test("school")
        holder.release()
    values = {(s.metric, s.tags.get("direction")): s.value for s in out.samples}
    assert values[("wan.down_mbps", None)] == pytest.approx(30.0, rel=0.05)
    assert values[("wan.up_mbps", None)] == pytest.approx(10.0, rel=0.05)
    assert c.budget.used(time.time()) == values[("wan.test_bytes", None)] > 0
    assert out.events == []
    monitor = {s.metric: s for s in first.samples if s.tags.get("source") == "monitor"}
    assert monitor["wan.reachable"].value == 1 and monitor["wan.rtt_ms"].value >= 4.0
    assert [e.kind for e in blocked.events] == ["broadband.test_skipped"]
    assert "another broadband test is running on this box" in blocked.events[0].message


def eduedge(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([str(Path(sys.executable).with_name("eduedge")), *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)


def test_the_technicians_command_prints_the_result_as_json():
    with wan(LinkParams(25 * MBPS, 5 * MBPS, 0.006)) as w:
        j = eduedge("speedtest", "--server", f"eest://127.0.0.1:{w.port}", "--json", "--duration", "2",
                    "--streams", "2")
    assert j.returncode == 0, j.stderr
    doc = json.loads(j.stdout)
    assert doc["server"] == f"127.0.0.1:{w.port}" and doc["problems"] == []
    assert doc["down"]["mbps"] == pytest.approx(25.0, rel=0.05) and doc["up"]["mbps"] == pytest.approx(5.0, rel=0.05)
    assert doc["idle"]["median_ms"] >= 6.0 and doc["down"]["loaded"]["answered"] > 0


def test_the_technicians_test_is_kept_and_the_next_diag_judges_by_it(tmp_path):
    cfg = tmp_path / "agent.yaml"
    with wan(LinkParams(25 * MBPS, 5 * MBPS, 0.006)) as w:
        cfg.write_text(f"""\
school: {{id: bb-school, name: BB School, city: demo-city, type: primary}}
agent: {{data_dir: {tmp_path / "data"}}}
host: {{enabled: false}}
standards: {{packs: [hebei-2019]}}
broadband: {{server: "127.0.0.1:{w.port}", duration: 2s, warmup_max: 1s, streams: 2, idle_probes: 10}}
""", encoding="utf-8")
        test = eduedge("speedtest", "--config", str(cfg), "--json")
        text = eduedge("speedtest", "--config", str(cfg), "--direction", "up")
    assert test.returncode == 0, test.stdout + test.stderr
    measured = json.loads(test.stdout)
    assert measured["kept"].startswith(f"kept in {tmp_path / 'data'}")
    assert f"kept in {tmp_path / 'data'}" in text.stdout
    diag = eduedge("diag", "--json", "--config", str(cfg))
    egress = next(f for f in json.loads(diag.stdout)["findings"] if f["rule"] == "hebei-2019.egress")
    # the 25 Mbit/s line, as the technician's test measured it, fails the 100 Mbit/s rule
    assert egress["status"] == "fail" and egress["value"] == round(measured["down"]["mbps"], 3) < 30, egress
    assert egress["evidence"]["tests"]["windows"] == {"technician": 1}
    assert diag.returncode == 1


def test_the_command_says_why_when_there_is_nothing_to_measure():
    s = _bound(socket.SOCK_STREAM)
    port = s.getsockname()[1]
    s.close()
    r = eduedge("speedtest", "--server", f"127.0.0.1:{port}")
    assert r.returncode == 3
    assert f"no result: cannot reach the test server 127.0.0.1:{port}: connection refused" in r.stdout
    bad = eduedge("speedtest", "--server", "127.0.0.1:1", "--direction", "sideways")
    assert bad.returncode == 2 and "--direction: 'sideways' is not down, up or both" in bad.stderr
