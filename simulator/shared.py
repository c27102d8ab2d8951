"""Where the team's shared material lives: the recorded real devices and the seed documents.

They are kept beside the checkout (`../shared/`), not copied into it (the recordings are LibreNMS's
GPL test data). A checkout elsewhere names the folder with `EDUEDGE_SHARED`; the recordings alone can be
named with `EDUEDGE_REALDEVICES`.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The shared folder: `$EDUEDGE_SHARED`, else `../shared` beside the checkout, else /work/shared."""
    candidates = [os.environ.get("EDUEDGE_SHARED"), REPO.parent / "shared", "/work/shared"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return REPO.parent / "shared"


def realdevices_dir() -> Path:
    """The recorded real devices (`snmprec/`, `expected/`, `MANIFEST.tsv`)."""
    env = os.environ.get("EDUEDGE_REALDEVICES")
    return Path(env) if env else shared_dir() / "realdevices"
