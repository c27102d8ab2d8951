"""`eduedge demo`: the agent end to end on a simulated campus (what `make demo` runs)."""

from __future__ import annotations

from pathlib import Path

import typer

from eduedge.simulator.demo import DEMO_CAMPUS, run_demo


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(campus: Path = typer.Option(DEMO_CAMPUS, "--campus", help="the campus file"),
                 seconds: float = typer.Option(150.0, "--seconds", help="the longest the agent runs (it stops "
                                               "once every seed rule is judged)"),
                 interval: str = typer.Option("15s", "--interval", help="the demo's polling interval"),
                 keep: bool = typer.Option(False, "--keep", help="keep the work directory (logs, outbox)")) -> None:
        """Start a simulated campus and a broker, run the agent against it, show what the city receives, and
        end with the school judged against its standards (one fault injected)."""
        raise typer.Exit(run_demo(campus, seconds, interval, typer.echo, keep))
