"""The `eduedge` command: the agent's commands, and the city's and the simulator's where they are installed.

The box installs `eduedge` alone; `eduedge[cloud]` and `eduedge[sim]` bring the dependencies of the
`cloud` and `sim` command groups. A group whose dependencies are missing is left out, so the base install
never imports the city's or the simulator's code. A command line that names one of the agent's own commands
gets that command alone (eduedge/agent/cli/__init__.py), so `eduedge run` carries neither the other commands
nor, on a machine with the extras installed (a developer's, the benchmarks'), the city's or the simulator's
code: the same as on a box.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import sys

import typer

# typer (0.26 on) carries its own copy of click; these are the errors its parser raises for a wrong command line.
# Not exported by typer: pyproject bounds typer to the versions where this path was checked.
from typer._click.exceptions import (
    BadParameter,
    ClickException,
    MissingParameter,
    NoArgsIsHelpError,
    NoSuchOption,
    UsageError,
)

from eduedge.agent.cli import COMMANDS, app_with
from eduedge.agent.cli._lang import localise, root_context
from eduedge.core.i18n import _, language


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


@functools.cache
def build() -> typer.Typer:
    """The whole `eduedge` app: the agent's commands, and the groups whose dependencies are installed.
    Cached, so that a test (or completion) may ask for it again without registering a group twice."""
    app = app_with()
    if _installed("psycopg", "jsonschema_rs"):
        from eduedge.cloud import cli as cloud_cli
        cloud_cli.register(app)
    if _installed("snmpsim"):
        from eduedge.simulator import cli as sim_cli
        from eduedge.simulator import cli_demo
        sim_cli.register(app)
        cli_demo.register(app)
    return app


def app_for(argv: list[str]) -> typer.Typer:
    """The app a command line needs: when its first word is one of the agent's commands, an app of that command
    alone (its help and its errors read the same), else the whole app."""
    return app_with((argv[0],)) if argv[:1] and argv[0] in COMMANDS else build()


def usage_words(e: UsageError) -> str:
    """What is wrong with the command line, in the reader's language: click says it in English only, so the
    commonest mistakes (an unknown option, a missing argument, a bad value, too many arguments) are said here."""
    english = " ".join(e.format_message().split())
    if language() == "en":
        return english
    hint = e.param.get_error_hint() if isinstance(e, BadParameter) and e.param is not None else ""
    if isinstance(e, NoSuchOption):
        close = ", ".join(sorted(e.possibilities or []))
        return (_("no such option: {option} (close: {close})") if close else _("no such option: {option}")).format(
            option=e.option_name, close=close)
    if isinstance(e, MissingParameter):
        return _("missing {what}").format(what=hint) if hint else english
    if isinstance(e, BadParameter):
        return _("invalid value for {param}: {problem}").format(param=hint, problem=e.message) if hint else e.message
    extra = re.fullmatch(r"Got unexpected extra argument(?:s|\(s\))? \((.*)\)", english)
    if extra:
        return _("unexpected extra arguments: {arguments}").format(arguments=extra[1])
    return english


def main(argv: list[str] | None = None) -> None:
    """The `eduedge` command. A mistake on the command line is one line on stderr and exit 2 (click's
    usage box is for `-h`); an error nobody foresaw is one line and exit 1, its traceback only with
    EDUEDGE_DEBUG=1."""
    command = typer.main.get_command(app_for(sys.argv[1:] if argv is None else argv))
    localise(command, root_context(command))    # the help in the locale's language (--lang redoes it)
    try:
        code = command.main(args=argv, prog_name="eduedge", standalone_mode=False)
    except NoArgsIsHelpError as e:     # a group called alone: its help is already printed
        sys.exit(e.exit_code)
    except ClickException as e:
        where = e.ctx.command_path if isinstance(e, UsageError) and e.ctx is not None else "eduedge"
        typer.echo(_("{where}: {problem} ({where} -h shows the options)").format(
                       where=where, problem=usage_words(e))
                   if isinstance(e, UsageError) else f"{where}: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo(_("eduedge: interrupted"), err=True)
        sys.exit(130)
    except Exception as e:
        if os.environ.get("EDUEDGE_DEBUG"):
            raise
        message = " ".join(str(e).split()) or _("no message")
        typer.echo(_("eduedge: unexpected {error}: {message} (EDUEDGE_DEBUG=1 shows where)").format(
            error=type(e).__name__, message=message), err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
