"""collectors/snmp/client.py drives gufo-snmp's socket itself (a future per request, not per value): walks
across several GETBULKs, replies that come late, silence, the rate limit, the deadline's cancellation, and
SNMPv1's GETNEXT walks, against an agent in the test's own event loop (simulator/mib.py on loopback)."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest

from agent.rates import RateTracker
from collectors.snmp.client import SnmpAuth, SnmpClient, SnmpRequestError
from collectors.snmp.poller import DevicePoller
from collectors.snmp.profiles import load_profiles
from collectors.snmp.recording import RecordingClient
from simulator.ber import BerError, decode_request
from simulator.mib import Mib, answer
from simulator.shared import realdevices_dir
from simulator.snmprec import parse_snmprec

IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
ROWS = 45
RECORDING = "\n".join([f"1.3.6.1.2.1.1.3.0|67|{100}"]
                      + [f"{IF_DESCR}.{i}|4|port{i}" for i in range(1, ROWS + 1)]
                      + [f"1.3.6.1.2.1.2.2.1.3.{i}|2|6" for i in range(1, ROWS + 1)]) + "\n"


class Agent(asyncio.DatagramProtocol):
    """Answers from RECORDING; `late` replies are held back that long; `silent` answers nothing."""

    def __init__(self, late: list[float] | None = None, silent: bool = False):
        self.mib = Mib(dict(parse_snmprec(RECORDING)))
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
    assert 0.6 <= took < 1.5


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
