"""The city's broadband test server (cloud/speedtest_server.py), spoken to over real loopback sockets:
what it serves, the limits it keeps, and that everything it does not understand gets a clear `ERR`."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from eduedge.cloud import speedtest_server as st
from eduedge.cloud.speedtest_server import Refused, SpeedtestServer, parse_request

pytestmark = pytest.mark.integration


@contextmanager
def running(**kwargs: object) -> Iterator[SpeedtestServer]:
    loop = asyncio.new_event_loop()
    server = SpeedtestServer("127.0.0.1", 0, **kwargs)  # type: ignore[arg-type]
    loop.run_until_complete(server.start())
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(server.close)
        time.sleep(0.05)
        loop.call_soon_threadsafe(loop.stop)
        t.join(5)
        loop.close()


def connect(server: SpeedtestServer, line: bytes, source: str = "127.0.0.1") -> tuple[socket.socket, str]:
    s = socket.create_connection((server.host, server.port), timeout=5, source_address=(source, 0))
    s.sendall(line)
    return s, readline(s)


def readline(s: socket.socket) -> str:
    out = b""
    while not out.endswith(b"\n"):
        c = s.recv(1)
        if not c:
            break
        out += c
    return out.decode().strip()


def ask(server: SpeedtestServer, line: bytes) -> str:
    s, answer = connect(server, line)
    s.close()
    return answer


def echo(server: SpeedtestServer, payload: bytes, timeout: float = 0.5) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(timeout)
        u.sendto(payload, (server.host, server.port))
        try:
            return u.recv(4096)
        except TimeoutError:
            return None


# -- the request line -------------------------------------------------------------------------------

@pytest.mark.parametrize(("line", "reason"), [
    (b"GET / HTTP/1.1", "bad request (expected: EEST/1 session|probe|download|upload SECONDS"),
    (b"EEST/2 download 10", "unsupported protocol version EEST/2 (this server speaks EEST/1)"),
    (b"EEST/1 fetch 10", "bad request: unknown verb 'fetch'"),
    (b"EEST/1 download", "bad request (expected:"),
    (b"EEST/1 download ten", "bad seconds 'ten' (a positive number)"),
    (b"EEST/1 download -1", "bad seconds '-1'"),
    (b"EEST/1 download nan", "bad seconds 'nan'"),
    (b"EEST/1 download 10 tok extra", "unknown option 'extra'"),
    (b"EEST/1 download 10 colour=red", "unknown option 'colour=red'"),
    (b"EEST/1 session 10 test=abc", "test= belongs on download and upload streams, not on session"),
])
def test_a_request_it_does_not_understand_is_refused_with_the_reason(line, reason):
    with pytest.raises(Refused) as e:
        parse_request(line)
    assert reason in str(e.value)


def test_the_token_may_be_bare_or_named():
    assert parse_request(b"EEST/1 upload 5 s3cret").token == "s3cret"
    assert parse_request(b"EEST/1 session 30 token=s3cret").token == "s3cret"


def test_refusals_arrive_as_err_lines_and_are_counted():
    with running() as server:
        assert ask(server, b"HELLO\n").startswith("ERR bad request (expected: EEST/1 ")
        assert ask(server, b"EEST/1 download 5 test=0123456789abcdef\n") == \
            "ERR unknown test 0123456789abcdef (a test ends when its session connection closes)"
        assert ask(server, b"EEST/1 download " + b"9" * 600 + b"\n").startswith("ERR bad request: request line "
                                                                            "longer than 512 bytes")
        assert server.stats.refused == 3


def test_a_silent_client_is_told_it_took_too_long(monkeypatch):
    monkeypatch.setattr(st, "REQUEST_TIMEOUT", 0.3)
    with running() as server, socket.create_connection((server.host, server.port), timeout=5) as s:
        assert readline(s) == "ERR timeout: no request line within 0.3 s (expected: EEST/1 session|probe|download|" \
                              "upload SECONDS [token=TOKEN] [test=ID])"


# -- sessions and their streams -----------------------------------------------------------------------

def test_a_session_reports_what_its_upload_streams_received_and_ends_on_time():
    with running(max_seconds=1.5) as server:
        ctrl, head = connect(server, b"EEST/1 session 30\n")
        ok, granted, test_id = head.split()
        assert (ok, granted, len(test_id)) == ("OK", "1.5", 16)
        up, answer = connect(server, f"EEST/1 upload 30 test={test_id}\n".encode())
        assert answer == "OK 1.4"                                # what is left of the session
        up.sendall(b"x" * 3_000_000)
        up.shutdown(socket.SHUT_WR)
        assert readline(up) .startswith("RECEIVED 3000000 ")
        reports = []
        while (line := readline(ctrl)).startswith("R "):
            reports.append(line.split())
        assert line == "END time"
        assert reports[-1][2] == "3000000"                       # counted where it arrived
        assert 10 <= len(reports) <= 16                          # every 100 ms for 1.5 s
        assert [float(r[1]) for r in reports] == sorted(float(r[1]) for r in reports)
        ctrl.close()
        up.close()


def test_closing_the_session_cuts_its_streams_and_frees_the_slot():
    with running(max_tests=1) as server:
        ctrl, head = connect(server, b"EEST/1 session 30\n")
        test_id = head.split()[2]
        down, answer = connect(server, f"EEST/1 download 30 test={test_id}\n".encode())
        assert answer == "OK 29.9"
        assert ask(server, b"EEST/1 session 30\n") == "ERR busy: 1 tests running (max 1); try again later"
        assert len(down.recv(65536)) > 0
        ctrl.close()
        down.settimeout(5)
        t0 = time.monotonic()
        with pytest.raises(ConnectionResetError):           # a reset, or the end of the data after a drain
            while down.recv(1 << 20):
                pass
            raise ConnectionResetError
        assert time.monotonic() - t0 < 2
        deadline = time.monotonic() + 2
        while server.active_tests and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ask(server, b"EEST/1 session 30\n").startswith("OK 30 ")
        down.close()


def test_a_test_has_at_most_max_streams():
    with running(max_streams=2) as server:
        ctrl, head = connect(server, b"EEST/1 session 30\n")
        test_id = head.split()[2]
        streams = [connect(server, f"EEST/1 upload 30 test={test_id}\n".encode()) for _ in range(2)]
        assert [a for _, a in streams] == ["OK 29.9", "OK 29.9"]
        assert ask(server, f"EEST/1 upload 30 test={test_id}\n".encode()) == \
            f"ERR too many streams: test {test_id} has 2 (max 2)"
        for s, _ in streams:
            s.close()
        ctrl.close()


def test_a_test_id_is_good_only_from_the_address_that_opened_it():
    with running() as server:
        ctrl, head = connect(server, b"EEST/1 session 30\n")
        test_id = head.split()[2]
        s, answer = connect(server, f"EEST/1 download 5 test={test_id}\n".encode(), source="127.0.0.2")
        assert answer == f"ERR unknown test {test_id} (a test ends when its session connection closes)"
        s.close()
        ctrl.close()


def test_a_stand_alone_download_lasts_at_most_max_seconds():
    with running(max_seconds=0.5) as server:
        s, answer = connect(server, b"EEST/1 download 30\n")
        assert answer == "OK 0.5"
        t0, n = time.monotonic(), 0
        while chunk := s.recv(1 << 20):
            n += len(chunk)
        assert 0.4 < time.monotonic() - t0 < 1.5 and n > 1_000_000
        s.close()


def test_with_tokens_only_a_known_token_opens_a_session():
    with running(tokens=frozenset({"s3cret"})) as server:
        assert ask(server, b"EEST/1 session 10\n") == "ERR unauthorised"
        assert ask(server, b"EEST/1 session 10 token=guess\n") == "ERR unauthorised"
        assert ask(server, b"EEST/1 probe 10 token=guess\n") == "ERR unauthorised"
        assert ask(server, b"EEST/1 session 10 token=s3cret\n").startswith("OK 10 ")


# -- UDP echo -------------------------------------------------------------------------------------------

def test_echo_returns_exactly_what_came_and_drops_the_rest():
    with running() as server:
        assert echo(server, b"EEST/1 ECHO abc 1") == b"EEST/1 ECHO abc 1"
        assert echo(server, b"PING 1", timeout=0.3) is None
        assert echo(server, b"EEST/1 ECHO " + b"x" * 1600, timeout=0.3) is None   # never a big reflector
        assert server.stats.dropped == {"not an echo request": 2}


def test_with_tokens_echo_answers_only_while_a_probe_or_session_is_open():
    with running(tokens=frozenset({"s3cret"})) as server:
        assert echo(server, b"EEST/1 ECHO before", timeout=0.3) is None
        probe, answer = connect(server, b"EEST/1 probe 10 token=s3cret\n")
        assert answer == "OK 10"
        assert echo(server, b"EEST/1 ECHO during") == b"EEST/1 ECHO during"
        probe.close()
        time.sleep(0.2)
        assert echo(server, b"EEST/1 ECHO after", timeout=0.3) is None
        assert server.stats.dropped["no open session or probe"] == 2


def test_echo_is_rate_limited_per_address():
    with running() as server, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        t0 = time.monotonic()
        for burst in range(75):                           # 4000 a second for 0.75 s: twice the limit
            for i in range(40):
                u.sendto(b"EEST/1 ECHO %d" % (burst * 40 + i), (server.host, server.port))
            time.sleep(max(0.0, t0 + (burst + 1) * 0.01 - time.monotonic()))
        time.sleep(0.3)
        answered, limited = server.stats.echoes, server.stats.dropped["over the rate limit"]
        assert answered + limited == 3000
        assert 1000 < answered <= st.ECHO_RATE * (time.monotonic() - t0) + st.ECHO_RATE / 4
