"""`eduedge run`: the agent as a service - the daemon is agent/daemon/; this only starts it."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import typer

from eduedge.agent.cli._options import config_option, config_or_exit
from eduedge.agent.outbox import OutboxError
from eduedge.core.secrets import SecretError


def setup_logging(level: str) -> None:
    # Under systemd the journal stamps time and unit itself; elsewhere the line carries its own time.
    fmt = ("%(levelname)s %(name)s: %(message)s" if os.environ.get("JOURNAL_STREAM")
           else "%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr, force=True)


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_cmd(config: Path = config_option()) -> None:
        """Run the agent: schedule the collectors, keep results in the outbox, deliver them over MQTT."""
        from eduedge.agent.daemon import Daemon

        cfg = config_or_exit(config)
        from eduedge.agent import preflight

        found = preflight.problems(cfg, config)  # what `config check` checks, so that the two always agree
        for line in found:
            typer.echo(f"eduedge: cannot start: {line}", err=True)
        if found:
            raise typer.Exit(2)
        setup_logging(cfg.agent.log_level)
        from eduedge.agent.compliance import PackError

        try:
            daemon = Daemon(config)
        except PackError as e:
            for line in e.problems:
                typer.echo(f"eduedge: cannot start: {line}", err=True)
            raise typer.Exit(2) from None
        except (OutboxError, SecretError, OSError, ValueError) as e:
            typer.echo(f"eduedge: cannot start: {e}", err=True)
            raise typer.Exit(1) from None
        daemon.install_signals()
        raise typer.Exit(daemon.run())
