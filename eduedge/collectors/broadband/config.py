"""The `broadband` section: the city's test server, the engine, the windows in which tests may start."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from eduedge.core.model import ByteSize, Duration, Strict
from eduedge.core.netaddr import split_host_port
from eduedge.core.secrets import Secret
from eduedge.core.timeofday import Weekday, is_clock


class BroadbandWindow(Strict):
    """Part of the week in which scheduled tests may start, and how many start in it each day."""

    name: str
    days: list[Weekday] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    start: str
    end: str                                  # "24:00" for midnight
    tests: int = Field(2, ge=0, le=48)

    @model_validator(mode="after")
    def _check(self) -> BroadbandWindow:
        for what in ("start", "end"):
            value = getattr(self, what)
            if not is_clock(value, midnight=what == "end"):
                raise ValueError(f"`{what}` must be HH:MM (24-hour clock), not {value!r}")
        if self.start >= self.end:
            raise ValueError("`start` must be before `end` (split a window that crosses midnight in two)")
        return self

class BroadbandConfig(Strict):
    """Broadband tests against the city's test server (collectors/broadband/collector.py) and the WAN port's load.
    The WAN interface is `host.wan_interface`; the windows are in `standards.school_hours.timezone`."""

    enabled: bool = False
    server: str | None = None                 # HOST:PORT of the city's eduedge test server
    token: Secret | None = None               # when the server asks schools for one
    engine: Literal["builtin", "iperf3"] = "builtin"
    iperf3_server: str | None = None          # HOST:PORT of an iperf3 server, for engine iperf3
    streams: int = Field(8, ge=1, le=16)
    duration: Duration = Field(10.0, ge=2, le=60)
    warmup_max: Duration = Field(4.0, ge=0.5, le=20)
    directions: list[Literal["down", "up"]] = ["down", "up"]
    idle_probes: int = Field(50, ge=5, le=10000)
    # a few echo probes this often (availability, loss), checked on the utilisation tick; 0: off
    monitor_interval: Duration = 60.0
    monitor_probes: int = Field(10, ge=1, le=1000)
    utilisation_interval: Duration = Field(5.0, ge=1, le=300)
    report_interval: Duration = Field(60.0, ge=5, le=3600)
    windows: list[BroadbandWindow] = [
        BroadbandWindow(name="school", days=["mon", "tue", "wed", "thu", "fri"], start="08:00", end="17:00", tests=4),
        BroadbandWindow(name="overnight", start="00:00", end="06:00", tests=2)]
    daily_budget: ByteSize = 4 * 10**9
    skip_when_busy: bool = True
    busy_percent: float = Field(20.0, gt=0, le=100)
    capacity_down_mbps: float | None = Field(None, gt=0)   # the contracted rates, where known
    capacity_up_mbps: float | None = Field(None, gt=0)
    saturation_percent: float = Field(90.0, gt=0, le=100)
    saturation_after: Duration = 300.0

    @model_validator(mode="after")
    def _check(self) -> BroadbandConfig:
        for what in ("server", "iperf3_server"):
            if getattr(self, what) is not None:
                split_host_port(getattr(self, what), 5201)
        if self.enabled and self.server is None and not (self.engine == "iperf3" and self.iperf3_server):
            raise ValueError("broadband tests need `server` (HOST:PORT of the city's test server)")
        if self.engine == "iperf3" and self.iperf3_server is None:
            raise ValueError("engine iperf3 needs `iperf3_server` (HOST:PORT)")
        if not self.directions:
            raise ValueError("`directions` needs down, up or both")
        return self
