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


def _tlv(tag: int, body: bytes) -> bytes:
    n, k = len(body), (len(body).bit_length() + 7) // 8
    size = bytes([n]) if n < 128 else bytes([0x80 | k]) + n.to_bytes(k, "big")
    return bytes([tag]) + size + body


def _oid(text: str) -> bytes:
    parts = [int(p) for p in text.split(".")]
    out = bytes([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        while p > 0x7F:
            p >>= 7
            chunk.insert(0, 0x80 | (p & 0x7F))
        out += bytes(chunk)
    return _tlv(0x06, out)


def _read(data: bytes) -> tuple[int, bytes, bytes]:
    """(tag, value, rest) of the first BER TLV in `data`."""
    tag, n, at = data[0], data[1], 2
    if n & 0x80:
        k = n & 0x7F
        n, at = int.from_bytes(data[2:2 + k], "big"), 2 + k
    return tag, data[at:at + n], data[at + n:]


def _answer_with(varbinds: list[tuple[str, bytes]]):
    """A v2c responder whose GetResponse carries the request's id but these varbinds, whatever was asked."""
    def reply(request: bytes) -> bytes:
        _, msg, _ = _read(request)
        _, version, rest = _read(msg)
        _, community, rest = _read(rest)
        _, pdu, _ = _read(rest)
        _, request_id, _ = _read(pdu)
        binds = b"".join(_tlv(0x30, _oid(o) + v) for o, v in varbinds)
        body = _tlv(0x02, request_id) + _tlv(0x02, b"\0") + _tlv(0x02, b"\0") + _tlv(0x30, binds)
        return _tlv(0x30, _tlv(0x02, version) + _tlv(0x04, community) + _tlv(0xA2, body))
    return reply


@pytest.fixture
def hostile():
    """A UDP service answering every request with what `hostile.answer(request)` makes of it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    class Hostile:
        port = sock.getsockname()[1]
        answer = staticmethod(lambda request: b"")

    def serve():
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(65535)
            except TimeoutError:
                continue
            sock.sendto(Hostile.answer(data), addr)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield Hostile
    stop.set()
    t.join()
    sock.close()


@pytest.mark.parametrize("reply", [b"\x30\x84", b"\x30\x82\x00", b"\x30\x05\x02\x01\x01\x04\x85"])
def test_a_reply_that_makes_the_decoder_panic_is_an_error_naming_the_device_and_the_request(hostile, reply):
    hostile.answer = staticmethod(lambda request: reply)   # gufo-snmp panicked in src/ber/header.rs:96 on these
    client = SnmpClient("panic-box", "127.0.0.1", hostile.port, SnmpAuth(), timeout=0.5, retries=0)
    with pytest.raises(Exception) as e:
        asyncio.run(client.get_many(["1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.5.0"]))
    text = str(e.value)
    assert text.startswith(f"panic-box (127.0.0.1:{hostile.port}): GET 1.3.6.1.2.1.1.")
    assert "the decoder failed on the reply (index out of bounds" in text and "no answer" not in text


def test_a_reply_that_does_not_answer_the_request_is_an_error(hostile):
    # an OID nobody asked for, and two values for three OIDs
    hostile.answer = staticmethod(_answer_with([("1.3.6.1.4.1.666.1.0", _tlv(0x04, b"evil")),
                                                ("1.3.6.1.2.1.1.5.0", _tlv(0x04, b"sw"))]))
    client = SnmpClient("liar", "127.0.0.1", hostile.port, SnmpAuth(), timeout=0.5, retries=0)
    with pytest.raises(Exception) as e:
        asyncio.run(client.get_many(["1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.6.0"]))
    assert str(e.value) == (f"liar (127.0.0.1:{hostile.port}): GET 1.3.6.1.2.1.1.1.0 (+2): unusable SNMP reply "
                            "(PySnmpDecodeError: the reply does not answer the request: 2 values for 3 OIDs, 1 of "
                            "them not asked for (1.3.6.1.4.1.666.1.0))")
    # an honest reply through the same responder is taken
    hostile.answer = staticmethod(_answer_with([("1.3.6.1.2.1.1.5.0", _tlv(0x04, b"sw"))]))
    got = asyncio.run(client.get_many(["1.3.6.1.2.1.1.5.0"]))
    assert list(got) == ["1.3.6.1.2.1.1.5.0"]
