"""The base of every configuration model, and the duration and size types they share.

Every part (agent, collectors, cloud, simulator) validates its YAML with these, so a typo is refused
the same way everywhere.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: object) -> float:
    """Seconds from `30`, `2.5s`, `500ms`, `5m`, `1h`, `1d`.

    >>> parse_duration("5m"), parse_duration(2), parse_duration("500ms")
    (300.0, 2.0, 0.5)
    """
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '30s', '5m', '1h'")
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a duration (use e.g. 30s, 500ms, 5m, 1h)")
    return float(m.group(1)) * _UNIT[m.group(2)]


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]i?)?[bB]?\s*$")
_SIZE_UNIT = {None: 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_size(value: object) -> int:
    """Bytes from `1048576`, `512MB`, `2GiB`, `64kB`.

    >>> parse_size("512MB"), parse_size("2GiB"), parse_size(1000)
    (512000000, 2147483648, 1000)
    """
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or a string like '512MB', '2GiB'")
    if isinstance(value, int | float):
        return int(value)
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a size (use e.g. 65536, 64kB, 512MB, 2GiB)")
    unit = m.group(2).lower() if m.group(2) else None
    return int(float(m.group(1)) * _SIZE_UNIT[unit])


ByteSize = Annotated[int, BeforeValidator(parse_size), Field(ge=0)]
