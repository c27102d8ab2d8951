"""Against a real net-snmp snmpd on loopback: v2c, v3 authPriv, rates against the kernel's own
counters, and the clear one-line errors a technician sees for the usual mistakes."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from eduedge.collectors.snmp.client import SnmpAuth, SnmpClient
from eduedge.collectors.snmp.poller import DevicePoller, poll_many
from eduedge.collectors.snmp.profiles import load_profiles
from eduedge.collectors.snmp.report import summarise
from eduedge.core.rates import RateTracker
from eduedge.simulator.snmpd import V3User, start_snmpd
from eduedge.simulator.snmpsim import free_udp_port

pytestmark = pytest.mark.integration
EDUEDGE = str(Path(sys.executable).with_name("eduedge"))

V3_SHA = SnmpAuth(version="3", user="edgeuser", auth_proto="SHA", auth_key="authpass123",
                  priv_proto="AES", priv_key="privpass123")
V3_SHA256 = SnmpAuth(version="3", user="edge256", auth_proto="SHA256", auth_key="authpass256",
                     priv_proto="AES", priv_key="privpass256")


@pytest.fixture(scope="module")
def snmpd():
    server = start_snmpd(community="eduedge-test", users=[
        V3User("edgeuser"), V3User("edge256", "SHA-256", "authpass256", "AES", "privpass256")])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def profiles():
    return load_profiles()


def poll_once(server, auth, profiles, **kw):
    client = SnmpClient("snmpd", server.host, server.port, auth, timeout=1.0, retries=1)
    return asyncio.run(DevicePoller(client, profiles, **kw).poll())


@pytest.mark.parametrize("auth", [SnmpAuth(community="eduedge-test"), V3_SHA, V3_SHA256],
                         ids=["v2c", "v3-sha-aes", "v3-sha256-aes"])
def test_poll_finds_the_hosts_own_interfaces(snmpd, profiles, auth):
    result = poll_once(snmpd, auth, profiles)
    assert result.errors == []
    assert result.identity.profile == "linux"
    names = {s.tags.get("interface") for s in result.samples if s.metric == "if.oper_status"}
    assert names == set(psutil.net_if_stats())
    lo = [s for s in result.samples if s.metric == "if.oper_status" and s.tags.get("interface") == "lo"]
    assert lo[0].value == "up"


def _kernel_lo_rx() -> int:
    return psutil.net_io_counters(pernic=True)["lo"].bytes_recv


def _blast_loopback(nbytes: int) -> None:
    """Send `nbytes` through the loopback interface over TCP, and wait until all arrived."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    got = 0

    def sink():
        nonlocal got
        conn, _ = srv.accept()
        with conn:
            while chunk := conn.recv(1 << 20):
                got += len(chunk)

    t = threading.Thread(target=sink)
    t.start()
    with socket.create_connection(srv.getsockname()) as c:
        buf = b"\0" * (1 << 20)
        for _ in range(nbytes // len(buf)):
            c.sendall(buf)
    t.join()
    srv.close()


def test_rates_agree_with_the_kernels_counters(snmpd, profiles):
    """eduedge's rate on `lo` times the interval is the kernel's own byte delta for `lo`, within 5 %."""
    rates = RateTracker()
    client = SnmpClient("snmpd", snmpd.host, snmpd.port, SnmpAuth(community="eduedge-test"), timeout=2.0)
    poller = DevicePoller(client, profiles, rates)
    # The first poll also identifies the device and reads its static columns, so it lasts longer than the
    # steady polls whose start times frame the interval below; it only warms up.
    assert asyncio.run(poller.poll()).errors == []
    # snmpd caches interface statistics for a few seconds; let each read come from a fresh cache
    time.sleep(6)
    t1, k1 = time.monotonic(), _kernel_lo_rx()
    first = asyncio.run(poller.poll())
    assert first.errors == []
    _blast_loopback(400 << 20)
    time.sleep(6)
    second = asyncio.run(poller.poll())
    t2, k2 = time.monotonic(), _kernel_lo_rx()
    (lo_bps,) = [s.value for s in second.samples if s.metric == "if.in_bps" and s.tags["interface"] == "lo"]
    # the poller's interval is between its own two reads, which lie inside [t1, t2]
    eduedge_bytes = lo_bps / 8 * (second.time - first.time)
    kernel_bytes = k2 - k1
    assert kernel_bytes > 400 << 20
    assert abs(eduedge_bytes - kernel_bytes) / kernel_bytes < 0.05, (eduedge_bytes, kernel_bytes, t2 - t1)


def test_wrong_community_is_one_line_naming_the_device(snmpd, profiles):
    result = poll_once(snmpd, SnmpAuth(community="not-it"), profiles)
    assert result.identity is None and len(result.errors) == 1
    assert result.errors[0].startswith(f"snmpd ({snmpd.host}:{snmpd.port}):")
    assert "refuses our SNMPv2c community" in result.errors[0]


def test_v3_auth_failure_says_so(snmpd, profiles):
    bad = SnmpAuth(version="3", user="edgeuser", auth_proto="SHA", auth_key="wrong-key-1",
                   priv_proto="AES", priv_key="privpass123")
    result = poll_once(snmpd, bad, profiles)
    assert result.identity is None
    assert "SNMPv3 authentication failed for SNMPv3 user edgeuser (authPriv)" in result.errors[0]


def test_one_dead_device_does_not_hold_up_the_others(snmpd, profiles):
    # a silent device: its port is open (no ICMP unreachable to fail fast on) and nothing ever answers
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    dead_port = silent.getsockname()[1]
    live = [DevicePoller(SnmpClient(f"live{i}", snmpd.host, snmpd.port, SnmpAuth(community="eduedge-test"),
                                    timeout=1.0), profiles, deadline=10) for i in range(5)]
    dead = DevicePoller(SnmpClient("dead", "127.0.0.1", dead_port, SnmpAuth(community="x"), timeout=1.0,
                                   retries=1), profiles, deadline=10)
    t0 = time.monotonic()
    results = asyncio.run(poll_many([dead, *live], concurrency=8))
    elapsed = time.monotonic() - t0
    assert [r.ok for r in results] == [False, True, True, True, True, True]
    assert results[0].errors[0].startswith(f"dead (127.0.0.1:{dead_port})")
    # the dead device costs its own timeout x tries (2 s), not the others': they are done before it gives up
    assert results[0].duration_s >= 2.0
    assert max(r.duration_s for r in results[1:]) < results[0].duration_s, [r.duration_s for r in results]
    assert elapsed < results[0].duration_s + 3
    silent.close()


def test_a_deadline_keeps_what_was_read_and_says_so(snmpd, profiles):
    client = SnmpClient("slowpoke", snmpd.host, snmpd.port, SnmpAuth(community="eduedge-test"), timeout=1.0,
                        rate_limit_rps=20)
    result = asyncio.run(DevicePoller(client, profiles, deadline=0.4).poll())
    assert not result.complete
    assert any("poll deadline of 0.4s reached" in e for e in result.errors)


def test_cli_poll_json_reports_interfaces(snmpd):
    run = subprocess.run([EDUEDGE, "poll", snmpd.address, "--community", "eduedge-test", "--json",
                          "--rate-interval", "1"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["profile"] and out["identity"]["sys_object_id"].startswith("1.3.6.1.4.1.8072")
    lo = next(i for i in out["interfaces"] if i["name"] == "lo")
    assert lo["oper_status"] == "up" and "speed_mbps" in lo and "in_bps" in lo


def test_cli_v3_with_key_files(snmpd, tmp_path):
    (tmp_path / "auth").write_text("authpass256\n")
    (tmp_path / "priv").write_text("privpass256\n")
    run = subprocess.run([EDUEDGE, "walk", snmpd.address, "--user", "edge256", "--auth-proto", "SHA256",
                          "--auth-key-file", str(tmp_path / "auth"), "--priv-proto", "AES",
                          "--priv-key-file", str(tmp_path / "priv"), "--oid", "1.3.6.1.2.1.1.5"],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("1.3.6.1.2.1.1.5.0 = ")


def test_cli_unreachable_host_is_one_line_and_exit_1():
    port = free_udp_port()
    run = subprocess.run([EDUEDGE, "poll", f"127.0.0.1:{port}", "--timeout", "0.3", "--retries", "0"],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "no answer" in lines[0]


def test_summary_lists_interfaces_in_index_order(snmpd, profiles):
    summary = summarise(poll_once(snmpd, SnmpAuth(community="eduedge-test"), profiles))
    idx = [i["index"] for i in summary["interfaces"]]
    assert idx == sorted(idx) and idx[0] == 1


def test_cli_poll_by_configured_device_name(snmpd, tmp_path):
    cfg = tmp_path / "eduedge.yaml"
    cfg.write_text(f"""\
school: {{id: lab-school, name: Lab, city: testcity, type: primary}}
snmp:
  credentials:
    lab: {{version: 2c, community: {{env: EDUEDGE_TEST_COMMUNITY}}}}
  devices:
    - {{name: lab-sw, host: "{snmpd.address}", credentials: lab}}
""")
    env = {**os.environ, "EDUEDGE_TEST_COMMUNITY": "eduedge-test"}
    run = subprocess.run([EDUEDGE, "poll", "lab-sw", "--config", str(cfg), "--json", "--rate-interval", "0"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["interfaces"]
    env.pop("EDUEDGE_TEST_COMMUNITY")
    missing = subprocess.run([EDUEDGE, "poll", "lab-sw", "--config", str(cfg)], capture_output=True, text=True,
                             timeout=60, env=env)
    assert missing.returncode == 2
    assert "credentials lab: community: environment variable EDUEDGE_TEST_COMMUNITY is not set" in missing.stderr
