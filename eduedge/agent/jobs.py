"""What the agent runs: for each collector, the factory that builds its jobs from the configuration, and
the small `Collector` (collectors/base.py) that binds it to the agent. This is the one place that names
collectors; the daemon (agent/daemon/) builds whatever is registered here and runs it.
A trap about a device (link, restart) polls it at once, at most every 10 s.

| kind             | jobs                  | every                      | a run                                   |
|------------------|-----------------------|----------------------------|-----------------------------------------|
| snmp             | snmp:DEVICE, each     | its interval               | a poll; per-client Wi-Fi samples stay   |
|                  | device                |                            | in memory (`keeps`), a closed Wi-Fi     |
|                  |                       |                            | round adds zone samples (`after`)       |
| host             | host                  | host.interval              | the gateway box itself                  |
| discovery        | discovery             | discovery.interval         | a cycle and its inventory changes       |
| reachability     | reachability          | reachability.interval      | the probes; reachability.down/up        |
| compliance       | compliance            | standards.assess_interval  | findings and the events of every change |
|                  |                       | (first: after every job's  | of status                               |
|                  |                       | first run)                 |                                         |
| broadband        | broadband             | half a minute (`run-check`:| a due test's samples and events         |
|                  |                       | a test now)                |                                         |
| broadband:tick   | broadband:tick        | utilisation_interval       | WAN counters, echo monitor              |
| live-class       | live-class            | live_class.interval        | the configured endpoints' probes        |
| live-class:loads | live-class:loads      | snmp.defaults.interval     | each quarter hour's peak of the         |
|                  |                       |                            | classroom drops and the uplink port     |

SNMP traps are a listener, not a job (`TrapListener`): each trap of a listed device becomes an event.

Adding a collector is a `Collector` subclass and a registered factory here; a factory takes the
configuration and the `Shared` state of one build and returns the jobs, reusing a job of the previous
configuration (`shared.previous`) where nothing it depends on changed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eduedge.agent.config import AgentConfig
from eduedge.agent.samplestore import SampleStore
from eduedge.collectors.base import BlockingCollector, Collected, Collector, DeviceAnswer, register
from eduedge.core.events import Event
from eduedge.core.i18n import _
from eduedge.core.pseudonym import Pseudonymizer, pseudonymizer
from eduedge.core.rates import RateTracker
from eduedge.core.samples import Sample

log = logging.getLogger("eduedge.daemon")

HOST_DEVICE = "gateway"
PER_CLIENT_PREFIX = "wifi.client_"
BROADBAND_DUE_EVERY_S = 30.0     # how often the broadband job asks whether a scheduled test is due
REPOLL_ON = frozenset({"link.down", "link.up", "device.cold_start", "device.warm_start"})


def per_client(sample: Sample) -> bool:
    """A Wi-Fi sample of one client (a series per pseudonym): used in memory, neither stored nor sent."""
    return sample.metric.startswith(PER_CLIENT_PREFIX)


@dataclass
class Shared:
    """What the jobs of one configuration share; `previous` are the jobs of the configuration before a
    reload, by name, for the factories to keep what has not changed."""

    cfg: AgentConfig
    aloop: asyncio.AbstractEventLoop
    store: SampleStore
    previous: Mapping[str, Collector] = field(default_factory=dict)
    rates: RateTracker = field(default_factory=RateTracker)
    warnings: list[str] = field(default_factory=list)     # logged at start-up (profiles that were refused)
    wifi: Any = None            # agent.compliance.wifi_coverage.WifiRounds, when a controller or AP is configured
    discovery: Any = None       # agent.compliance.device_inventory.DiscoveryJob, when discovery is on
    _pseudo: Pseudonymizer | None = None

    @functools.cached_property
    def scope(self) -> Any:
        """Where the agent may probe (a collectors.discovery.discovery.Scope): discovery's when it is on, else the
        configuration's. Made when a collector first asks, so that one that probes nothing loads none of it."""
        if self.discovery is not None:
            return self.discovery.scope
        from eduedge.agent.compliance.device_inventory import probe_scope

        return probe_scope(self.cfg)

    @property
    def pseudonymizer(self) -> Pseudonymizer:
        # Wi-Fi clients' MACs leave a poll only as this school's pseudonyms (core/pseudonym.py); discovery
        # names personal devices with the same key, so a tablet seen both ways is one pseudonym
        if self._pseudo is None:
            self._pseudo = pseudonymizer(self.cfg.privacy.pseudonym_key, self.cfg.agent.data_dir)
        return self._pseudo


def shared(cfg: AgentConfig, aloop: asyncio.AbstractEventLoop, store: SampleStore,
           previous: Mapping[str, Collector], rates: RateTracker | None) -> Shared:
    """The state the factories share: counters (kept across reloads), Wi-Fi rounds, discovery, the scope."""
    from eduedge.agent.compliance.wifi_coverage import WifiRounds

    sh = Shared(cfg, aloop, store, previous, rates or RateTracker())
    if any(d.role in ("wlc", "ap") for d in cfg.snmp.devices):
        sh.wifi = WifiRounds(cfg)     # zone samples once every controller and AP has reported
    if cfg.discovery.enabled:
        from eduedge.agent.compliance.device_inventory import STATE_FILE, DiscoveryJob

        sh.discovery = DiscoveryJob(cfg, sh.pseudonymizer, cfg.agent.data_dir / STATE_FILE)
    return sh


# -- SNMP devices ------------------------------------------------------------------------------------------

class _Limit:
    """At most `n` polls at once, over every device (the semaphore is made on the loop that uses it)."""

    def __init__(self, n: int):
        self.n = n
        self._sem: asyncio.Semaphore | None = None

    def get(self) -> asyncio.Semaphore:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.n)
        return self._sem


class SnmpJob(Collector):
    kind = "snmp"
    group = "snmp"
    answers = True

    def __init__(self, device: Any, poller: Any, interval: float, limit: _Limit, sh: Shared, key: tuple):
        super().__init__(f"snmp:{device.name}", interval, device.name)
        self.config, self.poller, self.limit, self.key = device, poller, limit, key
        self.wifi, self.discovery, self.aloop = sh.wifi, sh.discovery, sh.aloop

    @property
    def label(self) -> str:
        return self.config.name

    async def collect(self, asked: bool = False) -> Collected:
        async with self.limit.get():
            poll = await self.poller.poll()
        ident = poll.identity
        return Collected(poll.samples, error="; ".join(poll.errors) or None, result=poll,
                         answer=DeviceAnswer(self.config.name, poll.time, ident is not None,
                                             ident.hostname if ident else None, poll.errors,
                                             ident.to_dict() if ident else None))

    def keeps(self, sample: Sample) -> bool:
        return not per_client(sample)

    def after(self, collected: Collected) -> list[Sample]:
        if self.wifi is None or collected.result is None:
            return []
        zones = self.wifi.add(collected.result)
        if zones and self.discovery is not None:       # a round closed: its learning-SSID clients count
            self.aloop.call_soon_threadsafe(see_wifi, self.wifi, self.discovery)
        return zones

    def repolls_on(self, event: Event) -> bool:
        return event.kind in REPOLL_ON

    def inventory(self) -> dict[str, Any]:
        d, p = self.config, self.poller
        return {"device": d.name, "collector": "snmp", "address": d.host, "role": d.role, "zone": d.zone,
                "room": d.room, "identity": p.identity.to_dict() if p.identity else None}


def see_wifi(wifi: Any, discovery: Any) -> None:
    """The learning-SSID clients of the latest Wi-Fi round, for the 1:1 count (on the loop thread: the
    discovered inventory is only touched there)."""
    from eduedge.agent.compliance.device_inventory import WifiClient

    snap = wifi.last
    if snap is not None:
        discovery.inventory.see_wifi([WifiClient(c.client, c.ssid, snap.time) for c in snap.clients if c.ssid],
                                     snap.time)


@register("snmp")
def snmp_jobs(cfg: AgentConfig, sh: Shared) -> list[Collector]:
    from eduedge.collectors.snmp.build import poller_for
    from eduedge.collectors.snmp.client import SnmpAuth
    from eduedge.collectors.snmp.profiles import load_profiles

    if not cfg.snmp.devices:
        return []
    profiles = load_profiles(cfg.snmp.profile_dirs)
    sh.warnings += [f"profile: {e}" for e in profiles.errors]
    auths = {name: SnmpAuth.from_config(c, name) for name, c in cfg.snmp.credentials.items()
             if any(d.credentials == name for d in cfg.snmp.devices)}
    dflt, limit = cfg.snmp.defaults, _Limit(cfg.snmp.defaults.concurrency)
    out: list[Collector] = []
    for d in cfg.snmp.devices:
        key = (d, dflt, cfg.snmp.credentials[d.credentials])
        old = sh.previous.get(f"snmp:{d.name}")
        if isinstance(old, SnmpJob) and old.key == key:
            poller = old.poller                 # keeps its identity and counter state across the reload
        else:
            poller = poller_for(d, cfg.snmp, profiles, rates=sh.rates, auth=auths[d.credentials],
                                pseudonymizer=sh.pseudonymizer if sh.wifi is not None else None)
        out.append(SnmpJob(d, poller, d.interval or dflt.interval, limit, sh, key))
    return out


# -- the gateway box -------------------------------------------------------------------------------------

class HostJob(BlockingCollector):
    kind = "host"

    def __init__(self, host: Any, interval: float):
        super().__init__("host", interval, HOST_DEVICE)
        self.host = host

    def collect_blocking(self, asked: bool = False) -> Collected:
        return Collected(self.host.collect())

    def inventory(self) -> dict[str, Any]:
        return {"device": HOST_DEVICE, "collector": "host", "address": "localhost", "role": "other",
                "zone": None, "room": None, "identity": None}


@register("host")
def host_jobs(cfg: AgentConfig, sh: Shared) -> list[Collector]:
    from eduedge.collectors.host import HostCollector

    if not cfg.host.enabled:
        return []
    old = sh.previous.get("host")
    host = old.host if isinstance(old, HostJob) else HostCollector(HOST_DEVICE, cfg.agent.data_dir,
                                                                    cfg.host.wan_interface)
    return [HostJob(host, cfg.host.interval)]


# -- discovery and reachability --------------------------------------------------------------------------

class DiscoveryCollector(Collector):
    kind = "discovery"

    def __init__(self, job: Any, interval: float):
        super().__init__("discovery", interval)
        self.job = job

    async def collect(self, asked: bool = False) -> Collected:
        cycle = await self.job.run()
        return Collected(cycle.samples, messages=[("inventory", body) for body in cycle.messages],
                         error="; ".join(cycle.errors) or None,
                         summary={"seen": len(cycle.observed), "changes": len(cycle.changes),
                                  "known": len(self.job.inventory.devices)})

    def start(self) -> str | None:
        try:
            self.job.start_passive()
        except PermissionError as e:
            log.error("discovery: %s", e)
            return f"passive discovery: {e}"
        return None

    def stop(self) -> None:
        self.job.stop()


@register("discovery")
def discovery_jobs(cfg: AgentConfig, sh: Shared) -> list[Collector]:
    return [DiscoveryCollector(sh.discovery, cfg.discovery.interval)] if sh.discovery is not None else []


class ReachabilityJob(Collector):
    kind = "reachability"

    def __init__(self, cfg: AgentConfig, sh: Shared, reachable: dict[str, bool]):
        super().__init__("reachability", cfg.reachability.interval)
        self.cfg, self.scope, self.discovery = cfg, sh.scope, sh.discovery
        self.reachable = reachable      # the verdict per target: a change (or a first "down") is an event

    async def collect(self, asked: bool = False) -> Collected:
        from eduedge.agent.compliance.device_inventory import apply_reachability, reachability_targets
        from eduedge.collectors.reachability import probe

        r = self.cfg.reachability
        inventory = self.discovery.inventory if self.discovery is not None else None
        results = await probe(reachability_targets(self.cfg, inventory), self.scope, r.count, r.timeout,
                              r.concurrency, r.tcp_ports)
        if inventory is not None:
            apply_reachability(inventory, results)      # the discovered devices learn whether they answered
        now = time.time()
        events = []
        for x in results:
            before = self.reachable.get(x.name)
            self.reachable[x.name] = x.reachable
            if x.reachable == before or (before is None and x.reachable):
                continue
            if x.reachable:
                events.append(Event(now, x.name, "reachability.up", "info",
                                    _("{device} ({address}) answers again: {summary}").format(
                                        device=x.name, address=x.address, summary=x.summary()),
                                    {"address": x.address, "method": x.method, "rtt_ms": x.rtt_ms}))
            else:
                events.append(Event(now, x.name, "reachability.down", "warning",
                                    _("{device} ({address}) does not answer: {error}").format(
                                        device=x.name, address=x.address, error=x.error or _("no reply")),
                                    {"address": x.address, "error": x.error}))
        down = sorted(x.name for x in results if not x.reachable)
        return Collected([s for x in results for s in x.samples(now)], events,
                         summary={"targets": len(results), "down": down[:20]})


@register("reachability")
def reachability_jobs(cfg: AgentConfig, sh: Shared) -> list[Collector]:
    if not cfg.reachability.enabled:
        return []
    old = sh.previous.get("reachability")
    return [ReachabilityJob(cfg, sh, dict(old.reachable) if isinstance(old, ReachabilityJob) else {})]


# -- judging ---------------------------------------------------------------------------------------------

class JudgingJob(BlockingCollector):
    kind = "compliance"
    first_round = False
    after_first_round = True
    log_traceback = True

    def __init__(self, cfg: AgentConfig, store: SampleStore, rules: Any):
        super().__init__("compliance", cfg.standards.assess_interval)
        self.cfg, self.store, self.rules = cfg, store, rules

    def collect_blocking(self, asked: bool = False) -> Collected:
        from eduedge.agent.compliance import assess

        a = assess(self.store, self.cfg, time.time(), self.rules)
        counts: dict[str, int] = {}
        for f in a.findings:
            counts[f.status] = counts.get(f.status, 0) + 1
        return Collected(events=a.events, items={"findings": [f.to_dict() for f in a.findings]},
                         summary={"findings": counts, "changes": len(a.events)})


@register("compliance")
def judging_jobs(cfg: AgentConfig, sh: Shared) -> list[Collector]:
    from eduedge.agent.compliance import load_rules

    return [JudgingJob(cfg, sh.store, load_rules(cfg))] if cfg.standards.packs else []


# -- broadband -------------------------------------------------------------------------------------------

def _broadband(got: Any) -> Collected:
    failed = [e.message for e in got.events if e.kind == "broadband.test_failed"]
    return Collected(got.samples, got.events, error="; ".join(failed) or None)


class BroadbandJob(BlockingCollector):
    kind = "broadband"
    first_round = False          # a test due at start-up is not waited for

    def __init__(self, bb: Any):
        super().__init__("broadband", BROADBAND_DUE_EVERY_S, HOST_DEVICE)
        self.bb = bb

    def collect_blocking(self, asked: bool = False) -> Collected:
        # `run-check broadband` measures now, as `run-check snmp` polls now (one test at a time: the
        # collector's lock); the schedule runs the tests its windows and budget allow
        return _broadband(self.bb.run_test("command") if asked else self.bb.run_due())


class BroadbandTick(BlockingCollector):
    kind = "broadband:tick"

    def __init__(self, bb: Any, interval: float):
        super().__init__("broadband:tick", interval, HOST_DEVICE)
        self.bb = bb

    def collect_blocking(self, asked: bool = False) -> Collected:
        return _broadband(self.bb.tick())


@register("broadband")
def broadband_jobs(cfg: AgentConfig, sh: Shared) -> list[Collector]:
    if not cfg.broadband.enabled:
        return []
    from eduedge.collectors.broadband.collector import BroadbandCollector

    bb = BroadbandCollector.from_config(cfg.broadband, HOST_DEVICE, cfg.agent.data_dir,
                                        cfg.standards.school_hours.timezone, cfg.host.wan_interface, sh.rates)
    return [BroadbandJob(bb), BroadbandTick(bb, cfg.broadband.utilisation_interval)]


# -- live classes ----------------------------------------------------------------------------------------

class LiveClassProbes(Collector):
    kind = "live-class"

    def __init__(self, cfg: AgentConfig):
        super().__init__("live-class", cfg.live_class.interval)
        self.section = cfg.live_class

    async def collect(self, asked: bool = False) -> Collected:
        from eduedge.collectors.service_probes import probe_all

        probes = await probe_all(self.section)      # only the configured endpoints
        return Collected([s for p in probes for s in p.samples()],
                         summary={"endpoints": len(probes),
                                  "down": [f"{p.endpoint}: {p.failure}" for p in probes if not p.up][:20]})


class LiveClassLoads(BlockingCollector):
    kind = "live-class:loads"

    def __init__(self, cfg: AgentConfig, store: SampleStore, snapshots: Any):
        super().__init__("live-class:loads", cfg.snmp.defaults.interval)
        self.cfg, self.store, self.snapshots = cfg, store, snapshots

    def collect_blocking(self, asked: bool = False) -> Collected:
        # the quarter hours that ended since the last run (agent/compliance/live_class.py)
        return Collected(self.snapshots.samples(self.cfg, self.store))


@register("live-class")
def live_class_jobs(cfg: AgentConfig, sh: Shared) -> list[Collector]:
    from eduedge.agent.compliance.live_class import LoadSnapshots

    if not cfg.live_class.enabled:
        return []
    old = sh.previous.get("live-class:loads")
    snapshots = old.snapshots if isinstance(old, LiveClassLoads) else LoadSnapshots()
    return [LiveClassProbes(cfg), LiveClassLoads(cfg, sh.store, snapshots)]


# -- the trap receiver: a listener, no job ---------------------------------------------------------------

@dataclass
class TrapState:
    """The trap receiver as `eduedge status` shows it."""

    listen: str
    last_success: float | None = None       # when it started listening, then when it last made an event
    last_error: str | None = None


class TrapListener:
    """`snmp.traps`: the receiver on the loop; each trap of a listed device goes to `on_trap` as an event.
    A reload that changes neither the traps, the credentials nor the devices' addresses keeps the receiver."""

    name = "traps"

    def __init__(self, cfg: AgentConfig, previous: TrapListener | None, on_trap: Callable[[Event], None]):
        from eduedge.collectors.snmp.traps import receiver_from_config

        self.key = (cfg.snmp.traps, cfg.snmp.credentials, [(d.name, d.host) for d in cfg.snmp.devices])
        self.on_trap = on_trap
        if previous is not None and previous.key == self.key:
            self.receiver, self.state = previous.receiver, previous.state
        else:
            self.receiver = receiver_from_config(cfg.snmp, self._heard)
            self.state = TrapState(cfg.snmp.traps.listen)

    def _heard(self, e: Event) -> None:
        self.state.last_success = e.time
        self.on_trap(e)

    async def open(self, retry: bool) -> None:
        for attempt in range(20 if retry else 1):
            if attempt:
                await asyncio.sleep(0.05)   # the old receiver's port is released a moment after it closed
            try:
                await self.receiver.start()
                self.state.last_success, self.state.last_error = time.time(), None
                return
            except OSError as e:
                self.state.last_error = str(e)
        log.error("traps: %s", self.state.last_error)

    async def close(self) -> None:
        self.receiver.close()
        await asyncio.sleep(0)              # its socket closes in the loop's next turn

    def shares(self, other: Any) -> bool:
        """Whether `other` (the previous configuration's listener) is this one's receiver, kept."""
        return isinstance(other, TrapListener) and other.receiver is self.receiver

    def to_dict(self) -> dict[str, Any]:
        st = self.receiver.stats
        return {"collector": "traps", "listen": self.state.listen, "last_success": self.state.last_success,
                "last_error": self.state.last_error, "received": st.received, "events": st.events,
                "dropped_unknown_source": st.dropped_unknown_source, "unmapped": sum(st.unmapped.values())}


def listeners(cfg: AgentConfig, previous: Mapping[str, Any], on_trap: Callable[[Event], None]) -> dict[str, Any]:
    """What listens rather than runs on a schedule, by name."""
    if not cfg.snmp.traps.enabled:
        return {}
    old = previous.get("traps")
    return {"traps": TrapListener(cfg, old if isinstance(old, TrapListener) else None, on_trap)}
