"""The service: start-up, the main loop, signals, reload, the state file, birth, and what commands may do.

A reload builds the new collectors first; if the file is invalid or a secret cannot be read, the new
configuration is refused and the old one keeps running. The outbox and the MQTT connection are never
touched by a reload; changes to `mqtt`, `outbox`, `school` or `agent` take effect at the next restart
(the log and an `agent.config_reloaded` event say so).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from eduedge.agent import health
from eduedge.agent.commands import CommandHandler, Done
from eduedge.agent.config import AgentConfig, config_digest, load_config
from eduedge.agent.contract import COMMANDS
from eduedge.agent.daemon.delivery import Delivery
from eduedge.agent.daemon.notify import Notifier
from eduedge.agent.daemon.scheduler import Job, Scheduler
from eduedge.agent.daemon.wiring import Collectors
from eduedge.agent.envelope import Envelope, agent_version
from eduedge.agent.link import Link
from eduedge.agent.outbox import Outbox
from eduedge.agent.samplestore import SampleStore
from eduedge.agent.state import state_path, write_state
from eduedge.core import memory
from eduedge.core.events import Event
from eduedge.core.i18n import _
from eduedge.core.secrets import SecretError
from eduedge.core.yamlfile import YamlFileError  # the configuration's and the rule packs' (ConfigError, PackError)

log = logging.getLogger("eduedge.daemon")

STATE_EVERY_S = 2.0
STATS_EVERY_S = 15.0
INVENTORY_EVERY_S = 5.0
MAINTAIN_EVERY_S = 60.0
GIVE_BACK_EVERY_S = 60.0          # freed memory back to the system (core/memory.py): a few ms each
REPOLL_MIN_GAP_S = 10.0


def agent_id(cfg: AgentConfig) -> str:
    """The configured agent id, or the school id plus the host name."""
    return cfg.agent.id or f"{cfg.school.id}-{socket.gethostname().split('.')[0]}"


async def _cancel_tasks() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class Daemon:
    """The agent process. `Daemon(path).run()` returns when asked to stop (SIGTERM/SIGINT or `stop()`)."""

    def __init__(self, config_path: Path):
        # before any thread starts: every thread that allocates would get a malloc heap of its own, and one
        # heap for all reuses what any thread freed (campus-large held 2 MB less than with two)
        memory.limit_arenas(1)
        memory.fix_mmap_threshold()
        memory.limit_sqlite()
        self.config_path = Path(config_path)
        self.notify = Notifier()
        self.cfg = load_config(self.config_path)
        self.digest = config_digest(self.config_path)
        self.started = time.time()
        data_dir = self.cfg.agent.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.state_file = state_path(data_dir)
        mq = self.cfg.mqtt
        self.env = Envelope(self.cfg.school.id, self.cfg.school.city, agent_id(self.cfg), agent_version(),
                            secrets.token_hex(16))
        self.outbox = Outbox(self.cfg.outbox.path or data_dir / "outbox.db", self.env,
                             max_bytes=self.cfg.outbox.max_bytes, min_free_bytes=self.cfg.outbox.min_free_bytes,
                             synchronous=self.cfg.outbox.synchronous,
                             max_message_bytes=mq.max_message_bytes if mq else 256 * 1024,
                             compression=mq.compression if mq else "none")
        # what the rules judge and `eduedge diag --cached` shows: the latest of every series, windowed history
        self.store = SampleStore.in_data_dir(data_dir)
        self.delivery = Delivery(self.store, self.outbox)
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="collect")
        self.aloop = asyncio.new_event_loop()
        self._aloop_thread = threading.Thread(target=self.aloop.run_forever, name="snmp-loop", daemon=True)
        self._aloop_thread.start()
        self.collectors = Collectors(self.cfg, self.aloop, self.store, on_trap=self._trap)
        self._repolled: dict[str, float] = {}       # device -> monotonic time of its last trap-driven poll
        self.scheduler = Scheduler(lambda: self.collectors.jobs, self.aloop, self.pool, self.delivery.keep)
        self.scheduler.schedule_all()
        self.commands = CommandHandler(self.cfg.commands, self.outbox, self)
        self.link: Link | None = None
        if mq is not None:
            password = mq.password.read("mqtt.password") if mq.password else None
            self.link = Link(mq, self.outbox, self.env, self.birth_body, self.commands.handle, password,
                             client_id=mq.client_id)
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._outbox_stats: dict[str, Any] = {}
        self._outbox_st: Any = None            # outbox.OutboxStats of the last refresh, for health()
        self.exporter: health.Exporter | None = None

    def submit(self, name: str, done: Callable[[Job], None] | None = None) -> None:
        self.scheduler.submit(name, done)

    def _event(self, e: Event) -> None:
        self.delivery.event(e)

    # -- traps -----------------------------------------------------------------------------------------

    def _trap(self, e: Event) -> None:
        """A trap of a listed device (on the asyncio loop): stored in the pool, never on the SNMP loop; a
        trap that says the device changed (a link, a restart) runs its collector now."""
        self.scheduler.to_pool(self._event, e)
        if e.device is None:
            return
        for name, job in list(self.collectors.jobs.items()):
            if job.device == e.device and job.source is not None and job.source.repolls_on(e):
                self._repoll(e.device, name)

    def _repoll(self, device: str, name: str) -> None:
        # A flapping port sends a trap a second: one poll per REPOLL_MIN_GAP_S is enough to follow it.
        now = time.monotonic()
        with self.scheduler.lock:
            if now - self._repolled.get(name, -REPOLL_MIN_GAP_S) < REPOLL_MIN_GAP_S:
                return
            self._repolled[name] = now
        log.info("%s: polling now after a trap", device)
        self.scheduler.to_pool(self.submit, name)

    # -- what commands may do (agent/commands.Actions) -----------------------------------------------

    def rebirth(self) -> None:
        if self.link is not None:
            self.link.rebirth()

    def checks(self) -> list[str]:
        return self.collectors.checks()

    def run_check(self, check: str, done: Done) -> None:
        names = self.collectors.names(check)
        remaining = set(names)
        lock = threading.Lock()

        def one(job: Job) -> None:
            with lock:
                remaining.discard(job.name)
                if remaining:
                    return
            jobs = [self.collectors.jobs[n] for n in names if n in self.collectors.jobs]
            errors = {j.name: j.last_error for j in jobs if j.last_error}
            result: dict[str, Any] = {"check": check, "samples": sum(j.last_samples for j in jobs),
                                      "ran": [j.name for j in jobs], "errors": errors}
            summaries = {j.name: j.last_summary for j in jobs if j.last_summary is not None}
            if summaries:
                result["summary"] = summaries
            done(result, f"{len(errors)} of {len(jobs)} failed" if errors else None)

        for n in names:
            self.submit(n, one)

    def set_interval(self, check: str, seconds: float) -> float:
        return self.scheduler.set_interval(self.collectors.names(check), seconds)

    # -- birth, state ----------------------------------------------------------------------------------

    def birth_body(self) -> dict[str, Any]:
        """Everything the cloud should know about this agent; sent on every connect (bdSeq added by the link)."""
        s = self.cfg.school
        st = self.outbox.stats()
        mq = self.cfg.mqtt
        return {
            "school_info": {"name": s.name, "type": s.type, "district": s.district,
                            "students": s.enrolment.students if s.enrolment else None,
                            "teachers": s.enrolment.teachers if s.enrolment else None},
            "config_digest": self.digest,
            "started": round(self.started, 3),
            "collectors": [{"name": j.name, "interval_s": j.interval} for j in self.collectors.jobs.values()],
            "devices": self.collectors.inventory(),
            "commands": list(COMMANDS) if self.cfg.commands.enabled else [],
            "compression": mq.compression if mq else "none",
            "max_message_bytes": mq.max_message_bytes if mq else 256 * 1024,
            "outbox": {"rows": st.rows, "bytes": st.bytes, "oldest": st.oldest},
            "health": self.health(),
        }

    def state(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(), "running": not self._stop.is_set(), "started": self.started,
            "config": str(self.config_path.resolve()), "config_digest": self.digest,
            "agent": self.env.agent_id, "school": self.cfg.school.id, "boot_id": self.env.boot_id,
            "link": self.link.status.to_dict() if self.link else None,
            "collectors": self._collector_states(),
            "outbox": {**self._outbox_stats, "inflight": self.outbox.inflight(), "resets": self.outbox.resets},
            "health": self.health(),
        }

    def _collector_states(self) -> dict[str, Any]:
        cols = self.collectors
        out = {n: j.to_dict() for n, j in cols.jobs.items()}
        out.update({n: listener.to_dict() for n, listener in cols.listeners.items()})
        return out

    def _write_state(self) -> None:
        try:
            write_state(self.state_file, self.state())
        except OSError as e:
            log.warning("cannot write %s: %s", self.state_file, e.strerror)

    # -- reload and the main loop ---------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read the configuration; keep the old one (and say why) if the new one is not usable."""
        try:
            new = load_config(self.config_path)
            cols = Collectors(new, self.aloop, self.store, previous=self.collectors, on_trap=self._trap)
        except Exception as e:  # whatever the new file does, a reload never ends the agent
            problems = e.problems if isinstance(e, YamlFileError) else [str(e) or type(e).__name__]
            if not isinstance(e, YamlFileError | SecretError | OSError | ValueError):
                log.exception("reload refused: building the new configuration failed")
            for p in problems:
                log.error("reload refused: %s", p)
            self._event(Event(time.time(), None, "agent.config_refused", "error",
                              _("new configuration refused, still running the old one: {problem}").format(
                                  problem=problems[0]),
                              {"problems": problems[:20]}))
            return False
        later = [k for k in ("mqtt", "outbox", "school", "agent", "prometheus")
                 if getattr(new, k) != getattr(self.cfg, k)]
        if later:
            log.warning("reload: changes to %s take effect at the next restart", ", ".join(later))
        cols.start(previous=self.collectors)
        self.cfg = new
        self.collectors = cols
        self.digest = config_digest(self.config_path)
        self.commands.cfg = new.commands
        self.scheduler.schedule_all()
        log.info("configuration reloaded: %d jobs (digest %s)", len(cols.jobs), self.digest)
        self._event(Event(time.time(), None, "agent.config_reloaded", "info", _("configuration reloaded"),
                          {"config_digest": self.digest, "needs_restart": later}))
        self.outbox.add("inventory", {"devices": cols.inventory()})
        self.rebirth()
        return True

    def request_reload(self) -> None:
        self._reload.set()

    def stop(self) -> None:
        self._stop.set()

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())

    def health(self) -> dict[str, Any]:
        """The agent's own figures (agent/health.py): in the birth, the state file and the Prometheus endpoint."""
        return health.snapshot(self.collectors.jobs, self._outbox_st, self.link.status if self.link else None,
                               time.time())

    def _refresh_stats(self) -> None:
        st = self._outbox_st = self.outbox.stats()
        self._outbox_stats = {"rows": st.rows, "bytes": st.bytes, "oldest": st.oldest,
                              "by_priority": st.by_priority, "dropped": [d.__dict__ for d in st.drops]}

    def run(self) -> int:
        for w in self.collectors.warnings:
            log.warning("%s", w)
        self._event(Event(time.time(), None, "agent.start", "info",
                          _("eduedge {version} started with {jobs} jobs").format(
                              version=self.env.agent_version, jobs=len(self.collectors.jobs)),
                          {"boot_id": self.env.boot_id, "config_digest": self.digest}))
        self.outbox.add("inventory", {"devices": self.collectors.inventory()})
        self.collectors.start()
        self._refresh_stats()
        if self.cfg.prometheus.enabled:
            try:
                self.exporter = health.Exporter(self.cfg.prometheus, self.health)
            except OSError as e:          # the port is taken, the address is not this box's: the agent runs on
                log.error("prometheus: cannot listen on %s: %s", self.cfg.prometheus.listen, e.strerror or e)
        if self.link is not None:
            self.link.start()
        else:
            log.warning("no mqtt section in %s: collecting into the outbox only", self.config_path)
        # the first judging waits for the first run of every collector (see _ready_to_judge)
        for name, job in list(self.collectors.jobs.items()):
            if job.source is not None and not job.source.after_first_round:
                self.submit(name)
        first_round = any(j.source is not None and j.source.after_first_round
                          for j in self.collectors.jobs.values())
        next_state = next_stats = next_inventory = 0.0
        next_maintain = time.monotonic() + MAINTAIN_EVERY_S
        next_give_back = time.monotonic() + GIVE_BACK_EVERY_S
        self.notify.ready(f"{len(self.collectors.jobs)} jobs")
        try:
            while not self._stop.is_set():
                # fed only while this loop turns and the link's thread lives (daemon/notify.py)
                self.notify.feed(self.link is None or self.link.is_alive())
                try:
                    self.scheduler.run_pending()
                except Exception:
                    log.exception("scheduler")
                if self._reload.is_set():
                    self._reload.clear()
                    self.notify.reloading()
                    self.reload()
                    self.notify.ready(f"{len(self.collectors.jobs)} jobs")
                if first_round and self._ready_to_judge():
                    first_round = False
                    for name, job in list(self.collectors.jobs.items()):
                        if job.source is not None and job.source.after_first_round and not job.runs \
                                and not job.running:
                            self.submit(name)
                now = time.monotonic()
                if now >= next_stats:
                    self._refresh_stats()
                    next_stats = now + STATS_EVERY_S
                if now >= next_state:
                    self._write_state()
                    next_state = now + STATE_EVERY_S
                if self.delivery.inventory_due.is_set() and now >= next_inventory:
                    self.delivery.inventory_due.clear()
                    self.outbox.add("inventory", {"devices": self.collectors.inventory()})
                    next_inventory = now + INVENTORY_EVERY_S
                if now >= next_maintain:
                    self.outbox.maintain()
                    next_maintain = now + MAINTAIN_EVERY_S
                if now >= next_give_back:
                    memory.give_back()
                    next_give_back = now + GIVE_BACK_EVERY_S
                idle = self.scheduler.idle_seconds
                self._stop.wait(min(0.2, max(0.0, idle)) if idle is not None else 0.2)
        finally:
            self.shutdown()
        return 0

    def _ready_to_judge(self) -> bool:
        """At start-up: whether every first-round collector has run once (the store then holds a whole round,
        not the first device's), or the judging has already started on its own schedule. A broadband test
        that is due at start-up is not waited for."""
        jobs = self.collectors.jobs.values()
        judges = [j for j in jobs if j.source is not None and j.source.after_first_round]
        if not judges or all(j.runs or j.running for j in judges):
            return True
        return all(j.runs for j in jobs if j.source is not None and j.source.first_round)

    def shutdown(self) -> None:
        self.notify.stopping()
        log.info("stopping")
        self._event(Event(time.time(), None, "agent.stop", "info", _("eduedge stopped"),
                          {"boot_id": self.env.boot_id}))
        self.collectors.stop()
        if self.exporter is not None:
            self.exporter.close()
        if self.link is not None:
            self.link.stop(timeout=5.0)
        self.pool.shutdown(wait=False, cancel_futures=True)
        # polls and probes still under way end here (their results are dropped, like a poll cut short)
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_cancel_tasks(), self.aloop).result(timeout=5)
        self.aloop.call_soon_threadsafe(self.aloop.stop)
        self._refresh_stats()
        self._write_state()
        self.delivery.closed = True
        self.store.close()
        self.outbox.close()
