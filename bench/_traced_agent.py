"""`eduedge ARGS...` under tracemalloc, for bench/footprint.py --tracemalloc.

    python bench/_traced_agent.py PREFIX WARMUP_SECONDS run --config agent.yaml

Writes PREFIX.warm once WARMUP_SECONDS have passed, and PREFIX.end every 30 s after that (replaced atomically,
so the last one written before the agent is stopped is the end of the run, not its shutdown).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path


def _snapshots(prefix: Path, warmup: float) -> None:
    time.sleep(warmup)
    tracemalloc.take_snapshot().dump(str(prefix.with_suffix(".warm")))
    while True:
        time.sleep(30)
        tmp = prefix.with_suffix(".tmp")
        tracemalloc.take_snapshot().dump(str(tmp))
        os.replace(tmp, prefix.with_suffix(".end"))


def main() -> None:
    prefix, warmup = Path(sys.argv[1]), float(sys.argv[2])
    tracemalloc.start(1)
    threading.Thread(target=_snapshots, args=(prefix, warmup), daemon=True, name="tracemalloc").start()
    sys.argv = ["eduedge", *sys.argv[3:]]
    from eduedge.cli import main as eduedge

    eduedge()


if __name__ == "__main__":
    main()
