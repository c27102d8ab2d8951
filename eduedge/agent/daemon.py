"""`eduedge run`: the service a school box runs for months - schedule, collect, buffer, deliver.

The main job, per configured collector (each a `Job`, each shown by `eduedge status`):

| job            | runs on               | every                      | feeds                                        |
|----------------|-----------------------|----------------------------|----------------------------------------------|
| snmp:DEVICE    | asyncio loop          | its interval               | store (add_poll), outbox metrics; Wi-Fi      |
|                |                       |                            | rounds -> zone samples, learning SSIDs       |
| host           | pool                  | host.interval              | store, outbox metrics                        |
| discovery      | asyncio loop (+ pool) | discovery.interval         | store, outbox metrics, `inventory` changes   |
| reachability   | asyncio loop          | reachability.interval      | store, outbox metrics, reachability.down/up  |
| compliance     | pool                  | standards.assess_interval  | store findings; outbox findings + the events |
|                |                       | (first: after every job's  | of every change of status                    |
|                |                       | first run)                 |                                              |
| broadband      | pool                  | half a minute (due tests;  | store, outbox metrics and events             |
|                |                       | `run-check`: a test now)   |                                              |
| broadband:tick | pool                  | utilisation_interval       | WAN counters, echo monitor                   |
| live-class     | asyncio loop (+ pool) | live_class.interval        | store, outbox metrics: the configured        |
|                |                       |                            | endpoints' probes                            |
| live-class:    | pool                  | snmp.defaults.interval     | store, outbox metrics: each quarter hour's   |
| loads          |                       |                            | peak of the classroom drops and the uplink   |
|                |                       |                            | port (agent/live_class.py)                   |

SNMP traps (snmp.traps) are no job: their receiver listens on the asyncio loop and each trap of a listed
device becomes an event; a link or restart trap also polls that device at once (at most every
REPOLL_MIN_GAP_S), so its ports' state is fresh without waiting for its interval. Everything sampled goes
into the SampleStore (data_dir/compliance.sqlite), which `assess` judges and `eduedge diag --cached` reads,
and into the outbox, with one exception: the per-client
Wi-Fi samples (`wifi.client_*`, one series per pseudonymised client) stay in memory. Each round of Wi-Fi polls
turns them into the zone samples the coverage rules judge (`wifi.zone_*`, sent and stored) and the
learning-SSID pseudonyms the 1:1 count takes; APs, radios and SSIDs are sent as polled. The simulated large
campus (347 APs, 7,105 clients in a lesson) polls 32,830 Wi-Fi samples a round, 21,315 of them per client;
2,000 APs would send ~10^5 client samples a minute that no rule reads, and keeping one series per client in
the store for its 35 days would grow it with every pseudonym ever seen.

Threads and who owns what:
- main thread: the `schedule` loop (cadence with jitter), signals (SIGTERM/SIGINT stop, SIGHUP reloads the
  configuration), the state file for `eduedge status`, outbox housekeeping;
- one asyncio loop thread: every SNMP poll (one job per device, each with its own deadline, at most
  `snmp.defaults.concurrency` at once), so a dead switch never holds up another; discovery cycles,
  reachability probes and the trap receiver. The discovered inventory is only touched on this thread;
- a small thread pool: the host collector, judging, broadband tests, and storing results in the store and
  the outbox;
- the MQTT link's threads (agent/link.py), which alone talk to the broker.

The scheduler only *starts* work; a job still running when its time comes again is skipped, not queued,
so a slow collector neither piles up nor delays the others or the link.

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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schedule

from eduedge.agent.commands import CommandHandler, Done
from eduedge.agent.compliance import PackError, assess, load_rules
from eduedge.agent.config import AgentConfig, ConfigError, config_digest, load_config
from eduedge.agent.contract import COMMANDS
from eduedge.agent.envelope import Envelope, agent_version
from eduedge.agent.link import Link
from eduedge.agent.outbox import Outbox
from eduedge.agent.samplestore import SampleStore
from eduedge.agent.state import state_path, write_state
from eduedge.core.events import Event
from eduedge.core.rates import RateTracker
from eduedge.core.samples import Sample
from eduedge.core.secrets import SecretError

log = logging.getLogger("eduedge.daemon")

STATE_EVERY_S = 2.0
STATS_EVERY_S = 15.0
INVENTORY_EVERY_S = 5.0
MAINTAIN_EVERY_S = 60.0
HOST_DEVICE = "gateway"
PER_CLIENT_PREFIX = "wifi.client_"
BROADBAND_DUE_EVERY_S = 30.0     # how often the broadband job asks whether a scheduled test is due
REPOLL_ON = frozenset({"link.down", "link.up", "device.cold_start", "device.warm_start"})
REPOLL_MIN_GAP_S = 10.0


def agent_id(cfg: AgentConfig) -> str:
    """The configured agent id, or the school id plus the host name."""
    return cfg.agent.id or f"{cfg.school.id}-{socket.gethostname().split('.')[0]}"


@dataclass
class Job:
    """One scheduled check: a device poll, the host collector, discovery, reachability, judging, broadband."""

    name: str
    interval: float
    collector: str
    device: str | None = None
    running: bool = False
    runs: int = 0
    skipped: int = 0
    last_run: float | None = None
    last_success: float | None = None
    last_error: str | None = None
    last_duration_s: float | None = None
    last_samples: int = 0
    last_summary: dict[str, Any] | None = None     # what the last run found, where a count says too little
    waiters: list[Done] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("waiters", "name")}


def jittered(sched: schedule.Scheduler, interval: float) -> schedule.Job:
    """A schedule entry every `interval` seconds, +-10% at random each time so that schools (and devices)
    do not all fire in the same second. schedule's jitter is whole seconds, so short intervals get none."""
    if interval >= 10:
        return sched.every(round(interval * 0.9)).to(round(interval * 1.1)).seconds
    return sched.every(interval).seconds


def per_client(sample: Sample) -> bool:
    """A Wi-Fi sample of one client (a series per pseudonym): used in memory, neither stored nor sent."""
    return sample.metric.startswith(PER_CLIENT_PREFIX)


@dataclass
class TrapState:
    """The trap receiver as `eduedge status` shows it (it is no scheduled job)."""

    listen: str
    last_success: float | None = None       # when it started listening, then when it last made an event
    last_error: str | None = None

    def to_dict(self, receiver: Any) -> dict[str, Any]:
        st = receiver.stats if receiver is not None else None
        counts = ({"received": st.received, "events": st.events, "dropped_unknown_source": st.dropped_unknown_source,
                   "unmapped": sum(st.unmapped.values())} if st is not None else {})
        return {"collector": "traps", "listen": self.listen, "last_success": self.last_success,
                "last_error": self.last_error, **counts}


async def _cancel_tasks() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _close_traps(receiver: Any) -> None:
    receiver.close()
    await asyncio.sleep(0)              # its socket closes in the loop's next turn


class Collectors:
    """The configured collectors as jobs: builds them from a configuration, runs them, keeps their state.

    Building has no side effect on the network; `start()` opens what listens (the passive discovery
    listener, the trap receiver) and `stop()` closes it, so that a reload can refuse a configuration before
    anything of the old one is touched."""

    def __init__(self, cfg: AgentConfig, aloop: asyncio.AbstractEventLoop, previous: Collectors | None = None,
                 on_trap: Callable[[Event], None] | None = None):
        from eduedge.agent.device_inventory import probe_scope
        from eduedge.agent.wifi_coverage import WifiRounds
        from eduedge.collectors.snmp.build import poller_for
        from eduedge.collectors.snmp.client import SnmpAuth
        from eduedge.collectors.snmp.poller import DevicePoller
        from eduedge.collectors.snmp.profiles import load_profiles
        from eduedge.core.pseudonym import pseudonymizer

        self.cfg = cfg
        self.aloop = aloop
        self.jobs: dict[str, Job] = {}
        self.pollers: dict[str, DevicePoller] = {}
        self.devices = {d.name: d for d in cfg.snmp.devices}
        self.rates = previous.rates if previous else RateTracker()
        self.profile_errors: list[str] = []
        self.wifi: WifiRounds | None = None
        wireless = any(d.role in ("wlc", "ap") for d in cfg.snmp.devices)
        # Wi-Fi clients' MACs leave a poll only as this school's pseudonyms (agent/pseudonym.py); discovery
        # names personal devices with the same key, so a tablet seen both ways is one pseudonym
        pseudo = (pseudonymizer(cfg.privacy.pseudonym_key, cfg.agent.data_dir)
                  if wireless or cfg.discovery.enabled else None)
        if cfg.snmp.devices:
            profiles = load_profiles(cfg.snmp.profile_dirs)
            self.profile_errors = profiles.errors
            auths = {name: SnmpAuth.from_config(c, name) for name, c in cfg.snmp.credentials.items()
                     if any(d.credentials == name for d in cfg.snmp.devices)}
            dflt = cfg.snmp.defaults
            for d in cfg.snmp.devices:
                old = previous.pollers.get(d.name) if previous else None
                same = (old is not None and previous is not None and previous.devices.get(d.name) == d
                        and previous.cfg.snmp.defaults == dflt
                        and previous.cfg.snmp.credentials.get(d.credentials) == cfg.snmp.credentials[d.credentials])
                if same:
                    assert old is not None
                    self.pollers[d.name] = old  # keeps its identity and counter state across the reload
                else:
                    self.pollers[d.name] = poller_for(d, cfg.snmp, profiles, rates=self.rates,
                                                      auth=auths[d.credentials],
                                                      pseudonymizer=pseudo if wireless else None)
                name = f"snmp:{d.name}"
                self.jobs[name] = Job(name, d.interval or dflt.interval, "snmp", d.name)
            if wireless:
                self.wifi = WifiRounds(cfg)     # zone samples once every controller and AP has reported
        self.host = None
        if cfg.host.enabled:
            from eduedge.collectors.host import HostCollector
            self.host = (previous.host if previous and previous.host
                         else HostCollector(HOST_DEVICE, cfg.agent.data_dir, cfg.host.wan_interface))
            self.jobs["host"] = Job("host", cfg.host.interval, "host", HOST_DEVICE)
        self.discovery = None
        if cfg.discovery.enabled:
            from eduedge.agent.device_inventory import STATE_FILE, DiscoveryJob
            assert pseudo is not None
            self.discovery = DiscoveryJob(cfg, pseudo, cfg.agent.data_dir / STATE_FILE)
            self.jobs["discovery"] = Job("discovery", cfg.discovery.interval, "discovery")
        self.scope = self.discovery.scope if self.discovery is not None else probe_scope(cfg)
        if cfg.reachability.enabled:
            self.jobs["reachability"] = Job("reachability", cfg.reachability.interval, "reachability")
        # reachability's verdict per target: a change (or a first "down") is an event
        self.reachable: dict[str, bool] = dict(previous.reachable) if previous else {}
        self.rules = load_rules(cfg) if cfg.standards.packs else None
        if self.rules is not None:
            self.jobs["compliance"] = Job("compliance", cfg.standards.assess_interval, "compliance")
        self.broadband = None
        if cfg.broadband.enabled:
            from eduedge.collectors.broadband.collector import BroadbandCollector
            self.broadband = BroadbandCollector.from_config(cfg.broadband, HOST_DEVICE, cfg.agent.data_dir,
                                                            cfg.standards.school_hours.timezone,
                                                            cfg.host.wan_interface, self.rates)
            self.jobs["broadband"] = Job("broadband", BROADBAND_DUE_EVERY_S, "broadband", HOST_DEVICE)
            self.jobs["broadband:tick"] = Job("broadband:tick", cfg.broadband.utilisation_interval, "broadband:tick",
                                              HOST_DEVICE)
        self.live_class = None
        if cfg.live_class.enabled:
            from eduedge.agent.live_class import LoadSnapshots
            self.live_class = previous.live_class if previous and previous.live_class else LoadSnapshots()
            self.jobs["live-class"] = Job("live-class", cfg.live_class.interval, "live-class")
            self.jobs["live-class:loads"] = Job("live-class:loads", cfg.snmp.defaults.interval, "live-class:loads")
        self.traps = None
        self.trap_state: TrapState | None = None
        if cfg.snmp.traps.enabled:
            from eduedge.collectors.snmp.traps import receiver_from_config
            same_traps = (previous is not None and previous.traps is not None
                          and previous.cfg.snmp.traps == cfg.snmp.traps
                          and previous.cfg.snmp.credentials == cfg.snmp.credentials
                          and [(d.name, d.host) for d in previous.cfg.snmp.devices]
                          == [(d.name, d.host) for d in cfg.snmp.devices])
            if same_traps:
                assert previous is not None
                self.traps, self.trap_state = previous.traps, previous.trap_state
            else:
                assert on_trap is not None
                self.traps = receiver_from_config(cfg.snmp, on_trap)
                self.trap_state = TrapState(cfg.snmp.traps.listen)
        if previous:
            for name, job in self.jobs.items():
                old_job = previous.jobs.get(name)
                if old_job is not None:
                    job.last_run, job.last_success, job.last_error = (old_job.last_run, old_job.last_success,
                                                                      old_job.last_error)
        self._sem: asyncio.Semaphore | None = None

    # -- what listens: started after a successful build, stopped before the next configuration starts ------

    def start(self, previous: Collectors | None = None) -> None:
        """Open the listeners, closing those of `previous` that this configuration does not keep."""
        if previous is not None and previous.discovery is not None:
            previous.discovery.stop()
        old_traps = previous.traps if previous is not None else None
        if self.traps is not old_traps:
            if old_traps is not None:
                self._on_loop(_close_traps(old_traps))
            if self.traps is not None:
                self._on_loop(self._open_traps(retry=old_traps is not None))
        if self.discovery is not None:
            try:
                self.discovery.start_passive()
            except PermissionError as e:
                self.jobs["discovery"].last_error = f"passive discovery: {e}"
                log.error("discovery: %s", e)

    def stop(self) -> None:
        if self.discovery is not None:
            self.discovery.stop()
        if self.traps is not None:
            self._on_loop(_close_traps(self.traps))

    def _on_loop(self, coro: Any) -> None:
        try:
            asyncio.run_coroutine_threadsafe(coro, self.aloop).result(timeout=10)
        except Exception as e:
            log.error("%s: %s", type(e).__name__, e)

    async def _open_traps(self, retry: bool) -> None:
        assert self.traps is not None and self.trap_state is not None
        for attempt in range(20 if retry else 1):
            if attempt:
                await asyncio.sleep(0.05)   # the old receiver's port is released a moment after it closed
            try:
                await self.traps.start()
                self.trap_state.last_success, self.trap_state.last_error = time.time(), None
                return
            except OSError as e:
                self.trap_state.last_error = str(e)
        log.error("traps: %s", self.trap_state.last_error)

    # -- running ---------------------------------------------------------------------------------------------

    def checks(self) -> list[str]:
        return (["snmp"] if self.pollers else []) + sorted(self.jobs)

    def inventory(self) -> list[dict[str, Any]]:
        out = []
        for name, d in self.devices.items():
            p = self.pollers.get(name)
            out.append({"device": name, "collector": "snmp", "address": d.host, "role": d.role, "zone": d.zone,
                        "room": d.room, "identity": p.identity.to_dict() if p and p.identity else None})
        if self.host is not None:
            out.append({"device": HOST_DEVICE, "collector": "host", "address": "localhost", "role": "other",
                        "zone": None, "room": None, "identity": None})
        return out

    async def _poll(self, device: str) -> Any:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.cfg.snmp.defaults.concurrency)
        async with self._sem:
            return await self.pollers[device].poll()

    async def _reach(self) -> list[Any]:
        """One round of reachability probes; the discovered devices learn whether they answered."""
        from eduedge.agent.device_inventory import apply_reachability, reachability_targets
        from eduedge.collectors.reachability import probe

        r = self.cfg.reachability
        inventory = self.discovery.inventory if self.discovery is not None else None
        results = await probe(reachability_targets(self.cfg, inventory), self.scope, r.count, r.timeout,
                              r.concurrency, r.tcp_ports)
        if inventory is not None:
            apply_reachability(inventory, results)
        return results

    async def _probe_services(self) -> list[Any]:
        """One round of the live-class endpoints' probes (only the configured ones)."""
        from eduedge.collectors.service_probes import probe_all

        return await probe_all(self.cfg.live_class)

    def see_wifi(self) -> None:
        """The learning-SSID clients of the latest Wi-Fi round, for the 1:1 count (on the loop thread)."""
        from eduedge.agent.device_inventory import WifiClient

        snap = self.wifi.last if self.wifi is not None else None
        if self.discovery is None or snap is None:
            return
        clients = [WifiClient(c.client, c.ssid, snap.time) for c in snap.clients if c.ssid]
        self.discovery.inventory.see_wifi(clients, snap.time)


class Daemon:
    """The agent process. `Daemon(path).run()` returns when asked to stop (SIGTERM/SIGINT or `stop()`)."""

    def __init__(self, config_path: Path):
        self.config_path = Path(config_path)
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
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="collect")
        self.aloop = asyncio.new_event_loop()
        self._aloop_thread = threading.Thread(target=self.aloop.run_forever, name="snmp-loop", daemon=True)
        self._aloop_thread.start()
        self.collectors = Collectors(self.cfg, self.aloop, on_trap=self._trap)
        self._failing: dict[str, bool] = {}
        self._identities: dict[str, Any] = {}
        # the configured inventory is the complete list: identities learnt together (a campus at start-up)
        # go out in one message every INVENTORY_EVERY_S, not one whole list per device
        self._inventory_due = threading.Event()
        self._lock = threading.Lock()
        self._repolled: dict[str, float] = {}       # device -> monotonic time of its last trap-driven poll
        self.sched = schedule.Scheduler()
        self._schedule_all()
        self.commands = CommandHandler(self.cfg.commands, self.outbox, self)
        self.link: Link | None = None
        if mq is not None:
            password = mq.password.read("mqtt.password") if mq.password else None
            self.link = Link(mq, self.outbox, self.env, self.birth_body, self.commands.handle, password,
                             client_id=mq.client_id)
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._closed = False
        self._outbox_stats: dict[str, Any] = {}

    # -- schedule ----------------------------------------------------------------------------------

    def _schedule_all(self) -> None:
        self.sched.clear()
        for job in self.collectors.jobs.values():
            jittered(self.sched, job.interval).do(self.submit, job.name).tag(job.name)

    def submit(self, name: str, done: Callable[[Job], None] | None = None) -> None:
        """Start a job now unless it is already running (then `done` waits for that run)."""
        job = self.collectors.jobs.get(name)
        if job is None:
            return
        with self._lock:
            if done is not None:
                job.waiters.append(lambda result, error, j=job: done(j))
            if job.running:
                job.skipped += 1
                return
            job.running = True
        job.last_run = time.time()
        t0 = time.monotonic()
        cols = self.collectors
        if job.collector == "snmp":
            assert job.device is not None
            self._loop_then_pool(cols._poll(job.device), self._store_poll, cols, job, t0)
        elif job.collector == "discovery":
            assert cols.discovery is not None
            self._loop_then_pool(cols.discovery.run(), self._store_discovery, cols, job, t0)
        elif job.collector == "reachability":
            self._loop_then_pool(cols._reach(), self._store_reach, cols, job, t0)
        elif job.collector == "compliance":
            self._to_pool(self._assess, cols, job, t0)
        elif job.collector in ("broadband", "broadband:tick"):
            self._to_pool(self._run_broadband, cols, job, t0, done is not None)
        elif job.collector == "live-class":
            self._loop_then_pool(cols._probe_services(), self._store_live_class, cols, job, t0)
        elif job.collector == "live-class:loads":
            self._to_pool(self._live_class_loads, cols, job, t0)
        else:
            self._to_pool(self._run_host, cols, job, t0)

    def _loop_then_pool(self, coro: Any, store: Callable[..., None], cols: Collectors, job: Job, t0: float) -> None:
        """Run `coro` on the asyncio loop, then `store(cols, job, future, t0)` in the pool."""
        fut = asyncio.run_coroutine_threadsafe(coro, self.aloop)
        fut.add_done_callback(lambda f: self._to_pool(store, cols, job, f, t0))

    def _to_pool(self, fn: Callable[..., None], *args: Any) -> None:
        # While shutting down the pool refuses work: that result is dropped unstored, like a poll cut short.
        with contextlib.suppress(RuntimeError):
            self.pool.submit(fn, *args)

    def _finish(self, job: Job, t0: float, samples: int, error: str | None) -> None:
        job.last_duration_s = round(time.monotonic() - t0, 3)
        job.last_samples = samples
        job.runs += 1
        job.last_error = error
        if error is None:
            job.last_success = time.time()
        with self._lock:
            job.running = False
            waiters, job.waiters = job.waiters, []
        for w in waiters:
            try:
                w(None, None)
            except Exception:
                log.exception("answering a command waiting for %s failed", job.name)

    # -- where results go ----------------------------------------------------------------------------

    def _deliver(self, samples: list[Sample]) -> None:
        """Samples into the store (for the rules) and the outbox (for the city)."""
        self._remember(self.store.add, samples)
        self._send(samples)

    def _remember(self, fn: Callable[..., None], *args: Any) -> None:
        if self._closed:        # a result that arrives after shutdown closed the store: like a poll cut short
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

    def _event(self, e: Event) -> None:
        self._events([e])

    def _events(self, events: list[Event]) -> None:
        try:
            self.outbox.add_items("events", [e.to_dict() for e in events])
        except Exception:
            log.exception("outbox: could not store %d events (%s)", len(events), events[0].kind if events else "")

    # -- the jobs' second halves -----------------------------------------------------------------------

    def _run_host(self, cols: Collectors, job: Job, t0: float) -> None:
        error = None
        samples: list[Sample] = []
        try:
            assert cols.host is not None
            samples = cols.host.collect()
            self._deliver(samples)
        except Exception as e:
            error = f"host: {type(e).__name__}: {e}"
            log.warning("%s", error)
        self._finish(job, t0, len(samples), error)

    def _store_poll(self, cols: Collectors, job: Job, fut: Future, t0: float) -> None:
        error = None
        samples: list[Sample] = []
        device = job.device or ""
        try:
            poll = fut.result()
            samples = poll.samples
            kept = [s for s in samples if not per_client(s)]
            self._remember(self.store.add_poll, device, poll.time, poll.identity is not None, kept,
                           poll.identity.hostname if poll.identity else None, poll.errors)
            self._send(kept)
            if cols.wifi is not None:
                zones = cols.wifi.add(poll)
                if zones:       # a round closed
                    self._deliver(zones)
                    if cols.discovery is not None:
                        self.aloop.call_soon_threadsafe(cols.see_wifi)
            if poll.errors:
                error = "; ".join(poll.errors)
            ident = poll.identity.to_dict() if poll.identity else None
            if ident is not None and self._identities.get(device) != ident:
                self._identities[device] = ident
                self._inventory_due.set()
        except Exception as e:
            error = f"{device}: {type(e).__name__}: {e}"
            self._remember(self.store.add_poll, device, time.time(), False, (), None, [error])
        failing = error is not None and not samples
        if failing != self._failing.get(device, False):
            self._failing[device] = failing
            if failing:
                self._event(Event(time.time(), device, "device.unreachable", "error",
                                  f"{device} gives no data: {error}", {"error": error}))
            elif device in self._failing:
                self._event(Event(time.time(), device, "device.recovered", "info", f"{device} answers again"))
        if error:
            log.warning("%s", error)
        self._finish(job, t0, len(samples), error)

    def _store_discovery(self, cols: Collectors, job: Job, fut: Future, t0: float) -> None:
        error = None
        n = 0
        try:
            cycle = fut.result()
            n = len(cycle.samples)
            self._deliver(cycle.samples)
            for body in cycle.messages:
                self.outbox.add("inventory", body)
            if cycle.errors:
                error = "; ".join(cycle.errors)
            job.last_summary = {"seen": len(cycle.observed), "changes": len(cycle.changes),
                                "known": len(cols.discovery.inventory.devices) if cols.discovery else 0}
        except Exception as e:
            error = f"discovery: {type(e).__name__}: {e}"
        if error:
            log.warning("%s", error)
        self._finish(job, t0, n, error)

    def _store_reach(self, cols: Collectors, job: Job, fut: Future, t0: float) -> None:
        error = None
        n = 0
        try:
            results = fut.result()
            now = time.time()
            samples = [s for r in results for s in r.samples(now)]
            n = len(samples)
            self._deliver(samples)
            events = []
            for r in results:
                before = cols.reachable.get(r.name)
                cols.reachable[r.name] = r.reachable
                if r.reachable == before or (before is None and r.reachable):
                    continue
                if r.reachable:
                    events.append(Event(now, r.name, "reachability.up", "info",
                                        f"{r.name} ({r.address}) answers again: {r.summary()}",
                                        {"address": r.address, "method": r.method, "rtt_ms": r.rtt_ms}))
                else:
                    events.append(Event(now, r.name, "reachability.down", "warning",
                                        f"{r.name} ({r.address}) does not answer: {r.error or 'no reply'}",
                                        {"address": r.address, "error": r.error}))
            if events:
                self._events(events)
            down = sorted(r.name for r in results if not r.reachable)
            job.last_summary = {"targets": len(results), "down": down[:20]}
        except Exception as e:
            error = f"reachability: {type(e).__name__}: {e}"
            log.warning("%s", error)
        self._finish(job, t0, n, error)

    def _assess(self, cols: Collectors, job: Job, t0: float) -> None:
        error = None
        n = 0
        try:
            a = assess(self.store, cols.cfg, time.time(), cols.rules)
            n = len(a.findings)
            self.outbox.add_items("findings", [f.to_dict() for f in a.findings])
            if a.events:
                self._events(a.events)
            counts: dict[str, int] = {}
            for f in a.findings:
                counts[f.status] = counts.get(f.status, 0) + 1
            job.last_summary = {"findings": counts, "changes": len(a.events)}
        except Exception as e:
            error = f"compliance: {type(e).__name__}: {e}"
            log.exception("compliance: judging failed")
        self._finish(job, t0, n, error)

    def _run_broadband(self, cols: Collectors, job: Job, t0: float, asked: bool) -> None:
        error = None
        n = 0
        try:
            bb = cols.broadband
            assert bb is not None
            # `run-check broadband` measures now, as `run-check snmp` polls now (one test at a time: the
            # collector's lock); the schedule runs the tests its windows and budget allow
            if job.collector == "broadband:tick":
                got = bb.tick()
            elif asked:
                got = bb.run_test("command")
            else:
                got = bb.run_due()
            n = len(got.samples)
            self._deliver(got.samples)
            if got.events:
                self._events(got.events)
            failed = [e.message for e in got.events if e.kind == "broadband.test_failed"]
            error = "; ".join(failed) or None
        except Exception as e:
            error = f"{job.name}: {type(e).__name__}: {e}"
            log.warning("%s", error)
        self._finish(job, t0, n, error)

    def _store_live_class(self, cols: Collectors, job: Job, fut: Future, t0: float) -> None:
        error = None
        n = 0
        try:
            probes = fut.result()
            samples = [s for p in probes for s in p.samples()]
            n = len(samples)
            self._deliver(samples)
            job.last_summary = {"endpoints": len(probes), "down": [f"{p.endpoint}: {p.failure}" for p in probes
                                                                   if not p.up][:20]}
        except Exception as e:
            error = f"live-class: {type(e).__name__}: {e}"
            log.warning("%s", error)
        self._finish(job, t0, n, error)

    def _live_class_loads(self, cols: Collectors, job: Job, t0: float) -> None:
        error = None
        n = 0
        try:
            assert cols.live_class is not None
            samples = cols.live_class.samples(cols.cfg, self.store)    # quarter hours that ended since the last run
            n = len(samples)
            if samples:
                self._deliver(samples)
        except Exception as e:
            error = f"live-class:loads: {type(e).__name__}: {e}"
            log.warning("%s", error)
        self._finish(job, t0, n, error)

    def _trap(self, e: Event) -> None:
        """A trap of a listed device (on the asyncio loop): stored in the pool, never on the SNMP loop."""
        st = self.collectors.trap_state
        if st is not None:
            st.last_success = e.time
        self._to_pool(self._event, e)
        if e.kind in REPOLL_ON and e.device is not None and f"snmp:{e.device}" in self.collectors.jobs:
            self._repoll(e.device)

    def _repoll(self, device: str) -> None:
        # A flapping port sends a trap a second: one poll per REPOLL_MIN_GAP_S is enough to follow it.
        now = time.monotonic()
        with self._lock:
            if now - self._repolled.get(device, -REPOLL_MIN_GAP_S) < REPOLL_MIN_GAP_S:
                return
            self._repolled[device] = now
        log.info("%s: polling now after a trap", device)
        self._to_pool(self.submit, f"snmp:{device}")

    # -- what commands may do (agent/commands.Actions) -----------------------------------------------

    def rebirth(self) -> None:
        if self.link is not None:
            self.link.rebirth()

    def checks(self) -> list[str]:
        return self.collectors.checks()

    def run_check(self, check: str, done: Done) -> None:
        names = [n for n in self.collectors.jobs if n.startswith("snmp:")] if check == "snmp" else [check]
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
        names = [n for n in self.collectors.jobs if n.startswith("snmp:")] if check == "snmp" else [check]
        old = self.collectors.jobs[names[0]].interval
        for n in names:
            job = self.collectors.jobs[n]
            job.interval = seconds
            self.sched.clear(n)
            jittered(self.sched, seconds).do(self.submit, n).tag(n)
        return old

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
        }

    def state(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(), "running": not self._stop.is_set(), "started": self.started,
            "config": str(self.config_path.resolve()), "config_digest": self.digest,
            "agent": self.env.agent_id, "school": self.cfg.school.id, "boot_id": self.env.boot_id,
            "link": self.link.status.to_dict() if self.link else None,
            "collectors": self._collector_states(),
            "outbox": {**self._outbox_stats, "inflight": self.outbox.inflight(), "resets": self.outbox.resets},
        }

    def _collector_states(self) -> dict[str, Any]:
        cols = self.collectors
        out = {n: j.to_dict() for n, j in cols.jobs.items()}
        if cols.trap_state is not None:
            out["traps"] = cols.trap_state.to_dict(cols.traps)
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
            cols = Collectors(new, self.aloop, previous=self.collectors, on_trap=self._trap)
        except (ConfigError, PackError, SecretError, OSError, ValueError) as e:
            problems = e.problems if isinstance(e, ConfigError | PackError) else [str(e)]
            for p in problems:
                log.error("reload refused: %s", p)
            self._event(Event(time.time(), None, "agent.config_refused", "error",
                              f"new configuration refused, still running the old one: {problems[0]}",
                              {"problems": problems[:20]}))
            return False
        later = [k for k in ("mqtt", "outbox", "school", "agent") if getattr(new, k) != getattr(self.cfg, k)]
        if later:
            log.warning("reload: changes to %s take effect at the next restart", ", ".join(later))
        cols.start(previous=self.collectors)
        self.cfg = new
        self.collectors = cols
        self.digest = config_digest(self.config_path)
        self.commands.cfg = new.commands
        self._schedule_all()
        log.info("configuration reloaded: %d jobs (digest %s)", len(cols.jobs), self.digest)
        self._event(Event(time.time(), None, "agent.config_reloaded", "info", "configuration reloaded",
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

    def _refresh_stats(self) -> None:
        st = self.outbox.stats()
        self._outbox_stats = {"rows": st.rows, "bytes": st.bytes, "oldest": st.oldest,
                              "by_priority": st.by_priority, "dropped": [d.__dict__ for d in st.drops]}

    def run(self) -> int:
        for e in self.collectors.profile_errors:
            log.warning("profile: %s", e)
        self._event(Event(time.time(), None, "agent.start", "info",
                          f"eduedge {self.env.agent_version} started with {len(self.collectors.jobs)} jobs",
                          {"boot_id": self.env.boot_id, "config_digest": self.digest}))
        self.outbox.add("inventory", {"devices": self.collectors.inventory()})
        self.collectors.start()
        if self.link is not None:
            self.link.start()
        else:
            log.warning("no mqtt section in %s: collecting into the outbox only", self.config_path)
        # the first assessment waits for the first run of every collector (see _first_assessment)
        for name in list(self.collectors.jobs):
            if name != "compliance":
                self.submit(name)
        first_assessment = "compliance" in self.collectors.jobs
        next_state = next_stats = next_inventory = 0.0
        next_maintain = time.monotonic() + MAINTAIN_EVERY_S
        try:
            while not self._stop.is_set():
                try:
                    self.sched.run_pending()
                except Exception:
                    log.exception("scheduler")
                if self._reload.is_set():
                    self._reload.clear()
                    self.reload()
                if first_assessment and self._ready_to_judge():
                    first_assessment = False
                    job = self.collectors.jobs.get("compliance")
                    if job is not None and not job.runs and not job.running:
                        self.submit("compliance")
                now = time.monotonic()
                if now >= next_stats:
                    self._refresh_stats()
                    next_stats = now + STATS_EVERY_S
                if now >= next_state:
                    self._write_state()
                    next_state = now + STATE_EVERY_S
                if self._inventory_due.is_set() and now >= next_inventory:
                    self._inventory_due.clear()
                    self.outbox.add("inventory", {"devices": self.collectors.inventory()})
                    next_inventory = now + INVENTORY_EVERY_S
                if now >= next_maintain:
                    self.outbox.maintain()
                    next_maintain = now + MAINTAIN_EVERY_S
                idle = self.sched.idle_seconds
                self._stop.wait(min(0.2, max(0.0, idle)) if idle is not None else 0.2)
        finally:
            self.shutdown()
        return 0

    def _ready_to_judge(self) -> bool:
        """At start-up: whether every collector has run once (the store then holds a whole round, not the
        first device's), or the compliance job has already started on its own schedule. A broadband test
        that is due at start-up is not waited for."""
        jobs = self.collectors.jobs
        job = jobs.get("compliance")
        if job is None or job.runs or job.running:
            return True
        return all(j.runs for n, j in jobs.items() if n not in ("compliance", "broadband"))

    def shutdown(self) -> None:
        log.info("stopping")
        self._event(Event(time.time(), None, "agent.stop", "info", "eduedge stopped", {"boot_id": self.env.boot_id}))
        self.collectors.stop()
        if self.link is not None:
            self.link.stop(timeout=5.0)
        self.pool.shutdown(wait=False, cancel_futures=True)
        # polls and probes still under way end here (their results are dropped, like a poll cut short)
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_cancel_tasks(), self.aloop).result(timeout=5)
        self.aloop.call_soon_threadsafe(self.aloop.stop)
        self._refresh_stats()
        self._write_state()
        self._closed = True
        self.store.close()
        self.outbox.close()
