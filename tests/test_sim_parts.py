"""The simulator's parts on their own: the SNMP codec against net-snmp's tools, campus validation with
file and line, the school day's traffic integral, PJLink, the WAN test server and the WAN link relay."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from eduedge.simulator.ber import COUNTER64, GET, GETBULK, GETNEXT, decode_response, encode_request, encode_value
from eduedge.simulator.campus import EXAMPLE, CampusError, Day, load_campus, parse_campus
from eduedge.simulator.mib import Mib
from eduedge.simulator.schoolday import SchoolDay, SimClock
from eduedge.simulator.snmpserver import AgentStats, DeviceAgent, udp_socket
from eduedge.simulator.world import World

REPO = Path(__file__).resolve().parents[1]
NET_SNMP = shutil.which("snmpbulkwalk") is not None


# -- the codec --------------------------------------------------------------------------------------

class _Frozen:
    """Just enough of a World for DeviceAgent: never down, no faults."""

    class faults:
        @staticmethod
        def loss(name, now):
            return 0.0

        @staticmethod
        def delay(name, now):
            return 0.0

    @staticmethod
    def is_down(name, now):
        return False


def _mib() -> Mib:
    values = {(1, 3, 6, 1, 2, 1, 1, 1, 0): encode_value(0x04, b"Edge test switch"),
              (1, 3, 6, 1, 2, 1, 1, 3, 0): lambda now: encode_value(0x43, 4200),
              (1, 3, 6, 1, 2, 1, 1, 5, 0): encode_value(0x04, "sw-é".encode())}
    for i in range(1, 121):
        values[(1, 3, 6, 1, 2, 1, 2, 2, 1, 10, i)] = encode_value(0x41, 4294967295 - i)
        values[(1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, i)] = encode_value(COUNTER64, 2**63 + i)
        values[(1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 15, i)] = encode_value(0x42, 1000)
    values[(1, 3, 6, 1, 4, 1, 9, 9, 1, 0)] = encode_value(0x02, -42)
    values[(1, 3, 6, 1, 4, 1, 9, 9, 2, 0)] = encode_value(0x06, (1, 3, 6, 1, 4, 1, 2011, 2, 23, 291))
    values[(1, 3, 6, 1, 4, 1, 9, 9, 3, 0)] = encode_value(0x40, "198.18.0.1")
    return Mib(values)


@pytest.fixture(scope="module")
def agent():
    """A DeviceAgent on a loopback port, in its own thread's event loop."""
    loop = asyncio.new_event_loop()
    sock = udp_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    stats = AgentStats()

    async def start():
        await loop.create_datagram_endpoint(lambda: DeviceAgent(_Frozen, "t", _mib(), b"public", stats), sock=sock)

    loop.run_until_complete(start())
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    yield port, stats
    loop.call_soon_threadsafe(loop.stop)
    t.join(5)


def _ask(port: int, payload: bytes, timeout: float = 1.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(payload, ("127.0.0.1", port))
        try:
            return s.recv(65535)
        except TimeoutError:
            return None


def _net_snmp(*args: str, tmp: Path) -> str:
    env = dict(os.environ, MIBS="", SNMP_PERSISTENT_DIR=str(tmp), SNMPCONFPATH=str(tmp))
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=20).stdout


@pytest.mark.skipif(not NET_SNMP, reason="net-snmp command-line tools are not installed")
def test_net_snmp_tools_walk_the_simulated_agent(agent, tmp_path):
    port, _ = agent
    target = f"127.0.0.1:{port}"
    bulk = _net_snmp("snmpbulkwalk", "-v2c", "-c", "public", "-On", "-Cr25", target, "1.3.6.1.2.1", tmp=tmp_path)
    lines = bulk.strip().splitlines()
    assert len(lines) == 3 + 120 * 3
    assert ".1.3.6.1.2.1.31.1.1.1.6.7 = Counter64: 9223372036854775815" in lines
    assert ".1.3.6.1.2.1.2.2.1.10.1 = Counter32: 4294967294" in lines
    name = next(line for line in lines if line.startswith(".1.3.6.1.2.1.1.5.0 = "))
    assert "73 77 2D C3 A9" in name or "sw-é" in name          # UTF-8 bytes as sent
    # SNMPv1 has no Counter64: a v1 walk steps over them, as net-snmp's own agent does
    v1 = _net_snmp("snmpwalk", "-v1", "-c", "public", "-On", target, "1.3.6.1.2.1", tmp=tmp_path)
    assert len(v1.strip().splitlines()) == 3 + 120 * 2 and "Counter64" not in v1
    got = _net_snmp("snmpget", "-v2c", "-c", "public", "-On", target, "1.3.6.1.4.1.9.9.1.0", "1.3.6.1.4.1.9.9.2.0",
                    "1.3.6.1.4.1.9.9.3.0", "1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.5.1", "1.3.6.1.2.1.99.1.0",
                    tmp=tmp_path)
    assert "INTEGER: -42" in got and "OID: .1.3.6.1.4.1.2011.2.23.291" in got and "IpAddress: 198.18.0.1" in got
    assert "Timeticks: (4200)" in got
    assert ".1.3.6.1.2.1.1.5.1 = No Such Instance" in got and ".1.3.6.1.2.1.99.1.0 = No Such Object" in got


def test_getbulk_is_row_by_row_and_stops_at_the_end(agent):
    port, _ = agent
    cols = [(1, 3, 6, 1, 2, 1, 2, 2, 1, 10), (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 15)]
    _, status, _, vbs = decode_response(_ask(port, encode_request(1, b"public", GETBULK, 9, cols, 0, 3)))
    assert status == 0
    assert [v[0][-2:] for v in vbs] == [(10, 1), (15, 1), (10, 2), (15, 2), (10, 3), (15, 3)]
    end = [(1, 3, 6, 1, 4, 1, 9, 9, 3, 0)]
    _, _, _, vbs = decode_response(_ask(port, encode_request(1, b"public", GETBULK, 10, end, 0, 5)))
    assert [v[1] for v in vbs] == [0x82]                    # endOfMibView, once, not padded


def test_wrong_community_and_garbage_get_no_answer(agent):
    port, stats = agent
    before = stats.malformed
    assert _ask(port, encode_request(1, b"private", GET, 1, [(1, 3, 6, 1, 2, 1, 1, 5, 0)]), 0.3) is None
    assert _ask(port, b"\x30\x03\x02\x01", 0.3) is None
    assert _ask(port, encode_request(3, b"public", GET, 1, [(1, 3, 6, 1, 2, 1, 1, 5, 0)]), 0.3) is None  # v3
    assert stats.malformed == before + 2
    last = [(1, 3, 6, 1, 4, 1, 9, 9, 3, 0)]
    _, status, index, _ = decode_response(_ask(port, encode_request(0, b"public", GETNEXT, 2, last)))
    assert (status, index) == (2, 1)                        # v1 end of MIB: noSuchName


# -- campus files -----------------------------------------------------------------------------------

def test_shipped_campus_files_are_valid(realdevices):
    for name in ("campus-demo.yaml", "campus-small.yaml", "campus-large.yaml"):
        campus = load_campus(REPO / "eduedge" / "simulator" / "campuses" / name)
        World(campus, time.time())                         # ports exist in the recordings, speeds fit


def test_the_backbone_roles_fit_each_shipped_campus():
    from eduedge.simulator.agentconfig import backbone_roles, packs_for

    campuses = REPO / "eduedge" / "simulator" / "campuses"
    roles = {n: backbone_roles(load_campus(campuses / f"campus-{n}.yaml")) for n in ("demo", "small", "large")}
    # two tiers: access switches on the core; three tiers: distribution under the core
    assert roles == {"demo": ["core", "access"], "small": ["core", "access"], "large": ["core", "distribution"]}
    assert packs_for("kindergarten") == ["yinchuan-2018", "moe-2019", "live-class"]     # Hebei's rule is not theirs


def test_campus_errors_name_file_line_and_field(tmp_path, realdevices):
    text = EXAMPLE.replace("port_count: 8", "port_count: 6").replace("count: 2", "count: 9")
    text += "faults: [{kind: reboot, device: nosuch}, {kind: slow, device: core}]\n"
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(CampusError) as e:
        load_campus(path)
    problems = "\n".join(e.value.problems)
    assert f"{path}:14: faults[1]: Value error, a slow fault needs `delay`" in problems
    path.write_text(text.replace(", {kind: slow, device: core}", ""))
    with pytest.raises(CampusError) as e:
        load_campus(path)
    problems = e.value.problems
    assert f"{path}:9: switches[0].ports: port 8 is beyond port_count 6" in problems
    assert any(p.startswith(f"{path}:12: wireless.aps[7].uplink: no free classroom port") for p in problems)
    assert f"{path}:14: faults[0].device: no device named 'nosuch' in this campus" in problems


def test_speed_mismatch_and_unknown_recording(realdevices):
    bad = EXAMPLE.replace("model: tplink_sg2008", "model: tplink_nosuch")
    with pytest.raises(CampusError, match=r"no recording tplink_nosuch\.snmprec"):
        parse_campus(bad)
    fast = EXAMPLE.replace("{ports: 8, use: uplink}", "{ports: 8, use: uplink, speed_mbps: 10000}")
    with pytest.raises(ValueError, match=r"port 8 \(port 8: Gigabit Copper\) cannot run at 10000"):
        World(parse_campus(fast), time.time())


# -- the school day ---------------------------------------------------------------------------------

def test_traffic_integral_is_exact_across_periods_and_speeds():
    day = SchoolDay.from_campus(Day())
    start = dt.datetime(2025, 3, 11, 8, 40)                 # 5 minutes before a break
    clock = SimClock(1000.0, start, 1.0, day)
    # 5 min of lesson (1.0) + 5 min of break (0.6)
    assert clock.traffic(1000.0, 1600.0) == pytest.approx(300 * 1.0 + 300 * 0.6)
    fast = SimClock(1000.0, start, 60.0, day)               # a simulated hour per real minute
    whole_week = fast.traffic(1000.0, 1000.0 + 7 * 86400 / 60)
    assert whole_week == pytest.approx(day.week_total / 60)
    frozen = SimClock(1000.0, start, 0.0, day)
    assert frozen.traffic(1000.0, 1010.0) == pytest.approx(10.0)
    assert [day.period(dt.datetime(2025, 3, 11, h, m)) for h, m in ((3, 0), (7, 0), (12, 0), (17, 0), (20, 0))] \
        == ["night", "morning", "lunch", "after_school", "evening"]


# -- PJLink -----------------------------------------------------------------------------------------

def _pjlink(host: str, port: int, password: str | None, lines: list[str]) -> list[str]:
    with socket.create_connection((host, port), timeout=3) as s:
        f = s.makefile("rb")
        greeting = f.readline() if False else s.recv(64).decode()
        out = [greeting.strip()]
        prefix = ""
        if greeting.startswith("PJLINK 1"):
            prefix = hashlib.md5((greeting.split()[2] + (password or "")).encode()).hexdigest()
        for line in lines:
            s.sendall((prefix + line + "\r").encode())
            prefix = ""
            data = b""
            while not data.endswith(b"\r"):
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            out.append(data.decode().strip())
        return out


@pytest.fixture(scope="module")
def small(tmp_path_factory, realdevices):
    from eduedge.simulator.launch import sim_down, sim_up
    from tests.test_sim import frozen_copy

    d = tmp_path_factory.mktemp("small")
    path = frozen_copy(REPO / "eduedge" / "simulator" / "campuses" / "campus-small.yaml", d / "campus.yaml")
    state = sim_up(path, d / "state")
    yield state
    assert sim_down(d / "state").left == []


def test_pjlink_projector_class2_with_password(small):
    ep = next(e for e in small.endpoints if e.name == "proj-c1")
    got = _pjlink(ep.host, ep.pjlink_port, "hillside",
                  ["%1POWR ?", "%1CLSS ?", "%1LAMP ?", "%1ERST ?", "%2SNUM ?", "%1INPT 99", "%1POWR 0", "%1POWR ?"])
    assert got[0].startswith("PJLINK 1 ")
    assert got[1:6] == ["%1POWR=1", "%1CLSS=2", "%1LAMP=640 1", "%1ERST=000000", got[5]]
    assert got[5].startswith("%2SNUM=X")
    assert got[6:] == ["%1INPT=ERR2", "%1POWR=OK", "%1POWR=2"]   # switched off in a lesson: cooling down
    assert _pjlink(ep.host, ep.pjlink_port, "wrong", ["%1POWR ?"])[1] == "PJLINK ERRA"


def test_pjlink_panel_is_class1_without_password(small):
    ep = next(e for e in small.endpoints if e.name == "panel-c4")
    got = _pjlink(ep.host, ep.pjlink_port, None, ["%1CLSS ?", "%2SNUM ?", "%1NAME ?", "%1LAMP ?"])
    assert got == ["PJLINK 0", "%1CLSS=1", "%2SNUM=ERR1", "%1NAME=panel-c4", "%1LAMP=ERR1"]


# -- the WAN test server and the WAN link -----------------------------------------------------------

def _download(host: str, port: int, seconds: float) -> tuple[str, float]:
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(f"EEST/1 download {seconds}\n".encode())
        f = s.makefile("rb")
        head = f.readline().decode().strip()
        t0, n = time.monotonic(), 0
        while True:
            data = f.read1(1 << 20)
            if not data:
                break
            n += len(data)
        return head, n * 8 / (time.monotonic() - t0) / 1e6


def test_speedtest_server_protocol(tmp_path):
    from eduedge.cloud.speedtest_server import SpeedtestServer

    loop = asyncio.new_event_loop()
    server = SpeedtestServer("127.0.0.1", 0, max_tests=1, max_seconds=1, tokens=frozenset({"s3cret"}))
    loop.run_until_complete(server.start())
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    try:
        port = server.port

        def request(line: bytes, body: bytes = b"") -> list[str]:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(line)
                if body:
                    time.sleep(0.05)
                    s.sendall(body)
                    s.shutdown(socket.SHUT_WR)
                return s.makefile("rb").read(200).decode().splitlines()[:2]

        assert request(b"GET / HTTP/1.1\n")[0].startswith("ERR bad request")
        assert request(b"EEST/1 download 5\n") == ["ERR unauthorised"]
        ok, received = request(b"EEST/1 upload 5 s3cret\n", b"x" * 100000)
        assert ok == "OK 1" and received.startswith("RECEIVED 100000 ")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as probe, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            probe.sendall(b"EEST/1 probe 5 token=s3cret\n")        # a token server echoes only to them
            assert probe.recv(100) == b"OK 1\n"
            u.settimeout(2)
            u.sendto(b"EEST/1 ECHO 1 123.0", ("127.0.0.1", port))
            assert u.recv(100) == b"EEST/1 ECHO 1 123.0"
            u.sendto(b"hello", ("127.0.0.1", port))
            with pytest.raises(TimeoutError):
                u.recv(100)
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        t.join(5)


def test_wan_link_relay_paces_delays_and_drops(small):
    """Through the small campus's WAN link (100/20 Mbit/s, +15 ms, 0.5 % loss toward the server)."""
    host, port = small.speedtest.rsplit(":", 1)
    head, mbps = _download(host, int(port), 2)
    assert head == "OK 2"
    print(f"download through the simulated 100 Mbit/s WAN link: {mbps:.1f} Mbit/s")
    assert 80 < mbps < 105                   # paced by the link, not by the loopback
    rtts, lost = [], 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(0.5)
        for i in range(400):
            t0 = time.monotonic()
            u.sendto(b"EEST/1 ECHO %d" % i, (host, int(port)))
            try:
                while u.recv(100) != b"EEST/1 ECHO %d" % i:
                    pass
                rtts.append(time.monotonic() - t0)
            except TimeoutError:
                lost += 1
    print(f"echo: min rtt {min(rtts) * 1000:.1f} ms, lost {lost}/400")
    assert min(rtts) >= 0.015
    assert lost <= 12                        # 0.5 % of 400 is 2; never more than a few


# -- loopback slots ---------------------------------------------------------------------------------

def test_two_campuses_starting_together_get_different_slots(tmp_path, monkeypatch):
    """The first campus has claimed its slot but saved no runner PID yet (it is still starting): the second
    must not take the same 127.<slot>/16, or both bind the same PJLink and SNMP addresses."""
    from eduedge.simulator import launch

    monkeypatch.setattr(launch, "SLOT_DIR", tmp_path / "slots")
    first, second = tmp_path / "campus-a", tmp_path / "campus-b"
    first.mkdir()
    second.mkdir()
    a = launch._claim_slot(first)
    b = launch._claim_slot(second)
    assert a != b
    launch._release_slot(first)
    assert launch._claim_slot(tmp_path / "campus-c") == a     # a released slot is free again
