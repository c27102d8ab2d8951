"""The `live_class` section: the endpoints collectors/service_probes.py probes and the video-like burst it
sends, plus which classrooms and profiles agent/compliance/live_class.py judges. Apart from the prober so that reading
the configuration does not import its TLS and HTTP code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from eduedge.core.model import Duration, Strict
from eduedge.core.netaddr import split_host_port
from eduedge.core.secrets import Secret

EndpointRole = Literal["national-platform", "provincial-platform", "city-cloud", "live-class"]

class LiveClassEndpoint(Strict):
    """A service the school's lessons depend on (collectors/service_probes.py probes it, and nothing else):
    `url` is fetched with one GET, every stage timed (redirects are not followed: only this URL is ever
    asked); `echo` is the HOST:PORT of an eduedge test server beside a live-class server, for UDP quality."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    role: EndpointRole
    url: str | None = None
    echo: str | None = None
    token: Secret | None = None            # the test server's token, when it asks schools for one
    ca_file: Path | None = None            # the CA its certificate chains to, when that is not a public one
    timeout: Duration = Field(10.0, gt=0, le=60)

    @model_validator(mode="after")
    def _check(self) -> LiveClassEndpoint:
        if self.url is None and self.echo is None:
            raise ValueError("an endpoint needs `url`, `echo` or both")
        if self.url is not None and not re.match(r"^https?://[^/\s?#]+", self.url):
            raise ValueError(f"url {self.url!r} must start with http:// or https:// and a host")
        if self.echo is not None:
            split_host_port(self.echo, 5201)
        return self

class VideoProbe(Strict):
    """The UDP echo burst that stands for a video stream: datagrams of `packet_bytes` at `packets_per_second`
    for `seconds` (1200 B at 100/s is about 1 Mbit/s, a 720p stream's packet rate; 2 s every 5 min is about
    70 MB a day to the city's server)."""

    packets_per_second: int = Field(100, ge=1, le=1000)
    packet_bytes: int = Field(1200, ge=64, le=1472)     # 1472: one IPv4 datagram in a 1500-byte MTU
    seconds: Duration = Field(2.0, gt=0, le=30)

class LiveClassConfig(Strict):
    """Live classes (agent/compliance/live_class.py): the endpoints to probe, and which classrooms and profiles
    `eduedge liveclass` judges (the profiles are the rules of the `live-class` rule pack)."""

    enabled: bool = False
    interval: Duration = Field(300.0, ge=10)   # probe rounds (SmokePing's step); loads follow the SNMP polls
    resolver: str | None = None      # HOST[:PORT] of the DNS server lookups are timed against; default: the system's
    endpoints: list[LiveClassEndpoint] = []
    server: str | None = None        # the endpoint whose path judges readiness; default: the first with `echo`
    profiles: list[str] = []         # profiles `eduedge liveclass` shows (the first by default); default: all
    rooms: list[str] = []            # classrooms to judge; default: rooms of teaching zones and classroom drops
    video_probe: VideoProbe = VideoProbe()

    @model_validator(mode="after")
    def _check(self) -> LiveClassConfig:
        if self.resolver is not None:
            split_host_port(self.resolver, 53)
        names = [e.name for e in self.endpoints]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"endpoint names used twice: {', '.join(twice)}")
        if self.server is not None:
            found = next((e for e in self.endpoints if e.name == self.server), None)
            if found is None or found.echo is None:
                raise ValueError(f"server: {self.server!r} is not an endpoint with `echo` "
                                 f"({', '.join(e.name for e in self.endpoints if e.echo) or 'none has one'})")
        if self.enabled and not self.endpoints:
            raise ValueError("live classes need `endpoints`: the agent probes nothing it is not told to")
        return self
