"""Where the simulator's recorded real devices live: `realdevices/` beside this file.

They are LibreNMS's test data (GPL-3.0-or-later, see realdevices/COPYING and README.md), kept in a folder
of their own with their own licence. `EDUEDGE_REALDEVICES` names another folder of the same layout.
"""

from __future__ import annotations

import os
from pathlib import Path

BUNDLED = Path(__file__).resolve().parent / "realdevices"


def realdevices_dir() -> Path:
    """The recorded real devices (`snmprec/`, `MANIFEST.tsv`; `expected/` in a source checkout)."""
    env = os.environ.get("EDUEDGE_REALDEVICES")
    return Path(env) if env else BUNDLED
