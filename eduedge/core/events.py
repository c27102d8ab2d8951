"""Things that happened, in words a technician understands: the items of an `events` message.

An `Event` is one occurrence at one wall-clock time: a device stopped answering, a rule changed its
verdict, the agent restarted. `kind` is dotted (`device.unreachable`, `compliance.status_changed`),
`severity` is info, warning or error, `message` is one plain sentence, and `details` holds the data a
program needs (the contract calls it `data`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["info", "warning", "error"]


@dataclass(frozen=True, slots=True)
class Event:
    time: float
    device: str | None
    kind: str
    severity: Severity
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready item of an `events` message.

        >>> e = Event(1.0, "sw-core-1", "device.unreachable", "error", "no answer", {"tries": 2})
        >>> sorted(e.to_dict().items())  # doctest: +NORMALIZE_WHITESPACE
        [('data', {'tries': 2}), ('device', 'sw-core-1'), ('kind', 'device.unreachable'), ('message', 'no answer'),
         ('severity', 'error'), ('t', 1.0)]
        """
        out: dict[str, Any] = {"t": self.time, "kind": self.kind, "severity": self.severity, "message": self.message}
        if self.device:
            out["device"] = self.device
        if self.details:
            out["data"] = dict(self.details)
        return out
