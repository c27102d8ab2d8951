"""The daemon's live-class jobs: `run-check live-class` probes the configured endpoints (here the project's test
server on loopback, and a port where nothing listens) and the probe rounds reach the store the readiness reads
and the outbox the city reads; `live-class:loads` keeps the drop and uplink loads at the SNMP cadence."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from eduedge.agent import contract
from eduedge.agent.daemon import Daemon
from eduedge.cloud.speedtest_server import SpeedtestServer

pytestmark = pytest.mark.integration


@pytest.fixture
def test_server() -> Any:
    loop = asyncio.new_event_loop()
    server = SpeedtestServer("127.0.0.1", 0)
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_run_check_live_class_probes_the_endpoints_into_store_and_outbox(test_server, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    cfg = tmp_path / "eduedge.yaml"
    cfg.write_text(f"""school: {{id: s-1, name: S, city: yc, type: primary}}
agent: {{data_dir: {tmp_path / "data"}}}
host: {{enabled: false}}
live_class:
  enabled: true
  interval: 1h
  endpoints:
    - {{name: live-1, role: live-class, echo: "127.0.0.1:{test_server.port}"}}
    - {{name: city-cloud, role: city-cloud, url: "http://127.0.0.1:{closed}/"}}
  video_probe: {{packets_per_second: 50, seconds: 1}}
""", encoding="utf-8")
    daemon = Daemon(cfg)
    got: dict[str, Any] = {}
    done = threading.Event()
    try:
        assert "live-class" in daemon.checks()
        daemon.run_check("live-class", lambda result, error: (got.update(result=result, error=error), done.set()))
        assert done.wait(30)
        result = got["result"]
        assert got["error"] is None and result["ran"] == ["live-class"] and result["samples"] >= 6
        assert result["summary"]["live-class"] == {
            "endpoints": 2, "down": [f"city-cloud: connect: 127.0.0.1 refused the connection: nothing listens on "
                                     f"port {closed}"]}
        history = daemon.store.history("service.udp_rtt_ms", 0, 2e9)
        assert [s.device for s in history] == ["live-1"] and 0 < float(history[0].value) < 50
        sent = [x for r in daemon.outbox.take(1000) if r.kind == "metrics"
                for x in contract.decode(r.payload)["samples"]]
        assert {(x["device"], x["metric"]) for x in sent} >= {("live-1", "service.udp_loss_percent"),
                                                              ("city-cloud", "service.up")}
        # the loads follow the SNMP polls (none configured here: nothing to keep, and no error)
        assert daemon.collectors.jobs["live-class:loads"].interval == 60
        loads = threading.Event()
        daemon.run_check("live-class:loads", lambda result, error: (got.update(loads=(result, error)), loads.set()))
        assert loads.wait(10) and got["loads"][1] is None and got["loads"][0]["samples"] == 0
    finally:
        daemon.shutdown()
