"""Bad input never takes the agent down: garbage on the wire, wrong value types, missing objects and
broken site profiles each give one clear line naming the device or file, and the rest goes on."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from eduedge.collectors.snmp.client import SnmpAuth, SnmpClient
from eduedge.collectors.snmp.poller import DevicePoller, poll_many
from eduedge.collectors.snmp.profiles import load_profiles
from eduedge.simulator.snmpsim import start_snmpsim

pytestmark = pytest.mark.integration
EDUEDGE = str(Path(sys.executable).with_name("eduedge"))

# A switch whose firmware answers with the wrong types: text where numbers belong, a number where the
# sysObjectID belongs, and no ifTable counters at all (noSuchObject for every one of them).
WEIRD = """\
1.3.6.1.2.1.1.1.0|4|Weird switch
1.3.6.1.2.1.1.2.0|2|42
1.3.6.1.2.1.1.3.0|4|not ticks
1.3.6.1.2.1.2.2.1.2.1|4|port1
1.3.6.1.2.1.2.2.1.2.2|4|port2
1.3.6.1.2.1.2.2.1.8.1|4|up-ish
1.3.6.1.2.1.2.2.1.8.2|2|1
1.3.6.1.2.1.31.1.1.1.15.1|4|fast
1.3.6.1.2.1.31.1.1.1.15.2|66|1000
"""

GOOD = """\
1.3.6.1.2.1.1.1.0|4|Good switch
1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.99999.1
1.3.6.1.2.1.1.3.0|67|100
1.3.6.1.2.1.2.2.1.2.1|4|eth0
1.3.6.1.2.1.2.2.1.8.1|2|1
"""


@pytest.fixture(scope="module")
def sim():
    server = start_snmpsim([("weird", WEIRD), ("good", GOOD)])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def garbage_responder():
    """A UDP service that answers every SNMP request with bytes that are not BER."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(65535)
            except TimeoutError:
                continue
            sock.sendto(b"\x30\x82garbage" + data[:4], addr)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield sock.getsockname()[1]
    stop.set()
    t.join()
    sock.close()


def test_wrong_types_and_missing_objects_are_survived(sim):
    ps = load_profiles()
    poller = DevicePoller(SnmpClient("weird-sw", sim.host, sim.port, SnmpAuth(community="weird")), ps)
    result = asyncio.run(poller.poll())
    assert result.identity is not None and result.identity.profile == "generic"
    by = {(s.metric, s.tags.get("interface")): s.value for s in result.samples}
    assert by[("if.oper_status", "port2")] == "up"
    assert by[("if.oper_status", "port1")] == "up-ish"       # reported as the device said it, not invented
    assert by[("if.speed_mbps", "port2")] == 1000
    assert ("if.speed_mbps", "port1") not in by              # "fast" is not a speed: left out
    assert not any(m == "device.uptime_s" for m, _ in by)    # "not ticks" is not an uptime


def test_garbage_on_the_wire_is_one_error_and_the_others_are_polled(sim, garbage_responder):
    ps = load_profiles()
    junk = DevicePoller(SnmpClient("junk-box", "127.0.0.1", garbage_responder, SnmpAuth(), timeout=0.5,
                                   retries=0), ps)
    good = DevicePoller(SnmpClient("good-sw", sim.host, sim.port, SnmpAuth(community="good")), ps)
    bad, ok = asyncio.run(poll_many([junk, good]))
    assert bad.identity is None
    assert bad.errors == [f"junk-box (127.0.0.1:{garbage_responder}): GET 1.3.6.1.2.1.1.1.0 (+4): "
                          "unusable SNMP reply (PySnmpDecodeError: incomplete)"]
    assert ok.ok and any(s.metric == "if.oper_status" for s in ok.samples)


def test_a_site_profile_with_a_typo_is_named_and_the_poll_goes_on(sim, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "good-sw.yaml").write_text(
        "extends: [_system, _if-mib]\nmatch:\n  sysobjectid: ['1.3.6.1.4.1.99999.*']\nvendr: Typo\n")
    check = subprocess.run([EDUEDGE, "profile", "check", str(site)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 2
    assert f"{site / 'good-sw.yaml'}:4: vendr: unknown field" in check.stderr
    poll = subprocess.run([EDUEDGE, "poll", sim.address, "--community", "good", "--profile-dir", str(site),
                           "--rate-interval", "0"], capture_output=True, text=True, timeout=60)
    assert poll.returncode == 0
    assert "vendr: unknown field" in poll.stderr
    assert "profile generic" in poll.stdout and "eth0" in poll.stdout
