"""The base of every configuration model, and the duration and size types they share.

Every part (agent, collectors, cloud, simulator) validates its YAML with these, so a typo is refused
the same way everywhere. The parsing is a library's: durations by pytimeparse2 (`30s`, `500ms`, `5m`,
`1h`, `1d`, `1h30m`; pydantic's own timedelta reads only ISO 8601 and `HH:MM:SS`, not the units a
configuration is written in), sizes by pydantic's ByteSize (`64kB`, `512MB`, `2GiB`). What is ours is
that both stay plain numbers (seconds as float, bytes as int), that a yes/no is not taken for 1, and the
message naming the forms that work.
"""

from __future__ import annotations

from typing import Annotated

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError
from pytimeparse2 import parse as _parse_timespan

from eduedge.core.i18n import _


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def parse_duration(value: object) -> float:
    """Seconds from `30`, `2.5s`, `500ms`, `5m`, `1h`, `1d`.

    >>> parse_duration("5m"), parse_duration(2), parse_duration("500ms"), parse_duration("1d")
    (300.0, 2.0, 0.5, 86400.0)
    >>> parse_duration("soon")
    Traceback (most recent call last):
    ValueError: 'soon' is not a duration (use e.g. 30s, 500ms, 5m, 1h)
    """
    if isinstance(value, bool):
        raise ValueError(_("a duration is a number of seconds or a string like '30s', '5m', '1h'"))
    if isinstance(value, int | float):
        return float(value)
    seconds = _parse_timespan(value) if isinstance(value, str) else None
    if seconds is None or seconds < 0:
        raise ValueError(_("{value} is not a duration (use e.g. 30s, 500ms, 5m, 1h)").format(value=repr(value)))
    return float(seconds)


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]


_BYTES = TypeAdapter(pydantic.ByteSize)


def parse_size(value: object) -> int:
    """Bytes from `1048576`, `512MB`, `2GiB`, `64kB`.

    >>> parse_size("512MB"), parse_size("2GiB"), parse_size("64kB"), parse_size(1000)
    (512000000, 2147483648, 64000, 1000)
    >>> parse_size("lots")
    Traceback (most recent call last):
    ValueError: 'lots' is not a size (use e.g. 65536, 64kB, 512MB, 2GiB)
    """
    if isinstance(value, bool):
        raise ValueError(_("a size is a number of bytes or a string like '512MB', '2GiB'"))
    try:
        return int(_BYTES.validate_python(value))
    except ValidationError:
        raise ValueError(_("{value} is not a size (use e.g. 65536, 64kB, 512MB, 2GiB)").format(
            value=repr(value))) from None


ByteSize = Annotated[int, BeforeValidator(parse_size), Field(ge=0)]
