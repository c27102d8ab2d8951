"""PJLink client against the simulator's projector and panel (class 2 with a password, class 1 without),
and against small misbehaving servers: a wrong password, a device that hangs up, garbled replies, a
service that is not PJLink at all, nothing listening, a device that never answers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace

import pytest

from eduedge.collectors.pjlink import Lamp, query
from eduedge.simulator.campus import PJLinkSpec
from eduedge.simulator.pjlink import PJLinkDevice, serve_pjlink


def _world() -> SimpleNamespace:
    """As much of the simulator's World as a PJLink device asks: always in a lesson, never down."""
    return SimpleNamespace(clock=SimpleNamespace(period=lambda now: "lesson"),
                           campus=SimpleNamespace(school=SimpleNamespace(id="test-school")),
                           is_down=lambda name, now: False)


def _listener() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    s.setblocking(False)
    return s


@contextlib.asynccontextmanager
async def simulated(name: str, kind: str, **spec: object) -> AsyncIterator[tuple[int, PJLinkDevice]]:
    device = PJLinkDevice(_world(), name, PJLinkSpec(**spec), kind)  # type: ignore[arg-type]
    sock = _listener()
    server = await serve_pjlink(device, sock)
    try:
        yield sock.getsockname()[1], device
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def scripted(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
                   ) -> AsyncIterator[int]:
    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(run, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def test_class2_projector_with_password_gives_power_input_lamp_errors_and_serial() -> None:
    async def go():
        async with simulated("proj-a101", "projector", password="hillside", lamp_hours=640) as (port, dev):
            dev.errors = "010000"          # the lamp warns: near its end
            return await query("127.0.0.1", port, password="hillside")

    st = asyncio.run(go())
    assert st.status == "ok", st.message
    assert st.authenticated and st.pjlink_class == 2
    assert st.power == "on" and st.input is not None and st.input.startswith("31 digital 1")
    assert st.lamps == [Lamp(1, 640, True)]
    assert st.errors == {"fan": "ok", "lamp": "warning", "temperature": "ok", "cover": "ok", "filter": "ok",
                         "other": "ok"}
    assert st.name == "proj-a101" and st.manufacturer == "EPSON" and st.model == "EB-4770W"
    assert st.serial and st.serial.startswith("X") and st.software_version == "1.02"
    assert st.filter_hours == 320
    assert "lamp: warning" in st.message and "lamp 640 h" in st.message
    samples = {(s.metric, tuple(sorted(s.tags.items()))): s.value for s in st.samples("proj-a101", 1.0)}
    assert samples[("pjlink.lamp_hours", (("lamp", "1"),))] == 640
    assert samples[("pjlink.error_status", (("part", "lamp"),))] == "warning"
    assert samples[("pjlink.power", ())] == "on" and samples[("pjlink.status", ())] == "ok"


def test_class1_panel_without_password_has_no_lamp_and_no_class2_answers() -> None:
    async def go():
        async with simulated("panel-c4", "panel", **{"class": 1}) as (port, _):
            return await query("127.0.0.1", port)

    st = asyncio.run(go())
    assert st.status == "ok" and not st.authenticated and st.pjlink_class == 1
    assert st.lamps == [] and st.refused["LAMP"].startswith("ERR1")
    assert st.serial is None and st.model == "Interactive Flat Panel 86"
    assert not any(s.metric == "pjlink.lamp_hours" for s in st.samples("panel-c4", 1.0))


def test_a_wrong_password_is_auth_failed_and_no_password_is_password_needed() -> None:
    async def go():
        async with simulated("proj", "projector", password="hillside") as (port, _):
            return await query("127.0.0.1", port, password="wrong"), await query("127.0.0.1", port)

    wrong, none = asyncio.run(go())
    assert (wrong.status, none.status) == ("auth_failed", "password_needed")
    assert "ERRA" in wrong.message and "discovery.pjlink.password" in none.message
    assert [s.value for s in wrong.samples("proj", 1.0)] == ["auth_failed"]


def test_standby_projector_refuses_input_with_err3_and_still_reports_power() -> None:
    async def go():
        async with simulated("proj", "projector") as (port, dev):
            dev.world.clock.period = lambda now: "night"
            return await query("127.0.0.1", port)

    st = asyncio.run(go())
    assert st.status == "ok" and st.power == "standby" and st.input is None
    assert st.refused["%2INPT"].startswith("ERR3")   # a class 2 device is asked with %2


async def _greet_then(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reply: bytes | None) -> None:
    writer.write(b"PJLINK 0\r")
    await writer.drain()
    await reader.readuntil(b"\r")
    if reply is not None:
        writer.write(reply)
        await writer.drain()
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(("behaviour", "status", "words"), [
    (b"", "closed", "closed the connection"),                         # hangs up after the first question
    (b"%1CLSS=1\r", "closed", "closed the connection"),               # ... after the first answer
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", "garbled", "answered"),
    (b"%1POWR=1\r", "garbled", "asked %1CLSS"),                        # an answer to another question
    (b"%1CLSS=1", "garbled", "without a CR"),                          # no CR, then the connection ends
    (b"\xff\xfe\xfa\r", "garbled", "not text"),
    (b"x" * 400, "garbled", "longer than"),
])
def test_misbehaving_devices_give_a_clear_status_never_an_exception(behaviour: bytes, status: str,
                                                                    words: str) -> None:
    async def handler(reader, writer):
        await _greet_then(reader, writer, behaviour or None)

    async def go():
        async with scripted(handler) as port:
            return await query("127.0.0.1", port, timeout=2)

    st = asyncio.run(go())
    assert st.status == status and words in st.message, st.message


def test_a_service_that_is_not_pjlink_is_garbled() -> None:
    async def handler(reader, writer):
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n")
        await writer.drain()
        await asyncio.sleep(0.1)

    async def go():
        async with scripted(handler) as port:
            return await query("127.0.0.1", port)

    st = asyncio.run(go())
    assert st.status == "garbled" and "not PJLink" in st.message


def test_nothing_listening_is_refused_and_a_silent_device_times_out() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    free = s.getsockname()[1]
    s.close()

    async def silent(reader, writer):
        await asyncio.sleep(5)

    async def go():
        refused = await query("127.0.0.1", free, timeout=1)
        async with scripted(silent) as port:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            slow = await query("127.0.0.1", port, timeout=0.5)
            return refused, slow, loop.time() - t0

    refused, slow, took = asyncio.run(go())
    assert refused.status == "refused"
    assert slow.status == "timeout" and took < 2
