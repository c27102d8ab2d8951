"""collectors/snmp/client.py drives gufo-snmp's socket itself (a future per request, not per value): walks
across several GETBULKs, replies that come late, silence, the rate limit, the deadline's cancellation,
SNMPv1's GETNEXT walks, and replies too large for gufo to decode, against an agent in the test's own event
loop (simulator/mib.py on loopback)."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest

from eduedge.collectors.snmp.client import SnmpAuth, SnmpClient, SnmpRequestError, SnmpUndecodableError
from eduedge.collectors.snmp.poller import DevicePoller
from eduedge.collectors.snmp.profiles import load_profiles
from eduedge.collectors.snmp.recording import RecordingClient
from eduedge.core.rates import RateTracker
from eduedge.simulator.ber import BerError, decode_request
from eduedge.simulator.mib import Mib, answer
from eduedge.simulator.shared import realdevices_dir
from eduedge.simulator.snmprec import parse_snmprec

IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
ROWS = 45
RECORDING = "\n".join([f"1.3.6.1.2.1.1.3.0|67|{100}"]
                      + [f"{IF_DESCR}.{i}|4|port{i}" for i in range(1, ROWS + 1)]
                      + [f"1.3.6.1.2.1.2.2.1.3.{i}|2|6" for i in range(1, ROWS + 1)]) + "\n"


class Agent(asyncio.DatagramProtocol):
    """Answers from `recording`; `late` replies are held back that long; `silent` answers nothing."""

    def __init__(self, late: list[float] | None = None, silent: bool = False, recording: str = RECORDING):
        self.mib = Mib(dict(parse_snmprec(recording)))
        self.late = list(late or [])
        self.silent = silent
        self.received: list[float] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.received.append(time.monotonic())
        if self.silent:
            return
        try:
            reply = answer(self.mib, decode_request(data), time.time())
        except BerError:
            return
        delay = self.late.pop(0) if self.late else 0.0
        asyncio.get_running_loop().call_later(delay, self.transport.sendto, reply, addr)  # type: ignore[attr-defined]


async def serve(agent: Agent) -> tuple[asyncio.DatagramTransport, int]:
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: agent,
                                                                              local_addr=("127.0.0.1", 0))
    return transport, transport.get_extra_info("sockname")[1]


def client(port: int, **kw) -> SnmpClient:
    kw.setdefault("timeout", 0.3)
    return SnmpClient("sw-test", "127.0.0.1", port, kw.pop("auth", SnmpAuth()), **kw)


def watched(loop: asyncio.AbstractEventLoop, fd: int) -> bool:
    return fd in loop._selector.get_map()  # type: ignore[attr-defined]


def test_a_walk_spans_getbulks_and_stops_at_the_end_of_the_column():
    async def main():
        transport, port = await serve(Agent())
        c = client(port, max_repetitions=20)
        try:
            rows = await c.walk(IF_DESCR)
            return rows, c.requests, watched(asyncio.get_running_loop(), c._fd)
        finally:
            transport.close()

    rows, requests, still_watched = asyncio.run(main())
    assert rows == {str(i): f"port{i}".encode() for i in range(1, ROWS + 1)}
    assert list(rows) == [str(i) for i in range(1, ROWS + 1)]
    assert requests == 3                  # 20 + 20 + the last 5, whose batch leaves the column
    assert not still_watched              # the socket is watched only while a request waits


def test_a_late_reply_is_discarded_and_the_retry_is_answered():
    async def main():
        agent = Agent(late=[0.5])
        transport, port = await serve(agent)
        c = client(port, timeout=0.3, retries=1)
        try:
            got = await c.get_many(["1.3.6.1.2.1.1.3.0"])
            await asyncio.sleep(0.4)      # the late reply arrives while nothing waits for it
            rows = await c.walk(IF_DESCR)
            return got, rows, len(agent.received)
        finally:
            transport.close()

    got, rows, received = asyncio.run(main())
    assert got == {"1.3.6.1.2.1.1.3.0": 100}
    assert len(rows) == ROWS
    assert received == 2 + 3


def test_silence_is_one_error_naming_the_device_after_every_try():
    async def main():
        agent = Agent(silent=True)
        transport, port = await serve(agent)
        c = client(port, timeout=0.2, retries=2)
        t0 = time.monotonic()
        try:
            with pytest.raises(SnmpRequestError) as e:
                await c.walk(IF_DESCR)
            return str(e.value), time.monotonic() - t0, len(agent.received)
        finally:
            transport.close()

    message, took, received = asyncio.run(main())
    assert message.startswith("sw-test (127.0.0.1:")
    assert f"walk {IF_DESCR}: no answer within 0.2s x 3 tries" in message and "SNMPv2c community" in message
    assert received == 3
    assert took >= 0.6  # each try waited out its timeout (no upper bound: a loaded box only makes it later)


def test_the_rate_limit_spaces_the_requests():
    async def main():
        agent = Agent()
        transport, port = await serve(agent)
        c = client(port, max_repetitions=10, rate_limit_rps=20)
        try:
            rows = await c.walk(IF_DESCR)
            return rows, agent.received
        finally:
            transport.close()

    rows, received = asyncio.run(main())
    assert len(rows) == ROWS and len(received) == 5
    gaps = [b - a for a, b in itertools.pairwise(received)]
    assert min(gaps) >= 0.045            # 1/20 s, less the timer's granularity


def test_a_cancelled_walk_leaves_nothing_behind():
    async def main():
        transport, port = await serve(Agent(silent=True))
        c = client(port, timeout=5.0)
        loop = asyncio.get_running_loop()
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):      # the poller's per-device deadline
                    await c.walk(IF_DESCR)
            return watched(loop, c._fd), [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
        finally:
            transport.close()

    still_watched, timers = asyncio.run(main())
    assert not still_watched and timers == []


def test_snmpv1_walks_with_getnext():
    async def main():
        transport, port = await serve(Agent())
        c = client(port, auth=SnmpAuth(version="1"))
        try:
            return await c.walk(IF_DESCR), c.values
        finally:
            transport.close()

    rows, values = asyncio.run(main())
    assert len(rows) == ROWS and values == ROWS and rows["7"] == b"port7"


@pytest.mark.parametrize("version", ["2c", "1"])
def test_some_rows_of_some_columns(version):
    """One GET in SNMPv2c; in SNMPv1, where a GET with a missing OID answers nothing, walks."""
    async def main():
        transport, port = await serve(Agent())
        c = client(port, auth=SnmpAuth(version=version))
        try:
            return await c.get_rows({IF_DESCR: ["3", "99"], "1.3.6.1.2.1.2.2.1.3": ["5"]}), c.requests
        finally:
            transport.close()

    rows, requests = asyncio.run(main())
    assert rows == {IF_DESCR: {"3": b"port3"}, "1.3.6.1.2.1.2.2.1.3": {"5": 6}}
    assert requests == (1 if version == "2c" else 2 * (ROWS + 1))


def test_rows_a_static_where_selects_are_read_by_get_between_refreshes():
    """Huawei's board table has a row for every port: CPU and memory are read for the boards alone."""
    path = Path(realdevices_dir()) / "snmprec" / "vrp_5720.snmprec"
    if not path.exists():
        pytest.skip(f"{path} not found")
    rec = RecordingClient(path)
    walked: list[str] = []
    got: list[dict[str, list[str]]] = []
    walk, get_rows = rec.walk, rec.get_rows

    async def rec_walk(oid: str):
        walked.append(oid)
        return await walk(oid)

    async def rec_rows(rows: dict[str, list[str]]):
        got.append(rows)
        return await get_rows(rows)

    rec.walk, rec.get_rows = rec_walk, rec_rows  # type: ignore[method-assign]
    poller = DevicePoller(rec, load_profiles(), RateTracker())
    first = asyncio.run(poller.poll())
    walked.clear()
    got.clear()
    second = asyncio.run(poller.poll())
    cpu = "1.3.6.1.4.1.2011.5.25.31.1.1.1.1.5"
    assert cpu not in walked
    assert len(got) == 1 and len(got[0][cpu]) == 1
    for poll in (first, second):
        assert [s.value for s in poll.samples if s.metric == "device.cpu_percent"] == [
            s.value for s in first.samples if s.metric == "device.cpu_percent"]
    assert second.coverage == first.coverage


# gufo reads a reply into 4,080 bytes: two of these rows fit in one, three do not; a HUGE row never fits
BIG = "1.3.6.1.2.1.17.7.1.4.2.1.4"          # dot1qVlanCurrentEgressPorts, 2,295 bytes a row on a Huawei S5720
BIG_ROWS = 12
BIG_RECORDING = "\n".join([f"1.3.6.1.2.1.1.3.0|67|{100}"]
                          + [f"{IF_DESCR}.{i}|4|port{i}" for i in range(1, ROWS + 1)]
                          + [f"{BIG}.0.{i}|4x|{'ff' * 1500}" for i in range(1, BIG_ROWS + 1)]) + "\n"
HUGE = "x" * 5000


def test_a_column_of_rows_too_large_for_one_reply_is_read_with_fewer_repetitions():
    async def main():
        agent = Agent(recording=BIG_RECORDING)
        transport, port = await serve(agent)
        c = client(port, max_repetitions=20)
        try:
            return await c.walk(BIG), c.requests, c.values, len(agent.received)
        finally:
            transport.close()

    rows, requests, values, received = asyncio.run(main())
    assert rows == {f"0.{i}": b"\xff" * 1500 for i in range(1, BIG_ROWS + 1)}
    assert list(rows) == [f"0.{i}" for i in range(1, BIG_ROWS + 1)]
    # 20, 10 and 5 rows do not decode; then 2 at a time to the end of the column (the end of the MIB view)
    assert requests == received == 3 + BIG_ROWS // 2 + 1
    assert values == BIG_ROWS


def test_a_column_whose_last_reply_runs_into_large_rows_is_read_whole():
    """The last GETBULK of a column carries the rows after it: on the S5720 the FDB's tail runs into the VLAN
    bitmaps. Fewer repetitions hold only the tail; the next walk starts with all of them again."""
    async def main():
        transport, port = await serve(Agent(recording=BIG_RECORDING))
        c = client(port, max_repetitions=20)
        try:
            first = await c.walk(IF_DESCR)
            requests = c.requests
            return first, requests, await c.walk(IF_DESCR), c.requests - requests
        finally:
            transport.close()

    first, requests, again, requests_again = asyncio.run(main())
    assert first == again == {str(i): f"port{i}".encode() for i in range(1, ROWS + 1)}
    # 20, 20, then rows 41-45 and 15 large ones (no), 10 (no), 5 (rows 41-45), 5 from 45 (no), 2 (the end)
    assert requests == requests_again == 7


def test_a_row_too_large_even_alone_ends_its_column_with_what_came_before_it():
    recording = RECORDING.replace(f"{IF_DESCR}.4|4|port4", f"{IF_DESCR}.4|4|{HUGE}")

    async def main():
        transport, port = await serve(Agent(recording=recording))
        c = client(port, max_repetitions=20)
        try:
            with pytest.raises(SnmpUndecodableError) as e:
                await c.walk(IF_DESCR)
            rest = await c.walk("1.3.6.1.2.1.2.2.1.3")   # the device still answers
            return e.value, rest, c.values
        finally:
            transport.close()

    error, rest, values = asyncio.run(main())
    assert error.rows == {str(i): f"port{i}".encode() for i in (1, 2, 3)}
    assert str(error).startswith("sw-test (127.0.0.1:")
    assert f"walk {IF_DESCR}: the row after {IF_DESCR}.3, even asked for alone" in str(error)
    assert "PySnmpDecodeError: incomplete" in str(error)
    assert len(rest) == ROWS and values == 3 + ROWS


def test_a_get_too_large_for_one_reply_is_split_and_a_value_too_large_alone_is_named():
    recording = BIG_RECORDING.replace(f"{IF_DESCR}.7|4|port7", f"{IF_DESCR}.7|4|{HUGE}")
    big = [f"{BIG}.0.{i}" for i in range(1, 6)]

    async def main():
        transport, port = await serve(Agent(recording=recording))
        c = client(port)
        try:
            got = await c.get_many([*big, f"{IF_DESCR}.1"])
            with pytest.raises(SnmpUndecodableError) as e:
                await c.get_rows({IF_DESCR: ["6", "7", "8"], BIG: ["0.1"]})
            return got, e.value
        finally:
            transport.close()

    got, error = asyncio.run(main())
    assert got == {**{oid: b"\xff" * 1500 for oid in big}, f"{IF_DESCR}.1": b"port1"}
    assert str(error).endswith(f"GET {IF_DESCR}.7: unusable SNMP reply (PySnmpDecodeError: incomplete)")
    assert error.rows == {IF_DESCR: {"6": b"port6", "8": b"port8"}, BIG: {"0.1": b"\xff" * 1500}}


def test_a_poll_goes_on_past_a_column_cut_short():
    """Only the column with the undecodable row is cut short; the poll reads everything else and says so."""
    fdb = "1.3.6.1.2.1.17.4.3.1.2"
    recording = "\n".join(
        ["1.3.6.1.2.1.1.1.0|4|test switch", "1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.8072.3.2.10",
         "1.3.6.1.2.1.1.3.0|67|100", "1.3.6.1.2.1.1.5.0|4|sw-test"]
        + [f"1.3.6.1.2.1.17.1.4.1.2.{p}|2|{p}" for p in (1, 2, 3)]
        + [f"{fdb}.0.1.2.3.4.{p}|2|{p}" for p in (1, 2, 3)]
        + [f"1.3.6.1.2.1.31.1.1.1.1.{p}|4|{HUGE if p == 2 else f'Gi0/{p}'}" for p in (1, 2, 3)]) + "\n"

    async def main():
        transport, port = await serve(Agent(recording=recording))
        try:
            return await DevicePoller(client(port), load_profiles(), forced_profile="_bridge").poll()
        finally:
            transport.close()

    poll = asyncio.run(main())
    assert len(poll.errors) == 1 and not poll.complete
    assert "walk 1.3.6.1.2.1.31.1.1.1.1: the row after 1.3.6.1.2.1.31.1.1.1.1.1, even asked for alone" in \
        poll.errors[0]
    assert sorted(s.value for s in poll.samples if s.metric == "bridge.fdb_port") == [1, 2, 3]
    ports = {s.tags["bridge_port"]: s.tags.get("interface") for s in poll.samples
             if s.metric == "bridge.port_if_index"}
    assert ports == {"1": "Gi0/1", "2": None, "3": None}
