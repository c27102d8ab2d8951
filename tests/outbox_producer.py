"""A heavy publisher for the kill -9 test: the agent's own Outbox and Link, fed ~10,000 samples a second.

    python tests/outbox_producer.py DATA_DIR BROKER ROUND        # produce until killed
    python tests/outbox_producer.py DATA_DIR BROKER drain        # produce nothing, exit once delivered

Each sample is (round, i) with i counting from 0; after each batch is committed the producer prints
`ROUND LAST_I` and flushes, so the test knows a lower bound of what was durably stored when it killed us.
"""

from __future__ import annotations

import secrets
import sys
import time
from pathlib import Path

from eduedge.agent.config import MqttConfig
from eduedge.agent.envelope import Envelope
from eduedge.agent.link import Link
from eduedge.agent.outbox import Outbox
from eduedge.core.samples import Sample

BATCH = 100


def main() -> None:
    data_dir, broker, round_ = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    env = Envelope("test-school", "testcity", "gw-kill", "0.1.0", secrets.token_hex(16))
    box = Outbox(data_dir / "outbox.db", env, max_bytes=10**9)
    cfg = MqttConfig(broker=broker, reconnect_min=0.1, reconnect_max=0.5, max_inflight=50)
    link = Link(cfg, box, env, birth=lambda: {
        "school_info": {"name": "t", "type": "primary"}, "config_digest": "0" * 16, "collectors": [],
        "devices": [], "commands": [], "outbox": {"rows": 0, "bytes": 0}}, client_id="eduedge-kill-test")
    link.start()
    if round_ == "drain":
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (box.stats().rows or box.inflight()):
            time.sleep(0.1)
        link.stop()
        print("drained" if not box.stats().rows else "not drained", flush=True)
        return
    i = 0
    while True:
        now = time.time()
        box.add_samples([Sample(now, "sw-1", "test.counter", i + k, "", {"round": round_}) for k in range(BATCH)])
        i += BATCH
        print(round_, i - 1, flush=True)
        time.sleep(0.01)


if __name__ == "__main__":
    main()
