"""Tables as every `eduedge` command prints them: rich tables that fit the terminal, units in the headers.

    t = table("interface", num("in Mbit/s"), title="core")
    add(t, "Gi0/1", 93.4)
    terminal().print(t)

Cells are taken as plain text (a `[core]` in a device name is not rich markup), numbers are right-aligned,
and without a terminal the table is as wide as $COLUMNS (80 when unset) and carries no colour.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text


def num(header: str, **kw: Any) -> Column:
    """A right-aligned column for figures; the header carries the unit (`in Mbit/s`, `RTT ms`)."""
    return Column(header, justify="right", overflow="fold", **kw)


def key(header: str, **kw: Any) -> Column:
    """A column of names or addresses; one too long for the terminal folds onto the next line, whole."""
    return Column(header, overflow="fold", **kw)


def table(*columns: str | Column, title: str | None = None) -> Table:
    """A table with a rule under the header, no frame and two spaces between columns (the frame's and the
    padding's), so that it reads well at 80 columns and in a log."""
    # A text column wraps, and a word longer than its column folds rather than losing its end to "…".
    cols = [Column(c, overflow="fold") if isinstance(c, str) else c for c in columns]
    return Table(*cols, title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                 pad_edge=False, padding=(0, 1, 0, 0), title_style="bold")


def add(t: Table, *cells: Any, style: str | None = None) -> None:
    """A row; None is shown as `-`, floats without trailing zeros, text as text (no markup)."""
    t.add_row(*(c if isinstance(c, Text) else Text(_text(c)) for c in cells), style=style)


def terminal(stderr: bool = False) -> Console:
    """The console to print on, without rich's guessing at what to highlight."""
    return Console(stderr=stderr, highlight=False)


def _text(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}" if abs(v) < 1e6 else f"{v:,.0f}"   # 93412345.0 as 93,412,345, not 9.34123e+07
    return str(v)
