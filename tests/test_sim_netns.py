"""Namespace mode (root): every device in its own network namespace with real veth cabling, and the
WAN link shaped by `tc tbf`, measured by iperf3 - a real, independent peer - from the gateway namespace
to the ISP namespace.

What iperf3 reports is TCP goodput: of each 1514-byte Ethernet frame the shaper counts, 1448 bytes are
payload (MSS with timestamps), so a link shaped to R carries at most R x 1448/1514 = 0.956 R of it. The
check is that iperf3 measures that, within 5 %; the ratio to R itself is printed as well.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from eduedge.simulator.launch import control, sim_down, sim_up
from tests.test_sim import REPO, alive, client, frozen_copy, pids_of, pollers

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="namespace mode needs root (ip netns, tc)"),
              pytest.mark.skipif(shutil.which("iperf3") is None, reason="iperf3 is not installed")]
PAYLOAD_SHARE = 1448 / 1514


@pytest.fixture(scope="module")
def campus(tmp_path_factory, realdevices):
    d = tmp_path_factory.mktemp("netns")
    path = frozen_copy(REPO / "eduedge" / "simulator" / "campuses" / "campus-small.yaml", d / "campus.yaml")
    state = sim_up(path, d / "state", use_netns=True)
    pids = pids_of(d / "state", state)
    try:
        yield state
    finally:
        report = sim_down(d / "state")
        assert report.left == []
        assert [p for p in pids if alive(p)] == []
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert not any(ns in left.split() for ns in state.namespaces)
        routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
        assert state.wan_iface not in routes


def iperf3(state, reverse: bool, seconds: int = 5) -> float:
    """Goodput in Mbit/s from the gateway namespace to an iperf3 server in the ISP namespace."""
    gw, isp = state.namespaces[0], state.namespaces[1]
    host = state.speedtest.split(":")[0]
    server = subprocess.Popen(["ip", "netns", "exec", isp, "iperf3", "-s", "-1", "-B", host, "-p", "5299"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        out = subprocess.run(["ip", "netns", "exec", gw, "iperf3", "-c", host, "-p", "5299", "-t", str(seconds),
                              "-O", "1", "-J", *(["-R"] if reverse else [])],
                             capture_output=True, text=True, timeout=seconds + 30)
        result = json.loads(out.stdout)
        return result["end"]["sum_received"]["bits_per_second"] / 1e6
    finally:
        try:
            server.wait(timeout=10)              # `-1`: it exits after one test
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_shaped_wan_link_measures_its_rate_with_iperf3(campus):
    for reverse, shaped in ((True, 100.0), (False, 20.0)):      # campus-small: 100 down, 20 up
        got = iperf3(campus, reverse)
        print(f"{'download' if reverse else 'upload'}: shaped {shaped:g} Mbit/s, iperf3 {got:.2f} Mbit/s "
              f"= {got / shaped:.3f} of the line rate, {got / (shaped * PAYLOAD_SHARE):.3f} of its TCP payload rate")
        assert got == pytest.approx(shaped * PAYLOAD_SHARE, rel=0.05)


def test_a_degraded_wan_is_reshaped_and_restored(campus):
    sd = Path(campus.state_dir)
    assert control(sd, {"cmd": "fault", "fault": {"kind": "wan_degraded", "down_mbps": 40, "for": "60s"}})["ok"]
    time.sleep(0.5)
    got = iperf3(campus, True, 3)
    print(f"degraded download: shaped 40 Mbit/s, iperf3 {got:.2f} Mbit/s")
    assert got == pytest.approx(40 * PAYLOAD_SHARE, rel=0.05)
    control(sd, {"cmd": "clear", "kind": "wan_degraded"})
    time.sleep(0.5)
    assert iperf3(campus, True, 3) == pytest.approx(100 * PAYLOAD_SHARE, rel=0.05)


def test_devices_answer_snmp_arp_and_icmp_at_their_own_addresses(campus):
    from icmplib import ping

    results = asyncio.run(_poll(campus))
    assert all(r.errors == [] for r in results), [r.errors for r in results]
    for ep in campus.endpoints:
        assert ep.host.startswith("198.18.")
        assert ping(ep.host, count=1, timeout=1, privileged=True).is_alive, ep.name
    neigh = subprocess.run(["ip", "-n", campus.namespaces[0], "neigh"], capture_output=True, text=True).stdout
    core = next(e for e in campus.endpoints if e.name == "core")
    mac = asyncio.run(client(campus, "core").walk("1.0.8802.1.1.2.1.3.2"))      # lldpLocChassisId
    chassis = next(iter(mac.values())).hex(":")
    assert f"{core.host} dev lan0 lladdr {chassis}" in neigh    # ARP learned the MAC its SNMP agent reports


async def _poll(state):
    return await asyncio.gather(*(p.poll() for p in pollers(state).values()))
