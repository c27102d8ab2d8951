"""The one interface every scheduled collector has, and the registry that builds them.

A `Collector` is one scheduled check: its `name` (the job `eduedge status` shows: `snmp:sw-core-1`, `host`),
its `kind` (which collector it is), an `interval`, and `collect()`, a coroutine that returns what one run
found as a `Collected`: samples, events, other messages for the city, an error, a summary. Work that blocks
(psutil, a speed test, SQLite) derives from `BlockingCollector` and runs in a worker thread.

The optional hooks say what the agent keeps and what follows a run:
- `keeps(sample)`: a sample it refuses is neither stored nor sent (a Wi-Fi client's own series, used in
  memory only); the collector's `after()` still sees it;
- `after(collected)`: runs once the result is kept and returns more samples (Wi-Fi zone samples when a
  round of polls closes);
- `answer` in `Collected`: how a device answered (kept as that device's poll record; a device that gives no
  data, or gives it again, is an event);
- `inventory()`, `repolls_on(event)`, `start()`/`stop()` for listeners a collector owns.

The registry maps a kind to the factory that builds its collectors from a configuration, in the order
they were registered. The agent registers its factories (agent/jobs.py) and its daemon builds and runs
whatever is registered, naming none.

>>> class Ticks(Collector):
...     kind = "ticks"
...     async def collect(self, asked: bool = False) -> Collected:
...         return Collected([Sample(0.0, "box", "tick.count", 1, "count")])
>>> import asyncio
>>> got = asyncio.run(Ticks("ticks", 60.0).collect())
>>> [s.metric for s in got.samples], got.error
(['tick.count'], None)
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from eduedge.core.events import Event
from eduedge.core.samples import Sample


@dataclass
class DeviceAnswer:
    """How a device answered one run: what `eduedge diag --cached` shows of it, and whether it gives data."""

    device: str
    time: float
    answered: bool
    hostname: str | None = None
    errors: list[str] = field(default_factory=list)
    identity: dict[str, Any] | None = None      # what the device says it is, for the inventory


@dataclass
class Collected:
    """What one run of a collector found."""

    samples: list[Sample] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)   # other messages: (type, body)
    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)       # batch types: findings
    error: str | None = None                  # what went wrong, even when something was found
    summary: dict[str, Any] | None = None     # what the run found, where a count says too little
    answer: DeviceAnswer | None = None
    result: Any = None                        # the collector's own result, for its `after` hook

    def count(self) -> int:
        """What the run produced: its samples and batch items."""
        return len(self.samples) + sum(len(v) for v in self.items.values())


class Collector(ABC):
    """One scheduled check (see the module's docstring)."""

    kind: ClassVar[str]
    group: ClassVar[str | None] = None        # a name that runs every job of the kind (`run-check snmp`)
    first_round: ClassVar[bool] = True        # the first judging waits until this has run once
    after_first_round: ClassVar[bool] = False  # started at start-up only once every first-round job has run
    log_traceback: ClassVar[bool] = False     # a run that raises is a bug worth a traceback in the log
    answers: ClassVar[bool] = False           # each run says how its device answered (`Collected.answer`)

    def __init__(self, name: str, interval: float, device: str | None = None):
        self.name, self.interval, self.device = name, interval, device

    @property
    def label(self) -> str:
        """How errors and logs name this collector."""
        return self.name

    @abstractmethod
    async def collect(self, asked: bool = False) -> Collected:
        """One run; `asked`: a command asked for it now (`run-check`), not the schedule."""

    def keeps(self, sample: Sample) -> bool:
        return True

    def after(self, collected: Collected) -> list[Sample]:
        return []

    def repolls_on(self, event: Event) -> bool:
        """Whether an event about this collector's device (a trap) should run it now."""
        return False

    def inventory(self) -> dict[str, Any] | None:
        """Its device's entry in the configured inventory, if it has one."""
        return None

    def start(self) -> str | None:
        """Open what it listens with (after a configuration is accepted); returns an error to show, if any."""
        return None

    def stop(self) -> None:
        """Close what `start` opened."""
        return None


class BlockingCollector(Collector):
    """A collector whose work blocks: the agent runs `collect_blocking` in its worker pool; `collect` runs it
    in a thread for a caller that has only a loop."""

    async def collect(self, asked: bool = False) -> Collected:
        return await asyncio.to_thread(self.collect_blocking, asked)

    @abstractmethod
    def collect_blocking(self, asked: bool = False) -> Collected: ...


Factory = Callable[..., Iterable[Collector]]
_REGISTRY: dict[str, Factory] = {}


def register(kind: str) -> Callable[[Factory], Factory]:
    """Register the factory that builds the collectors of `kind`; a kind is registered once."""
    def deco(factory: Factory) -> Factory:
        if kind in _REGISTRY and _REGISTRY[kind] is not factory:
            raise ValueError(f"collector {kind!r} is registered twice")
        _REGISTRY[kind] = factory
        return factory
    return deco


def registered() -> dict[str, Factory]:
    """The registered factories, in the order they were registered."""
    return dict(_REGISTRY)
