"""The command line in the reader's language: every command's and option's help, and typer's own words
around them (its panel titles, `[default: ...]`, `[required]`), put in the current language once it is
chosen (eduedge/core/i18n.py).

The help texts are written in English where each command is defined, marked with `N_`, and translated
here on the command objects, before the help is drawn: `eduedge.cli.main` does it for the locale's
language, the root's `--lang` again for its own. The English stays on each object, so that a second pass
translates from it rather than from the first pass's Chinese. typer's own words live in its `rich_utils`
module, which imports rich's markdown and syntax highlighting (about 3.6 MB): they are put there when typer
imports it to draw a page, so that a command that draws none (`eduedge run`) never loads it.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import typer

from eduedge.core.i18n import N_, _
from eduedge.core.imports import when_imported

# typer's own words, read from its rich_utils module each time it draws a help page (English at import)
_TYPER_WORDS = {"ARGUMENTS_PANEL_TITLE": N_("Arguments"), "OPTIONS_PANEL_TITLE": N_("Options"),
                "COMMANDS_PANEL_TITLE": N_("Commands"), "ERRORS_PANEL_TITLE": N_("Error"),
                "ABORTED_TEXT": N_("Aborted."), "DEFAULT_STRING": N_("[default: {}]"),
                "ENVVAR_STRING": N_("[env var: {}]"), "REQUIRED_LONG_STRING": N_("[required]"),
                "DEPRECATED_STRING": N_("(deprecated) ")}
# typer's and click's help of the options they add themselves (translated on the objects with the rest)
_THEIRS = (N_("Show this message and exit."), N_("Install completion for the current shell."),
           N_("Show completion for the current shell, to copy it or customize the installation."))
_KEPT = "_eduedge_english"


def _translate(obj: Any, attr: str) -> None:
    english = obj.__dict__.setdefault(f"{_KEPT}_{attr}", getattr(obj, attr, None))
    if english:
        setattr(obj, attr, _(english))


def _typer_words(rich_utils: ModuleType) -> None:
    for name, english in _TYPER_WORDS.items():
        setattr(rich_utils, name, _(english))


def localise(command: Any, ctx: typer.Context) -> None:
    """Translate the help of `command`, of every command under it and of their options and arguments."""
    when_imported("typer.rich_utils", _typer_words)
    todo = [command]
    while todo:
        c = todo.pop()
        for attr in ("help", "short_help", "epilog"):
            _translate(c, attr)
        helper = c.get_help_option(ctx)      # made (and kept) on first use: make it now, to translate it
        for p in [*c.params, *([helper] if helper is not None else [])]:
            _translate(p, "help")
        todo += list(getattr(c, "commands", {}).values())


def root_context(command: Any) -> typer.Context:
    """A context of the whole app, for `localise` before the command line is parsed."""
    return typer.Context(command, **command.context_settings)
