"""The agent's own health, one set of figures for every reader: the birth the city receives (`health`), the
state file `eduedge status` prints, and the optional Prometheus endpoint (`prometheus` section).

- per job (a collector, for one device where it polls one): runs, runs that failed, the last run's duration
  and when it ran, the last error;
- the outbox: messages waiting, their bytes, the age of the oldest; what was dropped, by type and reason;
- the link to the city's broker: connected or not, since when, connects, messages delivered;
- when the standards were last judged (the compliance job's last success).

>>> from eduedge.agent.daemon.scheduler import Job
>>> jobs = {"snmp:sw1": Job("snmp:sw1", 60, "snmp", "sw1", runs=3, errors=1, last_duration_s=0.4, last_run=9.0)}
>>> h = snapshot(jobs, None, None, now=10.0)
>>> h["jobs"][0]["device"], h["jobs"][0]["errors"], h["outbox"], h["link"], h["last_judgement"]
('sw1', 1, None, None, None)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pydantic import field_validator

from eduedge.core.model import Strict
from eduedge.core.netaddr import split_host_port

log = logging.getLogger("eduedge.health")
DEFAULT_LISTEN = "127.0.0.1:9464"         # 9464: the port OpenTelemetry's Prometheus exporter uses


class PrometheusConfig(Strict):
    """An HTTP endpoint (`/metrics`) for the monitoring a city already runs; off unless enabled, and on the
    loopback unless `listen` names another address of this box."""

    enabled: bool = False
    listen: str = DEFAULT_LISTEN

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        try:
            host, port = split_host_port(v, 0)
        except ValueError:
            host, port = "", 0
        if not host or not 1 <= port <= 65535:
            raise ValueError(f"{v!r} is not HOST:PORT (e.g. {DEFAULT_LISTEN}, or [::1]:9464)")
        return v


def snapshot(jobs: Mapping[str, Any], outbox: Any, link: Any, now: float) -> dict[str, Any]:
    """The figures from the daemon's jobs (scheduler.Job), its outbox's stats (outbox.OutboxStats, or None) and
    its link's status (link.LinkStatus, or None: no broker configured)."""
    out: dict[str, Any] = {"jobs": [], "outbox": None, "drops": [], "link": None, "last_judgement": None}
    for name, j in sorted(jobs.items()):
        out["jobs"].append({"job": name, "collector": j.collector, "device": j.device, "runs": j.runs,
                            "errors": j.errors, "last_duration_s": j.last_duration_s, "last_run": j.last_run,
                            "last_error": j.last_error})
        if j.collector == "compliance" and j.last_success is not None:
            out["last_judgement"] = max(out["last_judgement"] or 0.0, j.last_success)
    if outbox is not None:
        out["outbox"] = {"rows": outbox.rows, "bytes": outbox.bytes,
                         "oldest_age_s": round(max(0.0, now - outbox.oldest), 3) if outbox.oldest else None}
        out["drops"] = [{"kind": d.kind, "reason": d.reason, "messages": d.messages, "items": d.items}
                        for d in outbox.drops]
    if link is not None:
        out["link"] = {"connected": link.connected, "since": link.since, "connects": link.connects,
                       "delivered": link.delivered}
    return out


def _families(h: dict[str, Any]) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    labels = ["job", "collector", "device"]
    duration = GaugeMetricFamily("eduedge_job_last_duration_seconds", "How long the job's last run took", labels=labels)
    last = GaugeMetricFamily("eduedge_job_last_run_timestamp_seconds", "When the job last ran", labels=labels)
    runs = CounterMetricFamily("eduedge_job_runs", "Runs of the job since the agent started", labels=labels)
    errors = CounterMetricFamily("eduedge_job_errors", "Runs of the job that failed", labels=labels)
    for j in h["jobs"]:
        key = [j["job"], j["collector"], j["device"] or ""]
        runs.add_metric(key, j["runs"])
        errors.add_metric(key, j["errors"])
        if j["last_duration_s"] is not None:
            duration.add_metric(key, j["last_duration_s"])
        if j["last_run"] is not None:
            last.add_metric(key, j["last_run"])
    yield from (duration, last, runs, errors)
    ob = h["outbox"]
    if ob is not None:
        yield GaugeMetricFamily("eduedge_outbox_messages", "Messages waiting in the outbox", value=ob["rows"])
        yield GaugeMetricFamily("eduedge_outbox_bytes", "Bytes waiting in the outbox", value=ob["bytes"])
        yield GaugeMetricFamily("eduedge_outbox_oldest_age_seconds", "Age of the oldest waiting message",
                                value=ob["oldest_age_s"] or 0.0)
    drops = CounterMetricFamily("eduedge_outbox_dropped_messages", "Messages the outbox dropped",
                                labels=["kind", "reason"])
    for d in h["drops"]:
        drops.add_metric([d["kind"], d["reason"]], d["messages"])
    yield drops
    link = h["link"]
    if link is not None:
        yield GaugeMetricFamily("eduedge_link_connected", "1 while connected to the city's broker",
                                value=1.0 if link["connected"] else 0.0)
        yield CounterMetricFamily("eduedge_link_connects", "Connections made to the broker", value=link["connects"])
        yield CounterMetricFamily("eduedge_link_delivered_messages", "Messages the broker acknowledged",
                                  value=link["delivered"])
    if h["last_judgement"] is not None:
        yield GaugeMetricFamily("eduedge_last_judgement_timestamp_seconds", "When the standards were last judged",
                                value=h["last_judgement"])


class Exporter:
    """The `/metrics` endpoint: each scrape asks `figures()` for a fresh snapshot (prometheus_client, imported
    only when the endpoint is enabled)."""

    def __init__(self, cfg: PrometheusConfig, figures: Callable[[], dict[str, Any]]):
        from prometheus_client import CollectorRegistry, start_http_server

        host, port = split_host_port(cfg.listen, 0)
        figures_ = figures

        class _Collector:
            def collect(self) -> Iterator[Any]:
                try:
                    yield from _families(figures_())
                except Exception:       # a scrape must never take the agent down
                    log.exception("prometheus: building the figures failed")

        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_Collector())  # type: ignore[arg-type]
        self.server, self.thread = start_http_server(port, host, registry=self.registry)
        self.address = f"[{host}]:{self.server.server_port}" if ":" in host else f"{host}:{self.server.server_port}"
        log.info("prometheus: metrics on http://%s/metrics", self.address)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if isinstance(self.thread, threading.Thread):
            self.thread.join(5)
