"""eduedge's built-in broadband engine next to iperf3, on the same links: the rate each measures, their
ratio, and the CPU seconds each spends (client + server) per GB moved.

Links:
- `tbf 100 Mbit/s` and `tbf 1 Gbit/s` (root): two network namespaces made here, one veth between them
  (198.19.250.0/30), shaped in both directions by `tc tbf` exactly as the simulator shapes its WAN
  (simulator/netns.shape). The client runs in one namespace, the server in the other. Target: ratio
  0.97-1.03, since the link, not the tool, should set the rate.
- `loopback`: unshaped 127.0.0.1, where only the tools' CPU limits the rate. Target: eduedge reaches at
  least half of iperf3 (a 1 Gbit/s test must not be measuring the box's CPU).

Per link and direction: eduedge (`cloud/speedtest_server.py` + `collectors/broadband/engine.py`, default
8 streams, ramp-up excluded, 10 s measured) and iperf3 (`-P 8 -t 10 -O 2`, receiver-side sum). CPU:
the servers' user+system time (psutil) across the run, the eduedge client's own process time around
the test, iperf3's client from wait4. Bytes: everything each moved, ramp-up included.

    sudo .venv/bin/python bench/broadband.py                 # all three links
    .venv/bin/python bench/broadband.py --links loopback     # no root needed
    .venv/bin/python bench/broadband.py --duration 5 --streams 4

Everything started here is stopped, and the namespaces deleted, at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eduedge.simulator import netns  # noqa: E402

A_ADDR, B_ADDR = "198.19.250.1", "198.19.250.2"
EEST_PORT, IPERF_PORT = 5311, 5312


@dataclass
class Run:
    mbps: float
    gbytes: float
    cpu_s: float

    @property
    def cpu_per_gb(self) -> float:
        return self.cpu_s / self.gbytes if self.gbytes else float("nan")


@dataclass
class Link:
    name: str
    client_ns: str | None          # None: loopback, no namespaces
    server_ns: str | None
    server: str                    # address the servers listen on

    def wrap(self, ns: str | None, cmd: list[str]) -> list[str]:
        return ["ip", "netns", "exec", ns, *cmd] if ns else cmd


def cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def wait_rusage(proc: subprocess.Popen) -> float:
    _, _, ru = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return ru.ru_utime + ru.ru_stime


def eduedge(link: Link, direction: str, duration: float, streams: int) -> Run:
    server = subprocess.Popen(link.wrap(link.server_ns, [sys.executable, "-m", "eduedge.cloud.speedtest_server",
                                                         "--listen", f"{link.server}:{EEST_PORT}"]),
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        sp = psutil.Process(server.pid)
        before = cpu(sp)
        out = subprocess.run(link.wrap(link.client_ns, [sys.executable, __file__, "--client", f"{link.server}:"
                                                        f"{EEST_PORT}", "--direction", direction, "--duration",
                                                        str(duration), "--streams", str(streams)]),
                             cwd=REPO, capture_output=True, text=True, timeout=duration + 60)
        server_cpu = cpu(sp) - before
        doc = json.loads(out.stdout)
        if doc.get("error"):
            raise RuntimeError(f"eduedge {direction} on {link.name}: {doc['error']}")
        return Run(doc["mbps"], doc["bytes"] / 1e9, doc["cpu_s"] + server_cpu)
    finally:
        server.terminate()
        server.wait(10)


def iperf3(link: Link, direction: str, duration: float, streams: int) -> Run:
    server = subprocess.Popen(link.wrap(link.server_ns, ["iperf3", "-s", "-B", link.server, "-p", str(IPERF_PORT)]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        sp = psutil.Process(server.pid)
        before = cpu(sp)
        client = subprocess.Popen(link.wrap(link.client_ns, ["iperf3", "-c", link.server, "-p", str(IPERF_PORT),
                                                             "-P", str(streams), "-t", str(round(duration)),
                                                             "-O", "2", "-J", *(["-R"] if direction == "down"
                                                                                 else [])]),
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert client.stdout is not None
        text = client.stdout.read()
        client_cpu = wait_rusage(client)
        time.sleep(0.2)
        server_cpu = cpu(sp) - before
        doc = json.loads(text)
        if doc.get("error"):
            raise RuntimeError(f"iperf3 {direction} on {link.name}: {doc['error']}")
        moved = sum(iv["sum"]["bytes"] for iv in doc["intervals"])
        return Run(doc["end"]["sum_received"]["bits_per_second"] / 1e6, moved / 1e9, client_cpu + server_cpu)
    finally:
        server.terminate()
        server.wait(10)


def client_main(server: str, direction: str, duration: float, streams: int) -> None:
    """The eduedge side of one run, in its own process (and namespace): one direction, its own CPU time."""
    from eduedge.collectors.broadband.engine import Engine, MeasureOptions
    from eduedge.collectors.broadband.probe import parse_server

    host, port = parse_server(server)
    opts = MeasureOptions(streams=streams, duration=duration, directions=(direction,), idle_probes=5)  # type: ignore[arg-type]
    t0 = time.process_time()
    r = asyncio.run(Engine(host, port, options=opts).run())
    spent = time.process_time() - t0
    th = r.down if direction == "down" else r.up
    err = r.error or (th.error if th else "no result")
    doc = {"error": err} if err or th is None else {"mbps": th.mbps, "bytes": th.bytes_total, "cpu_s": spent}
    print(json.dumps(doc))


@dataclass
class Pair:
    """Two namespaces and one veth (`wan0` on both ends), shaped like the simulator's WAN."""

    a: str
    b: str

    def create(self) -> None:
        for ns in (self.a, self.b):
            subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "link", "add", "wan0", "netns", self.a, "type", "veth", "peer", "name", "wan0",
                        "netns", self.b], check=True)
        for ns, addr in ((self.a, A_ADDR), (self.b, B_ADDR)):
            subprocess.run(["ip", "-n", ns, "addr", "add", f"{addr}/30", "dev", "wan0"], check=True)
            for dev in ("wan0", "lo"):
                subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)

    def shape(self, mbps: float) -> None:
        netns.shape(netns.NetnsPlan("", namespaces={"gw": self.a, "isp": self.b}), mbps, mbps)

    def delete(self) -> None:
        netns.delete([self.a, self.b])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--links", default="tbf100,tbf1000,loopback", help="any of tbf100, tbf1000, loopback")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--client", help=argparse.SUPPRESS)
    ap.add_argument("--direction", default="down", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        client_main(args.client, args.direction, args.duration, args.streams)
        return
    if shutil.which("iperf3") is None:
        sys.exit("iperf3 is not installed (scripts/install-system-deps)")
    wanted = args.links.split(",")
    if any(x.startswith("tbf") for x in wanted) and os.geteuid() != 0:
        sys.exit("the tbf links need root (network namespaces); use --links loopback otherwise")
    pair = Pair(f"eeb{os.getpid()}a", f"eeb{os.getpid()}b")
    rows = []
    try:
        if any(x.startswith("tbf") for x in wanted):
            pair.create()
        for name in wanted:
            if name == "loopback":
                link = Link("loopback (unshaped)", None, None, "127.0.0.1")
            else:
                mbps = float(name[3:])
                pair.shape(mbps)
                link = Link(f"tbf {mbps:g} Mbit/s", pair.a, pair.b, B_ADDR)
            for direction in ("down", "up"):
                ours = eduedge(link, direction, args.duration, args.streams)
                theirs = iperf3(link, direction, args.duration, args.streams)
                rows.append((link.name, direction, ours, theirs))
                print(f"  {link.name} {direction}: eduedge {ours.mbps:.1f}, iperf3 {theirs.mbps:.1f} Mbit/s",
                      file=sys.stderr, flush=True)
    finally:
        pair.delete()
    print(f"{'link':<22}{'dir':<6}{'eduedge Mbit/s':>15}{'iperf3 Mbit/s':>15}{'ratio':>8}"
          f"{'eduedge CPU s/GB':>18}{'iperf3 CPU s/GB':>17}{'CPU ratio':>11}")
    for name, direction, ours, theirs in rows:
        print(f"{name:<22}{direction:<6}{ours.mbps:>15.1f}{theirs.mbps:>15.1f}{ours.mbps / theirs.mbps:>8.3f}"
              f"{ours.cpu_per_gb:>18.3f}{theirs.cpu_per_gb:>17.3f}{ours.cpu_per_gb / theirs.cpu_per_gb:>11.2f}")
    print(f"(streams {args.streams}, {args.duration:g} s measured; ratio target 0.97-1.03 where the link is the "
          "bottleneck, >= 0.5 on unshaped loopback)")


if __name__ == "__main__":
    main()
