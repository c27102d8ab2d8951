"""Simulated projectors and interactive panels answering PJLink (JBMIA PJLink class 1 and class 2).

One TCP server per device (port 4352, or a free port in loopback mode). On connect the device greets
with `PJLINK 0` (no password) or `PJLINK 1 <random>` (the client must prefix its first command with
md5(random + password) as 32 hex digits; a wrong digest gets `PJLINK ERRA` and the connection closes).
Then `%<class><CMD> <param>\\r` lines, answered `%<class><CMD>=<result>\\r`.

Class 1: POWR (0 standby, 1 on, 2 cooling, 3 warming up), INPT, AVMT, ERST (fan, lamp, temperature,
cover, filter, other: 0 ok, 1 warning, 2 error), LAMP (hours and on/off), INST, NAME, INF1, INF2, INFO,
CLSS. Class 2 adds SNUM, SVER, INNM, IRES, RRES, FILT, RLMP, RFIL, FREZ. A class-1 device answers
`%2` commands with ERR1, as the specification asks. Errors: ERR1 unknown command, ERR2 bad parameter,
ERR3 not now (warming up, cooling down or in standby), ERR4 device failure.

Power follows the school day (on in lessons and breaks, standby otherwise) until a client switches it;
that choice holds until the next period. Lamp hours grow with the time the lamp is on.

>>> md5_digest("498e4a67", "JBMIAProjectorLink")
'5d8409bc1c3fa39749434aa3a5c38682'
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass, field

from eduedge.simulator.campus import PJLinkSpec
from eduedge.simulator.world import World, seed

WARM_UP_S = 5.0
COOL_DOWN_S = 5.0
MANUFACTURER = {"projector": "EPSON", "panel": "SEEWO"}
MODEL = {"projector": "EB-4770W", "panel": "Interactive Flat Panel 86"}


def md5_digest(random: str, password: str) -> str:
    return hashlib.md5((random + password).encode()).hexdigest()


@dataclass
class PJLinkDevice:
    """The state of one projector or panel."""

    world: World
    name: str
    spec: PJLinkSpec
    kind: str
    input: str = ""
    mute: str = "30"
    freeze: str = "0"
    _switched: tuple[str, int, float] | None = None     # (period, wanted power 0/1, at)
    _lamp_s: float = 0.0
    _lamp_at: float = field(default_factory=time.time)
    errors: str = "000000"

    def __post_init__(self) -> None:
        self.input = self.spec.inputs[0]
        self._lamp_s = self.spec.lamp_hours * 3600.0

    def power(self, now: float) -> int:
        period = self.world.clock.period(now)
        if self._switched is not None and self._switched[0] == period:
            wanted, at = self._switched[1], self._switched[2]
            if now - at < (WARM_UP_S if wanted else COOL_DOWN_S):
                return 3 if wanted else 2
            return wanted
        return 1 if period in ("lesson", "break") else 0

    def lamp_hours(self, now: float) -> int:
        # lamp time accrues whenever the lamp is on; sampled at each question, good to the hour
        if self.power(now) in (1, 3):
            self._lamp_s += now - self._lamp_at
        self._lamp_at = now
        return int(self._lamp_s // 3600)

    def handle(self, cls: str, cmd: str, param: str, now: float) -> str:
        """The answer to one command (without `%<class><CMD>=`)."""
        if cls == "2" and self.spec.pjlink_class == 1:
            return "ERR1"
        query = param == "?"
        power = self.power(now)
        if cmd == "POWR":
            if query:
                return str(power)
            if param not in ("0", "1"):
                return "ERR2"
            if power in (2, 3):
                return "ERR3"
            self._switched = (self.world.clock.period(now), int(param), now)
            return "OK"
        if cmd == "INPT":
            if query:
                return self.input if power == 1 else "ERR3"
            if param not in self.spec.inputs:
                return "ERR2"
            if power != 1:
                return "ERR3"
            self.input = param
            return "OK"
        if cmd == "AVMT":
            if query:
                return self.mute
            if param not in ("10", "11", "20", "21", "30", "31"):
                return "ERR2"
            self.mute = param
            return "OK"
        if cmd == "FREZ" and cls == "2":
            if query:
                return self.freeze
            if param not in ("0", "1"):
                return "ERR2"
            self.freeze = param
            return "OK"
        if not query:
            return "ERR2"
        if cmd == "ERST":
            return self.errors
        if cmd == "LAMP":
            if self.kind == "panel":
                return "ERR1"       # a panel has no lamp
            return f"{self.lamp_hours(now)} {1 if power in (1, 3) else 0}"
        answers = {
            "INST": " ".join(self.spec.inputs),
            "NAME": self.name,
            "INF1": MANUFACTURER.get(self.kind, "EDUEDGE"),
            "INF2": MODEL.get(self.kind, "PJLink device"),
            "INFO": f"simulated by eduedge ({self.world.campus.school.id})",
            "CLSS": str(self.spec.pjlink_class),
        }
        if cls == "2":
            answers.update({
                "SNUM": f"X{seed(self.name, 'pjlink') % 10 ** 9:09d}",
                "SVER": "1.02",
                "INNM": {"11": "Computer", "31": "HDMI1", "32": "HDMI2"}.get(self.input, f"Input {self.input}"),
                "IRES": "1920x1080" if power == 1 else "-",
                "RRES": "1280x800",
                "FILT": str(self.lamp_hours(now) // 2),
                "RLMP": "ELPLP88" if self.kind == "projector" else "",
                "RFIL": "ELPAF54" if self.kind == "projector" else "",
            })
        return answers.get(cmd, "ERR1")


class _Session:
    def __init__(self, device: PJLinkDevice):
        self.device = device
        self.random = secrets.token_hex(4) if device.spec.password else ""
        self.authed = not device.spec.password

    async def run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(f"PJLINK 1 {self.random}\r".encode() if self.random else b"PJLINK 0\r")
            await writer.drain()
            while True:
                try:
                    line = await asyncio.wait_for(reader.readuntil(b"\r"), timeout=30)
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                    return
                reply = self.reply(line.decode("ascii", errors="replace").rstrip("\r"))
                if reply is None:
                    writer.write(b"PJLINK ERRA\r")
                    await writer.drain()
                    return
                writer.write(reply.encode() + b"\r")
                await writer.drain()
        except ConnectionError:
            return
        finally:
            writer.close()

    def reply(self, line: str) -> str | None:
        if not self.authed:
            digest, line = line[:32], line[32:]
            if digest != md5_digest(self.random, self.device.spec.password or ""):
                return None
            self.authed = True
        if len(line) < 7 or line[0] != "%" or line[1] not in "12":
            return "%1ERR1" if not line.startswith("%2") else "%2ERR1"
        cls, cmd, param = line[1], line[2:6].upper(), line[7:].strip()
        return f"%{cls}{cmd}={self.device.handle(cls, cmd, param, time.time())}"


async def serve_pjlink(device: PJLinkDevice, sock: object) -> asyncio.Server:
    """Serve `device` on an already bound, listening TCP socket."""
    world = device.world

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if world.is_down(device.name, time.time()):
            writer.close()
            return
        await _Session(device).run(reader, writer)

    return await asyncio.start_server(client, sock=sock)  # type: ignore[arg-type]
