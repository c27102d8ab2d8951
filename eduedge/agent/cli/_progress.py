"""What a command that takes a while is doing, shown to the technician at a terminal and to nobody else.

    with activity(as_json) as act:
        act.stage(_("polling devices"), total=len(pollers))     # a bar: 3 of 26, and the time so far
        ... act.advance()                                       # one more done (from any thread or the loop)
        act.stage(_("judging the rules"))                       # a spinner: no count

The line is drawn by rich on stderr and erased when the block ends (a transient display), so that what the
command prints on stdout is the same with or without it. It is shown only when stdout and stderr are both a
terminal and `--json` was not asked for: piped output, a log file, `--json` and tests see nothing of it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:       # rich.progress loads only when there is a terminal to draw on (agent/cli/_progress_view.py)
    from rich.progress import Progress, TaskID


class Activity:
    """The current stage of a command, and how far it got (a count of `total`). Without a console it does
    nothing, so that commands call it unconditionally."""

    def __init__(self, progress: Progress | None = None):
        self._progress = progress
        self._task: TaskID | None = None
        self.stages: list[str] = []         # what was announced, in order (tests and the wall-time line read it)

    @property
    def shown(self) -> bool:
        return self._progress is not None

    def stage(self, text: str, total: int | None = None, watch: Callable[[], str] | None = None) -> None:
        """A new stage: `text`, with a bar of `total` steps when it is counted, else a spinner; `watch`, when
        given, says how it goes and is asked at every redraw (a loop that cannot stop to report)."""
        self.stages.append(text)
        if self._progress is None:
            return
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(text, total=total, note="", watch=watch)

    def advance(self, steps: int = 1, note: str | None = None) -> None:
        """`steps` more of the current stage are done; `note` (e.g. "2 did not answer") follows the text."""
        if self._progress is None or self._task is None:
            return
        self._progress.advance(self._task, steps)
        if note is not None:
            self._progress.update(self._task, note=note)


def wanted(as_json: bool = False, console: Console | None = None) -> bool:
    """Whether to show progress: never for `--json`, only when stdout and the progress console are terminals."""
    err = console or Console(stderr=True)
    return not as_json and sys.stdout.isatty() and err.is_terminal


@contextmanager
def activity(as_json: bool = False, console: Console | None = None, show: bool | None = None) -> Iterator[Activity]:
    """An `Activity` drawn on stderr (or `console`) while the block runs, if `wanted` (or `show` says so)."""
    err = console or Console(stderr=True, highlight=False)
    if not (wanted(as_json, err) if show is None else show):
        yield Activity()
        return
    from eduedge.agent.cli._progress_view import progress_on

    progress = progress_on(err)
    act = Activity(progress)
    with progress:
        yield act
