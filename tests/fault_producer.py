"""A publisher for the fault soak: the agent's own Outbox and Link on a small disk, fed samples until killed.

    python tests/fault_producer.py DATA_DIR BROKER ROUND MAX_BYTES     # produce until killed
    python tests/fault_producer.py DATA_DIR BROKER drain MAX_BYTES     # produce nothing, exit once delivered

Each batch is 50 samples (round, i) in one metrics message. After each batch the producer prints
`ROUND LAST_I ok SEQ` when the message was committed with seq SEQ, or `ROUND LAST_I fail` when it could not
be written (a full disk with nothing left to evict), and flushes: the test then knows which seqs were durably
stored when it killed us.
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

BATCH = 50


def main() -> None:
    data_dir, broker, round_, max_bytes = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    env = Envelope("test-school", "testcity", "gw-faults", "0.1.0", secrets.token_hex(16))
    box = Outbox(data_dir / "outbox.db", env, max_bytes=max_bytes, max_message_bytes=16384)
    cfg = MqttConfig(broker=broker, reconnect_min=0.1, reconnect_max=0.3, max_inflight=50)
    link = Link(cfg, box, env, birth=lambda: {
        "school_info": {"name": "t", "type": "primary"}, "config_digest": "0" * 16, "collectors": [],
        "devices": [], "commands": [], "outbox": {"rows": 0, "bytes": 0}}, client_id="eduedge-fault-soak")
    link.start()
    if round_ == "drain":
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (box.stats().rows or box.inflight()):
            box.maintain()  # what a full disk kept from being declared is declared now
            time.sleep(0.1)
        link.stop()
        print("drained" if not box.stats().rows else "not drained", flush=True)
        return
    i = 0
    while True:
        made = box.add_samples([Sample(time.time(), "sw-1", "test.counter", i + k, "", {"round": round_})
                                for k in range(BATCH)])
        i += BATCH
        print(round_, i - 1, f"ok {box._next_seq - 1}" if made else "fail", flush=True)
        if i % 2000 == 0:
            box.maintain()
        time.sleep(0.005)


if __name__ == "__main__":
    main()
