"""`eduedge config check FILE`: validate a configuration and say exactly what is wrong, where."""

from __future__ import annotations

from pathlib import Path

import typer

from eduedge.agent.config import AgentConfig, ConfigError, load_config

# Where the packaged service (eduedge/config/eduedge.service) and every command look unless told otherwise.
DEFAULT_CONFIG = Path("/etc/eduedge/eduedge.yaml")


def config_or_exit(path: Path, prefix: str = "") -> AgentConfig:
    """The configuration at `path`; otherwise print every problem (file, line, field) and exit 2."""
    try:
        return load_config(path)
    except ConfigError as e:
        for line in e.problems:
            typer.echo(f"{prefix}{line}", err=True)
        raise typer.Exit(2) from None


def check_config(path: Path) -> list[str]:
    """Problems with the configuration at `path`, one printable line each; empty when it is good."""
    try:
        load_config(path)
    except ConfigError as e:
        return e.problems
    return []


def register(app: typer.Typer) -> None:
    config_app = typer.Typer(help="Check the agent's configuration.", no_args_is_help=True)
    app.add_typer(config_app, name="config")

    @config_app.command("check")
    def check(path: Path = typer.Argument(..., help="the configuration file")) -> None:
        """Validate FILE; print every problem with its file, line and field, and exit 2 if any."""
        cfg = config_or_exit(path)
        typer.echo(f"{path}: OK - school {cfg.school.id} ({cfg.school.type}), "
                   f"{len(cfg.snmp.devices)} SNMP devices")
