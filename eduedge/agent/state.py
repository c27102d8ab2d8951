"""The daemon's small state file (`<data_dir>/state.json`), which `eduedge status` reads.

The daemon rewrites it every few seconds (write to a temporary file, then rename, so a reader never sees
half a file): its pid, whether the MQTT link is up, when each collector last succeeded, the outbox depth.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"


def state_path(data_dir: Path) -> Path:
    return Path(data_dir) / STATE_FILE


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Replace the state file atomically; `updated` is set to now."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({**state, "updated": time.time()}, indent=1, default=str))
    os.replace(tmp, path)


def read_state(path: Path) -> dict[str, Any] | None:
    """The last state the daemon wrote, or None if there is none (never run, or unreadable)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists (signal 0 probes without touching it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
