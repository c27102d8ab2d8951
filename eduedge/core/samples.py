"""The unit of measurement that flows from collectors to the outbox.

A `Sample` is one measured value of one metric on one device at one wall-clock time. Metric names
are dotted and end in their unit where the unit is not obvious (`if.in_bps`, `device.cpu_percent`,
`wan.down_mbps`); `unit` repeats it for consumers that want it explicitly. Tags are short strings that
say which part of the device the value belongs to (`interface=Gi0/1`, `radio=5GHz`).

A sample is never changed once built (a changed copy is a new `Sample` or `dataclasses.replace`), but the
class is not `frozen`: a frozen dataclass sets each field through `object.__setattr__`, 0.8-0.9 µs per
sample against 0.2 µs, and a campus poll builds ~700 per switch (bench/README.md). Its tags are a dict,
so a sample was never hashable either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Value = float | int | str


@dataclass(slots=True)
class Sample:
    time: float
    device: str
    metric: str
    value: Value
    unit: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form, as batched into `metrics` messages.

        >>> Sample(1.0, "sw1", "if.in_bps", 8.0, "bps", {"interface": "Gi0/1"}).to_dict()["metric"]
        'if.in_bps'
        """
        out: dict[str, Any] = {"t": self.time, "device": self.device, "metric": self.metric, "value": self.value}
        if self.unit:
            out["unit"] = self.unit
        if self.tags:
            out["tags"] = dict(self.tags)
        return out
