"""`make demo` is the main job end to end: a simulated campus, the agent, a broker, the city listening."""

from __future__ import annotations

import psutil
import pytest

from eduedge.simulator.demo import run_demo

pytestmark = pytest.mark.integration


def _ours() -> set[int]:
    return {p.pid for p in psutil.process_iter(["cmdline"])
            if any("eduedge-demo-" in part for part in (p.info["cmdline"] or []))}


def test_demo_delivers_contract_valid_telemetry_and_leaves_nothing_running():
    lines: list[str] = []
    assert run_demo(seconds=25, interval="5s", say=lines.append) == 0, "\n".join(lines)
    text = "\n".join(lines)
    assert "/birth" in text and "/death" in text and "(shutdown)" in text
    assert "every message met the telemetry contract" in text
    assert "samples of" in text and "from 0 devices" not in text
    assert _ours() == set()
