"""A simulated city for the city console's tests, screenshots and bench: `sim fleet` schools through a real
mosquitto into a real receiver (`cloud ingest`'s Receiver) and its SQLite store.

    python -m tests.city_helpers DIR [SCHOOLS] [SECONDS]   # builds DIR/city.db and DIR/cloud.yaml, for a look
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from eduedge.cloud.config import CloudConfig, load_cloud_config
from eduedge.cloud.db import connect
from eduedge.cloud.sweep import sweep
from eduedge.simulator.broker import start_broker
from eduedge.simulator.fleet import Fleet

VIEWER, OPERATOR = "viewer-token-0123456789", "operator-token-0123456789"


def city_config(work: Path, broker: str, **city: Any) -> Path:
    """A cloud configuration with a viewer and an operator (tokens in files beside it)."""
    (work / "viewer.token").write_text(VIEWER + "\n")
    (work / "operator.token").write_text(OPERATOR + "\n")
    path = work / "cloud.yaml"
    path.write_text(json.dumps({
        "mqtt": {"broker": broker}, "storage": {"path": "city.db"},
        "standards": {"packs": ["hebei-2019", "yinchuan-2018"]},
        "city": {"offline_after": "1h", **city},
        "serve": {"users": [{"name": "ana", "role": "viewer", "token": {"file": "viewer.token"}},
                            {"name": "oleg", "role": "operator", "token": {"file": "operator.token"}}]}},
        ensure_ascii=False))
    return path


def simulate_city(work: Path, schools: int, seconds: float, interval: float = 20.0, seed: int = 1,
                  history_days: int = 30) -> tuple[Path, dict[str, Any]]:
    """Run `schools` simulated schools, each sending `history_days` of history first, for `seconds` into a
    receiver; returns (cloud.yaml, the fleet's stats)."""
    work.mkdir(parents=True, exist_ok=True)
    broker = start_broker(work / "broker")
    cfg_path = city_config(work, broker.address)
    cfg: CloudConfig = load_cloud_config(cfg_path)
    # The receiver in a process of its own, as a city runs it (in this one it would share the GIL with the fleet).
    log = (work / "receiver.log").open("ab")
    rx = subprocess.Popen([sys.executable, "-c", "from eduedge.cli import main; main()", "cloud", "ingest", "-c",
                           str(cfg_path), "--client-id", "rx-city"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "subscribing" not in (work / "receiver.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        fleet = Fleet(broker.address, schools, interval, "yinchuan", seed, history_days=history_days, faults=True)
        stats = fleet.run(seconds, shutdown=False)   # the broker then stops without wills: a running city
        db = connect(cfg.storage)
        # Wait until the receiver has stored every message the broker acknowledged to the schools.
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            n = db.query("SELECT COALESCE(SUM(value), 0) FROM counters WHERE name = 'messages' OR name = 'duplicates' "
                         "OR name LIKE 'rejected.%'")[0][0]
            if n >= stats.acked:
                break
            time.sleep(1.0)
        else:
            raise RuntimeError(f"the receiver stored {n} of the {stats.acked} messages the broker acknowledged")
        sweep(db)
        db.close()
    finally:
        rx.terminate()
        try:
            rx.wait(30)
        except subprocess.TimeoutExpired:
            rx.kill()
            rx.wait(10)
        log.close()
        broker.close()
    return cfg_path, stats.__dict__


if __name__ == "__main__":
    where = Path(sys.argv[1])
    path, st = simulate_city(where, int(sys.argv[2]) if len(sys.argv) > 2 else 200,
                             float(sys.argv[3]) if len(sys.argv) > 3 else 60)
    print(path, st)
