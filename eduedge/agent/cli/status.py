"""`eduedge status`: is the agent running and connected, when did each collector last succeed, how deep is
the outbox. The numbers come from the state file the daemon writes (agent/state.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import RenderableType
from rich.padding import Padding

from eduedge.agent.cli._format import age, size, span
from eduedge.agent.cli._options import config_option, config_or_exit
from eduedge.agent.config import AgentConfig
from eduedge.agent.state import pid_alive, read_state, state_path
from eduedge.core.i18n import _
from eduedge.core.tables import add, key, num, table, terminal


def _found(summary: dict[str, Any] | None) -> str:
    """What a job's last run found, in a few words: `findings: 3 pass, 1 fail; changes: 1`."""
    parts = []
    for k, v in (summary or {}).items():
        if isinstance(v, dict):
            v = ", ".join(f"{n} {s}" for s, n in v.items())
        elif isinstance(v, list):
            v = ", ".join(map(str, v[:5])) + (" ..." if len(v) > 5 else "") if v else _("none")
        parts.append(f"{k}: {v}")
    return "; ".join(parts)


def systemd_state(unit: str = "eduedge") -> str | None:
    """`systemctl is-active` of the unit, or None where there is no systemd."""
    exe = shutil.which("systemctl")
    if exe is None or not Path("/run/systemd/system").is_dir():
        return None
    out = subprocess.run([exe, "is-active", unit], capture_output=True, text=True, timeout=5)
    return out.stdout.strip() or None


def status_report(cfg: AgentConfig, now: float | None = None) -> tuple[dict[str, Any], list[RenderableType], int]:
    """The status as data, as what to print (lines, and a table of the collectors), and as an exit code
    (0 running and connected, 1 degraded, 3 not running)."""
    now = time.time() if now is None else now
    st = read_state(state_path(cfg.agent.data_dir))
    lines: list[RenderableType] = []
    unit = systemd_state()
    running = bool(st and st.get("running") and pid_alive(int(st.get("pid", 0))))
    if unit is not None:
        lines.append(_("service:   systemd unit eduedge is {state}").format(state=unit))
    if not running:
        lines.append((_("agent:     NOT RUNNING (last seen {ago}, pid {pid})") if st else
                      _("agent:     NOT RUNNING (no state file in {dir})")).format(
            ago=age(st.get("updated"), now) if st else "", pid=st.get("pid") if st else "", dir=cfg.agent.data_dir))
    else:
        assert st is not None
        lines.append(_("agent:     running, pid {pid}, up {up}, state {ago}").format(
            pid=st["pid"], up=span(max(0.0, now - st["started"])), ago=age(st.get("updated"), now)))
    code = 0 if running else 3
    link = st.get("link") if st else None
    if st and link is None:
        lines.append(_("mqtt:      not configured (collecting into the outbox only)"))
    elif link is not None:
        if link.get("connected") and running:
            lines.append(_("mqtt:      connected to {broker} since {ago} (bdSeq {bd_seq}), delivering {rate} msg/s")
                         .format(broker=link["broker"], ago=age(link.get("since"), now), bd_seq=link.get("bd_seq"),
                                 rate=f"{link.get('rate_per_s', 0):.1f}"))
        else:
            lines.append(_("mqtt:      NOT CONNECTED to {broker}: {error}").format(
                broker=link["broker"], error=link.get("last_error") or _("unknown")))
            code = max(code, 1)
    jobs = sorted((st or {}).get("collectors", {}).items())
    if jobs:
        t = table(key(_("collector")), key(_("last success")), num(_("took s")), num(_("failed runs")),
                  _("last run found"))
        for name, job in jobs:
            err = job.get("last_error")
            found = _found(job.get("last_summary"))
            took = job.get("last_duration_s")
            add(t, name, age(job.get("last_success"), now), None if took is None else f"{took:.2f}",
                f"{job.get('errors', 0)}/{job.get('runs', 0)}" if "runs" in job else None,
                "; ".join(x for x in (found, _("ERROR: {error}").format(error=err) if err else "") if x))
        lines.append(Padding(t, (0, 0, 0, 2), expand=False))
    ob = (st or {}).get("outbox") or {}
    if ob:
        lines.append(_("outbox:    {rows} messages, {size}, oldest {ago}, {inflight} in flight").format(
            rows=ob.get("rows", 0), size=size(ob.get("bytes", 0)), ago=age(ob.get("oldest"), now),
            inflight=ob.get("inflight", 0)))
    h = (st or {}).get("health") or {}
    for d in h.get("drops") or []:
        lines.append(_("dropped:   {messages} {kind} messages ({reason})").format(**d))
    if h:
        lines.append(_("judged:    {ago}").format(ago=age(h.get("last_judgement"), now)) if h.get("last_judgement")
                     else _("judged:    not yet"))
    return (st or {}), lines, code


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status_cmd(config: Path = config_option(),
                   as_json: bool = typer.Option(False, "--json", help="machine-readable")) -> None:
        """Is the agent running and connected, when did each collector last succeed, how deep is the outbox.

        Exit code: 0 running and connected, 1 running but not connected, 3 not running."""
        cfg = config_or_exit(config)
        data, lines, code = status_report(cfg)
        if as_json:
            typer.echo(json.dumps(data, indent=1, default=str))
        else:
            console = terminal()
            for line in lines:
                console.print(line, markup=False)
        raise typer.Exit(code)
