"""The simulated devices' SNMP agents: one UDP socket per device, all in one asyncio loop.

Each device listens on its own address (loopback mode: 127.x.y.z; namespace mode: its own address in
its own network namespace), answers v1/v2c for its community, and misbehaves only as its faults say:
silent while down or rebooting, dropping a share of requests, or answering late without holding up
any other device. A request with a wrong community gets no answer, as on a real agent.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from dataclasses import dataclass

from eduedge.simulator.ber import BerError, decode_request
from eduedge.simulator.mib import Mib, answer
from eduedge.simulator.world import World


@dataclass
class AgentStats:
    requests: int = 0
    answered: int = 0
    dropped: int = 0          # down, lossy, wrong community
    malformed: int = 0


class DeviceAgent(asyncio.DatagramProtocol):
    def __init__(self, world: World, name: str, mib: Mib, community: bytes, stats: AgentStats):
        self.world, self.name, self.mib, self.community, self.stats = world, name, mib, community, stats
        self.transport: asyncio.DatagramTransport | None = None
        self._rng = random.Random()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        now = time.time()
        self.stats.requests += 1
        faults = self.world.faults
        if self.world.is_down(self.name, now):
            self.stats.dropped += 1
            return
        loss = faults.loss(self.name, now)
        if loss and self._rng.random() < loss:
            self.stats.dropped += 1
            return
        try:
            req = decode_request(data)
        except BerError:
            self.stats.malformed += 1
            return
        if req.community != self.community:
            self.stats.dropped += 1
            return
        response = answer(self.mib, req, now)
        self.stats.answered += 1
        assert self.transport is not None
        delay = faults.delay(self.name, now)
        if delay:
            asyncio.get_running_loop().call_later(delay, self._send_late, response, addr)
        else:
            self.transport.sendto(response, addr)

    def _send_late(self, response: bytes, addr: tuple) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(response, addr)


def udp_socket(host: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind((host, port))
    s.setblocking(False)
    return s


async def serve_agents(world: World, mibs: dict[str, Mib], sockets: dict[str, socket.socket],
                       stats: AgentStats) -> list[asyncio.DatagramTransport]:
    """Attach a `DeviceAgent` to each device's bound socket; return the transports (close to stop)."""
    loop = asyncio.get_running_loop()
    community = world.campus.snmp_community.encode()
    transports = []
    for name, sock in sockets.items():
        transport, _ = await loop.create_datagram_endpoint(
            lambda name=name: DeviceAgent(world, name, mibs[name], community, stats), sock=sock)
        transports.append(transport)
    return transports
