"""iperf3 as an alternative capacity engine (`broadband.engine: iperf3`), where the city runs an iperf3 server.

Each direction is one `iperf3 -c HOST -p PORT -P STREAMS -t DURATION -O OMIT -J` run (`-R` for the
download); the goodput is iperf3's receiver-side sum over the seconds after the omitted ramp-up. The
built-in engine's echo probes still measure idle and loaded latency against the eduedge test server
when one is configured.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
from collections.abc import Awaitable, Callable
from typing import Any

from eduedge.collectors.broadband.engine import Engine, PhaseState
from eduedge.collectors.broadband.probe import MeasureError
from eduedge.collectors.broadband.result import Direction, Throughput

OMIT_MAX = 2          # iperf3's -O is whole seconds; 2 covers slow start on the paths a school sees


def iperf3_available(binary: str = "iperf3") -> bool:
    return shutil.which(binary) is not None


def parse_iperf3(doc: dict[str, Any], direction: Direction, streams: int, omit: int) -> Throughput:
    """A Throughput from iperf3's `-J` output (an error there becomes the reason, with no figure)."""
    th = Throughput(direction, "iperf3", streams, measured_at="receiver (iperf3)", warmup_s=float(omit))
    if doc.get("error"):
        th.error = f"iperf3: {doc['error']}"
        return th
    intervals = doc.get("intervals") or []
    try:
        received = doc["end"]["sum_received"]
        th.mbps = received["bits_per_second"] / 1e6
        th.seconds = float(received["seconds"])
    except (KeyError, TypeError):
        th.error = "iperf3 printed no receiver summary"
        return th
    t = 0.0
    for iv in intervals:
        s = iv.get("sum", {})
        t = float(s.get("end", t))
        th.series.append((t, s.get("bits_per_second", 0) / 1e6))
        th.bytes_total += int(s.get("bytes", 0))
        if not s.get("omitted"):
            th.intervals_mbps.append(s.get("bits_per_second", 0) / 1e6)
    return th


def iperf3_runner(host: str, port: int, binary: str = "iperf3") -> Callable[[Engine, Direction], Awaitable[Throughput]]:
    """The phase runner that `Engine(phase_runner=...)` calls for each direction."""

    async def phase(engine: Engine, direction: Direction) -> Throughput:
        opts = engine.opts
        omit = min(OMIT_MAX, math.ceil(opts.warmup_max))
        seconds = max(1, round(opts.duration))
        if not iperf3_available(binary):
            return Throughput(direction, "iperf3", opts.streams, error=f"{binary} is not installed")
        cmd = [binary, "-c", host, "-p", str(port), "-P", str(opts.streams), "-t", str(seconds), "-O", str(omit),
               "-J", *(["-R"] if direction == "down" else [])]
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        window = PhaseState()
        try:
            await asyncio.sleep(omit + 0.2)                        # connect and ramp-up, as iperf3 omits it
            engine.mark_window(window, "start")
            out, err = await asyncio.wait_for(proc.communicate(), seconds + opts.stall_after + 30)
            engine.mark_window(window, "end")
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return Throughput(direction, "iperf3", opts.streams, error=f"iperf3 did not finish within "
                              f"{seconds + opts.stall_after + 30:g} s")
        try:
            doc = json.loads(out or b"{}")
        except json.JSONDecodeError:
            detail = (err or out).decode(errors="replace").strip().splitlines()
            raise MeasureError(f"iperf3 failed: {detail[-1] if detail else f'exit status {proc.returncode}'}") from None
        th = parse_iperf3(doc, direction, opts.streams, omit)
        if th.error is None:
            engine.cross_traffic(th, window)
            await engine.loaded_probes(th, window)
        return th

    return phase
