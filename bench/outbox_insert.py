"""What storing a poll's samples in the outbox costs, against a plain `json.dumps` and an SQLite insert of them.

    .venv/bin/python bench/outbox_insert.py [--rounds 30] [--polls 3] [--synchronous full]

The samples are real: polls of the Huawei S5720 recording (`realdevices/snmprec/vrp_5720.snmprec`, through the
`huawei-switch` profile and `collectors/snmp/recording.py`), as many as one collector result hands the outbox
(`--polls` switches per call: ~700 samples each, the issue's 700-sample calls at the default).

- **outbox**: `Outbox.add_samples(samples)` into an outbox in a temporary folder (WAL, `synchronous` as given,
  16 KiB pages, 256 KiB messages): the metrics messages built, batched under the size cap, and written in one
  transaction, with their bookkeeping.
- **json + sqlite**: `json.dumps([s.to_dict() for s in samples])` (compact separators, UTF-8 as the outbox
  writes it) and one `INSERT` of those bytes, committed, into a table of the same layout in a database with the
  same journal, synchronous setting and page size.

Both alternate call by call on the same samples; per side the CPU time of the calling process
(`time.process_time`, so a disk's fsync wait is not counted, its system-call time is), median and spread over
`--rounds` calls, in µs per sample, and the ratio of the medians. Target (issue 19): <= 1.2x.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eduedge.agent.envelope import Envelope  # noqa: E402
from eduedge.agent.outbox import Outbox  # noqa: E402
from eduedge.collectors.snmp.poller import DevicePoller  # noqa: E402
from eduedge.collectors.snmp.profiles import load_profiles  # noqa: E402
from eduedge.collectors.snmp.recording import RecordingClient  # noqa: E402
from eduedge.core.samples import Sample  # noqa: E402

RECORDING = REPO / "eduedge" / "simulator" / "realdevices" / "snmprec" / "vrp_5720.snmprec"


def poll_samples(switches: int) -> list[Sample]:
    """Samples of `switches` steady polls of the S5720 (the second poll of each: rates included), one device
    name per switch."""
    profiles = load_profiles()
    out: list[Sample] = []
    for i in range(switches):
        poller = DevicePoller(RecordingClient(RECORDING, f"sw-{i + 1:03d}"), profiles)
        asyncio.run(poller.poll())
        time.sleep(0.01)                       # a rate needs time between the readings
        out += asyncio.run(poller.poll()).samples
    return out


def plain(conn: sqlite3.Connection, samples: list[Sample]) -> None:
    payload = json.dumps([s.to_dict() for s in samples], separators=(",", ":"), ensure_ascii=False).encode()
    conn.execute("INSERT INTO outbox (kind, priority, topic, payload, size, items, t_first, t_last, created) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 ("metrics", 2, "edu/v1/bench/school/metrics", payload, len(payload), len(samples),
                  samples[0].time, samples[-1].time, time.time()))
    conn.commit()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--polls", type=int, default=1, help="switch polls per call (~700 samples each)")
    ap.add_argument("--synchronous", default="full", choices=("full", "normal", "off"))
    a = ap.parse_args()
    samples = poll_samples(a.polls)
    work = Path(tempfile.mkdtemp(prefix="eduedge-bench-outbox-insert-"))
    try:
        env = Envelope("bench-school", "benchcity", "gw-bench", "0.1.0", secrets.token_hex(16))
        box = Outbox(work / "outbox.sqlite", env, max_bytes=2 * 2**30, synchronous=a.synchronous)
        conn = sqlite3.connect(work / "plain.sqlite", isolation_level=None)
        conn.execute("PRAGMA page_size=16384")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={a.synchronous}")
        conn.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY, kind TEXT, priority INTEGER, topic TEXT, "
                     "payload BLOB, size INTEGER, items INTEGER, t_first REAL, t_last REAL, created REAL)")
        conn.isolation_level = ""              # implicit transactions, committed by plain()
        sides = {"outbox": lambda: box.add_samples(samples), "json + sqlite": lambda: plain(conn, samples)}
        for f in sides.values():               # warm: first pages, statements, caches
            f()
        cpu: dict[str, list[float]] = {k: [] for k in sides}
        for _ in range(a.rounds):
            for name, f in sides.items():
                t = time.process_time()
                f()
                cpu[name].append((time.process_time() - t) / len(samples) * 1e6)
        box.close()
        conn.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{len(samples)} samples per call ({a.polls} S5720 poll{'s' if a.polls > 1 else ''}), {a.rounds} calls "
          f"each, alternating, synchronous={a.synchronous}")
    print(f"{'side':<14} {'µs/sample median':>17} {'min':>7} {'max':>7}")
    for name, xs in cpu.items():
        print(f"{name:<14} {statistics.median(xs):17.2f} {min(xs):7.2f} {max(xs):7.2f}")
    ratio = statistics.median(cpu["outbox"]) / statistics.median(cpu["json + sqlite"])
    print(f"outbox / (json.dumps + sqlite insert): {ratio:.2f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
