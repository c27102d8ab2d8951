"""`eduedge outbox`: what waits to be delivered - depth by priority, oldest row, bytes, drops, delivery
rate (from agent/outbox.inspect and the daemon's state file)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from eduedge.agent.cli._format import age, size
from eduedge.agent.cli._options import config_option, config_or_exit
from eduedge.agent.config import AgentConfig
from eduedge.agent.outbox import OutboxError, inspect
from eduedge.agent.state import pid_alive, read_state, state_path

PRIORITY_NAMES = {0: "0 answers, gaps, lifecycle", 1: "1 findings, events, inventory", 2: "2 metrics"}


def outbox_report(cfg: AgentConfig, now: float | None = None) -> tuple[dict[str, Any], list[str]]:
    now = time.time() if now is None else now
    path = cfg.outbox.path or cfg.agent.data_dir / "outbox.db"
    stats = inspect(path)
    st = read_state(state_path(cfg.agent.data_dir)) or {}
    rate = ((st.get("link") or {}).get("rate_per_s") if st.get("running") and pid_alive(int(st.get("pid", 0)))
            else None)
    data = {**stats.to_dict(), "delivery_rate_per_s": rate, "budget_bytes": cfg.outbox.max_bytes}
    lines = [f"outbox {path}",
             f"  depth     {stats.rows} messages, {size(stats.bytes)} of {size(cfg.outbox.max_bytes)} budget "
             f"(file {size(stats.file_bytes)})",
             f"  oldest    {age(stats.oldest, now)}"]
    for p in (0, 1, 2):
        d = stats.by_priority.get(p, {"rows": 0, "bytes": 0, "items": 0, "oldest": None})
        lines.append(f"  priority {PRIORITY_NAMES[p]:<32} {d['rows']:>8} msgs {d['items']:>10} items "
                     f"{size(d['bytes']):>10}  oldest {age(d['oldest'], now)}")
    lines.append(f"  delivered {stats.delivered_messages} messages ({stats.delivered_items} items) since created"
                 + (f"; now {rate:.1f} msg/s" if rate is not None else "; agent not running"))
    if stats.drops:
        for d in stats.drops:
            lines.append(f"  DROPPED   {d.messages} {d.kind} messages ({d.items} items): {d.reason}")
    else:
        lines.append("  dropped   nothing")
    return data, lines


def register(app: typer.Typer) -> None:
    @app.command("outbox")
    def outbox_cmd(config: Path = config_option(),
                   as_json: bool = typer.Option(False, "--json", help="machine-readable")) -> None:
        """What waits to be delivered: depth by priority, oldest row, bytes, drops, delivery rate."""
        cfg = config_or_exit(config)
        try:
            data, lines = outbox_report(cfg)
        except OutboxError as e:
            typer.echo(str(e), err=True)
            raise typer.Exit(1) from None
        typer.echo(json.dumps(data, indent=1, default=str) if as_json else "\n".join(lines))
