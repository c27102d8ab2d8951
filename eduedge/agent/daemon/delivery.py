"""Where results go: samples into the SampleStore (which `assess` judges and `eduedge diag --cached` reads)
and the outbox (for the city), events and other messages into the outbox.

What a collector does not keep (`Collector.keeps`: the per-client Wi-Fi samples, one series per pseudonym)
is neither stored nor sent: the simulated large campus (347 APs, 7,105 clients in a lesson) polls 32,830
Wi-Fi samples a round, 21,315 of them per client; 2,000 APs would send ~10^5 client samples a minute that no
rule reads, and keeping one series per client in the store for its 35 days would grow it with every
pseudonym ever seen. The collector's `after` hook still reads them (a closed round becomes zone samples).

A collector that says how its device answered (`Collected.answer`) has that kept as the device's poll
record; a device that starts or stops giving data is an event, and a new identity makes the inventory due.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from eduedge.agent.daemon.scheduler import Job
from eduedge.agent.outbox import Outbox
from eduedge.agent.samplestore import SampleStore
from eduedge.core.events import Event
from eduedge.core.i18n import _
from eduedge.core.samples import Sample

log = logging.getLogger("eduedge.daemon")


class Delivery:
    def __init__(self, store: SampleStore, outbox: Outbox):
        self.store, self.outbox = store, outbox
        self.closed = False                     # set at shutdown: later results are dropped, like a poll cut short
        self._failing: dict[str, bool] = {}
        self._identities: dict[str, Any] = {}
        # the configured inventory is the complete list: identities learnt together (a campus at start-up)
        # go out in one message every INVENTORY_EVERY_S, not one whole list per device
        self.inventory_due = threading.Event()

    def keep(self, job: Job, fut: Future[Any]) -> tuple[int, str | None]:
        """The second half of a run, in the pool: what the collector found goes where it belongs."""
        c = job.source
        assert c is not None
        error, n, samples, logged = None, 0, [], False
        try:
            got = fut.result()
            samples, n = got.samples, got.count()
            kept = [s for s in samples if c.keeps(s)]
            a = got.answer
            if a is not None:
                self._remember(self.store.add_poll, a.device, a.time, a.answered, kept, a.hostname, a.errors)
            elif kept:
                self._remember(self.store.add, kept)
            self._send(kept)
            for kind, items in got.items.items():
                self.outbox.add_items(kind, items)
            for kind, body in got.messages:
                self.outbox.add(kind, body)
            if got.events:
                self.events(got.events)
            more = c.after(got)
            if more:
                self.deliver(more)
            if got.summary is not None:
                job.last_summary = got.summary
            error = got.error
            if a is not None and a.identity is not None and self._identities.get(a.device) != a.identity:
                self._identities[a.device] = a.identity
                self.inventory_due.set()
        except Exception as e:
            error = f"{c.label}: {type(e).__name__}: {e}"
            if c.answers and c.device is not None:
                self._remember(self.store.add_poll, c.device, time.time(), False, (), None, [error])
            if c.log_traceback:
                log.exception("%s", error)
                logged = True
        if c.answers and c.device is not None:
            self._answered(c.device, error is not None and not samples, error)
        if error and not logged:
            log.warning("%s", error)
        return n, error

    def _answered(self, device: str, failing: bool, error: str | None) -> None:
        if failing != self._failing.get(device, False):
            self._failing[device] = failing
            if failing:
                self.event(Event(time.time(), device, "device.unreachable", "error",
                                 _("{device} gives no data: {error}").format(device=device, error=error),
                                 {"error": error}))
            elif device in self._failing:
                self.event(Event(time.time(), device, "device.recovered", "info",
                                 _("{device} answers again").format(device=device)))

    def deliver(self, samples: list[Sample]) -> None:
        """Samples into the store (for the rules) and the outbox (for the city)."""
        self._remember(self.store.add, samples)
        self._send(samples)

    def _remember(self, fn: Callable[..., None], *args: Any) -> None:
        if self.closed:        # a result that arrives after shutdown closed the store: like a poll cut short
            return
        try:
            fn(*args)
        except Exception:
            log.exception("sample store: could not store a result")

    def _send(self, samples: list[Sample]) -> None:
        try:
            self.outbox.add_samples(samples)
        except Exception:
            log.exception("outbox: could not store %d samples", len(samples))

    def event(self, e: Event) -> None:
        self.events([e])

    def events(self, events: list[Event]) -> None:
        try:
            self.outbox.add_items("events", [e.to_dict() for e in events])
        except Exception:
            log.exception("outbox: could not store %d events (%s)", len(events), events[0].kind if events else "")
