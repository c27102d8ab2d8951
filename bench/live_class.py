"""How long the live-class rules take to judge a big school, and what memory that costs.

A store holds ROOMS classroom drops with DAYS of quarter-hour load peaks (down, up, errors: what the daemon's
live-class job keeps) and a probe round to the live-class server every quarter hour; both profiles of the
live-class pack are judged once, as the compliance job does every few minutes. Prints the time and how much
the process's peak RSS grew.

    .venv/bin/python bench/live_class.py --rooms 300 --days 7
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from eduedge.agent.compliance import evaluate, load_packs
from eduedge.agent.config import AgentConfig
from eduedge.agent.samplestore import SampleStore
from eduedge.core.samples import Sample

NOW = 1_741_658_400.0
QUARTER = 900.0


def school(rooms: int) -> AgentConfig:
    return AgentConfig.model_validate({
        "school": {"id": "big", "name": "Big", "city": "yc", "type": "primary"},
        "snmp": {"credentials": {"c": {"version": "2c", "community": {"env": "UNUSED"}}},
                 "devices": [{"name": "acc", "host": "198.18.0.2", "credentials": "c", "role": "access"}]},
        "standards": {"school_hours": {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00",
                                       "end": "17:00"}},
        "topology": {"classroom_drops": [{"device": "acc", "port": f"Gi0/{i}", "room": f"R{i}"}
                                         for i in range(rooms)]},
        "live_class": {"endpoints": [{"name": "live-1", "role": "live-class", "echo": "198.18.0.10:5201"}]}})


def fill(store: SampleStore, rooms: int, days: float) -> int:
    for i in range(rooms):
        tags = {"if_index": str(i), "interface": f"Gi0/{i}"}
        store.add([Sample(NOW - 30, "acc", "if.speed_mbps", 1000, "Mbit/s", tags),
                   Sample(NOW - 30, "acc", "if.oper_status", "up", "state", tags)])
    quarters = int(days * 86400 / QUARTER)
    for k in range(quarters):
        t = NOW - QUARTER * (quarters - k)
        batch = [Sample(t, "live-1", "service.udp_rtt_ms", 20.0, "ms", {"role": "live-class"})]
        for i in range(rooms):
            tags = {"room": f"R{i}", "interface": f"Gi0/{i}"}
            batch += [Sample(t, "acc", "liveclass.drop_down_mbps", 5.0 + i % 7, "Mbit/s", tags),
                      Sample(t, "acc", "liveclass.drop_up_mbps", 1.0, "Mbit/s", tags),
                      Sample(t, "acc", "liveclass.drop_errors_pps", 0.0, "packets/s", tags)]
        store.add(batch)
    return 3 * rooms * quarters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rooms", type=int, default=300)
    ap.add_argument("--days", type=float, default=7.0)
    args = ap.parse_args()
    cfg = school(args.rooms)
    with tempfile.TemporaryDirectory() as d:
        store = SampleStore(Path(d) / "compliance.sqlite")
        rows = fill(store, args.rooms, args.days)
        rules = load_packs(["live-class"])
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        findings = evaluate(store, cfg, NOW, rules)
        seconds = time.perf_counter() - t0
        grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
        store.close()
    print(f"{args.rooms} classrooms, {args.days:g} days of quarter-hour load peaks ({rows} rows): "
          f"{len(findings)} profiles judged in {seconds:.2f} s, peak RSS +{grew:.0f} MB")


if __name__ == "__main__":
    main()
