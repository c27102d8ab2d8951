"""Shared test set-up: where the recorded real devices are (and every one of them polled once), and the --soak
switch for long runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="session")
def recording_polls(realdevices: Path) -> dict[str, Any]:
    """Every recording served by one snmpsim and polled once through the profile it matches (and the second
    batch once more through `generic`, as "generic:<name>"): test_realdevices and the LibreNMS oracle read the
    same polls, which took ~15 s each time they were made."""
    from tests.librenms_oracle import poll_recordings

    return poll_recordings(realdevices)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    """End the run with what was skipped for want of root (namespaces, raw sockets, tmpfs), by name: a run
    without root must not look like a run of everything."""
    rooted = [r for r in terminalreporter.stats.get("skipped", []) if "root" in str(r.longrepr)]
    if not rooted:
        return
    terminalreporter.write_line(f"{len(rooted)} tests skipped because they need root (run as root to include them):",
                                yellow=True)
    for r in rooted:
        reason = r.longrepr[2] if isinstance(r.longrepr, tuple) else str(r.longrepr)
        terminalreporter.write_line(f"  {r.nodeid}: {reason.removeprefix('Skipped: ')}")
