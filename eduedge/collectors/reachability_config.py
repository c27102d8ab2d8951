"""The `reachability` section: what collectors/reachability.py probes, how often and how hard. Apart from the
prober so that reading the configuration does not import it (and discovery's scope and sockets with it)."""

from __future__ import annotations

from pydantic import Field

from eduedge.collectors.discovery.config import DeviceClass
from eduedge.core.model import Duration, Strict


class ReachabilityTarget(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    host: str
    tcp_port: int | None = Field(None, ge=1, le=65535)   # TCP connect instead, where ICMP is blocked
    room: str | None = None


class ReachabilityConfig(Strict):
    """ICMP echo (TCP connect where ICMP is blocked) with loss and RTT (collectors/reachability.py)."""

    enabled: bool = False
    interval: Duration = 60.0
    count: int = Field(3, ge=1, le=20)
    timeout: Duration = Field(1.0, gt=0, le=10)
    concurrency: int = Field(256, ge=1, le=4096)
    targets: list[ReachabilityTarget] = []
    snmp_devices: bool = True                 # also every device under snmp.devices
    discovered_classes: list[DeviceClass] = ["projector", "panel", "printer", "ups", "camera", "nvr"]
    tcp_ports: list[int] = [4352, 80, 443, 9100, 554]   # tried in turn on a device that does not answer ICMP
