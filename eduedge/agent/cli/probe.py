"""`eduedge probe ENDPOINT`: does this live-class platform answer? One configured endpoint checked now
(collectors/service_probes.py; only configured ones), every stage timed, and the stage that failed named.

Exit status: 0 every stage passed, 1 one failed, 2 no such endpoint (or a broken configuration).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import RenderableType
from rich.padding import Padding

from eduedge.agent.cli._options import ERROR, config_option, config_or_exit
from eduedge.collectors.service_probes_config import LiveClassEndpoint
from eduedge.core.i18n import _
from eduedge.core.tables import add, key, num, table, terminal

if TYPE_CHECKING:    # the probes (DNS, HTTP, TLS libraries) load when a command probes, not for every `eduedge`
    from eduedge.collectors.service_probes import ServiceProbe

EXIT_CONFIG = 2


def render_probe(p: ServiceProbe, ep: LiveClassEndpoint, packets: int, size: int) -> list[RenderableType]:
    """Every stage of one endpoint's check in a row of a table, timed, or why it failed."""
    from eduedge.collectors.service_probes import expires_in_words

    failed = {f.stage: f.reason for f in p.failures}
    t = table(key(_("stage")), num(_("time ms")), _("detail"))

    def row(stage: str, ms: float | None, *detail: str) -> None:
        broke = _("FAILED: {reason}").format(reason=failed[stage]) if stage in failed else ""
        text = "  ".join(d for d in (*detail, broke) if d)
        add(t, stage, None if ms is None else f"{ms:.1f}", text)

    if ep.url or p.dns_ms is not None or "dns" in failed:
        row("dns", p.dns_ms, p.address or "")
    if ep.url:
        row("connect", p.connect_ms)
    if ep.url and ep.url.startswith("https"):
        row("tls", p.tls_ms, _("certificate {expires}").format(expires=expires_in_words(p.cert_days, p.time))
            if p.cert_days is not None else "")
    if p.http_status is not None or p.ttfb_ms is not None or "http" in failed:
        row("http", p.ttfb_ms, (_("first byte, status {status}") if p.http_status else _("first byte")).format(
            status=p.http_status))
    if p.udp is not None or "udp" in failed:
        u = p.udp
        answered = u is not None and u.answered
        row("udp", u.median_ms if u is not None and answered else None,
            _("rtt; jitter {jitter} ms, loss {loss} % ({sent} echoes of {size} B, {packets}/s)").format(
                jitter=f"{u.jitter_ms or 0:.1f}", loss=f"{u.loss_percent:.1f}", sent=u.sent, size=size,
                packets=packets) if u is not None and answered else "")
    return [f"{p.endpoint} ({p.role}): {p.target}", Padding(t, (0, 0, 0, 2), expand=False),
            "  " + (_("up: every stage passed") if p.up else _("down: {failure}").format(failure=p.failure))]


def register(app: typer.Typer) -> None:
    config_opt = config_option()

    @app.command("probe")
    def probe_cmd(endpoint: str = typer.Argument(..., help="an endpoint's name under live_class.endpoints"),
                  as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
                  config: Path = config_opt) -> None:
        """Check one configured endpoint now: DNS, connect, TLS, HTTP and the video-like UDP burst, each timed."""
        cfg = config_or_exit(config, ERROR)
        ep = next((e for e in cfg.live_class.endpoints if e.name == endpoint), None)
        if ep is None:
            names = ", ".join(e.name for e in cfg.live_class.endpoints) or _("none")
            typer.echo(_("error: no endpoint {endpoint} under live_class.endpoints (configured: {names}); only "
                         "configured endpoints are probed").format(endpoint=repr(endpoint), names=names), err=True)
            raise typer.Exit(EXIT_CONFIG)
        from eduedge.collectors.service_probes import probe_endpoint

        result = asyncio.run(probe_endpoint(ep, cfg.live_class))
        if as_json:
            typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        else:
            v = cfg.live_class.video_probe
            console = terminal()
            for part in render_probe(result, ep, v.packets_per_second, v.packet_bytes):
                console.print(part, markup=False)
        raise typer.Exit(0 if result.up else 1)
