"""Poll the same SNMP agents with eduedge, net-snmp's C tools and prometheus-snmp-exporter; print ratios.

What is measured (client CPU = user + system time of the process that does the SNMP work):

- eduedge: `collectors.snmp.poller.DevicePoller.poll()` in this process, i.e. the agent's whole work per
  value: GETBULK walks (gufo-snmp), profile mapping, tags, rates (agent/rates.py), `Sample`s. CPU is
  `time.process_time()` around the steady-state polls (the first poll, which identifies the device and
  reads the static columns once an hour, is not counted).
- eduedge, SNMP reads only: the same GET and walks through collectors.snmp.client alone (gufo-snmp, no
  profile mapping), to show what the wire and decoding cost and what the agent's own work adds.
- net-snmp: one `snmpget` for the scalars plus one `snmpbulkwalk` per column, exactly the OIDs eduedge's
  steady-state poll reads; CPU from `getrusage(RUSAGE_CHILDREN)`. Each is a new process (a few ms of
  start-up each), so the table also has `snmpbulkwalk` over the whole ifTable and ifXTable, one process
  each: the issue's reference figure of C CPU per value, with start-up spread over many values.
- prometheus-snmp-exporter: a module per agent in a generated snmp.yml that gets and walks the same OIDs;
  CPU of the exporter process (psutil) per scrape.

The agents: net-snmp `snmpd` in network namespace `eduedge-bench-snmp` with 100 veth pairs (202
interfaces; this kernel has no `dummy` links), reached over a veth at 198.19.250.2; and snmpsim serving
real recordings from eduedge/simulator/realdevices/snmprec on 127.0.0.1.

Then two campus projections, each of 500 switches polled concurrently by one eduedge process with the
configuration defaults (concurrency, per-device rate limit, timeouts), cycle after cycle; the CPU of a
steady cycle over 60 s is the share of one core that polling every 60 s costs:
1. net-snmp agents with 48 veth ends (+ lo + uplink) in namespace `eduedge-bench-campus`, one UDP port
   per switch (5 snmpd, 100 ports each): the IF-MIB columns of the `linux` profile, 405 values/switch;
2. copies of a real 48-port Huawei S5720 recording (`--campus-recordings`), each on its own loopback
   port, answered by a child process using the simulator's BER responder (simulator/mib.py, a few µs per
   value; snmpsim would spend ~150 µs): its vendor profile, 677 values/switch (the board table's CPU and
   memory are read by GET for the one board row; walking those columns read 82 rows each, 839 values).

Run as root (it creates network namespaces; all traffic stays on loopback and in them):

    .venv/bin/python bench/snmp_poll.py                 # 20 polls per tool, 500-switch campus
    .venv/bin/python bench/snmp_poll.py --polls 5 --campus 100 --profile

Everything it starts (namespaces, veths, snmpd, snmpsim, the responder, the exporter) is removed at the
end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eduedge.collectors.snmp.client import SnmpAuth, SnmpClient, Value  # noqa: E402
from eduedge.collectors.snmp.config import SnmpDefaults  # noqa: E402
from eduedge.collectors.snmp.poller import DevicePoller, poll_many  # noqa: E402
from eduedge.collectors.snmp.profiles import ProfileSet, load_profiles  # noqa: E402
from eduedge.core.rates import RateTracker  # noqa: E402
from eduedge.simulator.shared import realdevices_dir  # noqa: E402
from eduedge.simulator.snmpd import SnmpdServer, start_snmpd  # noqa: E402
from eduedge.simulator.snmpsim import SnmpsimServer, free_udp_port, start_snmpsim  # noqa: E402

REALDEVICES = realdevices_dir()
NS_BIG, NS_CAMPUS = "eduedge-bench-snmp", "eduedge-bench-campus"
# (root-side veth, namespace-side veth, root address, namespace address): 198.18.0.0/15 is for benchmarks
LINK_BIG = ("ebench0", "ebench1", "198.19.250.1", "198.19.250.2")
LINK_CAMPUS = ("ebench2", "ebench3", "198.19.250.5", "198.19.250.6")
CAMPUS_PORT0 = 20001
PORTS_PER_SNMPD = 100
RECORDINGS = ["vrp_5720", "iosxe_c9300", "ruijie", "comware", "jetstream_sg2218p"]
NETSNMP_ENV = dict(os.environ, MIBS="", MIBDIRS="")
TOOLS = {"net-snmp": "net-snmp, same OIDs", "tables": "snmpbulkwalk, tables", "eduedge": "eduedge",
         "reads": "eduedge, SNMP reads only", "exporter": "prometheus-snmp-exporter"}
IF_TABLES = ["1.3.6.1.2.1.2.2", "1.3.6.1.2.1.31.1.1"]     # ifTable, ifXTable: the 5.3 µs/value walk


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Ctrl-C or SIGTERM while a peer is being started takes effect once it is registered for clean-up."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def sh(*args: str) -> None:
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class Lab:
    """Owns every namespace, link and process this bench creates, and removes them all in `close()`."""

    def __init__(self) -> None:
        self.namespaces: list[str] = []
        self.links: list[str] = []
        self.stops: list[Callable[[], None]] = []
        self.workdir = Path(tempfile.mkdtemp(prefix="eduedge-bench-"))
        NETSNMP_ENV["SNMP_PERSISTENT_DIR"] = str(self.workdir / "netsnmp")

    def namespace(self, name: str, veth_pairs: int, link: tuple[str, str, str, str]) -> None:
        """A namespace with `veth_pairs` veth pairs (2 interfaces each) and a veth to the root namespace."""
        self._remove_namespace(name)            # left over from a run that was killed hard
        self._remove_link(link[0])
        with signals_deferred():
            sh("ip", "netns", "add", name)
            self.namespaces.append(name)
        batch = self.workdir / f"{name}.batch"
        batch.write_text("link set lo up\n" + "".join(
            f"link add pa{i} type veth peer name pb{i}\nlink set pa{i} up\nlink set pb{i} up\n"
            for i in range(1, veth_pairs + 1)))
        sh("ip", "-n", name, "-batch", str(batch))
        root_if, ns_if, root_addr, ns_addr = link
        with signals_deferred():
            sh("ip", "link", "add", root_if, "type", "veth", "peer", "name", ns_if)
            self.links.append(root_if)
        sh("ip", "link", "set", ns_if, "netns", name)
        sh("ip", "addr", "add", f"{root_addr}/30", "dev", root_if)
        sh("ip", "link", "set", root_if, "up")
        sh("ip", "-n", name, "addr", "add", f"{ns_addr}/30", "dev", ns_if)
        sh("ip", "-n", name, "link", "set", ns_if, "up")

    def started(self, stop: Callable[[], None]) -> None:
        self.stops.append(stop)

    def close(self) -> None:
        for stop in reversed(self.stops):
            try:
                stop()
            except Exception as e:  # keep cleaning up the rest
                print(f"cleanup: {e}", file=sys.stderr)
        for name in self.namespaces:
            self._remove_namespace(name)
        for link in self.links:
            self._remove_link(link)
        shutil.rmtree(self.workdir, ignore_errors=True)

    @staticmethod
    def _remove_namespace(name: str) -> None:
        if name in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split():
            subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)

    @staticmethod
    def _remove_link(name: str) -> None:
        if Path(f"/sys/class/net/{name}").exists():
            subprocess.run(["ip", "link", "del", name], stderr=subprocess.DEVNULL)


@dataclass
class Target:
    """One agent, and what eduedge's steady-state poll reads from it."""

    name: str
    host: str
    port: int
    community: str
    agent_pid: int
    gets: list[str] = field(default_factory=list)
    walks: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)       # oid -> exporter type
    arcs: dict[str, int] = field(default_factory=dict)        # column -> arcs in its row index

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class Run:
    tool: str
    polls: int = 0
    values: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    agent_cpu_s: float = 0.0
    samples: int = 0
    errors: list[str] = field(default_factory=list)

    def per_poll(self, x: float) -> float:
        return x / self.polls if self.polls else 0.0


def cpu_of(pid: int) -> float:
    try:
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# -- eduedge -----------------------------------------------------------------------------------------------

def _kind(value: Value) -> str:
    if isinstance(value, int):
        return "gauge"
    if isinstance(value, bytes):
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return "OctetString"
    return "DisplayString"


async def learn_oids(target: Target, poller: DevicePoller) -> None:
    """Record which OIDs a steady-state eduedge poll reads, so that the other tools read the same."""
    client = poller.client
    get_many, walk = client.get_many, client.walk

    async def rec_get(oids: list[str]) -> dict[str, Value]:
        got = await get_many(oids)
        target.gets += [o for o in oids if o not in target.gets]
        target.kinds.update({o: _kind(v) for o, v in got.items()})
        return got

    async def rec_walk(oid: str) -> dict[str, Value]:
        rows = await walk(oid)
        if oid not in target.walks:
            target.walks.append(oid)
        if rows:
            index, value = next(iter(rows.items()))
            target.kinds[oid] = _kind(value)
            target.arcs[oid] = index.count(".") + 1
        return rows

    client.get_many, client.walk = rec_get, rec_walk      # type: ignore[method-assign]
    try:
        await poller.poll()
    finally:
        client.get_many, client.walk = get_many, walk     # type: ignore[method-assign]


def device_poller(name: str, host: str, port: int, community: str, profiles: ProfileSet, rates: RateTracker,
                  d: SnmpDefaults, rate_limit: bool) -> DevicePoller:
    client = SnmpClient(name, host, port, SnmpAuth(community=community), timeout=d.timeout, retries=d.retries,
                        max_repetitions=d.max_repetitions, rate_limit_rps=d.rate_limit_rps if rate_limit else None,
                        oids_per_request=d.oids_per_request)
    return DevicePoller(client, profiles, rates, deadline=d.deadline, static_refresh=d.static_refresh)


async def eduedge_round(poller: DevicePoller, run: Run, agent_pid: int) -> None:
    v0, a0 = poller.client.values, cpu_of(agent_pid)
    c0, w0 = time.process_time(), time.perf_counter()
    result = await poller.poll()
    run.wall_s += time.perf_counter() - w0
    run.cpu_s += time.process_time() - c0
    run.agent_cpu_s += cpu_of(agent_pid) - a0
    run.values += poller.client.values - v0
    run.samples += len(result.samples)
    run.polls += 1
    run.errors += result.errors


async def reads_round(client: SnmpClient, target: Target, run: Run) -> None:
    """Only the SNMP side of an eduedge poll (gufo-snmp GET + walks of the same OIDs), no profile mapping."""
    v0, a0 = client.values, cpu_of(target.agent_pid)
    c0, w0 = time.process_time(), time.perf_counter()
    await client.get_many(target.gets)
    for col in target.walks:
        await client.walk(col)
    run.wall_s += time.perf_counter() - w0
    run.cpu_s += time.process_time() - c0
    run.agent_cpu_s += cpu_of(target.agent_pid) - a0
    run.values += client.values - v0
    run.polls += 1


# -- net-snmp ----------------------------------------------------------------------------------------------

def netsnmp_round(target: Target, run: Run, max_rep: int, gets: list[str], walks: list[str]) -> None:
    base = ["-v2c", "-c", target.community, "-On", "-Oq", "-t", "2", "-r", "1", target.address]
    cmds = [["snmpget", *base, *gets]] if gets else []
    cmds += [["snmpbulkwalk", f"-Cr{max_rep}", *base, col] for col in walks]
    a0, c0, w0 = cpu_of(target.agent_pid), children_cpu(), time.perf_counter()
    outputs = [subprocess.run(cmd, capture_output=True, text=True, env=NETSNMP_ENV, errors="replace")
               for cmd in cmds]
    run.wall_s += time.perf_counter() - w0
    run.cpu_s += children_cpu() - c0
    run.agent_cpu_s += cpu_of(target.agent_pid) - a0
    run.polls += 1
    for cmd, out in zip(cmds, outputs, strict=True):
        root = "." + cmd[-1]
        for line in out.stdout.splitlines():
            # count values, not the "No Such Object" / "No more variables" lines
            if line.startswith("." if cmd[0] == "snmpget" else root) and " No Such " not in line \
                    and "No more variables" not in line:
                run.values += 1
        if out.returncode != 0:
            run.errors.append(f"{' '.join(cmd[:1] + cmd[-2:])}: {out.stderr.strip()[:200]}")


def process_startup_cpu(target: Target, n: int = 20) -> float:
    """CPU seconds a net-snmp tool process costs with almost nothing to decode (one GET): why one process
    per column costs the C tools so much more per value than one walk of a whole table."""
    c0 = children_cpu()
    for _ in range(n):
        subprocess.run(["snmpget", "-v2c", "-c", target.community, "-On", "-Oq", target.address,
                        "1.3.6.1.2.1.1.3.0"], capture_output=True, env=NETSNMP_ENV, check=True)
    return (children_cpu() - c0) / n


# -- prometheus-snmp-exporter ------------------------------------------------------------------------------

def exporter_module(t: Target, max_rep: int) -> dict:
    """An snmp.yml module that reads exactly the OIDs eduedge read from `t`."""
    def name(oid: str) -> str:
        return "o_" + oid.replace(".", "_")
    metrics = [{"name": name(o), "oid": o.removesuffix(".0"), "type": t.kinds.get(o, "gauge"), "help": o}
               for o in t.gets]
    metrics += [{"name": name(o), "oid": o, "type": t.kinds.get(o, "gauge"), "help": o,
                 "indexes": [{"labelname": f"i{k}", "type": "gauge"} for k in range(1, t.arcs.get(o, 1) + 1)]}
                for o in t.walks]
    return {"get": list(t.gets), "walk": list(t.walks), "metrics": metrics, "version": 2,
            "max_repetitions": max_rep, "retries": 1, "timeout": "2s", "auth": {"community": t.community}}


def start_exporter(lab: Lab, targets: list[Target], max_rep: int) -> tuple[subprocess.Popen, int]:
    conf = lab.workdir / "snmp.yml"
    conf.write_text(yaml.safe_dump({t.name: exporter_module(t, max_rep) for t in targets}, sort_keys=False))
    check = subprocess.run(["prometheus-snmp-exporter", f"--config.file={conf}", "--dry-run"],
                           capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"{conf}: prometheus-snmp-exporter refuses it: {check.stderr[-1500:]}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with signals_deferred():
        proc = subprocess.Popen(["prometheus-snmp-exporter", f"--config.file={conf}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=error"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        lab.started(lambda: stop_process(proc))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read()
            return proc, port
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("prometheus-snmp-exporter did not start")


def exporter_round(target: Target, run: Run, pid: int, port: int) -> None:
    url = f"http://127.0.0.1:{port}/snmp?target={target.address}&module={target.name}"
    a0, c0, w0 = cpu_of(target.agent_pid), cpu_of(pid), time.perf_counter()
    try:
        body = urllib.request.urlopen(url, timeout=60).read().decode()
    except OSError as e:
        body = ""
        run.errors.append(f"{target.name}: exporter scrape failed: {e}")
    run.wall_s += time.perf_counter() - w0
    run.cpu_s += cpu_of(pid) - c0
    run.agent_cpu_s += cpu_of(target.agent_pid) - a0
    run.polls += 1
    for line in body.splitlines():
        if line.startswith("snmp_scrape_pdus_returned "):
            run.values += int(float(line.split()[1]))


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# -- the comparison ----------------------------------------------------------------------------------------

async def compare(lab: Lab, targets: list[Target], profiles: ProfileSet, args: argparse.Namespace) -> None:
    d = SnmpDefaults(max_repetitions=args.max_repetitions)
    pollers = {}
    for t in targets:
        p = device_poller(t.name, t.host, t.port, t.community, profiles, RateTracker(), d, rate_limit=False)
        first = await p.poll()
        if first.identity is None:
            raise RuntimeError(f"{t.name}: eduedge cannot poll it: {first.errors}")
        await learn_oids(t, p)
        pollers[t.name] = p
        print(f"{t.name}: profile {first.identity.profile}; a steady poll GETs {len(t.gets)} scalars and walks "
              f"{len(t.walks)} columns", flush=True)
    readers = {t.name: device_poller(t.name, t.host, t.port, t.community, profiles, RateTracker(), d,
                                     rate_limit=False).client for t in targets}
    exporter, port = start_exporter(lab, targets, args.max_repetitions)
    startup = process_startup_cpu(targets[0])
    runs = {t.name: {k: Run(k) for k in TOOLS} for t in targets}
    for _ in range(args.polls):               # interleaved, so that all tools see the agents in the same state
        for t in targets:
            r = runs[t.name]
            netsnmp_round(t, r["net-snmp"], args.max_repetitions, t.gets, t.walks)
            netsnmp_round(t, r["tables"], args.max_repetitions, [], IF_TABLES)
            await eduedge_round(pollers[t.name], r["eduedge"], t.agent_pid)
            await reads_round(readers[t.name], t, r["reads"])
            exporter_round(t, r["exporter"], exporter.pid, port)
    report(targets, runs, startup)
    if args.profile:
        await profile_eduedge(pollers[targets[0].name], args.polls)


@dataclass
class Row:
    tool: str
    values: float          # per poll
    wall_s: float          # per poll
    cpu_s: float           # per poll
    agent_cpu_s: float | None = None

    @property
    def us_per_value(self) -> float:
        return 1e6 * self.cpu_s / self.values if self.values else float("nan")


def rows_for(r: dict[str, Run]) -> list[Row]:
    return [Row(TOOLS[k], run.per_poll(run.values), run.per_poll(run.wall_s), run.per_poll(run.cpu_s),
                run.per_poll(run.agent_cpu_s)) for k, run in r.items()]


def report(targets: list[Target], runs: dict[str, dict[str, Run]], startup: float) -> None:
    print(f"\nA net-snmp tool process costs {startup * 1000:.2f} ms CPU to start (one snmpget of one value, mean "
          "of 20).\n")
    head = (f"{'agent':<18} {'tool':<24} {'values':>7} {'wall ms':>8} {'CPU ms':>8} {'µs/value':>9} "
            f"{'CPU ratio':>9} {'wall ratio':>10} {'agent CPU ms':>12}")
    print(head)
    print("-" * len(head))
    table = {t.name: rows_for(runs[t.name]) for t in targets}
    totals = [Row(row.tool, sum(table[t.name][i].values for t in targets),
                  sum(table[t.name][i].wall_s for t in targets), sum(table[t.name][i].cpu_s for t in targets))
              for i, row in enumerate(table[targets[0].name])]
    for agent, rows in [*table.items(), ("all agents", totals)]:
        if agent == "all agents":
            print("-" * len(head))
        base = rows[0]
        for row in rows:
            other_oids = row.tool == TOOLS["tables"]      # reads whole tables: only CPU per value compares
            agent_cpu = f"{row.agent_cpu_s * 1000:>12.2f}" if row.agent_cpu_s is not None else ""
            print(f"{agent:<18} {row.tool:<24} {row.values:>7.0f} {row.wall_s * 1000:>8.1f} "
                  f"{row.cpu_s * 1000:>8.2f} {row.us_per_value:>9.2f} "
                  f"{row.us_per_value / base.us_per_value:>9.2f} "
                  + (f"{'':>10} " if other_oids else f"{row.wall_s / base.wall_s:>10.2f} ") + agent_cpu)
        for run in runs.get(agent, {}).values():
            for e in sorted(set(run.errors))[:3]:
                print(f"{'':<18}   ! {run.tool}: {e}")
    print(f"""
values: read per poll. "{TOOLS['net-snmp']}", eduedge and the exporter read exactly the OIDs of eduedge's
steady-state poll (net-snmp: one snmpget for the scalars + one snmpbulkwalk process per column);
"{TOOLS['tables']}" walks the whole ifTable and ifXTable, one process each, as the issue's reference figure.
CPU ratio: µs of client CPU per value over net-snmp's on the same OIDs; wall ratio: wall time per poll over
net-snmp's. agent CPU: the SNMP agent's (snmpd / snmpsim) CPU while serving that tool.""")
    ed = next(r for r in totals if r.tool == "eduedge")
    tables = next(r for r in totals if r.tool == TOOLS["tables"])
    ratio = ed.us_per_value / tables.us_per_value
    print(f"\ntarget: eduedge CPU per value within 2x of snmpbulkwalk: eduedge {ed.us_per_value:.2f} µs, "
          f"snmpbulkwalk (whole tables) {tables.us_per_value:.2f} µs -> {ratio:.2f}x "
          f"({'met' if ratio <= 2 else 'NOT met'}); against net-snmp on the same OIDs "
          f"{ed.us_per_value / totals[0].us_per_value:.2f}x")


async def profile_eduedge(poller: DevicePoller, polls: int) -> None:
    prof = cProfile.Profile(time.process_time)   # CPU, not wall: waiting for the agent is not cost
    prof.enable()
    for _ in range(polls):
        await poller.poll()
    prof.disable()
    print_profile(prof, f"{polls} eduedge polls of {poller.device}")


def print_profile(prof: cProfile.Profile, what: str) -> None:
    stats = pstats.Stats(prof)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:25]  # type: ignore[attr-defined]
    print(f"\ncProfile of {what} ({total:.3f} s profiled CPU), by own time:")
    print(f"{'own %':>6} {'cum %':>6} {'calls':>9}  function")
    for (file, lineno, func), (_cc, ncalls, tt, ct, _callers) in rows:
        where = file.replace(str(REPO) + "/", "")
        if "site-packages/" in where:
            where = where.split("site-packages/", 1)[1]
        print(f"{100 * tt / total:>6.1f} {100 * ct / total:>6.1f} {ncalls:>9}  {where}:{lineno}:{func}")


# -- the campus projection ---------------------------------------------------------------------------------

def campus_snmpd(lab: Lab, n: int, ports_per_switch: int) -> tuple[list[tuple[str, int]], list[int], str]:
    """`n` net-snmp agents with `ports_per_switch` interfaces (veth ends) in their own namespace."""
    ports = [CAMPUS_PORT0 + i for i in range(n)]
    _, _, root_addr, ns_addr = LINK_CAMPUS
    lab.namespace(NS_CAMPUS, ports_per_switch // 2, LINK_CAMPUS)
    # one snmpd listens on at most 128 addresses (measured: the 129th stays closed), so 100 per snmpd
    agents = []
    for first in range(0, n, PORTS_PER_SNMPD):
        group = ports[first:first + PORTS_PER_SNMPD]
        extra = (f"rocommunity public {root_addr}\ndontLogTCPWrappersConnects yes\n"
                 + "".join(f"agentAddress {','.join(f'udp:{ns_addr}:{p}' for p in group[i:i + 20])}\n"
                           for i in range(1, len(group), 20)))
        with signals_deferred():
            agents.append(start_snmpd(host=ns_addr, port=group[0], netns=NS_CAMPUS, extra_config=extra))
            lab.started(agents[-1].stop)
    return ([(ns_addr, p) for p in ports], [a.proc.pid for a in agents],
            f"{n} net-snmp agents with {ports_per_switch} ports (+ lo + uplink) on {len(agents)} snmpd in "
            f"{NS_CAMPUS} (profile: linux, the IF-MIB columns)")


def campus_recording(lab: Lab, n: int, recording: str) -> tuple[list[tuple[str, int]], list[int], str]:
    """`n` copies of a real device's recording, each on its own loopback port, served by a child process."""
    path = REALDEVICES / "snmprec" / f"{recording}.snmprec"
    with signals_deferred():
        proc = subprocess.Popen([sys.executable, __file__, "--serve-recording", str(path), "--serve-count", str(n)],
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
        lab.started(lambda: stop_process(proc))
    assert proc.stdout is not None
    ports = json.loads(proc.stdout.readline() or "[]")
    if len(ports) != n:
        raise RuntimeError(f"the responder for {path} did not start")
    return ([("127.0.0.1", p) for p in ports], [proc.pid],
            f"{n} copies of the {recording} recording on loopback ports (simulator/mib.py responder)")


def serve_recording(path: Path, count: int) -> None:
    """Answer v2c GET/GETNEXT/GETBULK from one recording on `count` loopback ports; print the ports."""
    from eduedge.simulator.ber import BerError, decode_request
    from eduedge.simulator.mib import Mib, answer
    from eduedge.simulator.snmprec import load_snmprec

    mib = Mib(dict(load_snmprec(path)))

    class Agent(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple) -> None:
            try:
                req = decode_request(data)
            except BerError:
                return
            self.transport.sendto(answer(mib, req, time.time()), addr)  # type: ignore[attr-defined]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ports = []
        for _ in range(count):
            transport, _ = await loop.create_datagram_endpoint(Agent, local_addr=("127.0.0.1", 0))
            ports.append(transport.get_extra_info("sockname")[1])
        print(json.dumps(ports), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


async def campus(endpoints: list[tuple[str, int]], agent_pids: list[int], title: str, profiles: ProfileSet,
                 cycles: int, profile: bool) -> None:
    d = SnmpDefaults()
    rates = RateTracker()
    pollers = [device_poller(f"sw{i + 1:03d}", host, port, "public", profiles, rates, d, rate_limit=True)
               for i, (host, port) in enumerate(endpoints)]
    print(f"\ncampus: {title}; polled by eduedge with the configuration defaults (concurrency {d.concurrency}, "
          f"{d.rate_limit_rps:g} requests/s per device, max-repetitions {d.max_repetitions})", flush=True)
    print(f"{'cycle':<7} {'wall s':>7} {'eduedge CPU s':>13} {'agents CPU s':>12} {'values':>8} {'samples':>8} "
          f"{'devices with errors':>19}")
    steady = []
    for cycle in range(cycles + 1):
        v0 = sum(p.client.values for p in pollers)
        a0, c0, w0 = sum(cpu_of(a) for a in agent_pids), time.process_time(), time.perf_counter()
        results = await poll_many(pollers, d.concurrency)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        agent = sum(cpu_of(a) for a in agent_pids) - a0
        values = sum(p.client.values for p in pollers) - v0
        samples = sum(len(r.samples) for r in results)
        failed = [r for r in results if r.errors]
        label = "first" if cycle == 0 else str(cycle)
        print(f"{label:<7} {wall:>7.2f} {cpu:>13.3f} {agent:>12.3f} {values:>8} {samples:>8} {len(failed):>19}",
              flush=True)
        for r in failed[:3]:
            print(f"        ! {r.errors[0]}")
        if cycle:
            steady.append((wall, cpu, values))
    profile_name = pollers[0].identity.profile if pollers[0].identity else "?"
    wall = sum(s[0] for s in steady) / len(steady)
    cpu = sum(s[1] for s in steady) / len(steady)
    values = sum(s[2] for s in steady) / len(steady)
    print(f"steady cycle ({profile_name}): {cpu:.3f} s CPU for {values:.0f} values ({values / len(pollers):.0f} per "
          f"device, {1e6 * cpu / values:.2f} µs per value), {wall:.2f} s wall")
    print(f"projection, every 60 s: {100 * cpu / 60:.2f} % of one core (target < 10 %); a cycle takes "
          f"{100 * wall / 60:.0f} % of the interval")
    if profile:
        prof = cProfile.Profile(time.process_time)
        prof.enable()
        await poll_many(pollers, d.concurrency)
        prof.disable()
        print_profile(prof, f"one more campus cycle ({profile_name})")


def big_agent(lab: Lab, pairs: int) -> SnmpdServer:
    lab.namespace(NS_BIG, pairs, LINK_BIG)
    _, _, root_addr, ns_addr = LINK_BIG
    with signals_deferred():
        server = start_snmpd(host=ns_addr, port=161, netns=NS_BIG,
                             extra_config=f"rocommunity public {root_addr}\ndontLogTCPWrappersConnects yes\n")
        lab.started(server.stop)
    return server


def recordings_agent(lab: Lab, names: list[str]) -> SnmpsimServer:
    paths = [REALDEVICES / "snmprec" / f"{n}.snmprec" for n in names]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise SystemExit(f"recordings not found: {', '.join(missing)} (set EDUEDGE_REALDEVICES)")
    with signals_deferred():
        server = start_snmpsim(paths, port=free_udp_port())
        lab.started(server.stop)
    return server


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that SIGTERM cleans up like Ctrl-C does


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--polls", type=int, default=20, help="measured polls per agent and tool; 0 skips the comparison")
    ap.add_argument("--veth-pairs", type=int, default=100, help="veth pairs in the big snmpd's namespace")
    ap.add_argument("--recordings", default=",".join(RECORDINGS),
                    help="recordings (file stems in realdevices/snmprec) served by snmpsim; '' for none")
    ap.add_argument("--max-repetitions", type=int, default=SnmpDefaults().max_repetitions)
    ap.add_argument("--campus", type=int, default=500, help="switches in the campus projection; 0 skips it")
    ap.add_argument("--campus-ports", type=int, default=48)
    ap.add_argument("--campus-recordings", default="vrp_5720",
                    help="also project a campus of copies of these recordings (their vendor profiles); '' for none")
    ap.add_argument("--cycles", type=int, default=3, help="measured campus cycles after the first")
    ap.add_argument("--profile", action="store_true",
                    help="cProfile eduedge's polls of the big snmpd and one more cycle of each campus")
    ap.add_argument("--serve-recording", type=Path, help=argparse.SUPPRESS)   # the responder child process
    ap.add_argument("--serve-count", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_recording:
        serve_recording(args.serve_recording, args.serve_count)
        return
    if os.geteuid() != 0:
        raise SystemExit("run as root: the bench creates network namespaces")
    # explicitly for SIGINT too: a shell starts background jobs with SIGINT ignored, and kill -INT must work
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    lab = Lab()
    try:
        profiles = load_profiles()
        if args.polls:
            big = big_agent(lab, args.veth_pairs)
            targets = [Target(f"snmpd-{2 * args.veth_pairs + 2}if", big.host, big.port, "public", big.proc.pid)]
            names = [n for n in args.recordings.split(",") if n]
            if names:
                sim = recordings_agent(lab, names)
                targets += [Target(n, sim.host, sim.port, n, sim.proc.pid) for n in names]
            asyncio.run(compare(lab, targets, profiles, args))
        if args.campus:
            asyncio.run(campus(*campus_snmpd(lab, args.campus, args.campus_ports), profiles, args.cycles,
                               args.profile))
            for rec in (r for r in args.campus_recordings.split(",") if r):
                asyncio.run(campus(*campus_recording(lab, args.campus, rec), profiles, args.cycles, args.profile))
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
    finally:
        lab.close()


if __name__ == "__main__":
    main()
