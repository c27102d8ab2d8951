"""The broadband collector's arithmetic and bookkeeping, without a network: jitter, the ramp-up rule,
the port ceiling, samples and events (and that the compliance rules read them), the schedule, the byte
budget, the lock, and the WAN utilisation with its saturation events."""

from __future__ import annotations

import random
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from eduedge.agent.cli.speedtest import describe, exit_code
from eduedge.agent.compliance import evaluate
from eduedge.agent.config import AgentConfig
from eduedge.agent.samplestore import SampleStore
from eduedge.collectors.broadband.collector import BroadbandCollector, Utilisation, result_events, result_samples
from eduedge.collectors.broadband.config import BroadbandConfig, BroadbandWindow
from eduedge.collectors.broadband.engine import MeasureOptions, settled, slot_rates, window
from eduedge.collectors.broadband.iperf3 import parse_iperf3
from eduedge.collectors.broadband.probe import parse_server
from eduedge.collectors.broadband.result import BroadbandResult, PortInfo, Probes, Throughput, rfc3550_jitter
from eduedge.collectors.broadband.schedule import Budget, DailyPlan, ExclusiveLock
from eduedge.collectors.snmp.profiles import load_canonical
from eduedge.core.rates import RateTracker
from eduedge.core.samples import Sample

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2024, 5, 15, 10, 0, tzinfo=TZ).timestamp()          # a Wednesday, in school hours


# -- jitter, latency, the ceiling -------------------------------------------------------------------

def test_jitter_is_rfc3550_over_send_and_arrival_times_whatever_the_clock_offset():
    rng = random.Random(7)
    sends = [i * 0.02 for i in range(300)]
    rtts = [20 + rng.uniform(0, 4) for _ in sends]
    offset = 12345.678                              # the far end's clock: it never enters an echo's RTT
    arrivals = [s + r / 1000 + offset for s, r in zip(sends, rtts, strict=True)]
    j = 0.0
    for i in range(1, len(sends)):                  # RFC 3550 A.8, with times in ms
        d = (arrivals[i] - arrivals[i - 1] - (sends[i] - sends[i - 1])) * 1000
        j += (abs(d) - j) / 16
    assert rfc3550_jitter(rtts) == pytest.approx(j, abs=1e-6)
    assert 1.0 < j < 1.8                            # |D| of two uniform(0, 4) draws averages 4/3 ms


def test_an_unanswered_probe_is_loss_not_a_latency():
    p = Probes([20.0, None, 22.0, 21.0])
    assert (p.sent, p.loss_percent, p.median_ms, p.min_ms) == (4, 25.0, 21.0, 20.0)
    assert Probes([None, None]).median_ms is None and Probes([None, None]).jitter_ms is None


@pytest.mark.parametrize(("port", "ceiling"), [
    (PortInfo("eth0", 100, 1500), 94.15), (PortInfo("eth0", 1000, 1500), 941.48),
    (PortInfo("eth0", 10000, 1500), 9414.82), (PortInfo("ppp0", 1000, 1492), 941.18),
    (PortInfo("eth0", 1000, 1500, ipv6=True), 928.48), (PortInfo("eth0", 1000, 9000), 990.04)])
def test_the_port_ceiling_is_tcp_goodput_at_line_rate(port, ceiling):
    # PPPoE here counts only the smaller MTU; the research table's 936.28 adds the 8-byte PPPoE header on the wire
    assert port.ceiling_mbps == pytest.approx(ceiling, abs=0.01)


def test_a_result_at_the_ceiling_is_port_limited_and_one_below_it_is_not():
    p = PortInfo("eth0", 100, 1500)
    assert p.limits(93.8) and not p.limits(85.0) and not p.limits(None)
    assert not PortInfo("veth", None, 1500).limits(93.8)         # no speed known: no claim


def test_servers_are_written_as_host_port_or_eest_urls():
    assert parse_server("198.19.100.2") == ("198.19.100.2", 5201)
    assert parse_server("eest://198.19.100.2:5301/") == ("198.19.100.2", 5301)
    with pytest.raises(ValueError):
        parse_server("http://x:y:z")


# -- the ramp-up and the window ---------------------------------------------------------------------

def ramp_then_flat(rate_bps: float, ramp_s: float, total_s: float, tick: float = 0.1) -> list[tuple[float, int]]:
    """Snapshots of a flow that ramps linearly to `rate_bps` over `ramp_s`, then stays there."""
    out, got, t = [(0.0, 0)], 0.0, 0.0
    while t < total_s - 1e-9:
        t = round(t + tick, 6)
        rate = rate_bps * min(1.0, t / ramp_s)
        got += rate / 8 * tick
        out.append((t, int(got)))
    return out


def test_the_window_starts_once_four_slots_agree_and_excludes_the_ramp():
    points = ramp_then_flat(100e6, 1.5, 8.0)
    start = next(t for t, _ in points if settled(points, t, 1.0))
    assert 2.0 <= start <= 2.6                    # the slots after the ramp ends at 1.5 s, plus four of them
    mbps, subs = window(points, start, 5.0)
    assert mbps == pytest.approx(100.0, rel=0.002) and len(subs) == 5
    assert all(s == pytest.approx(100.0, rel=0.01) for s in subs)
    whole = points[-1][1] * 8 / points[-1][0] / 1e6
    assert whole < 92                             # what averaging over the ramp-up would have said


def test_a_flow_that_never_settles_is_not_settled():
    points = [(0.0, 0)]
    for k in range(1, 60):                        # alternating 50 and 150 Mbit/s per 250 ms
        points.append((k * 0.25, points[-1][1] + int((50e6 if k % 2 else 150e6) / 8 * 0.25)))
    assert not any(settled(points, t, 1.0) for t, _ in points)
    assert [round(r) for _, r in slot_rates(points, 1.0)] == [50, 150, 50, 150]


def test_the_session_asks_for_every_phase_with_margins():
    o = MeasureOptions(duration=10, warmup_max=4, idle_probes=50)
    assert o.session_seconds() == pytest.approx(50 * 0.02 + 1 + 2 * (4 + 10 + 3 + 0.5) + 3)
    assert o.session_seconds() <= 60             # the server's default --max-seconds


def test_iperf3_json_becomes_a_throughput_with_its_omitted_seconds_left_out():
    iv = [{"sum": {"end": t, "bits_per_second": bps, "bytes": int(bps / 8), "omitted": t <= 2}}
          for t, bps in ((1, 50e6), (2, 90e6), (3, 94e6), (4, 95e6))]
    doc = {"intervals": iv, "end": {"sum_received": {"bits_per_second": 94.5e6, "seconds": 2.0}}}
    th = parse_iperf3(doc, "down", 4, 2)
    assert (th.mbps, th.intervals_mbps, th.warmup_s, th.error) == (94.5, [94.0, 95.0], 2.0, None)
    failed = parse_iperf3({"error": "unable to connect to server: Connection refused"}, "up", 4, 2)
    assert failed.mbps is None and failed.error == "iperf3: unable to connect to server: Connection refused"


# -- samples, events, and the rules that read them ----------------------------------------------------

def result(down: float | None = 93.9, up: float | None = 19.2, port: PortInfo | None = None,
           idle: list[float | None] | None = None, t: float = NOW) -> BroadbandResult:
    def th(d: str, mbps: float | None) -> Throughput:
        return Throughput(d, "builtin", 8, mbps=mbps, error=None if mbps else "no data arrived for 3 s",  # type: ignore[arg-type]
                          seconds=10, warmup_s=1.2, intervals_mbps=[mbps] * 10 if mbps else [],
                          loaded=Probes([45.0, 47.0, None]), cross_mbps=1.5, bytes_total=10**8)
    return BroadbandResult(t, "city:5201", "builtin", True, None,
                           Probes(idle if idle is not None else [20.0, 21.0, 20.5, None]),
                           th("down", down), th("up", up), port or PortInfo("eth1", 1000, 1500))


def test_every_sample_is_a_canonical_metric_with_its_unit():
    canonical = load_canonical()
    samples = result_samples(result(), "gateway", "school")
    names = {s.metric for s in samples}
    assert {"wan.down_mbps", "wan.up_mbps", "wan.rtt_ms", "wan.jitter_ms", "wan.loss_percent", "wan.reachable",
            "wan.rtt_loaded_ms", "wan.loss_loaded_percent", "wan.cross_traffic_mbps", "wan.port_ceiling_mbps",
            "wan.down_interval_mbps", "wan.up_interval_mbps", "wan.test_bytes"} == names
    for s in samples:
        assert canonical.get(s.metric) == s.unit, f"{s.metric} ({s.unit}) is not canonical with that unit"
    down = next(s for s in samples if s.metric == "wan.down_mbps")
    assert down.tags == {"method": "tcp", "engine": "builtin", "window": "school"} and down.value == 93.9
    loaded = sorted((s.tags["direction"], s.value) for s in samples if s.metric == "wan.rtt_loaded_ms")
    assert loaded == [("down", 46.0), ("up", 46.0)]
    assert next(s.value for s in samples if s.metric == "wan.loss_percent") == 25.0


def test_a_failed_direction_has_no_figure_and_an_event_says_why():
    r = result(up=None)
    metrics = [s.metric for s in result_samples(r, "gateway")]
    assert "wan.down_mbps" in metrics and "wan.up_mbps" not in metrics and "wan.up_interval_mbps" not in metrics
    [e] = result_events(r, "gateway", "overnight")
    assert (e.kind, e.severity) == ("broadband.test_failed", "warning")
    assert e.message == "broadband test (overnight): upload: no data arrived for 3 s"


def test_an_unreachable_server_is_a_zero_for_reachability_and_nothing_else():
    r = BroadbandResult(NOW, "city:5201", "builtin", reachable=False,
                        error="cannot reach the test server city:5201: connection refused")
    assert [(s.metric, s.value) for s in result_samples(r, "gateway") if s.metric != "wan.test_bytes"] == \
        [("wan.reachable", 0)]


def test_a_result_at_the_port_ceiling_says_port_limited():
    r = result(down=94.0, up=19.0, port=PortInfo("eth1", 100, 1500))
    events = result_events(r, "gateway")
    assert [e.kind for e in events] == ["broadband.port_limited"]
    assert "the ceiling of the gateway's WAN port eth1 (100 Mbit/s carries at most 94.15)" in events[0].message


def cfg(packs: list[str]) -> AgentConfig:
    school = {"id": "test-school", "name": "S", "city": "test-city", "type": "primary"}
    return AgentConfig.model_validate({"school": school, "standards": {"packs": packs}})


def judged(samples: list[Sample], rule: str, packs: list[str]) -> dict:
    st = SampleStore(":memory:")
    st.add(samples)
    return next(f for f in evaluate(st, cfg(packs), NOW + 60) if f.rule == rule).to_dict()


def wan_port(mbps: float) -> Sample:
    return Sample(NOW, "gateway", "host.if_speed_mbps", mbps, "Mbit/s", {"interface": "eth1", "role": "wan"})


def test_hebei_egress_reads_the_download_results():
    tests = [s for i in range(5) for s in result_samples(result(down=92.0 + i, t=NOW - i * 3600), "gateway")]
    assert judged([*tests, wan_port(1000)], "hebei-2019.egress", ["hebei-2019"])["status"] == "pass"
    slow = [s for i in range(5) for s in result_samples(result(down=60.0, t=NOW - i * 3600), "gateway")]
    f = judged([*slow, wan_port(1000)], "hebei-2019.egress", ["hebei-2019"])
    assert f["status"] == "fail" and f["value"] == 60.0
    assert judged([*tests, wan_port(100)], "hebei-2019.egress", ["hebei-2019"])["status"] == "port-limited"


def test_moe_fast_stable_reads_reachability_loss_and_latency_under_load_from_the_monitor_and_tests():
    samples = [wan_port(1000)]
    for i in range(40):                           # a school morning of monitor probes and a few tests
        t = NOW - i * 60
        samples += [Sample(t, "gateway", "wan.reachable", 1, "bool", {"source": "monitor"}),
                    Sample(t, "gateway", "wan.loss_percent", 0.0, "percent", {"source": "monitor"}),
                    Sample(t, "gateway", "wan.rtt_ms", 20.0, "ms", {"source": "monitor"})]
    for i in range(3):
        samples += result_samples(result(down=95.0, idle=[20.0, 20.0], t=NOW - i * 600), "gateway")
    f = judged(samples, "moe-2019.fast-stable", ["moe-2019"])
    parts = {p["rule"].rsplit(".", 1)[-1]: p for p in f["evidence"]["parts"]}
    assert {k: p["status"] for k, p in parts.items()} == {"egress": "pass", "availability": "pass", "loss": "pass",
                                                            "latency-under-load": "pass"}
    assert parts["latency-under-load"]["value"] == pytest.approx(46.0 / 20.0)


def test_the_technician_reads_rates_latency_jitter_loss_and_the_ceiling():
    r = result(down=94.0, up=19.2, port=PortInfo("eth1", 100, 1500))
    assert describe(r) == [
        "broadband test against city:5201 (builtin engine)",
        "  download      94.0 Mbit/s  PORT-LIMITED  (8 streams, 10.0 s, ramp-up 1.2 s excluded; 1 s intervals "
        "94.0-94.0)",
        "  upload        19.2 Mbit/s  (8 streams, 10.0 s, ramp-up 1.2 s excluded; 1 s intervals 19.2-19.2)",
        "  latency   20.5 ms idle (min 20.0), 46.0 ms during download, 46.0 ms during upload",
        "  jitter    0.09 ms (RFC 3550, idle)",
        "  loss      25.0 % idle (4 probes), 33.3 % during download, 33.3 % during upload",
        "  other traffic on the WAN port: 1.5 Mbit/s during download, 1.5 Mbit/s during upload",
        "  ceiling   eth1 at 100 Mbit/s, MTU 1500: TCP carries at most 94.15 Mbit/s",
        "            download reached it: the port, not the line, is the limit"]
    assert exit_code(r) == 0
    assert exit_code(result(up=None)) == 1
    unreachable = BroadbandResult(NOW, "city:5201", "builtin", error="cannot reach the test server city:5201: "
                                  "connection refused")
    assert describe(unreachable)[1] == "  no result: cannot reach the test server city:5201: connection refused"
    assert exit_code(unreachable) == 3


# -- the schedule, the budget, the lock -------------------------------------------------------------

WINDOWS = [BroadbandWindow(name="school", days=["mon", "tue", "wed", "thu", "fri"], start="08:00", end="17:00",
                           tests=4),
           BroadbandWindow(name="overnight", start="00:00", end="06:00", tests=2)]


def local(t: float) -> datetime:
    return datetime.fromtimestamp(t, TZ)


def test_tests_fall_at_random_times_inside_their_windows_and_only_on_their_days():
    plan = DailyPlan(WINDOWS, TZ, random.Random(3))
    wednesday = plan.times_for(date(2024, 5, 15))
    saturday = plan.times_for(date(2024, 5, 18))
    assert len(wednesday) == 6 and len(saturday) == 2
    for t in wednesday:
        h = local(t).strftime("%H:%M")
        assert "00:00" <= h < "06:00" or "08:00" <= h < "17:00"
    assert all(local(t).strftime("%H:%M") < "06:00" for t in saturday)
    assert plan.times_for(date(2024, 5, 15)) != wednesday              # drawn afresh, not a fixed slot


def test_a_plan_drawn_late_skips_the_past_and_folds_missed_starts_into_one():
    plan = DailyPlan(WINDOWS, TZ, random.Random(5))
    noon = datetime(2024, 5, 15, 12, 0, tzinfo=TZ).timestamp()
    first = plan.next_at(noon)
    assert first is not None and first[0] >= noon and first[1] == "school"
    assert plan.due(noon) is None
    evening = datetime(2024, 5, 15, 18, 0, tzinfo=TZ).timestamp()
    assert plan.due(evening) == "school"                                # several were missed: one test
    assert plan.due(evening + 1) is None and plan.next_at(evening) is None
    midnight = datetime(2024, 5, 16, 0, 0, 10, tzinfo=TZ).timestamp()
    assert plan.due(midnight) is None and plan.next_at(midnight)[1] == "overnight"   # a new day, a new plan
    assert plan.due(datetime(2024, 5, 16, 6, 0, tzinfo=TZ).timestamp()) == "overnight"
    late = DailyPlan(WINDOWS, TZ, random.Random(5))                     # an agent that was down overnight
    assert late.due(datetime(2024, 5, 16, 7, 0, tzinfo=TZ).timestamp()) is None


def test_the_budget_survives_a_restart_and_starts_again_each_day(tmp_path):
    b = Budget(tmp_path / "budget.json", 10**9, TZ)
    b.add(NOW, 700_000_000)
    again = Budget(tmp_path / "budget.json", 10**9, TZ)
    assert again.used(NOW) == 700_000_000
    assert again.refuses(NOW, 200_000_000) is None
    assert again.refuses(NOW, 400_000_000) == ("the daily budget is spent: 0.70 of 1.00 GB used today, a test needs "
                                               "about 0.40 GB (broadband.daily_budget)")
    assert again.used(NOW + 86400) == 0


def test_only_one_test_holds_the_lock(tmp_path):
    a, b = ExclusiveLock(tmp_path / "bb.lock"), ExclusiveLock(tmp_path / "bb.lock")
    with a as got:
        assert got and not b.acquire() and b.busy() and a.busy()
    assert not b.busy() and b.acquire()
    b.release()


# -- utilisation and saturation --------------------------------------------------------------------------

def feed(u: Utilisation, mbps_down: list[float], step: float = 5.0, testing: bool = False, start: float = 0.0,
         rx0: int = 0) -> tuple[list, int]:
    events, rx = [], rx0
    for i, m in enumerate(mbps_down):
        rx += int(m * 1e6 / 8 * step)
        r = u.add(start + (i + 1) * step, NOW + start + (i + 1) * step, rx, 0, testing)
        if r is not None:
            events += u.saturation(r, {"down": 100.0, "up": 20.0})
    return events, rx


def test_traffic_is_reported_as_mean_peak_and_saturated_seconds():
    u = Utilisation("eth1", "gateway", RateTracker())
    u.add(0.0, NOW, 0, 0, False)
    feed(u, [10, 20, 95, 30])
    samples = {(s.metric, s.tags.get("direction")): s.value for s in u.report(NOW + 60, {"down": 100.0, "up": 20.0})}
    assert samples[("wan.traffic_down_mbps", None)] == pytest.approx(38.75)
    assert samples[("wan.traffic_down_peak_mbps", None)] == pytest.approx(95.0)
    assert samples[("wan.saturated_s", "down")] == 5.0 and samples[("wan.saturated_s", "up")] == 0.0


def test_a_counter_that_starts_again_is_no_reading_never_a_spike():
    u = Utilisation("eth1", "gateway", RateTracker())
    u.add(0.0, NOW, 10**12, 0, False)
    assert u.add(5.0, NOW + 5, 1000, 0, False) is None           # a PPPoE redial zeroed the counters
    assert u.add(10.0, NOW + 10, 1000 + 62_500_000, 0, False).down_mbps == pytest.approx(100.0)


def test_sustained_saturation_is_announced_once_and_its_end_too():
    u = Utilisation("eth1", "gateway", RateTracker(), saturation_percent=90, saturation_after=300)
    u.add(0.0, NOW, 0, 0, False)
    events, rx = feed(u, [95.0] * 59)                          # 295 s: not yet
    assert events == []
    more, rx = feed(u, [96.0] * 10, start=295.0, rx0=rx)
    assert [e.kind for e in more] == ["broadband.saturated"]
    assert more[0].message == "the WAN link has been saturated downstream for 5 min: 96.0 of 100.0 Mbit/s"
    end, _ = feed(u, [40.0], start=345.0, rx0=rx)
    assert [e.kind for e in end] == ["broadband.saturation_ended"]


def test_readings_during_a_test_are_not_the_schools_traffic():
    u = Utilisation("eth1", "gateway", RateTracker(), saturation_after=10)
    u.add(0.0, NOW, 0, 0, False)
    events, _ = feed(u, [98.0] * 20, testing=True)
    assert events == [] and u.recent(100.0) is None
    assert u.report(NOW + 200, {"down": 100.0, "up": 20.0}) == []


def test_a_busy_link_skips_the_test_and_says_why(tmp_path):
    c = BroadbandCollector(BroadbandConfig(server="127.0.0.1:5201", capacity_down_mbps=100, capacity_up_mbps=20,
                                           busy_percent=20), "gateway", tmp_path, TZ, wan_interface="lo")
    assert c.utilisation is not None
    c.utilisation.add(0.0, NOW, 0, 0, False)
    feed(c.utilisation, [35.0] * 12)
    assert c.skip_reason(NOW, 60.0) == ("the link is busy with the school's own traffic: 35.0 Mbit/s downstream over "
                                        "the last minute, 35 % of 100.0 Mbit/s (broadband.busy_percent is 20)")
    c.budget.add(NOW, 4 * 10**9)
    assert c.skip_reason(NOW, 60.0).startswith("the daily budget is spent: 4.00 of 4.00 GB used today")


def test_a_skipped_test_is_an_event_with_its_window(tmp_path):
    c = BroadbandCollector(BroadbandConfig(server="127.0.0.1:5201", daily_budget=1000), "gateway", tmp_path, TZ,
                           wan_interface="lo")
    c.budget.add(NOW, 1000)
    c.plan.pending = [(NOW - 5, "school")]
    c.plan.day = local(NOW).date()
    out = c.run_due(NOW)
    assert out.samples == [] and [e.kind for e in out.events] == ["broadband.test_skipped"]
    assert out.events[0].details["window"] == "school"
    assert Path(tmp_path / "broadband-budget.json").exists()
