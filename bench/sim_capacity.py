"""How many simulated devices one CPU core serves at a 60-second polling interval; and the simulator's
own SNMP responder next to snmpsim serving the same recordings.

1. Campus: `eduedge sim up` a campus (default eduedge/simulator/campuses/campus-large.yaml, ~360 SNMP
   agents) in loopback
   mode, build the agent's pollers from the generated configuration, poll every device once to warm up
   (identification and static columns, as an agent does once an hour), then poll all of them `--rounds`
   times with the agent's concurrency. The runner process's CPU (user + system, psutil) per round is
   what one 60-second cycle costs the simulator, so one core serves
       devices x 60 s / (CPU seconds per round)
   devices at a 60 s interval.
2. Side by side: one agent per recording used by the campus, served once by the simulator's responder
   (simulator/ber.py + simulator/mib.py, inside the runner) and once by snmpsim
   (simulator/snmpsim.py, the unedited recording), both polled by the same production poller; the
   responders' CPU per value served and their ratio.

    .venv/bin/python bench/sim_capacity.py
    .venv/bin/python bench/sim_capacity.py --campus eduedge/simulator/campuses/campus-demo.yaml --rounds 5

Everything it starts is stopped at the end (sim down, snmpsim.stop()).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import tempfile
import time
from pathlib import Path

import psutil

from eduedge.agent.config import load_config
from eduedge.collectors.snmp.client import SnmpAuth, SnmpClient
from eduedge.collectors.snmp.poller import DevicePoller, poll_many
from eduedge.collectors.snmp.profiles import load_profiles
from eduedge.core.netaddr import split_host_port
from eduedge.simulator.campus import load_campus, recording_path
from eduedge.simulator.launch import sim_down, sim_up
from eduedge.simulator.snmpsim import start_snmpsim


def cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def build_pollers(agent_config: str, names: set[str] | None = None) -> list[DevicePoller]:
    cfg = load_config(agent_config)
    profiles = load_profiles(cfg.snmp.profile_dirs)
    auth = SnmpAuth.from_config(cfg.snmp.credentials["campus"], "campus")
    out = []
    for d in cfg.snmp.devices:
        if names is None or d.name in names:
            host, port = split_host_port(d.host)
            out.append(DevicePoller(SnmpClient(d.name, host, port, auth, timeout=5, retries=1), profiles))
    return out


async def measure(pollers: list[DevicePoller], proc: psutil.Process, rounds: int, concurrency: int,
                  per_device: dict[str, int] | None = None) -> tuple[float, int, float, list[str]]:
    """(responder CPU s per round, values per round, wall s per round, errors) over steady rounds;
    `per_device` gets each device's values per steady poll."""
    first = await poll_many(pollers, concurrency)
    errors = [e for r in first for e in r.errors]
    c0, t0, values = cpu(proc), time.monotonic(), 0
    for _ in range(rounds):
        results = await poll_many(pollers, concurrency)
        values += sum(r.values for r in results)
        errors += [e for r in results for e in r.errors]
        if per_device is not None:
            per_device.update({r.device: r.values for r in results})
    return (cpu(proc) - c0) / rounds, values // rounds, (time.monotonic() - t0) / rounds, errors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--campus", type=Path, default=Path("eduedge/simulator/campuses/campus-large.yaml"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()

    campus = load_campus(args.campus)
    with tempfile.TemporaryDirectory(prefix="eduedge-simcap-") as tmp:
        t0 = time.monotonic()
        state = sim_up(args.campus, Path(tmp) / "state")
        up_s = time.monotonic() - t0
        try:
            runner = psutil.Process(state.pids["runner"])
            rss = runner.memory_info().rss / 2**20
            pollers = build_pollers(state.agent_config)
            kinds = collections.Counter(e.kind for e in state.endpoints if e.snmp_port)
            kind_of = {e.name: e.kind for e in state.endpoints}
            per_device: dict[str, int] = {}
            per_round, values, wall, errors = asyncio.run(measure(pollers, runner, args.rounds, args.concurrency,
                                                                  per_device))
            n = len(pollers)
            print(f"campus {args.campus}: {n} SNMP agents ({', '.join(f'{v} {k}' for k, v in kinds.items())}), "
                  f"up in {up_s:.1f} s, runner RSS {rss:.0f} MiB")
            print(f"  one poll of every device: {values} values, runner CPU {per_round:.2f} s "
                  f"({per_round / max(values, 1) * 1e6:.1f} µs/value), wall {wall:.1f} s, errors {len(errors)}")
            print(f"  => one core serves {n * 60 / per_round:.0f} such devices at a 60 s interval "
                  f"({per_round / 60 * 100:.1f} % of a core for this campus)")
            us = per_round / max(values, 1)
            for kind in kinds:
                vals = [v for d, v in per_device.items() if kind_of[d] == kind]
                avg = sum(vals) / len(vals)
                print(f"     {kind:<10} {avg:6.0f} values per poll -> {60 / (avg * us):8.0f} per core at 60 s "
                      "(at the campus's mean cost per value)")
            for e in errors[:5]:
                print(f"  error: {e}")

            # side by side with snmpsim: one agent per recording the campus uses
            models: dict[str, str] = {}
            for node in (*campus.switches, campus.wireless.controller, *campus.wireless.aps, *campus.devices):
                if node is not None and getattr(node, "model", None) and recording_path(node.model).exists():
                    models.setdefault(node.model, node.name)
            ours = build_pollers(state.agent_config, set(models.values()))
            our_cpu, our_values, _, _ = asyncio.run(measure(ours, runner, args.rounds, args.concurrency))
        finally:
            sim_down(Path(tmp) / "state")

    with start_snmpsim([recording_path(m) for m in models]) as sim:
        profiles = load_profiles()
        theirs = [DevicePoller(SnmpClient(m, sim.host, sim.port, SnmpAuth(community=m), timeout=10, retries=1),
                               profiles) for m in models]
        sim_cpu, sim_values, _, sim_errors = asyncio.run(measure(theirs, psutil.Process(sim.proc.pid),
                                                                 args.rounds, args.concurrency))
    ours_us = our_cpu / max(our_values, 1) * 1e6
    sim_us = sim_cpu / max(sim_values, 1) * 1e6
    print(f"side by side, one agent per recording ({len(models)}: {', '.join(models)}), same poller:")
    print(f"  simulator responder: {our_values} values/round, {ours_us:.1f} µs CPU/value")
    print(f"  snmpsim 1.x:         {sim_values} values/round, {sim_us:.1f} µs CPU/value"
          f"{f' ({len(sim_errors)} errors)' if sim_errors else ''}")
    print(f"  ratio snmpsim / simulator: {sim_us / max(ours_us, 1e-9):.1f}x")


if __name__ == "__main__":
    main()
