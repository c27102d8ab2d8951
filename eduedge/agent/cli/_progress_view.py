"""The line `eduedge.agent.cli._progress` draws: the stage, its bar and `3 of 26`, a note, the time so far.
Apart from it because rich.progress is worth loading only when there is a terminal to draw on."""

from __future__ import annotations

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from eduedge.core.i18n import _


class _Counted(ProgressColumn):
    """The bar and `3 of 26` of a counted stage; nothing for a stage that is not counted."""

    def __init__(self) -> None:
        super().__init__()
        self._bar = BarColumn(bar_width=20)

    def render(self, task: Task) -> RenderableType:
        if task.total is None:
            return Text("")
        row = Table.grid(padding=(0, 1))
        row.add_row(self._bar.render(task),
                    _("{done} of {total}").format(done=int(task.completed), total=int(task.total)))
        return row


class _Note(ProgressColumn):
    """The stage's note: what `advance` said last, or what its `watch` says now (read at every redraw)."""

    def render(self, task: Task) -> RenderableType:
        watch = task.fields.get("watch")
        return Text(watch() if watch is not None else task.fields.get("note", ""))



def progress_on(console: Console) -> Progress:
    """A transient rich Progress on `console` (the line is erased when it stops)."""
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), _Counted(), _Note(), TimeElapsedColumn(),
                    console=console, transient=True, refresh_per_second=8)
