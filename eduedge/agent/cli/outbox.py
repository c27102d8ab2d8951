"""`eduedge outbox`: what waits to be delivered - depth by priority, oldest row, bytes, drops, delivery
rate (from agent/outbox.inspect and the daemon's state file)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import RenderableType
from rich.padding import Padding

from eduedge.agent.cli._format import age, size
from eduedge.agent.cli._options import config_option, config_or_exit
from eduedge.agent.config import AgentConfig
from eduedge.agent.outbox import OutboxError, inspect
from eduedge.agent.state import pid_alive, read_state, state_path
from eduedge.core.tables import add, num, table, terminal

PRIORITY_NAMES = {0: "0 answers, gaps, lifecycle", 1: "1 findings, events, inventory", 2: "2 metrics"}


def outbox_report(cfg: AgentConfig, now: float | None = None) -> tuple[dict[str, Any], list[RenderableType]]:
    """The outbox as data, and as what to print: lines, and a table of the depth by priority."""
    now = time.time() if now is None else now
    path = cfg.outbox.path or cfg.agent.data_dir / "outbox.db"
    stats = inspect(path)
    st = read_state(state_path(cfg.agent.data_dir)) or {}
    rate = ((st.get("link") or {}).get("rate_per_s") if st.get("running") and pid_alive(int(st.get("pid", 0)))
            else None)
    data = {**stats.to_dict(), "delivery_rate_per_s": rate, "budget_bytes": cfg.outbox.max_bytes}
    lines: list[RenderableType] = [f"outbox {path}",
             f"  depth     {stats.rows} messages, {size(stats.bytes)} of {size(cfg.outbox.max_bytes)} budget "
             f"(file {size(stats.file_bytes)})",
             f"  oldest    {age(stats.oldest, now)}"]
    t = table("priority", num("messages"), num("items"), num("size"), num("oldest"))
    for p in (0, 1, 2):
        d = stats.by_priority.get(p, {"rows": 0, "bytes": 0, "items": 0, "oldest": None})
        add(t, PRIORITY_NAMES[p], d["rows"], d["items"], size(d["bytes"]), age(d["oldest"], now))
    lines.append(Padding(t, (0, 0, 0, 2), expand=False))
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
        if as_json:
            typer.echo(json.dumps(data, indent=1, default=str))
            return
        console = terminal()
        for line in lines:
            console.print(line, markup=False)
