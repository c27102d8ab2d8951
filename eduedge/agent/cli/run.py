"""`eduedge run`: the agent as a service - the daemon is agent/daemon/; this only starts it."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import typer

from eduedge.agent.cli._options import config_option, config_or_exit
from eduedge.agent.outbox import OutboxError
from eduedge.core.i18n import _
from eduedge.core.secrets import SecretError
from eduedge.core.yamlfile import YamlFileError

# syslog priorities (sd-daemon(3)): journald reads a `<N>` prefix on a line of a service's stdout/stderr, so
# `journalctl -p warning` shows warnings and worse.
PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


class JournalFormatter(logging.Formatter):
    """One line per record, led by its journald priority; a traceback stays in the same entry."""

    def format(self, record: logging.LogRecord) -> str:
        prio = PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        return f"<{prio}>" + super().format(record).replace("\n", "\n  ")


def setup_logging(level: str) -> None:
    # Under systemd the journal stamps time and unit itself and takes the priority from each line's prefix;
    # elsewhere the line carries its own time.
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_cmd(config: Path = config_option()) -> None:
        """Run the agent: schedule the collectors, keep results in the outbox, deliver them over MQTT."""
        from eduedge.agent.daemon import Daemon

        cfg = config_or_exit(config)
        from eduedge.agent import preflight

        found = preflight.problems(cfg, config)  # what `config check` checks, so that the two always agree
        for line in found:
            typer.echo(_("eduedge: cannot start: {problem}").format(problem=line), err=True)
        if found:
            raise typer.Exit(2)
        setup_logging(cfg.agent.log_level)
        # What the agent writes (its outbox, state, sample store) is the school's: no one else reads it, whether
        # or not the unit's UMask=0077 applies.
        os.umask(0o077)
        try:
            daemon = Daemon(config)
        except YamlFileError as e:       # a rule pack's (PackError) or the configuration's, each with file and line
            for line in e.problems:
                typer.echo(_("eduedge: cannot start: {problem}").format(problem=line), err=True)
            raise typer.Exit(2) from None
        except (OutboxError, SecretError, OSError, ValueError) as e:
            typer.echo(_("eduedge: cannot start: {problem}").format(problem=e), err=True)
            raise typer.Exit(1) from None
        daemon.install_signals()
        raise typer.Exit(daemon.run())
