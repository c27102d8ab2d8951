"""The campus process: serves every simulated device, plays the faults, answers `eduedge sim fault`.

Started by `eduedge sim up` (simulator/launch.py) as `python -m simulator.runner --state-dir DIR`
once the state file names every endpoint (and, in namespace mode, the namespaces exist). It:
- builds the campus model and each SNMP agent's MIB, and binds each device's sockets (inside the
  device's namespace in namespace mode);
- serves SNMP and PJLink; relays the WAN link (simulator/wanlink.py) in front of the test server,
  which runs as a child process (cloud/speedtest_server.py);
- optionally runs the campus's MQTT broker (simulator/broker.py) and stops/starts it for broker
  outages; every fault that starts or ends is written to `events.jsonl` in the state directory (the
  hook a test or an outside broker can follow);
- listens on `control.sock` for JSON commands: `fault`, `clear`, `faults`, `status`;
- writes `ready.json` (its children's PIDs, the broker address) when everything answers, and stops
  everything it started on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pydantic import ValidationError

from eduedge.simulator import netns
from eduedge.simulator.campus import Fault, load_campus
from eduedge.simulator.devices import build_mib
from eduedge.simulator.faults import FaultError
from eduedge.simulator.pjlink import PJLinkDevice, serve_pjlink
from eduedge.simulator.snmpserver import AgentStats, serve_agents, udp_socket
from eduedge.simulator.state import SimState
from eduedge.simulator.wanlink import LinkParams, WanLink
from eduedge.simulator.world import World

MBPS = 125000.0


def tcp_listener(host: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(128)
    s.setblocking(False)
    return s


class CampusRunner:
    def __init__(self, state: SimState):
        self.state = state
        self.dir = state.dir
        campus = load_campus(state.campus)
        self.world = World(campus, state.launch, start=dt.datetime.fromisoformat(state.start))
        self.stats = AgentStats()
        self.children: dict[str, subprocess.Popen] = {}
        self.broker = None
        self.wan: WanLink | None = None
        self.closers: list = []
        self._seen: dict[int, tuple[bool, bool]] = {}
        self._wan_now: tuple | None = None
        self._broker_down = False
        for ep in state.endpoints:
            if ep.name in self.world.nodes:
                self.world.nodes[ep.name].address = (ep.host, ep.snmp_port or 0)
        # built before the event loop runs: identifying a recording's serial runs the poller on it
        self.mibs = {n.name: build_mib(self.world, n) for n in self.world.snmp_nodes()}

    # -- start-up -----------------------------------------------------------------------------------

    async def start(self) -> None:
        world, st = self.world, self.state
        by_name = {ep.name: ep for ep in st.endpoints}
        mibs = self.mibs
        sockets = {}
        for name in mibs:
            ep = by_name[name]
            with netns.in_netns(ep.netns):
                sockets[name] = udp_socket(ep.host, ep.snmp_port or 161)
        self.closers += await serve_agents(world, mibs, sockets, self.stats)
        for node in world.pjlink_nodes():
            ep = by_name[node.name]
            with netns.in_netns(ep.netns):
                sock = tcp_listener(ep.host, ep.pjlink_port or 4352)
            device = PJLinkDevice(world, node.name, node.spec.pjlink, node.kind)  # type: ignore[union-attr]
            self.closers.append(await serve_pjlink(device, sock))
        await self._start_wan()
        if st.broker == "start":
            self._start_broker()
        server = await asyncio.start_unix_server(self._control, path=str(st.control_socket))
        self.closers.append(server)

    async def _start_wan(self) -> None:
        st, wan = self.state, self.world.campus.wan
        relay_host, _, relay_port = st.speedtest.rpartition(":")
        isp = st.namespaces[1] if st.mode == "netns" else None
        server_host = "127.0.0.1" if isp else relay_host.rsplit(".", 1)[0] + ".254"
        server_port = int(relay_port) + 1
        cmd = [sys.executable, "-m", "eduedge.cloud.speedtest_server", "--listen", f"{server_host}:{server_port}"]
        if isp:
            cmd = ["ip", "netns", "exec", isp, *cmd]
        log = open(self.dir / "speedtest.log", "ab")  # noqa: SIM115 - the child keeps it
        self.children["speedtest"] = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
        self.write_children()
        rates = (None, None) if isp else (wan.down_mbps * MBPS, wan.up_mbps * MBPS)
        params = LinkParams(rates[0], rates[1], wan.latency_ms / 1000, wan.loss_percent / 100)

        def make_socket(family: int, kind: int) -> socket.socket:
            with netns.in_netns(isp):
                return socket.socket(family, kind)

        self.wan = WanLink(params, (server_host, server_port), make_socket)
        with netns.in_netns(isp):
            tcp = tcp_listener(relay_host, int(relay_port))
            udp = udp_socket(relay_host, int(relay_port))
        await self.wan.start(tcp, udp)
        self.closers.append(self.wan)
        await self._wait_tcp(server_host, server_port, isp)

    async def _wait_tcp(self, host: str, port: int, ns: str | None, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with netns.in_netns(ns):
                s = socket.socket()
            s.setblocking(False)
            try:
                await asyncio.get_running_loop().sock_connect(s, (host, port))
                return
            except OSError:
                await asyncio.sleep(0.1)
            finally:
                s.close()
        raise RuntimeError(f"the WAN test server did not come up on {host}:{port} (see speedtest.log)")

    def _start_broker(self) -> None:
        from eduedge.simulator.broker import start_broker

        # on the host's loopback in both modes: in namespace mode the host reaches the campus by its route
        self.broker = start_broker(workdir=self.dir / "broker", host="127.0.0.1")
        self.state.broker = self.broker.address
        self.write_children()

    # -- faults over time ---------------------------------------------------------------------------

    def event(self, event: str, /, **details: object) -> None:
        line = json.dumps({"t": time.time(), "event": event, **details})
        with open(self.dir / "events.jsonl", "a") as f:
            f.write(line + "\n")

    async def watch_faults(self) -> None:
        faults = self.world.faults
        while True:
            now = time.time()
            for i, a in enumerate(faults.faults):
                state = (a.start <= now, a.end <= now)
                if self._seen.get(i) != state:
                    before = self._seen.get(i, (False, False))
                    if state[0] and not before[0]:
                        self.event("fault_start", **a.to_dict())
                    if state[1] and not before[1]:
                        self.event("fault_end", **a.to_dict())
                    self._seen[i] = state
            self._apply_broker(faults.broker_down(now))
            self._apply_wan(faults.wan(now))
            await asyncio.sleep(0.2)

    def _apply_broker(self, down: bool) -> None:
        if down == self._broker_down:
            return
        self._broker_down = down
        if self.broker is None:
            self.event("broker_outage", phase="start" if down else "end", applied=False,
                       reason="this campus runs no broker (eduedge sim up --broker); announced only")
            return
        if down:
            self.broker.stop()
        else:
            self.broker.start()
        self.write_children()
        self.event("broker_outage", phase="start" if down else "end", applied=True, broker=self.broker.address)

    def _apply_wan(self, degraded: tuple | None) -> None:
        if degraded == self._wan_now:
            return
        self._wan_now = degraded
        wan = self.world.campus.wan
        down, up = degraded if degraded else (None, None)
        down_mbps, up_mbps = down or wan.down_mbps, up or wan.up_mbps
        if self.state.mode == "netns":
            plan = netns.NetnsPlan("", namespaces={"gw": self.state.namespaces[0], "isp": self.state.namespaces[1]})
            netns.shape(plan, down_mbps, up_mbps)
        elif self.wan is not None:
            self.wan.params.down_Bps, self.wan.params.up_Bps = down_mbps * MBPS, up_mbps * MBPS
        self.event("wan_rate", down_mbps=down_mbps, up_mbps=up_mbps, degraded=degraded is not None)

    # -- control socket -----------------------------------------------------------------------------

    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            try:
                reply = self.command(json.loads(line))
            except (ValueError, KeyError, TypeError) as e:
                reply = {"ok": False, "error": str(e)}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()

    def command(self, msg: dict) -> dict:
        now = time.time()
        faults = self.world.faults
        cmd = msg.get("cmd")
        if cmd == "fault":
            try:
                fault = Fault.model_validate(msg["fault"])
            except ValidationError as e:
                return {"ok": False, "error": "; ".join(f"{'.'.join(map(str, x['loc'])) or 'fault'}: {x['msg']}"
                                                        for x in e.errors(include_url=False))}
            if fault.device is not None and fault.device not in self.world.nodes:
                return {"ok": False, "error": f"no device named {fault.device!r} in this campus"}
            try:
                a = faults.inject(fault, now)
            except FaultError as e:
                return {"ok": False, "error": str(e)}
            return {"ok": True, "fault": a.to_dict()}
        if cmd == "clear":
            n = faults.clear(now, msg.get("device"), msg.get("kind"))
            return {"ok": True, "cleared": n}
        if cmd == "faults":
            return {"ok": True, "faults": faults.listing(now)}
        if cmd == "status":
            return {"ok": True, "period": self.world.clock.period(now),
                    "sim_time": self.world.clock.sim_time(now).isoformat(timespec="seconds"),
                    "requests": self.stats.requests, "answered": self.stats.answered,
                    "dropped": self.stats.dropped, "malformed": self.stats.malformed,
                    "broker": self.broker.address if self.broker else None,
                    "broker_running": bool(self.broker and self.broker.running())}
        return {"ok": False, "error": f"unknown command {cmd!r} (fault, clear, faults, status)"}

    def write_children(self) -> None:
        """Every process this runner started, by PID, for `eduedge sim down` should the runner itself die."""
        pids = {k: p.pid for k, p in self.children.items()}
        if self.broker is not None and self.broker.proc is not None:
            pids["broker"] = self.broker.proc.pid
        tmp = self.dir / "children.json.tmp"
        tmp.write_text(json.dumps(pids))
        tmp.replace(self.dir / "children.json")

    # -- stopping -----------------------------------------------------------------------------------

    def stop(self) -> None:
        for c in self.closers:
            with contextlib.suppress(Exception):
                c.close()
        for proc in self.children.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.children.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.broker is not None:
            self.broker.close()
        with contextlib.suppress(FileNotFoundError):
            self.state.control_socket.unlink()


async def run(runner: CampusRunner) -> None:
    state = runner.state
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runner.start()
        watcher = asyncio.create_task(runner.watch_faults())
        watcher.add_done_callback(_crash_on_error)
        runner.write_children()
        ready = {"pid": os.getpid(), "broker": runner.state.broker if runner.broker else ""}
        (state.dir / "ready.json.tmp").write_text(json.dumps(ready))
        (state.dir / "ready.json.tmp").replace(state.dir / "ready.json")     # never read half-written
        await stop.wait()
        watcher.cancel()
    finally:
        runner.stop()


def _crash_on_error(task: asyncio.Task) -> None:
    # a fault watcher that died would leave the campus silently fault-free: stop the whole runner instead
    if not task.cancelled() and task.exception() is not None:
        import traceback

        traceback.print_exception(task.exception(), file=sys.stderr)
        os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="run a simulated campus (started by `eduedge sim up`)")
    ap.add_argument("--state-dir", required=True, type=Path)
    args = ap.parse_args(argv)
    state = SimState.load(args.state_dir)
    if state is None:
        sys.exit(f"no state.json in {args.state_dir}")
    asyncio.run(run(CampusRunner(state)))


if __name__ == "__main__":
    main()
