"""Wiring: the jobs and listeners of one configuration, built by the registered factories (agent/jobs.py),
and rebuilt on a reload keeping what did not change.

Building has no side effect on the network; `start()` opens what listens (the passive discovery listener,
the trap receiver) and `stop()` closes it, so that a reload can refuse a configuration before anything of
the old one is touched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from eduedge.agent import jobs as agent_jobs
from eduedge.agent.config import AgentConfig
from eduedge.agent.daemon.scheduler import Job
from eduedge.agent.samplestore import SampleStore
from eduedge.collectors.base import Collector, registered
from eduedge.core.events import Event

log = logging.getLogger("eduedge.daemon")


class Collectors:
    """The configured collectors as jobs, and the listeners, of one configuration."""

    def __init__(self, cfg: AgentConfig, aloop: asyncio.AbstractEventLoop, store: SampleStore,
                 previous: Collectors | None = None, on_trap: Callable[[Event], None] | None = None):
        self.cfg, self.aloop = cfg, aloop
        before = {n: j.source for n, j in previous.jobs.items() if j.source is not None} if previous else {}
        self.shared = agent_jobs.shared(cfg, aloop, store, before, previous.shared.rates if previous else None)
        self.jobs: dict[str, Job] = {}
        for factory in registered().values():
            for c in factory(cfg, self.shared):
                self.jobs[c.name] = Job.of(c)
        self.listeners: dict[str, Any] = agent_jobs.listeners(cfg, previous.listeners if previous else {},
                                                              on_trap or (lambda e: None))
        if previous:
            for name, job in self.jobs.items():
                old_job = previous.jobs.get(name)
                if old_job is not None:
                    job.last_run, job.last_success, job.last_error = (old_job.last_run, old_job.last_success,
                                                                      old_job.last_error)
                    job.runs, job.errors = old_job.runs, old_job.errors

    @property
    def warnings(self) -> list[str]:
        return self.shared.warnings

    def collectors(self) -> list[Collector]:
        return [j.source for j in self.jobs.values() if j.source is not None]

    # -- what listens: started after a successful build, stopped before the next configuration starts ------

    def start(self, previous: Collectors | None = None) -> None:
        """Open the listeners, closing those of `previous` that this configuration does not keep."""
        mine = {id(c) for c in self.collectors()}
        if previous is not None:
            for c in previous.collectors():
                if id(c) not in mine:
                    c.stop()
        old = previous.listeners if previous is not None else {}
        for name, listener in old.items():
            new = self.listeners.get(name)
            if new is None or not new.shares(listener):
                self._on_loop(listener.close())
        for name, listener in self.listeners.items():
            if name not in old or not listener.shares(old[name]):
                self._on_loop(listener.open(retry=name in old))
        kept = {id(c) for c in previous.collectors()} if previous is not None else set()
        for name, job in self.jobs.items():
            if job.source is not None and id(job.source) not in kept:
                error = job.source.start()
                if error:
                    self.jobs[name].last_error = error

    def stop(self) -> None:
        for c in self.collectors():
            c.stop()
        for listener in self.listeners.values():
            self._on_loop(listener.close())

    def _on_loop(self, coro: Any) -> None:
        try:
            asyncio.run_coroutine_threadsafe(coro, self.aloop).result(timeout=10)
        except Exception as e:
            log.error("%s: %s", type(e).__name__, e)

    # -- what they are -------------------------------------------------------------------------------------

    def groups(self) -> dict[str, list[str]]:
        """Names that run several jobs at once (`snmp`: every device), with their jobs."""
        out: dict[str, list[str]] = {}
        for name, job in self.jobs.items():
            if job.source is not None and job.source.group:
                out.setdefault(job.source.group, []).append(name)
        return out

    def checks(self) -> list[str]:
        return sorted(self.groups()) + sorted(self.jobs)

    def names(self, check: str) -> list[str]:
        """The jobs a check runs: a group's jobs, or the one job of that name."""
        return self.groups().get(check, [check])

    def inventory(self) -> list[dict[str, Any]]:
        return [e for c in self.collectors() if (e := c.inventory()) is not None]
