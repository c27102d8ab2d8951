"""The city console: time to render the city page (`GET /`, HTML with its charts and the schools table) for a city
of 200 and 2,000 schools, against the receiver's store on SQLite and on PostgreSQL.

    .venv/bin/python bench/city_page.py [--schools 200,2000] [--engines sqlite,postgresql] [--rounds 7]

The store is filled through the receiver's own path (the checker and the ingestor, in batches of 200
messages; no MQTT, which bench/cloud_ingest.py measures): `sim fleet` schools (simulator/fleet.py with 30
days of hourly history, findings judged by the agent's own compliance code, faults on). Building a fleet
school costs ~0.2 s (its agent's assess), so `--base` schools are built and the rest are copies of them
under their own ids (each copy its own series, rollups and findings). Then the seq sweep, as the receiver
runs it.

Per city and engine, the first render (which reads the access trend's past days; the app then rereads them
every 10 minutes), then the median of `--rounds` renders of `GET /` through the app
(FastAPI's test client: routing, the views' queries, rollups to charts, Jinja2), and the same for
`GET /api/city` (the same report as JSON, no HTML, no charts, no trend): their ratio is what the page
costs on top of the data. Nothing is asserted; figures are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient

from eduedge.agent import contract
from eduedge.agent.envelope import Envelope
from eduedge.cloud.checker import Accepted, Checker
from eduedge.cloud.config import CloudConfig
from eduedge.cloud.db import connect
from eduedge.cloud.ingest import Ingestor
from eduedge.cloud.sweep import sweep
from eduedge.cloud.web import CityWeb, create_app
from eduedge.simulator.fleet import Fleet, birth_body

TOKEN = "bench-viewer-token-0123456789"
CITY = "yinchuan"


def fleet_messages(schools: int, base: int) -> list[list[tuple[str, bytes]]]:
    """Per school, its (topic, payload) in order: birth, history batches, findings."""
    fleet = Fleet("127.0.0.1:1", base, 60.0, CITY, seed=11, history_days=30, faults=True)
    out: list[list[tuple[str, bytes]]] = []
    for i in range(schools):
        src = fleet.schools[i % base]
        sid = src.id if i < base else f"{src.id}-c{i:05d}"
        env = Envelope(sid, CITY, f"{sid}-gw", src.env.agent_version, src.env.boot_id)
        body = birth_body(src, 60.0)
        body["school_info"] = {**body["school_info"], "name": body["school_info"]["name"] + ("" if i < base
                                                                                              else f"（{i}）")}
        seq = 1
        msgs = [(contract.topic(CITY, sid, "birth"), env.encode("birth", seq, {**body, "bdSeq": 1}))]
        for kind, batch in src.backlog:
            seq += 1
            if kind == "findings" and i >= base:
                batch = [b.replace(f'"subject":"{src.id}"', f'"subject":"{sid}"') for b in batch]
            msgs.append((contract.topic(CITY, sid, kind), env.encode_batch(kind, seq, batch)))
        out.append(msgs)
    return out


def fill(cfg: CloudConfig, messages: list[list[tuple[str, bytes]]]) -> tuple[float, int]:
    db = connect(cfg.storage)
    checker, ing = Checker(cfg.ingest.max_message_bytes), Ingestor(db, cfg.ingest.dedup_window, "bench")
    flat = [m for school in messages for m in school]
    start, samples = time.perf_counter(), 0
    for i in range(0, len(flat), 200):
        batch: list[Accepted] = []
        for topic, payload in flat[i:i + 200]:
            v = checker.check(topic, payload)
            assert isinstance(v, Accepted), v
            batch.append(v)
        samples += ing.apply(batch, time.time()).samples
    sweep(db)
    db.close()
    return time.perf_counter() - start, samples


def timed(client: TestClient, path: str, rounds: int) -> tuple[float, float]:
    """(the first request's time, the median of `rounds` after it)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    t = time.perf_counter()
    r = client.get(path, headers=headers)
    first = time.perf_counter() - t
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        r = client.get(path, headers=headers)
        times.append(time.perf_counter() - t)
        assert r.status_code == 200
    return first, statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--schools", default="200,2000")
    ap.add_argument("--engines", default="sqlite,postgresql")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--base", type=int, default=100, help="schools built as the fleet builds them; the rest copied")
    args = ap.parse_args()
    sizes = [int(x) for x in args.schools.split(",")]
    engines = args.engines.split(",")
    t = time.perf_counter()
    messages = fleet_messages(max(sizes), min(args.base, max(sizes)))
    print(f"built {max(sizes)} schools' messages ({sum(len(m) for m in messages)}) in {time.perf_counter() - t:.0f} s",
          flush=True)
    rows: list[dict[str, Any]] = []
    for engine in engines:
        for n in sizes:
            with tempfile.TemporaryDirectory(prefix="eduedge-citypage-") as tmp:
                pg = None
                if engine == "postgresql":
                    from eduedge.cloud.pgserver import start_postgres

                    pg = start_postgres(fsync=False)
                    storage: dict[str, Any] = {"engine": "postgresql", "dsn": pg.dsn}
                else:
                    storage = {"path": str(Path(tmp) / "city.db")}
                try:
                    os.environ["EDUEDGE_BENCH_TOKEN"] = TOKEN
                    cfg = CloudConfig.model_validate({
                        "mqtt": {"broker": "127.0.0.1:1"}, "storage": storage,
                        "standards": {"packs": ["hebei-2019", "yinchuan-2018"]},
                        "serve": {"users": [{"name": "bench", "role": "viewer",
                                             "token": {"env": "EDUEDGE_BENCH_TOKEN"}}]}})
                    took, samples = fill(cfg, messages[:n])
                    web = CityWeb(cfg)
                    client = TestClient(create_app(web))
                    cold, page = timed(client, "/", args.rounds)
                    _, api = timed(client, "/api/city", args.rounds)
                    size = len(client.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).content)
                    rows.append({"engine": engine, "schools": n, "page_ms": page * 1000, "api_ms": api * 1000,
                                 "cold_ms": cold * 1000,
                                 "ratio": page / api, "kb": size / 1024, "samples": samples, "fill_s": took})
                    print(f"{engine:<10} {n:>5} schools: GET / {page * 1000:7.0f} ms (first {cold * 1000:.0f} ms, "
                          f"{size / 1024:.0f} KiB), "
                          f"GET /api/city {api * 1000:6.0f} ms, page/api {page / api:.2f}; store filled with "
                          f"{samples} samples in {took:.0f} s", flush=True)
                    web.db.close()
                finally:
                    if pg is not None:
                        pg.close()
    print("\n| store | schools | GET / (median) | first GET / | HTML | GET /api/city | page / api |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['engine']} | {r['schools']} | {r['page_ms']:.0f} ms | {r['cold_ms']:.0f} ms | {r['kb']:.0f} KiB "
              f"| {r['api_ms']:.0f} ms | {r['ratio']:.2f} |")


if __name__ == "__main__":
    main()
