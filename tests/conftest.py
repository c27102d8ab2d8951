"""Shared test set-up: where the recorded real devices are, and the --soak switch for long runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The recordings stay where the team keeps them, beside the checkout (they are GPL test data of LibreNMS
# and are not copied into this repository). A checkout elsewhere finds them through the variable.
_CANDIDATES = [os.environ.get("EDUEDGE_REALDEVICES"), REPO.parent / "shared" / "realdevices",
               "/work/shared/realdevices"]
REALDEVICES = next((Path(c) for c in _CANDIDATES if c and (Path(c) / "snmprec").is_dir()),
                   REPO.parent / "shared" / "realdevices")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", default=False,
                     help="also run the long soak/load tests (many kill -9 rounds, big backlogs)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak"):
        return
    skip = pytest.mark.skip(reason="long run; use --soak")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def realdevices() -> Path:
    if not (REALDEVICES / "snmprec").is_dir():
        pytest.fail(f"recorded devices not found at {REALDEVICES} (set EDUEDGE_REALDEVICES)")
    return REALDEVICES
