"""PJLink: is the classroom projector (or interactive panel) on, on which input, how old is its lamp, and
does it report a fault. JBMIA PJLink class 1 and class 2, TCP port 4352.

The exchange: the device greets with `PJLINK 0` (no password) or `PJLINK 1 <random>`; with a password the
first command is prefixed by md5(random + password) as 32 hex digits, and a wrong one is answered
`PJLINK ERRA`. Commands are `%<class><CMD> ?\\r`, answers `%<class><CMD>=<value>\\r`, or `ERR1` (no such
command on this device), `ERR2` (bad parameter), `ERR3` (not now: standby, warming up, cooling down),
`ERR4` (device failure).

What it reads and the samples it gives (device = the projector's inventory name):

| sample              | unit  | tags | from | value                                                        |
|---------------------|-------|------|------|--------------------------------------------------------------|
| pjlink.status       | state |      |      | ok, auth_failed, password_needed, timeout, refused, closed,  |
|                     |       |      |      | garbled                                                      |
| pjlink.power        | state |      | POWR | standby, on, cooling, warming                                |
| pjlink.input        | info  |      | INPT | the input code and kind, `31 digital 1` (+ class 2 name)     |
| pjlink.lamp_hours   | h     | lamp | LAMP | hours the lamp has been lit (panels have no lamp)            |
| pjlink.error_status | state | part | ERST | ok, warning, error: fan, lamp, temperature, cover, filter,   |
|                     |       |      |      | other                                                        |
| pjlink.filter_hours | h     |      | FILT | class 2 only                                                 |

Every failure is a status with a sentence, never an exception: a wrong password, a device that closes the
connection, a reply that is not PJLink.

>>> parse_lamps("1200 1 35 0")
[Lamp(number=1, hours=1200, on=True), Lamp(number=2, hours=35, on=False)]
>>> parse_errors("000210")
{'fan': 'ok', 'lamp': 'ok', 'temperature': 'ok', 'cover': 'error', 'filter': 'warning', 'other': 'ok'}
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from dataclasses import dataclass, field

from eduedge.core.samples import Sample

PORT = 4352
POWER = {"0": "standby", "1": "on", "2": "cooling", "3": "warming"}
ERROR_PARTS = ("fan", "lamp", "temperature", "cover", "filter", "other")
ERROR_LEVEL = {"0": "ok", "1": "warning", "2": "error"}
INPUT_KIND = {"1": "rgb", "2": "video", "3": "digital", "4": "storage", "5": "network", "6": "internal"}
ERRORS = {"ERR1": "not supported by this device", "ERR2": "bad parameter",
          "ERR3": "not available now (standby, warming up or cooling down)", "ERR4": "device failure"}
_ANSWER = re.compile(r"^%([12])([A-Z0-9]{4})=(.*)$")
MAX_LINE = 256


class _Failure(Exception):
    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Lamp:
    number: int
    hours: int
    on: bool


@dataclass
class PjlinkStatus:
    """What one PJLink session found out; `status` says whether it could ask at all."""

    host: str
    port: int
    status: str = "ok"
    message: str = ""
    pjlink_class: int | None = None
    authenticated: bool = False          # the device asked for a password and accepted ours
    power: str | None = None
    input: str | None = None
    lamps: list[Lamp] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    software_version: str | None = None
    filter_hours: int | None = None
    refused: dict[str, str] = field(default_factory=dict)   # command -> why the device did not answer it

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def samples(self, device: str, now: float, tags: dict[str, str] | None = None) -> list[Sample]:
        base = dict(tags or {})
        out = [Sample(now, device, "pjlink.status", self.status, "state", base)]
        if self.power is not None:
            out.append(Sample(now, device, "pjlink.power", self.power, "state", base))
        if self.input is not None:
            out.append(Sample(now, device, "pjlink.input", self.input, "info", base))
        out += [Sample(now, device, "pjlink.lamp_hours", lamp.hours, "h", {**base, "lamp": str(lamp.number)})
                for lamp in self.lamps]
        out += [Sample(now, device, "pjlink.error_status", level, "state", {**base, "part": part})
                for part, level in self.errors.items()]
        if self.filter_hours is not None:
            out.append(Sample(now, device, "pjlink.filter_hours", self.filter_hours, "h", base))
        return out

    def summary(self) -> str:
        """One line for a technician: `on, input 31 digital 1, lamp 1200 h, cover: error`."""
        if not self.ok:
            return f"{self.status}: {self.message}"
        parts = [self.power or "power unknown"]
        if self.input:
            parts.append(f"input {self.input}")
        parts += [f"lamp {lamp.hours} h" + ("" if len(self.lamps) == 1 else f" (#{lamp.number})")
                  for lamp in self.lamps]
        parts += [f"{part}: {level}" for part, level in self.errors.items() if level != "ok"]
        return ", ".join(parts)


def parse_lamps(value: str) -> list[Lamp]:
    nums = value.split()
    if not nums or len(nums) % 2 or not all(n.isdigit() for n in nums):
        raise ValueError(f"LAMP answer {value!r} is not pairs of hours and 0/1")
    return [Lamp(i // 2 + 1, int(nums[i]), nums[i + 1] == "1") for i in range(0, len(nums), 2)]


def parse_errors(value: str) -> dict[str, str]:
    if len(value) != 6 or any(c not in ERROR_LEVEL for c in value):
        raise ValueError(f"ERST answer {value!r} is not six digits 0-2")
    return {part: ERROR_LEVEL[c] for part, c in zip(ERROR_PARTS, value, strict=True)}


def describe_input(code: str) -> str:
    """`31` -> `31 digital 1`."""
    kind = INPUT_KIND.get(code[:1])
    return f"{code} {kind} {code[1:]}" if kind and len(code) == 2 else code


def md5_response(random: str, password: str) -> str:
    """The PJLink authentication digest (the example of the specification).

    >>> md5_response("498e4a67", "JBMIAProjectorLink")
    '5d8409bc1c3fa39749434aa3a5c38682'
    """
    return hashlib.md5((random + password).encode("ascii", errors="replace")).hexdigest()


class _Session:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, prefix: str):
        self.reader, self.writer, self.prefix = reader, writer, prefix

    async def line(self) -> str:
        try:
            raw = await self.reader.readuntil(b"\r")
        except asyncio.IncompleteReadError as e:
            if e.partial:
                raise _Failure("garbled", f"the reply {e.partial[:40]!r} ended without a CR") from None
            raise _Failure("closed", "the device closed the connection") from None
        except asyncio.LimitOverrunError:
            raise _Failure("garbled", f"a reply longer than {MAX_LINE} bytes without a CR") from None
        except ConnectionError as e:
            raise _Failure("closed", f"the connection broke: {e}") from None
        try:
            return raw[:-1].decode("ascii")
        except UnicodeDecodeError:
            try:
                return raw[:-1].decode("utf-8")
            except UnicodeDecodeError:
                raise _Failure("garbled", f"the reply {raw[:40]!r} is not text") from None

    async def ask(self, cls: str, cmd: str, param: str = "?") -> str | None:
        """The value the device answers, or None when it refuses the command (ERRn, kept by the caller)."""
        self.writer.write(f"{self.prefix}%{cls}{cmd} {param}\r".encode("ascii"))
        self.prefix = ""
        try:
            await self.writer.drain()
        except ConnectionError as e:
            raise _Failure("closed", f"the connection broke: {e}") from None
        reply = await self.line()
        if reply.upper().startswith("PJLINK ERRA"):
            raise _Failure("auth_failed", "the device refused the password (PJLINK ERRA)")
        m = _ANSWER.match(reply)
        if not m or m.group(2).upper() != cmd:
            raise _Failure("garbled", f"asked %{cls}{cmd}, the device answered {reply[:60]!r}")
        return m.group(3)


async def query(host: str, port: int = PORT, password: str | None = None, timeout: float = 3.0) -> PjlinkStatus:
    """Ask one device everything above; never raises for the device's sake.

    `timeout` bounds the whole session, so one projector that hangs never holds up a scan.
    """
    st = PjlinkStatus(host, port)
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            try:
                reader, writer = await asyncio.open_connection(host, port, limit=MAX_LINE)
            except ConnectionRefusedError:
                raise _Failure("refused", f"nothing listens on TCP {port}") from None
            except OSError as e:
                raise _Failure("refused", f"cannot connect to TCP {port}: {e.strerror or e}") from None
            session = _Session(reader, writer, "")
            greeting = await session.line()
            words = greeting.split()
            if greeting.upper().startswith("PJLINK ERRA"):
                raise _Failure("auth_failed", "the device refused the session (PJLINK ERRA)")
            if len(words) < 2 or words[0].upper() != "PJLINK" or words[1] not in ("0", "1"):
                raise _Failure("garbled", f"the greeting {greeting[:60]!r} is not PJLink")
            if words[1] == "1":
                if len(words) < 3:
                    raise _Failure("garbled", f"the greeting {greeting!r} asks for a password but gives no random")
                if password is None:
                    raise _Failure("password_needed", "the device asks for a PJLink password; "
                                   "set discovery.pjlink.password")
                session.prefix = md5_response(words[2], password)
                st.authenticated = True
            await _read_all(session, st)
    except _Failure as f:
        st.status, st.message = f.status, str(f)
    except TimeoutError:
        st.status, st.message = "timeout", f"no complete answer within {timeout:g} s"
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 0.5)
    if st.ok:
        st.message = st.summary()
    return st


async def _read_all(s: _Session, st: PjlinkStatus) -> None:
    async def ask(cls: str, cmd: str, param: str = "?") -> str | None:
        value = await s.ask(cls, cmd, param)
        if value is not None and value.upper() in ERRORS:
            st.refused[cmd if cls == "1" else f"%2{cmd}"] = f"{value.upper()}: {ERRORS[value.upper()]}"
            return None
        return value

    # CLSS first: it is the only command every device answers in every power state
    cls = await ask("1", "CLSS")
    st.pjlink_class = 2 if cls and cls.strip().upper() in ("2", "B") else 1
    power = await ask("1", "POWR")
    if power is not None:
        if power not in POWER:
            raise _Failure("garbled", f"POWR answer {power!r} is not 0-3")
        st.power = POWER[power]
    for cmd, attr in (("NAME", "name"), ("INF1", "manufacturer"), ("INF2", "model")):
        value = await ask("1", cmd)
        if value:
            setattr(st, attr, value.strip())
    errors = await ask("1", "ERST")
    lamps = await ask("1", "LAMP")
    try:
        if errors is not None:
            st.errors = parse_errors(errors)
        if lamps is not None:
            st.lamps = parse_lamps(lamps)
    except ValueError as e:
        raise _Failure("garbled", str(e)) from None
    code = await ask(str(st.pjlink_class), "INPT")
    if code:
        st.input = describe_input(code.strip())
        if st.pjlink_class == 2:
            name = await ask("2", "INNM", f"?{code.strip()}")
            if name:
                st.input += f" ({name.strip()})"
    if st.pjlink_class == 2:
        for cmd, attr in (("SNUM", "serial"), ("SVER", "software_version")):
            value = await ask("2", cmd)
            if value:
                setattr(st, attr, value.strip())
        filt = await ask("2", "FILT")
        if filt and filt.strip().isdigit():
            st.filter_hours = int(filt)
