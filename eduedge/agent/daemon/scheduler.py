"""Scheduling: every job on its interval (with jitter), one run of a job at a time.

The scheduler only *starts* work: a job still running when its time comes again is skipped, not queued, so a
slow collector neither piles up nor delays the others or the link. A run is its collector's `collect()` on
the asyncio loop, then `keep` in the worker pool (a blocking collector runs wholly in the pool), then the
job's state is updated and whoever waited for the run (a `run-check` command) is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import schedule

from eduedge.agent.commands import Done
from eduedge.collectors.base import BlockingCollector, Collector

log = logging.getLogger("eduedge.daemon")


@dataclass
class Job:
    """One scheduled check and what `eduedge status` shows of it; `source` is the collector that runs."""

    name: str
    interval: float
    collector: str
    device: str | None = None
    running: bool = False
    runs: int = 0
    errors: int = 0                                 # runs that failed
    skipped: int = 0
    last_run: float | None = None
    last_success: float | None = None
    last_error: str | None = None
    last_duration_s: float | None = None
    last_samples: int = 0
    last_summary: dict[str, Any] | None = None     # what the last run found, where a count says too little
    waiters: list[Done] = field(default_factory=list)
    source: Collector | None = None

    @classmethod
    def of(cls, c: Collector) -> Job:
        return cls(c.name, c.interval, c.kind, c.device, source=c)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("waiters", "name", "source")}


def jittered(sched: schedule.Scheduler, interval: float) -> schedule.Job:
    """A schedule entry every `interval` seconds, +-10% at random each time so that schools (and devices)
    do not all fire in the same second. schedule's jitter is whole seconds, so short intervals get none."""
    if interval >= 10:
        return sched.every(round(interval * 0.9)).to(round(interval * 1.1)).seconds
    return sched.every(interval).seconds


# keep(job, future of the collector's run) -> (what it produced, its error): where the results go
Keep = Callable[[Job, "Future[Any]"], tuple[int, str | None]]


class Scheduler:
    """Runs the jobs that `jobs()` returns (they change on a reload) on `aloop`, keeping results in `pool`."""

    def __init__(self, jobs: Callable[[], dict[str, Job]], aloop: asyncio.AbstractEventLoop,
                 pool: ThreadPoolExecutor, keep: Keep):
        self.jobs, self.aloop, self.pool, self.keep = jobs, aloop, pool, keep
        self.sched = schedule.Scheduler()
        self.lock = threading.Lock()

    def schedule_all(self) -> None:
        self.sched.clear()
        for job in self.jobs().values():
            jittered(self.sched, job.interval).do(self.submit, job.name).tag(job.name)

    def set_interval(self, names: list[str], seconds: float) -> float:
        """Run these jobs every `seconds` from now on; returns the first one's interval before."""
        jobs = self.jobs()
        old = jobs[names[0]].interval
        for n in names:
            jobs[n].interval = seconds
            self.sched.clear(n)
            jittered(self.sched, seconds).do(self.submit, n).tag(n)
        return old

    def run_pending(self) -> None:
        self.sched.run_pending()

    @property
    def idle_seconds(self) -> float | None:
        return self.sched.idle_seconds

    def submit(self, name: str, done: Callable[[Job], None] | None = None) -> None:
        """Start a job now unless it is already running (then `done` waits for that run)."""
        job = self.jobs().get(name)
        if job is None or job.source is None:
            return
        with self.lock:
            if done is not None:
                job.waiters.append(lambda result, error, j=job: done(j))
            if job.running:
                job.skipped += 1
                return
            job.running = True
        job.last_run = time.time()
        t0 = time.monotonic()
        if isinstance(job.source, BlockingCollector):     # wholly in the pool, the loop never sees it
            self.to_pool(self._blocking, job, t0, done is not None)
            return
        fut = asyncio.run_coroutine_threadsafe(job.source.collect(asked=done is not None), self.aloop)
        fut.add_done_callback(lambda f: self.to_pool(self._second_half, job, f, t0))

    def _blocking(self, job: Job, t0: float, asked: bool) -> None:
        assert isinstance(job.source, BlockingCollector)
        fut: Future[Any] = Future()
        try:
            fut.set_result(job.source.collect_blocking(asked))
        except Exception as e:
            fut.set_exception(e)
        self._second_half(job, fut, t0)

    def to_pool(self, fn: Callable[..., None], *args: Any) -> None:
        # While shutting down the pool refuses work: that result is dropped unstored, like a poll cut short.
        with contextlib.suppress(RuntimeError):
            self.pool.submit(fn, *args)

    def _second_half(self, job: Job, fut: Future[Any], t0: float) -> None:
        try:
            n, error = self.keep(job, fut)
        except Exception as e:      # keep() handles the collector's failures; this is a bug of its own
            log.exception("%s: keeping the result failed", job.name)
            n, error = 0, f"{job.name}: {type(e).__name__}: {e}"
        self.finish(job, t0, n, error)

    def finish(self, job: Job, t0: float, samples: int, error: str | None) -> None:
        job.last_duration_s = round(time.monotonic() - t0, 3)
        job.last_samples = samples
        job.runs += 1
        job.errors += error is not None
        job.last_error = error
        if error is None:
            job.last_success = time.time()
        with self.lock:
            job.running = False
            waiters, job.waiters = job.waiters, []
        for w in waiters:
            try:
                w(None, None)
            except Exception:
                log.exception("answering a command waiting for %s failed", job.name)
