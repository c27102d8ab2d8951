"""`eduedge probe ENDPOINT`: does this live-class platform answer? One configured endpoint checked now
(collectors/service_probes.py; only configured ones), every stage timed, and the stage that failed named.

Exit status: 0 every stage passed, 1 one failed, 2 no such endpoint (or a broken configuration).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer

from eduedge.agent.cli._options import config_option, config_or_exit
from eduedge.collectors.service_probes import ServiceProbe, expires_in_words, probe_endpoint
from eduedge.collectors.service_probes_config import LiveClassEndpoint

EXIT_CONFIG = 2


def render_probe(p: ServiceProbe, ep: LiveClassEndpoint, packets: int, size: int) -> str:
    """Every stage of one endpoint's check on its own line, timed, or why it failed."""
    rows = [f"{p.endpoint} ({p.role}): {p.target}"]
    failed = {f.stage: f.reason for f in p.failures}
    stages = [("dns", p.dns_ms)] if ep.url or p.dns_ms is not None or "dns" in failed else []
    stages += [("connect", p.connect_ms)] if ep.url else []
    stages += [("tls", p.tls_ms)] if ep.url and ep.url.startswith("https") else []
    for stage, value in stages:
        extra = ""
        if stage == "dns" and p.address:
            extra = f"  {p.address}"
        if stage == "tls" and p.cert_days is not None:
            extra = f"  certificate {expires_in_words(p.cert_days, p.time)}"
        shown = f"{value:.1f} ms" if value is not None else "-"
        rows.append(f"  {stage:<8} {shown:>10}{extra}" + (f"  FAILED: {failed[stage]}" if stage in failed else ""))
    if p.http_status is not None or p.ttfb_ms is not None or "http" in failed:
        ttfb = f"{p.ttfb_ms:.1f} ms" if p.ttfb_ms is not None else "-"
        rows.append(f"  {'http':<8} {ttfb:>10}  first byte" + (f", status {p.http_status}" if p.http_status else "")
                    + (f"  FAILED: {failed['http']}" if "http" in failed else ""))
    if p.udp is not None or "udp" in failed:
        u = p.udp
        text = (f"rtt {u.median_ms:.1f} ms, jitter {u.jitter_ms or 0:.1f} ms, loss {u.loss_percent:.1f} % "
                f"({u.sent} echoes of {size} B, {packets}/s)") if u is not None and u.answered else ""
        rows.append(f"  {'udp':<8} {text}" + (f"  FAILED: {failed['udp']}" if "udp" in failed else ""))
    rows.append("  up: every stage passed" if p.up else f"  down: {p.failure}")
    return "\n".join(rows)


def register(app: typer.Typer) -> None:
    config_opt = config_option()

    @app.command("probe")
    def probe_cmd(endpoint: str = typer.Argument(..., help="an endpoint's name under live_class.endpoints"),
                  as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
                  config: Path = config_opt) -> None:
        """Check one configured endpoint now: DNS, connect, TLS, HTTP and the video-like UDP burst, each timed."""
        cfg = config_or_exit(config, "error: ")
        ep = next((e for e in cfg.live_class.endpoints if e.name == endpoint), None)
        if ep is None:
            names = ", ".join(e.name for e in cfg.live_class.endpoints) or "none"
            typer.echo(f"error: no endpoint {endpoint!r} under live_class.endpoints (configured: {names}); only "
                       "configured endpoints are probed", err=True)
            raise typer.Exit(EXIT_CONFIG)
        result = asyncio.run(probe_endpoint(ep, cfg.live_class))
        if as_json:
            typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        else:
            v = cfg.live_class.video_probe
            typer.echo(render_probe(result, ep, v.packets_per_second, v.packet_bytes))
        raise typer.Exit(0 if result.up else 1)
