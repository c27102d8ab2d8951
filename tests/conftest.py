"""Shared test set-up: where the recorded real devices are, and the --soak switch for long runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from eduedge.simulator.shared import realdevices_dir

REPO = Path(__file__).resolve().parents[1]
REALDEVICES = realdevices_dir()


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
