"""The `eduedge` command: a thin layer over functions that tests call directly.

Each command (or command group) lives in the module named after it, with a `register(app)` function;
this file only puts them together, so `eduedge --help` lists everything and no command module imports
another. What several share is in `_options.py` (the configuration and the device options), `_snmp.py`
(the one device `walk`, `poll` and `profile match` talk to) and `_format.py` (ages and sizes).

`app` is the whole command line. `app_with(names)` is one with only the commands named: `eduedge run` is the
agent for the life of the box, and needs neither the other commands' modules nor the libraries they draw
with (rich's tables; with typer's help module left to a drawn page, _lang.py, 5.6 MB at start; bench/README.md).
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

import typer

from eduedge._version import __version__
from eduedge.agent.cli import _lang
from eduedge.core import i18n
from eduedge.core.i18n import N_

# One module per command, named as the command; the order is the order of `eduedge --help`.
COMMANDS = ("config", "walk", "poll", "profile", "run", "status", "outbox", "service", "diag", "rules", "scan",
            "devices", "speedtest", "wifi", "liveclass", "probe")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"eduedge {__version__}")
        raise typer.Exit()


def _set_language(ctx: typer.Context, value: str | None) -> str | None:
    # Called for every command, given or not; eager, so that `eduedge --lang zh --help` is in Chinese.
    try:
        i18n.start(value)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    _lang.localise(ctx.find_root().command, ctx.find_root())    # (again: a test runs many commands in one process)
    return value


def _root(_version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                        help=N_("Print the installed version and exit.")),
          _lang: str | None = typer.Option(None, "--lang", callback=_set_language, is_eager=True, metavar="zh|en",
                                           help=N_("zh (Simplified Chinese) or en; default: the configuration's "
                                                   "ui.lang, else the locale (LANG=zh_CN.UTF-8)"))) -> None:
    # The callback exists for the root's own options; the commands do the work.
    pass


@functools.cache
def app_with(names: tuple[str, ...] = COMMANDS) -> typer.Typer:
    """The `eduedge` app with the commands `names` (each imported only here). Cached, so that asking again
    (a test, the city's and the simulator's groups added to the whole app) gets the same app."""
    unknown = sorted(set(names) - set(COMMANDS))
    if unknown:
        raise ValueError(f"no such eduedge command: {', '.join(unknown)}")
    new = typer.Typer(
        name="eduedge",
        help=N_("The school network gateway agent: poll, judge, buffer and report to the city cloud."),
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    new.callback()(_root)
    for name in names:
        importlib.import_module(f"eduedge.agent.cli.{name}").register(new)
    return new


def __getattr__(name: str) -> Any:
    # `from eduedge.agent.cli import app`: the whole app, built on first use (PEP 562)
    if name == "app":
        return app_with()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
