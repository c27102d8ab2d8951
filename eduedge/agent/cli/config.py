"""`eduedge config check FILE`: validate a configuration and say exactly what is wrong, where;
`eduedge config example`: the shipped, commented reference configuration, to start a box's file from."""

from __future__ import annotations

from pathlib import Path

import typer

from eduedge.agent import preflight
from eduedge.agent.cli._options import config_or_exit
from eduedge.agent.config import ConfigError, load_config, school_type_word
from eduedge.core.i18n import _

# The reference configuration travels inside the package (an installed box has no checkout to copy it from).
EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "config" / "example-school.yaml"


def check_config(path: Path) -> list[str]:
    """Problems with the configuration at `path`, one printable line each; empty when it is good."""
    try:
        cfg = load_config(path)
    except ConfigError as e:
        return e.problems
    return preflight.problems(cfg, path)


def register(app: typer.Typer) -> None:
    config_app = typer.Typer(help="Check the agent's configuration, or print the shipped example.",
                             no_args_is_help=True)
    app.add_typer(config_app, name="config")

    @config_app.command("check")
    def check(path: Path = typer.Argument(..., help="the configuration file"),
              file_only: bool = typer.Option(False, "--file-only", help="check the file alone, not whether this "
                                             "machine has its secrets, certificates and directories (a file "
                                             "written for another box)")) -> None:
        """Validate FILE as `eduedge run` would before starting (secrets readable, TLS files loading, budgets
        sane, directories writable); print every problem with its file, line and field, and exit 2 if any."""
        cfg = config_or_exit(path)
        found = [] if file_only else preflight.problems(cfg, path)
        for line in found:
            typer.echo(line, err=True)
        if found:
            raise typer.Exit(2)
        typer.echo(_("{path}: OK - school {id} ({type}), {devices} SNMP devices").format(
            path=path, id=cfg.school.id, type=school_type_word(cfg.school.type), devices=len(cfg.snmp.devices)))

    @config_app.command("example")
    def example() -> None:
        """Print the commented example configuration: `eduedge config example > /etc/eduedge/eduedge.yaml`."""
        typer.echo(EXAMPLE_CONFIG.read_text(encoding="utf-8"), nl=False)
