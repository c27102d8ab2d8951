"""The city cloud's receiver: samples per second into SQLite and PostgreSQL, against raw paho on the same broker.

    .venv/bin/python bench/cloud_ingest.py [--samples 400000] [--schools 100] [--modes raw,sqlite,pg1,pg2,raw2]

1. Messages: `--schools` simulated schools (simulator/fleet.py: campus models of every school type, their
   interface rates, states, uptimes and Wi-Fi clients) each report rounds of samples, batched by the
   agent's envelope under its 256 KiB cap, until `--samples` samples; built once, before anything is timed.
2. Per mode, a fresh loopback mosquitto; the consumers connect and subscribe to `$share/bench/edu/v1/#`;
   two publisher processes then send every message at QoS 1 as fast as the broker takes them.
   - `raw`, `raw2`: one or two paho subscribers (each its own process) that only count messages - what the
     broker and paho can deliver, the ceiling for any receiver.
   - `sqlite`: one `eduedge cloud ingest` process into SQLite (synchronous=full, WAL).
   - `pg1`, `pg2`: one or two `eduedge cloud ingest` processes into a throw-away PostgreSQL (fsync on).
   The rate is samples / (last message committed - first message received); for `raw`, to the last received.
   The receivers first store one minute of every school, untimed (a running city knows its series), so
   `--samples` must exceed that minute (about 108k samples for 100 schools); the bench says so if not.
3. The contract check alone: the agent's `jsonschema` against the receiver's compiled jsonschema-rs
   validator, per metrics message of 100 samples.

Target (issue 9): >= 20,000 samples/s per receiver into SQLite. Nothing is asserted; figures are printed,
with the receivers' CPU time: samples per receiver CPU-second tells whether a second receiver would scale on a
machine with cores to spare (on a 2-core box the broker, PostgreSQL, publishers and receivers share them).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import timeit
import uuid
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eduedge.agent import contract  # noqa: E402
from eduedge.agent.envelope import Envelope  # noqa: E402
from eduedge.cloud.checker import validators  # noqa: E402
from eduedge.cloud.config import Storage, load_cloud_config  # noqa: E402
from eduedge.cloud.db import connect  # noqa: E402
from eduedge.cloud.pgserver import start_postgres  # noqa: E402
from eduedge.simulator.broker import start_broker  # noqa: E402

EDUEDGE = str(Path(sys.executable).with_name("eduedge"))
CAP = 256 * 1024


def build_messages(schools: int, target: int, per_message: int) -> tuple[list[tuple[str, bytes]], int, int, int]:
    """Contract-valid metrics messages of `schools` fleet schools, minute after minute, until `target` samples.

    One minute of each school comes from its campus model; later minutes repeat it a minute on (the receiver's
    work does not depend on the values). `per_message` > 0 batches that many samples per message instead of
    filling the agent's 256 KiB cap. Returns (messages, samples, messages and samples of the first minute)."""
    from eduedge.simulator.campus import load_campus
    from eduedge.simulator.fleet import CAMPUSES, TEMPLATE, samples, school_campus
    from eduedge.simulator.world import World

    templates = {f: load_campus(CAMPUSES / f) for f in set(TEMPLATE.values())}
    t0 = time.time() - 86400
    fleet = []
    for i in range(1, schools + 1):
        campus, _ = school_campus(templates, i, "benchcity", 11)
        env = Envelope(campus.school.id, "benchcity", f"{campus.school.id}-gw", "0.1.0", uuid.uuid4().hex)
        fleet.append((env, samples(World(campus, t0 - 120), t0, t0 + 60)))
    out: list[tuple[str, bytes]] = []
    total, minute, seqs, warm = 0, 0, [0] * schools, (0, 0)
    while total < target:
        if minute == 1 and not warm[0]:
            warm = (len(out), total)
        for k, (env, first) in enumerate(fleet):
            items = [{**s, "t": s["t"] + 60 * minute} for s in first]
            groups = ([items[j:j + per_message] for j in range(0, len(items), per_message)] if per_message
                      else env.batches(items, CAP))
            for batch in groups:
                seqs[k] += 1
                out.append((contract.topic("benchcity", env.school, "metrics"),
                            env.encode_batch("metrics", seqs[k], batch, t0 + 60 * (minute + 1))))
            total += len(items)
            if total >= target:
                break
        minute += 1
    # Short of a whole minute, every message is warm-up; the warm-up's samples are still the whole minute's.
    return out, total, *(warm if warm[0] else (len(out), sum(len(first) for _, first in fleet)))


def publisher(host: str, port: int, part: list[tuple[str, bytes]], ready: Any, go: Any) -> None:
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}",
                    protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(200)
    c.max_queued_messages_set(0)
    c.connect(host, port)
    c.loop_start()
    ready.set()
    go.wait()
    infos = [c.publish(t, p, qos=1) for t, p in part]
    for info in infos:
        info.wait_for_publish(120)
    c.loop_stop()
    c.disconnect()


def raw_subscriber(host: str, port: int, expect: int, ready: Any, result: Any) -> None:
    """Counts messages on the shared subscription; reports (messages, first, last) when it has `expect` or idles."""
    import paho.mqtt.client as mqtt

    state = {"n": 0, "first": 0.0, "last": 0.0}

    def on_message(_c: Any, _u: Any, m: Any) -> None:
        now = time.time()
        if not state["n"]:
            state["first"] = now
        state["n"] += 1
        state["last"] = now

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-raw-{uuid.uuid4().hex[:6]}",
                    protocol=mqtt.MQTTv5)
    c.on_message = on_message
    c.on_subscribe = lambda *a: ready.set()
    c.connect(host, port)
    c.subscribe("$share/bench/edu/v1/#", qos=1)
    c.loop_start()
    idle_since = time.time()
    seen = 0
    while state["n"] < expect and time.time() - idle_since < 10:
        time.sleep(0.05)
        if state["n"] != seen:
            seen, idle_since = state["n"], time.time()
    c.loop_stop()
    c.disconnect()
    result.put((state["n"], state["first"], state["last"]))


def publish_all(broker: Any, messages: list[tuple[str, bytes]]) -> tuple[list[mp.Process], float]:
    ctx = mp.get_context("fork")
    halves = [messages[0::2], messages[1::2]]
    readies, go = [ctx.Event() for _ in halves], ctx.Event()
    procs = [ctx.Process(target=publisher, args=(broker.host, broker.port, h, r, go)) for h, r in zip(halves, readies,
                                                                                                       strict=True)]
    for p in procs:
        p.start()
    for r in readies:
        r.wait(30)
    start = time.time()
    go.set()
    return procs, start


def run_raw(messages: list[tuple[str, bytes]], samples: int, consumers: int) -> dict[str, Any]:
    broker = start_broker(persistence=False)
    ctx = mp.get_context("fork")
    try:
        result = ctx.Queue()
        readies = [ctx.Event() for _ in range(consumers)]
        subs = [ctx.Process(target=raw_subscriber, args=(broker.host, broker.port, len(messages) // consumers + 1,
                                                          r, result)) for r in readies]
        for s in subs:
            s.start()
        for r in readies:
            r.wait(30)
        pubs, start = publish_all(broker, messages)
        got = [result.get(timeout=600) for _ in subs]
        for p in pubs + subs:
            p.join(60)
        n = sum(g[0] for g in got)
        first, last = min(g[1] for g in got if g[0]), max(g[2] for g in got)
        return {"messages": n, "samples": samples if n == len(messages) else None, "seconds": last - first,
                "publish_seconds": last - start}
    finally:
        broker.close()


def run_ingest(messages: list[tuple[str, bytes]], samples: int, warm: tuple[int, int], storage: dict[str, Any],
               receivers: int, work: Path) -> dict[str, Any]:
    """The first minute of every school is stored first, untimed: a city's series exist after its first minute,
    and a receiver's steady state is what it costs from then on."""
    broker = start_broker(persistence=False)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        cfg = work / "cloud.json"
        cfg.write_text(json.dumps({"mqtt": {"broker": broker.address, "group": "bench", "session_expiry": 0},
                                   "storage": storage, "ingest": {"rebirth_unknown": False}}))
        db = connect(load_cloud_config(cfg).storage)
        logs = [work / f"rx{i}.log" for i in range(receivers)]
        for i, log in enumerate(logs):
            with log.open("wb") as out:
                procs.append(subprocess.Popen([EDUEDGE, "cloud", "ingest", "--config", str(cfg), "--client-id",
                                               f"bench-rx{i}"], stdout=out, stderr=subprocess.STDOUT))
        end = time.monotonic() + 60
        while not all(log.exists() and "subscribing" in log.read_text() for log in logs):
            if time.monotonic() > end:
                raise RuntimeError("receivers did not subscribe: " + " | ".join(p.read_text()[-500:] for p in logs))
            time.sleep(0.1)
        time.sleep(0.5)

        def stored() -> int:
            return sum(int(v) for (v,) in db.query("SELECT value FROM counters WHERE name = 'messages'"))

        first = done = cpu = 0.0
        for part, timed in ((messages[:warm[0]], False), (messages[warm[0]:], True)):
            before, cpu0 = stored(), sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in procs)
            pubs, start = publish_all(broker, part)
            end = time.monotonic() + 900
            while stored() < before + len(part) and time.monotonic() < end:
                time.sleep(0.02)
            done = time.time()
            for p in pubs:
                p.join(60)
            if timed:
                first = db.query("SELECT MIN(received) FROM messages WHERE received >= ?", [start])[0][0]
                cpu = sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in procs) - cpu0
        got = int(db.query("SELECT COUNT(*) FROM samples")[0][0])
        db.close()
        # From the first timed message a receiver took to the moment the last one was committed (polled every
        # 20 ms); `received` is stamped when a batch is taken, before it is checked and stored.
        return {"messages": len(messages) - warm[0], "samples": samples - warm[1], "seconds": done - first,
                "cpu_seconds": cpu, "complete": got == samples}
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.close()


def validation_figures() -> dict[str, float]:
    env = Envelope("bench-school", "benchcity", "gw", "0.1.0", "0" * 32)
    items = [{"t": 1.8e9, "device": f"sw{i % 20}", "metric": "if.in_bps", "value": 1234.5 * i, "unit": "bit/s",
              "tags": {"interface": f"Gi0/{i}", "if_index": str(i)}} for i in range(100)]
    msg = json.loads(env.encode_batch("metrics", 7, items))
    rs = validators()["metrics"]
    assert rs.is_valid(msg) and contract.problems(msg) == []
    py = min(timeit.repeat(lambda: contract.problems(msg), number=20, repeat=3)) / 20
    fast = min(timeit.repeat(lambda: rs.is_valid(msg), number=500, repeat=3)) / 500
    return {"jsonschema_ms": py * 1000, "jsonschema_rs_ms": fast * 1000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=400_000)
    ap.add_argument("--schools", type=int, default=100)
    ap.add_argument("--per-message", type=int, default=0, help="samples per message (default: the agent's 256 KiB cap)")
    ap.add_argument("--modes", default="raw,sqlite,pg1,pg2,raw2")
    a = ap.parse_args()
    random.seed(1)
    t = time.perf_counter()
    messages, samples, warm_messages, warm_samples = build_messages(a.schools, a.samples, a.per_message)
    warm = (warm_messages, warm_samples)
    modes = a.modes.split(",")
    if warm_messages >= len(messages) and set(modes) - {"raw", "raw2"}:
        # The receivers store one minute of every school untimed; with no more samples than that there is
        # nothing left to time.
        ap.error(f"--samples {a.samples} does not exceed the untimed warm-up (one minute of {a.schools} schools: "
                 f"{warm_samples} samples); ask for more samples or fewer --schools")
    size = sum(len(p) for _, p in messages)
    print(f"{len(messages)} metrics messages, {samples} samples from {a.schools} schools "
          f"({size / len(messages) / 1024:.0f} KiB, {samples / len(messages):.0f} samples per message; "
          f"built in {time.perf_counter() - t:.1f} s)")
    v = validation_figures()
    print(f"contract check per 100-sample message: jsonschema {v['jsonschema_ms']:.2f} ms, "
          f"jsonschema-rs {v['jsonschema_rs_ms']:.3f} ms ({v['jsonschema_ms'] / v['jsonschema_rs_ms']:.0f}x)")
    work = Path(tempfile.mkdtemp(prefix="eduedge-bench-cloud-"))
    pg = None
    rows: list[tuple[str, dict[str, Any]]] = []
    try:
        for mode in modes:
            if mode.startswith("pg") and pg is None:
                pg = start_postgres()
            if mode in ("raw", "raw2"):
                r = run_raw(messages, samples, 1 if mode == "raw" else 2)
            elif mode == "sqlite":
                (work / "sqlite").mkdir(exist_ok=True)
                r = run_ingest(messages, samples, warm, {"path": str(work / "sqlite" / "city.db")}, 1, work)
            else:
                assert pg is not None
                dbname = f"bench_{mode}"
                admin = connect(Storage(engine="postgresql", dsn=pg.dsn))
                admin.execute(f"CREATE DATABASE {dbname}")
                admin.close()
                r = run_ingest(messages, samples, warm, {"engine": "postgresql",
                                                   "dsn": pg.dsn.replace("dbname=postgres", f"dbname={dbname}")},
                               1 if mode == "pg1" else 2, work)
            rows.append((mode, r))
            rate = (r["samples"] or 0) / r["seconds"] if r["seconds"] else 0.0
            note = "" if r.get("complete", True) else "  INCOMPLETE: not every sample was stored"
            if r.get("cpu_seconds"):
                note = f"; {r['samples'] / r['cpu_seconds']:,.0f} samples per receiver CPU-second{note}"
            print(f"  {mode:<7} {r['messages']:>6} msgs {r['samples'] or 0:>8} samples in {r['seconds']:6.2f} s: "
                  f"{rate:>9,.0f} samples/s{note}")
    finally:
        if pg is not None:
            pg.close()
        shutil.rmtree(work, ignore_errors=True)
    rates = {m: (r["samples"] or 0) / r["seconds"] for m, r in rows if r["seconds"]}
    print("\nmode     samples/s   vs raw paho (same consumers)")
    for m, rate in rates.items():
        base = rates.get("raw2" if m in ("pg2", "raw2") else "raw")
        print(f"{m:<8} {rate:>10,.0f}   {rate / base:.2f}" if base else f"{m:<8} {rate:>10,.0f}")
    if "pg1" in rates and "pg2" in rates:
        print(f"PostgreSQL, two receivers on one shared subscription vs one: {rates['pg2'] / rates['pg1']:.2f}x")


if __name__ == "__main__":
    main()
