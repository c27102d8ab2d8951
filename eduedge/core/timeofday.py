"""Days of the week and HH:MM clock times as the configuration writes them (school hours, broadband windows)."""

from __future__ import annotations

import re
from typing import Literal

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def is_clock(value: str, midnight: bool = False) -> bool:
    """Whether `value` is HH:MM on a 24-hour clock (with `midnight`, "24:00" too: the end of a day).

    >>> is_clock("08:00"), is_clock("8:00"), is_clock("24:00"), is_clock("24:00", midnight=True)
    (True, False, False, True)
    """
    return bool(_CLOCK.match(value)) or (midnight and value == "24:00")
