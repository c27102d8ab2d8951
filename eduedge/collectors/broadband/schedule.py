"""When the scheduled broadband tests run: random times within the configured windows, one at a time,
within a daily byte budget.

- `DailyPlan` draws each local day's start times afresh, uniformly at random inside each window that
  covers that weekday (so schools do not all hit the city's server on the minute, and a test samples
  the whole window over the weeks). Times already past when the plan is drawn are dropped, and times
  missed while a test ran are folded into one: a late agent never runs a burst of tests.
- `Budget` keeps the bytes the tests moved today in the data directory, so a restart loop cannot spend
  it twice.
- `ExclusiveLock` is an exclusive lock file: the daemon's scheduled test and a technician's
  `eduedge speedtest` never measure at the same time.

>>> from zoneinfo import ZoneInfo
>>> from eduedge.collectors.broadband.config import BroadbandWindow
>>> plan = DailyPlan([BroadbandWindow(name="night", start="01:00", end="02:00", tests=3)], ZoneInfo("UTC"),
...                 random.Random(1))
>>> [datetime.fromtimestamp(t, ZoneInfo("UTC")).strftime("%H:%M") for t in plan.times_for(date(2025, 3, 11))]
['01:08', '01:45', '01:50']
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from eduedge.collectors.broadband.config import BroadbandWindow

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _local(day: date, hhmm: str, tz: ZoneInfo) -> float:
    if hhmm == "24:00":
        return datetime.combine(day + timedelta(days=1), time(0, 0), tz).timestamp()
    h, m = (int(x) for x in hhmm.split(":"))
    return datetime.combine(day, time(h, m), tz).timestamp()


class DailyPlan:
    """Random start times within the windows, drawn afresh for each local day."""

    def __init__(self, windows: list[BroadbandWindow], tz: ZoneInfo, rng: random.Random | None = None):
        self.windows = windows
        self.tz = tz
        self.rng = rng or random.Random()
        self.day: date | None = None
        self.pending: list[tuple[float, str]] = []     # (epoch, window name), sorted

    def times_for(self, day: date) -> list[float]:
        return [t for t, _ in self._draw(day)]

    def _draw(self, day: date) -> list[tuple[float, str]]:
        out = []
        for w in self.windows:
            if _DAYS[day.weekday()] not in w.days:
                continue
            start, end = _local(day, w.start, self.tz), _local(day, w.end, self.tz)
            out += [(self.rng.uniform(start, end), w.name) for _ in range(w.tests)]
        return sorted(out)

    def _refresh(self, now: float) -> None:
        today = datetime.fromtimestamp(now, self.tz).date()
        if self.day != today:
            self.day = today
            self.pending = [p for p in self._draw(today) if p[0] >= now]

    def due(self, now: float) -> str | None:
        """The window whose test should start now (missed ones folded in), else None."""
        self._refresh(now)
        window = None
        while self.pending and self.pending[0][0] <= now:
            window = self.pending.pop(0)[1]
        return window

    def next_at(self, now: float) -> tuple[float, str] | None:
        """The next planned start today, or None until tomorrow's plan is drawn."""
        self._refresh(now)
        return self.pending[0] if self.pending else None


class Budget:
    """Bytes moved by tests today (local day), kept in a small JSON file."""

    def __init__(self, path: Path, limit: int, tz: ZoneInfo):
        self.path, self.limit, self.tz = Path(path), limit, tz

    def _today(self, now: float) -> str:
        return datetime.fromtimestamp(now, self.tz).date().isoformat()

    def used(self, now: float) -> int:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return 0
        return int(doc.get("bytes", 0)) if doc.get("day") == self._today(now) else 0

    def add(self, now: float, nbytes: int) -> None:
        doc = {"day": self._today(now), "bytes": self.used(now) + nbytes}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self.path)

    def refuses(self, now: float, estimate: int | None) -> str | None:
        """Why a test of about `estimate` bytes may not run today, or None."""
        used = self.used(now)
        if used >= self.limit or (estimate is not None and used + estimate > self.limit):
            need = f", a test needs about {estimate / 1e9:.2f} GB" if estimate else ""
            return (f"the daily budget is spent: {used / 1e9:.2f} of {self.limit / 1e9:.2f} GB used today{need} "
                    "(broadband.daily_budget)")
        return None


class ExclusiveLock:
    """An exclusive, non-blocking lock on a file: held for the length of one test."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def busy(self) -> bool:
        """Whether someone holds it now (another process, or another thread of this one)."""
        if self._fd is not None:
            return True
        if not self.acquire():
            return True
        self.release()
        return False

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()
