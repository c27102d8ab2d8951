"""Zone by zone: the samples each round of Wi-Fi polls leaves (agent/compliance/wifi_coverage.ZoneTracker) and the
Yinchuan Wi-Fi rules judged from them by the compliance evaluator, on hand-made snapshots of APs, radios
and clients; where an AP lands (collectors/wifi placement). The same against the simulator and real
recordings is in test_wifi_sim.py and test_wifi_recordings.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from eduedge.agent.compliance import evaluate, load_packs
from eduedge.agent.compliance.wifi_coverage import ZoneTracker, signal_for
from eduedge.agent.config import AgentConfig
from eduedge.agent.samplestore import SampleStore
from eduedge.collectors.snmp.poller import DevicePoll, Identity
from eduedge.collectors.wifi.collector import Ap, Client, Radio, WifiSnapshot, snapshot
from eduedge.core.samples import Sample

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2024, 5, 15, 11, 0, tzinfo=TZ).timestamp()        # a Wednesday, in school hours
NIGHT = datetime(2024, 5, 15, 2, 0, tzinfo=TZ).timestamp()
RULES = load_packs(["yinchuan-2018"])


def config(**wifi: Any) -> AgentConfig:
    return AgentConfig.model_validate({
        "school": {"id": "wifi-school", "name": "W", "city": "yinchuan", "type": "primary"},
        "snmp": {"credentials": {"c": {"version": "2c", "community": {"env": "UNUSED"}}},
                 "devices": [{"name": "ac-1", "host": "127.0.0.1", "credentials": "c", "role": "wlc"},
                             {"name": "ap-dorm", "host": "127.0.0.1", "credentials": "c", "role": "ap",
                              "zone": "dorm", "room": "D101"}]},
        "standards": {"packs": ["yinchuan-2018"]},
        "wifi": {"zones": {"A101": {"type": "teaching"}, "O1": {"type": "office"}, "Hall": {"type": "public"},
                           "dorm": {"type": "dormitory"}}, **wifi}})


def ap(name: str, zone: str, clients: list[tuple[float | None, float | None]] | None = None, up: bool = True,
       util: float = 20, noise: float = -95, counted: int = 0, phy: float | None = None) -> tuple[Ap, list[Client]]:
    """An AP of controller ac-1 with one 5 GHz radio, and its clients (RSSI, SNR), each sent at 400 Mbit/s."""
    a = Ap("ac-1", name, False, status="up" if up else "down", zone=zone, zone_type=config().wifi.zones[zone].type)
    a.radios["1"] = Radio("1", status="up" if up else "down", band="5", channel=36, utilization_percent=util,
                          noise_dbm=noise, clients=counted or len(clients or []), phy_mbps=phy)
    return a, [Client(f"p-{name}-{i}", "ac-1", name, "1", "5", None, rssi, snr, 400)
               for i, (rssi, snr) in enumerate(clients or [])]


def snap(t: float, *entries: tuple[Ap, list[Client]]) -> WifiSnapshot:
    return WifiSnapshot(t, [a for a, _ in entries], [c for _, cs in entries for c in cs], {},
                        {"ac-1": {"answered": True}})


def judge(rounds: list[WifiSnapshot], rule: str = "yinchuan-2018.wifi-areas", cfg: AgentConfig | None = None,
          now: float = NOW) -> Any:
    cfg = cfg or config()
    tracker, store = ZoneTracker(cfg), SampleStore(":memory:")
    for s in rounds:
        store.add(tracker.samples(s))
    return next(f for f in evaluate(store, cfg, now, RULES) if f.rule == rule)


def minutes(n: int, make: Any, start: float = NOW) -> list[WifiSnapshot]:
    """`n` polls one minute apart, ending at `start`."""
    return [make(start - (n - k) * 60) for k in range(n)]


GOOD = [(-55, 35)] * 10            # ten clients with a video-grade signal
WEAK = [(-80, 12)] * 10


def zones(f: Any) -> dict[str, dict[str, Any]]:
    return {z["zone"]: z for z in f.evidence["zones"]}


def test_a_zone_of_weak_clients_is_not_covered_and_a_strong_one_is():
    rounds = minutes(40, lambda t: snap(t, ap("ap-a", "A101", GOOD), ap("ap-o", "O1", WEAK), ap("ap-h", "Hall", GOOD)))
    f = judge(rounds)
    z = zones(f)
    assert (z["A101"]["status"], z["O1"]["status"], z["Hall"]["status"]) == ("pass", "fail", "pass")
    assert z["O1"]["good_share_percent"] == 0 and z["O1"]["decided_by"] == "per-client signal"
    assert "-70 dBm" in z["O1"]["reason"] and f.status == "fail"        # the office zone's own threshold
    assert any(p.what.startswith("office zone O1") for p in f.problems)


def test_a_zone_with_too_few_client_minutes_is_unknown_not_covered():
    rounds = minutes(20, lambda t: snap(t, ap("ap-a", "A101", GOOD), ap("ap-o", "O1", GOOD), ap("ap-h", "Hall", GOOD)))
    f = judge(rounds)                 # 10 clients x 20 min = 200 client-minutes, fewer than 300
    assert f.status == "unknown" and {z["status"] for z in f.evidence["zones"]} == {"unknown"}
    assert "200 client-minutes" in zones(f)["A101"]["reason"]


def test_a_zone_whose_ap_is_down_part_of_the_day_fails_on_presence():
    rounds = minutes(60, lambda t: snap(t, ap("ap-a", "A101", GOOD, up=t < NOW - 5 * 60), ap("ap-o", "O1", GOOD),
                                        ap("ap-h", "Hall", GOOD)))
    z = zones(judge(rounds))["A101"]
    assert z["status"] == "fail" and z["decided_by"] == "AP presence" and z["presence_percent"] < 99


def test_night_does_not_count_and_a_zone_seen_only_at_night_is_unknown():
    day = minutes(40, lambda t: snap(t, ap("ap-a", "A101", GOOD), ap("ap-o", "O1", GOOD), ap("ap-h", "Hall", GOOD)))
    night = minutes(300, lambda t: snap(t, ap("ap-a", "A101", []), ap("ap-o", "O1", []), ap("ap-h", "Hall", [])),
                    start=NIGHT)
    assert judge(night + day).status == "pass"           # 5 empty night hours change nothing
    f = judge(night)
    assert f.status == "unknown" and zones(f)["A101"]["reason"].startswith("no AP state in school hours")


def test_radio_level_evidence_decides_where_no_client_signal_is_reported():
    counts = minutes(40, lambda t: snap(t, ap("ap-a", "A101", counted=12), ap("ap-o", "O1", counted=8),
                                        ap("ap-h", "Hall", counted=10, noise=-70)))
    f = judge(counts)
    z = zones(f)
    assert z["A101"]["status"] == "pass" and z["A101"]["decided_by"] == "radio-level evidence"
    assert "no per-client signal reported" in z["A101"]["reason"]
    # a noise floor of -70 dBm leaves a client at the public zone's -72 dBm no SNR at all
    assert z["Hall"]["status"] == "fail" and "noise floor above -92 dBm" in z["Hall"]["reason"]


def test_an_overloaded_radio_fails_its_zone_even_with_good_signal():
    rounds = minutes(40, lambda t: snap(t, ap("ap-a", "A101", GOOD, util=78), ap("ap-o", "O1", GOOD),
                                        ap("ap-h", "Hall", GOOD, util=60)))
    z = zones(judge(rounds))
    assert z["A101"]["status"] == "fail" and "over capacity (50 % utilisation" in z["A101"]["reason"]
    assert z["Hall"]["status"] == "pass"                 # 60 % is within a public zone's 70 %
    assert z["A101"]["busy_radio_percent"] == 100


def test_a_radio_with_more_clients_than_a_classroom_radio_carries_is_busy():
    crowd = [(-55, 35)] * 31
    z = zones(judge(minutes(20, lambda t: snap(t, ap("ap-a", "A101", crowd), ap("ap-o", "O1", GOOD),
                                              ap("ap-h", "Hall", GOOD)))))
    assert z["A101"]["status"] == "fail" and "30 clients" in z["A101"]["reason"]


def test_every_zone_is_required_at_a_vocational_college():
    cfg = config()
    cfg.school.type = "vocational-college"
    rounds = minutes(40, lambda t: snap(t, ap("ap-a", "A101", GOOD), ap("ap-o", "O1", GOOD), ap("ap-h", "Hall", GOOD)))
    f = judge(rounds, "yinchuan-2018.wifi-full", cfg)
    assert zones(f)["dorm"]["status"] == "unknown" and f.status == "unknown"     # the dorm's AP reported nothing
    assert "dorm" not in zones(judge(rounds))                  # ordinary schools: dormitories are not required


def test_a_client_minute_counts_at_most_max_poll_gap():
    cfg = config(max_poll_gap="2m")
    tracker = ZoneTracker(cfg)
    tracker.samples(snap(NOW - 3600, ap("ap-a", "A101", GOOD)))
    later = {s.metric: s.value for s in tracker.samples(snap(NOW, ap("ap-a", "A101", GOOD)))}
    assert later["wifi.zone_client_minutes"] == 20         # 10 clients x 2 min, not x 60 min
    assert later["wifi.zone_good_client_minutes"] == 20


def test_dormitories_and_outdoor_zones_take_the_public_signal():
    assert signal_for(config(), "dormitory") == signal_for(config(), "public")
    assert signal_for(config(), "teaching").rssi_dbm == -67


@pytest.mark.parametrize(("metric", "value", "status", "decided"), [
    ("wifi.probe_down_mbps", 120.0, "pass", "active probe"),
    ("wifi.zone_phy_median_mbps", 190.0, "fail", "negotiated PHY rate (proxy)"),
    ("wifi.zone_radio_phy_mbps", 600.0, "pass", "radios' PHY rate (proxy; the vendor reports no client rates)")])
def test_wireless_access_says_what_decided_it(metric, value, status, decided):
    store = SampleStore(":memory:")
    store.add([Sample(NOW - 600, "gateway", metric, value, "Mbit/s", {"zone": "A101"})])
    f = next(f for f in evaluate(store, config(), NOW, RULES) if f.rule == "yinchuan-2018.wifi-access")
    assert (f.status, f.evidence["decided_by"]) == (status, decided)


def test_client_phy_rates_outrank_radio_rates():
    tracker, store = ZoneTracker(config()), SampleStore(":memory:")
    store.add(tracker.samples(snap(NOW - 60, ap("ap-a", "A101", GOOD, phy=1200))))
    f = next(f for f in evaluate(store, config(), NOW, RULES) if f.rule == "yinchuan-2018.wifi-access")
    assert f.evidence["decided_by"] == "negotiated PHY rate (proxy)" and f.value == 400


# -- where an AP lands ------------------------------------------------------------------------------------

def controller_poll(*aps: tuple[str, str | None]) -> DevicePoll:
    p = DevicePoll("ac-1", "127.0.0.1:161", NOW, Identity(profile="huawei-ac"))
    for name, group in aps:
        p.samples.append(Sample(NOW, "ac-1", "wifi.radio_channel", 36, "channel", {"ap": name, "radio": "1"}))
        if group:
            p.samples.append(Sample(NOW, "ac-1", "wifi.ap_group", group, "info", {"ap": name}))
    return p


def test_aps_are_placed_by_name_glob_then_ap_group_and_unplaced_ones_are_said_so():
    cfg = config(aps=[{"ap": "ap-a*", "zone": "A101", "room": "A101"}, {"ap": "ap-x1", "zone": "teaching",
                                                                      "room": "B7", "controller": "ac-1"}])
    placed = {a.name: (a.zone, a.zone_type, a.room, a.placed_by)
              for a in snapshot([controller_poll(("ap-a3", "Hall"), ("ap-h1", "Hall"), ("ap-x1", None),
                                                 ("ap-q", "nowhere"))], cfg.wifi, cfg.snmp.devices).aps}
    assert placed["ap-a3"] == ("A101", "teaching", "A101", "wifi.aps entry 'ap-a*'")      # the entry wins
    assert placed["ap-h1"][:2] == ("Hall", "public") and "AP group" in placed["ap-h1"][3]
    assert placed["ap-x1"][:3] == ("B7", "teaching", "B7")           # a type word: its room is the zone
    assert placed["ap-q"][0] is None and placed["ap-q"][3].startswith("not placed")


def test_a_standalone_ap_that_does_not_answer_is_down_in_its_zone():
    silent = DevicePoll("ap-dorm", "127.0.0.1:161", NOW, None, errors=["ap-dorm: timeout"])
    c = config()
    (a,) = snapshot([silent], c.wifi, c.snmp.devices).aps
    assert (a.zone, a.zone_type, a.room, a.up) == ("dorm", "dormitory", "D101", False)


def test_measured_client_snr_outranks_a_high_noise_floor():
    rounds = minutes(40, lambda t: snap(t, ap("ap-a", "A101", GOOD, noise=-85), ap("ap-o", "O1", GOOD),
                                        ap("ap-h", "Hall", GOOD)))
    z = zones(judge(rounds))["A101"]
    assert z["status"] == "pass" and z["noisy_radio_percent"] == 100 and z["decided_by"] == "per-client signal"


def test_the_daemons_polls_make_rounds_when_every_wifi_device_reported_or_one_is_late():
    from eduedge.agent.compliance.wifi_coverage import WifiRounds

    def poll(device: str, t: float, zone_ap: str) -> DevicePoll:
        p = DevicePoll(device, "127.0.0.1:161", t, Identity(profile="x"))
        p.samples.append(Sample(t, device, "wifi.radio_channel", 36, "channel", {"ap": zone_ap, "radio": "1"}))
        return p

    cfg = config(aps=[{"ap": "ap-a", "zone": "A101"}])
    rounds = WifiRounds(cfg)
    assert rounds.add(DevicePoll("sw-1", "x", NOW, None)) == []             # not a Wi-Fi device
    dorm = DevicePoll("ap-dorm", "x", NOW, Identity(profile="ubiquiti-unifi-ap"))
    dorm.samples.append(Sample(NOW, "ap-dorm", "wifi.radio_channel", 6, "channel", {"radio": "ng"}))
    assert rounds.add(poll("ac-1", NOW, "ap-a")) == []                     # waits for ap-dorm
    out = {(s.tags["zone"], s.metric): s.value for s in rounds.add(dorm)}
    assert out[("A101", "wifi.zone_aps_up")] == 1 and out[("dorm", "wifi.zone_aps_up")] == 1
    assert rounds.add(poll("ac-1", NOW + 60, "ap-a")) == []
    late = {(s.tags["zone"], s.metric) for s in rounds.add(poll("ac-1", NOW + 121, "ap-a"))}
    assert ("A101", "wifi.zone_aps_up") in late and ("dorm", "wifi.zone_aps_up") not in late   # ap-dorm is late
