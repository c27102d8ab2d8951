"""The school day that drives the simulated campus: which period it is, and how much traffic flowed.

A week is cut into periods (lesson, break, lunch, after school, evening, night, morning, weekend), each
with a traffic factor (1.0 at the peak of a lesson). Counters must be exact integrals of the traffic
rate, whatever moment the agent asks, so that rates computed from any two readings are true; with a
piecewise-constant factor the integral over any span is a sum, cheap enough for every SNMP request.

Simulated time is a local wall-clock time (`datetime` without zone): `start` at launch, advancing
`speed` simulated seconds per real second (0 freezes the time of day, for tests). Counters and uptimes
always advance in real seconds, so an agent's rates stay true whatever the speed.

>>> day = SchoolDay.from_campus(Day())
>>> day.period(dt.datetime(2025, 3, 11, 8, 20)), day.period(dt.datetime(2025, 3, 11, 8, 50))
('lesson', 'break')
>>> day.period(dt.datetime(2025, 3, 15, 10, 0))
'weekend'
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass

from eduedge.simulator.campus import Day

WEEK = 7 * 86400
_MONDAY = dt.datetime(1970, 1, 5)
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def week_seconds(when: dt.datetime) -> float:
    """Seconds since a fixed Monday 00:00 (naive local time)."""
    return (when - _MONDAY).total_seconds()


@dataclass
class SchoolDay:
    """The week as sorted segments: `starts[i]` (seconds into the week) begins `periods[i]`."""

    starts: list[int]
    periods: list[str]
    factors: list[float]
    cumulative: list[float]      # integral of the factor from the week's start to starts[i]
    week_total: float

    @classmethod
    def from_campus(cls, day: Day) -> SchoolDay:
        segments: list[tuple[int, str]] = []
        for d, name in enumerate(_DAYS):
            base = d * 86400
            if name not in day.school_days:
                segments.append((base, "weekend"))
                continue
            segments.append((base, "night"))
            segments.append((base + day.morning_from * 60, "morning"))
            t = day.first_lesson * 60
            for n in range(1, day.lessons + 1):
                segments.append((base + t, "lesson"))
                t += day.lesson_min * 60
                if n == day.lessons:
                    break
                if n == day.lunch_after_lesson:
                    segments.append((base + t, "lunch"))
                    t += day.lunch_min * 60
                else:
                    segments.append((base + t, "break"))
                    t += day.break_min * 60
            segments.append((base + t, "after_school"))
            segments.append((base + max(t, day.after_school_until * 60), "evening"))
            segments.append((base + max(t, day.night_from * 60), "night"))
        # keep the last segment starting at any instant (zero-length ones vanish)
        merged: dict[int, str] = {}
        for start, period in segments:
            merged[min(start, WEEK - 1)] = period
        starts = sorted(merged)
        periods = [merged[s] for s in starts]
        factors = [float(day.traffic.get(p, 0.0)) for p in periods]  # type: ignore[call-overload]
        cumulative = [0.0]
        for i in range(1, len(starts)):
            cumulative.append(cumulative[-1] + factors[i - 1] * (starts[i] - starts[i - 1]))
        total = cumulative[-1] + factors[-1] * (WEEK - starts[-1])
        return cls(starts, periods, factors, cumulative, total)

    def _segment(self, when: dt.datetime) -> tuple[int, float]:
        s = week_seconds(when) % WEEK
        return bisect.bisect_right(self.starts, s) - 1, s

    def period(self, when: dt.datetime) -> str:
        return self.periods[self._segment(when)[0]]

    def factor(self, when: dt.datetime) -> float:
        return self.factors[self._segment(when)[0]]

    def integral(self, sim_seconds: float) -> float:
        """Integral of the factor from the fixed Monday to `sim_seconds` after it (simulated seconds)."""
        weeks, s = divmod(sim_seconds, WEEK)
        i = bisect.bisect_right(self.starts, s) - 1
        return weeks * self.week_total + self.cumulative[i] + self.factors[i] * (s - self.starts[i])


@dataclass
class SimClock:
    """Maps real time (epoch seconds) to simulated local time, and integrates traffic over real time."""

    launch: float                 # real epoch seconds at launch
    start: dt.datetime            # simulated local time at launch
    speed: float
    day: SchoolDay

    def sim_time(self, now: float) -> dt.datetime:
        return self.start + dt.timedelta(seconds=(now - self.launch) * self.speed)

    def period(self, now: float) -> str:
        return self.day.period(self.sim_time(now))

    def factor(self, now: float) -> float:
        return self.day.factor(self.sim_time(now))

    def traffic(self, t0: float, t1: float) -> float:
        """Integral over real seconds t0..t1 of the traffic factor (a factor of 1.0 for 10 s gives 10)."""
        if self.speed == 0:
            return self.day.factor(self.start) * (t1 - t0)
        base = week_seconds(self.start)
        s0 = base + (t0 - self.launch) * self.speed
        s1 = base + (t1 - self.launch) * self.speed
        return (self.day.integral(s1) - self.day.integral(s0)) / self.speed
