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
from eduedge.core.i18n import N_, _
from eduedge.core.tables import add, num, table, terminal

PRIORITY_NAMES = {0: N_("0 answers, gaps, lifecycle"), 1: N_("1 findings, events, inventory"),   # translated
                  2: N_("2 metrics")}                                                           # where shown


def outbox_report(cfg: AgentConfig, now: float | None = None) -> tuple[dict[str, Any], list[RenderableType]]:
    """The outbox as data, and as what to print: lines, and a table of the depth by priority."""
    now = time.time() if now is None else now
    path = cfg.outbox.path or cfg.agent.data_dir / "outbox.db"
    stats = inspect(path)
    st = read_state(state_path(cfg.agent.data_dir)) or {}
    rate = ((st.get("link") or {}).get("rate_per_s") if st.get("running") and pid_alive(int(st.get("pid", 0)))
            else None)
    data = {**stats.to_dict(), "delivery_rate_per_s": rate, "budget_bytes": cfg.outbox.max_bytes}
    lines: list[RenderableType] = [
        _("outbox {path}").format(path=path),
        "  " + _("depth     {rows} messages, {size} of {budget} budget (file {file})").format(
            rows=stats.rows, size=size(stats.bytes), budget=size(cfg.outbox.max_bytes), file=size(stats.file_bytes)),
        "  " + _("oldest    {ago}").format(ago=age(stats.oldest, now))]
    t = table(_("priority"), num(_("messages")), num(_("items")), num(_("size")), num(_("oldest")))
    for p in (0, 1, 2):
        d = stats.by_priority.get(p, {"rows": 0, "bytes": 0, "items": 0, "oldest": None})
        add(t, _(PRIORITY_NAMES[p]), d["rows"], d["items"], size(d["bytes"]), age(d["oldest"], now))
    lines.append(Padding(t, (0, 0, 0, 2), expand=False))
    delivered = _("delivered {messages} messages ({items} items) since created").format(
        messages=stats.delivered_messages, items=stats.delivered_items)
    lines.append("  " + delivered + (_("; now {rate} msg/s").format(rate=f"{rate:.1f}") if rate is not None
                                     else _("; agent not running")))
    if stats.drops:
        for d in stats.drops:
            lines.append("  " + _("DROPPED   {messages} {kind} messages ({items} items): {reason}").format(
                messages=d.messages, kind=d.kind, items=d.items, reason=d.reason))
    else:
        lines.append("  " + _("dropped   nothing"))
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
