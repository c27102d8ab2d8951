"""A fleet of simulated schools streaming telemetry to one MQTT broker, to load the city cloud side.

Each school is a simulated campus (simulator/world.py) built from one of the shipped campus files -
small for primary schools, kindergartens and teaching points, the demo campus for secondary and
nine-year schools, the large one for vocational schools - and made its own: its id and type, its
WAN rate, its start of day, and its faults (a device switched off, a degraded WAN, an agent whose
connection drops now and then). No SNMP is spoken: each interval, every school turns its campus model
into the samples its agent would have sent (interface rates and states, uptimes, Wi-Fi clients per AP)
and publishes them exactly as the agent's link does, through the contract (agent/contract) and the
envelope builder (agent/envelope.py): a birth on every connection with its bdSeq, the death as last
will, metrics in batches under the size cap, QoS 1, one persistent `seq` per school.

Beyond the live metrics, each school (simulator/fleetdata.py: districts, lines shaped below what was
bought, Fast Ethernet WAN ports, poor Wi-Fi zones, outage days) sends once, after its first birth, 30
days of hourly history and the findings its agent's own compliance code judges from it. Some schools'
links flap, some go offline for good after their first report, some lose messages (seq holes), some
declare dropped messages in a `gap` message. A school whose connection breaks (a broker outage)
connects again with backoff, as the agent's link does.

All schools share one thread: paho clients driven by `loop()` in turn, so a thousand schools do not
need a thousand threads.
"""

from __future__ import annotations

import hashlib
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from eduedge.agent.contract import topic
from eduedge.agent.envelope import Envelope, agent_version
from eduedge.core.netaddr import split_host_port
from eduedge.simulator import fleetdata
from eduedge.simulator.campus import Campus, Fault, load_campus
from eduedge.simulator.world import World

CAMPUSES = Path(__file__).resolve().parent / "campuses"
TYPES = ["primary", "secondary", "nine-year", "kindergarten", "teaching-point", "secondary-vocational",
         "primary", "secondary", "vocational-college", "primary"]
TEMPLATE = {"primary": "campus-small.yaml", "kindergarten": "campus-small.yaml",
            "teaching-point": "campus-small.yaml", "secondary": "campus-demo.yaml",
            "nine-year": "campus-demo.yaml", "secondary-vocational": "campus-large.yaml",
            "vocational-college": "campus-large.yaml"}
WAN_MBPS = [20, 50, 100, 100, 200, 300, 500, 1000]
MAX_MESSAGE_BYTES = 256 * 1024
ZONES = {"教学楼": "teaching", "办公楼": "office", "操场": "public"}
RECONNECT_MIN, RECONNECT_MAX = 1.0, 30.0


@dataclass
class FleetStats:
    schools: int = 0
    connected: int = 0
    births: int = 0
    messages: int = 0
    samples: int = 0
    acked: int = 0
    drops: int = 0               # simulated connection losses (the broker sends the school's death)
    bytes: int = 0
    findings: int = 0
    history_samples: int = 0
    reconnects: int = 0          # connections again after one broke that the simulation did not break
    lost: int = 0                # seqs spent on messages that were never sent (lossy schools)
    declared: int = 0            # seqs declared dropped in gap messages
    cut: int = 0                 # schools gone offline for good


@dataclass
class FleetSchool:
    campus: Campus
    world: World
    env: Envelope
    client: mqtt.Client
    link_drops: bool
    profile: fleetdata.Profile | None = None
    backlog: list[tuple[str, list[str]]] = field(default_factory=list)   # (kind, items) sent after the first birth
    seq: int = 0
    bd_seq: int = 0
    unacked: set[int] = field(default_factory=set)
    connected: bool = False
    offline_until: float = 0.0
    backoff: float = RECONNECT_MIN
    dropped_on_purpose: bool = False
    reports: int = 0
    last: float = field(default_factory=time.time)

    @property
    def id(self) -> str:
        return self.campus.school.id

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


def school_campus(templates: dict[str, Campus], i: int, city: str, seed: int) -> tuple[Campus, bool]:
    """The i-th school of the fleet: a template campus made its own. Returns (campus, its link drops)."""
    rng = random.Random(seed * 100003 + i)
    kind = TYPES[i % len(TYPES)]
    template = templates[TEMPLATE[kind]]
    down = rng.choice(WAN_MBPS)
    p = fleetdata.profile(i, kind, list(ZONES), seed, down)
    school = template.school.model_copy(update={
        "id": f"{city}-{kind}-{i:04d}", "name": p.name, "city": city, "type": kind, "district": p.district})
    faults: list[Fault] = []
    names = [n for n in template.all_names() if not n.startswith("tab-")]
    if rng.random() < 0.15:
        faults.append(Fault(kind="down", device=rng.choice(names)))
    if rng.random() < 0.10:
        faults.append(Fault(kind="wan_degraded", at=rng.uniform(0, 600), duration=600, down_mbps=max(2, down / 10)))
    clock = template.clock.model_copy(update={"start": "now", "speed": 1.0})
    campus = template.model_copy(update={
        "school": school, "clock": clock, "faults": faults,
        "wan": template.wan.model_copy(update={"down_mbps": down, "up_mbps": max(2, down / 5)})})
    return campus, rng.random() < 0.05


def device_entries(world: World) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"device": "gateway", "collector": "host"}]
    for node in world.snmp_nodes():
        entry: dict[str, Any] = {"device": node.name, "collector": "snmp", "zone": node.zone, "room": node.room}
        out.append(entry)
    return out


def birth_body(school: FleetSchool, interval: float) -> dict[str, Any]:
    s = school.campus.school
    digest = hashlib.sha256(s.id.encode()).hexdigest()[:16]
    return {"school_info": {"name": s.name, "type": s.type, "district": s.district,
                            "students": s.enrolment.students if s.enrolment else None,
                            "teachers": s.enrolment.teachers if s.enrolment else None},
            "config_digest": digest, "started": round(school.world.launch, 3),
            "collectors": [{"name": "snmp", "interval_s": interval}],
            "devices": device_entries(school.world), "commands": [], "compression": "none",
            "max_message_bytes": MAX_MESSAGE_BYTES, "outbox": {"rows": 0, "bytes": 0}}


def samples(world: World, t0: float, t1: float) -> list[dict[str, Any]]:
    """What the school's agent would report for the interval t0..t1 (rates are exact averages)."""
    out: list[dict[str, Any]] = []
    t = round(t1, 3)
    for node in world.snmp_nodes():
        name = node.name
        if world.is_down(name, t1):
            continue
        boot = world.boot_time(name, t1)
        out.append({"t": t, "device": name, "metric": "device.uptime_s", "value": round(t1 - boot, 1), "unit": "s"})
        for port in node.ports.values():
            if port.use == "unused" or (port.peer is None and not port.pc):
                continue
            tags = {"interface": port.name, "if_index": str(port.if_index)}
            up = world.port_up(name, port.number, t1)
            out.append({"t": t, "device": name, "metric": "if.oper_status", "value": "up" if up else "down",
                        "unit": "state", "tags": tags})
            if up and boot <= t0:
                (i0, o0), (i1, o1) = world.octets(name, port.number, t0), world.octets(name, port.number, t1)
                dt = t1 - t0
                out.append({"t": t, "device": name, "metric": "if.in_bps", "value": round((i1 - i0) * 8 / dt, 1),
                            "unit": "bit/s", "tags": tags})
                out.append({"t": t, "device": name, "metric": "if.out_bps", "value": round((o1 - o0) * 8 / dt, 1),
                            "unit": "bit/s", "tags": tags})
    root = next((sw.name for sw in world.campus.switches if sw.uplink.to in ("gateway", world.campus.gateway.name)),
                None)
    if root is not None and not world.is_down(root, t1) and world.boot_time(root, t1) <= t0:
        node = world.nodes[root]
        up = node.uplink_port or 1
        (i0, o0), (i1, o1) = world.octets(root, up, t0), world.octets(root, up, t1)
        wan = {"interface": "eth0", "role": "wan"}     # the gateway's WAN carries what the core's uplink does
        out += [{"t": t, "device": "gateway", "metric": "host.if_in_bps", "value": round((o1 - o0) * 8 / (t1 - t0), 1),
                 "unit": "bit/s", "tags": wan},
                {"t": t, "device": "gateway", "metric": "host.if_out_bps", "value": round((i1 - i0) * 8 / (t1 - t0), 1),
                 "unit": "bit/s", "tags": wan}]
    out.append({"t": t, "device": "gateway", "metric": "host.uptime_s", "value": round(t1 - world.launch, 1),
                "unit": "s"})
    for node in world.nodes.values():
        if node.kind == "ap":
            reporter = node.controller or node.name
            if world.is_down(reporter, t1):
                continue
            out.append({"t": t, "device": reporter, "metric": "wifi.clients", "value": world.ap_clients(node.name, t1),
                        "unit": "clients", "tags": {"ap": node.name, "zone": node.zone}})
    return out


class Fleet:
    def __init__(self, broker: str, schools: int, interval: float = 60.0, city: str = "demo-city", seed: int = 1,
                 history_days: int = 0, progress: Callable[[str], None] | None = None, faults: bool = False,
                 prepared: Callable[[int, int], None] | None = None):
        """`history_days` of history and findings sent first; `faults`: each school's fate (fleetdata.Profile:
        flapping, cut for good, lossy, declaring gaps) is played out; without it every school is healthy apart
        from the campus faults and the 5 % whose link drops (the ingest tests rely on that). `progress` gets a
        line now and then (every 25 schools prepared, every 10 s of the run); `prepared(i, n)` hears of each
        school as it is ready."""
        self.host, self.port = split_host_port(broker, 1883)
        self.interval = interval
        self.stats = FleetStats(schools=schools)
        self.drop_chance = 0.3           # per interval, for the schools whose link drops
        self.progress = progress
        self.stopping = False
        templates = {f: load_campus(CAMPUSES / f) for f in set(TEMPLATE.values())}
        now = time.time()
        self.schools: list[FleetSchool] = []
        for i in range(1, schools + 1):
            campus, drops = school_campus(templates, i, city, seed)
            world = World(campus, now - random.Random(i).uniform(0, interval))
            agent = f"{campus.school.id}-gw"
            env = Envelope(campus.school.id, city, agent, agent_version(), uuid.uuid4().hex)
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=agent, protocol=mqtt.MQTTv5)
            p = fleetdata.profile(i, campus.school.type, list(ZONES), seed, campus.wan.down_mbps)
            if not faults:
                p.fate = "healthy"
            school = FleetSchool(campus, world, env, client, drops or p.fate == "flaps", profile=p, last=now)
            if history_days:
                school.backlog = self._backlog(school, now, history_days, seed * 1000 + i)
            client.on_connect = lambda c, u, f, rc, p, s=school: self._connected(s, rc)
            client.on_disconnect = lambda c, u, f, rc, p, s=school: self._disconnected(s)
            client.on_publish = lambda c, u, mid, rc, p, s=school: self._acked(s, mid)
            self.schools.append(school)
            if self.progress and (i % 25 == 0 or i == schools):
                self.progress(f"prepared {i}/{schools} schools (history and findings)")
            if prepared is not None:         # each school: a terminal's bar moves with every one
                prepared(i, schools)

    def _backlog(self, school: FleetSchool, now: float, days: int, seed: int) -> list[tuple[str, list[str]]]:
        """The history and the findings judged from it, as batches ready to send after the first birth."""
        assert school.profile is not None
        hist = fleetdata.history(school.profile, ZONES, now, days, seed)
        cfg = fleetdata.agent_config(school.campus.school, ZONES)
        found = fleetdata.findings(cfg, hist, now)
        self.stats.history_samples += len(hist)
        self.stats.findings += len(found)
        items = [{"t": round(x.time, 3), "device": x.device, "metric": x.metric, "value": x.value, "unit": x.unit,
                  **({"tags": x.tags} if x.tags else {})} for x in hist]
        out = [("metrics", b) for b in school.env.batches(items, MAX_MESSAGE_BYTES)]
        return out + [("findings", b) for b in school.env.batches(found, MAX_MESSAGE_BYTES, kind="findings")]

    def _acked(self, school: FleetSchool, mid: int) -> None:
        self.stats.acked += 1
        school.unacked.discard(mid)

    def _send(self, school: FleetSchool, kind: str, payload: bytes) -> None:
        info = school.client.publish(topic(school.env.city, school.id, kind), payload, qos=1)
        school.unacked.add(info.mid)

    def _connected(self, school: FleetSchool, rc: Any) -> None:
        if rc.is_failure:
            return
        school.connected = True
        school.backoff = RECONNECT_MIN
        self.stats.connected += 1
        payload = school.env.encode("birth", school.next_seq(), {**birth_body(school, self.interval),
                                                                 "bdSeq": school.bd_seq})
        self._send(school, "birth", payload)
        self.stats.births += 1
        now = time.time()
        for kind, batch in school.backlog:
            payload = school.env.encode_batch(kind, school.next_seq(), batch, now)
            self._send(school, kind, payload)
            self.stats.bytes += len(payload)
        school.backlog = []

    def _disconnected(self, school: FleetSchool) -> None:
        if school.connected:
            self.stats.connected -= 1
        if school.connected and not school.dropped_on_purpose and not self.stopping:
            # Not the simulation's doing (the broker went away): connect again, backing off as the agent does.
            school.offline_until = time.time() + school.backoff
            self.stats.reconnects += 1
        school.dropped_on_purpose = False
        school.connected = False
        school.unacked.clear()           # a clean session: what was in flight is gone with the connection

    def connect(self, school: FleetSchool) -> None:
        school.bd_seq += 1
        will = school.env.encode("death", school.next_seq(), {"bdSeq": school.bd_seq, "reason": "connection_lost"})
        school.client.will_set(topic(school.env.city, school.id, "death"), will, qos=1)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0
        school.client.connect_async(self.host, self.port, keepalive=30, clean_start=True, properties=props)
        try:
            school.client.reconnect()
        except OSError:                  # the broker is down: try again later
            school.offline_until = time.time() + school.backoff
            school.backoff = min(RECONNECT_MAX, school.backoff * 2)

    def publish(self, school: FleetSchool, now: float) -> None:
        items = samples(school.world, school.last, now)
        school.last = now
        fate = school.profile.fate if school.profile else "healthy"
        for batch in school.env.batches(items, MAX_MESSAGE_BYTES):
            if fate == "lossy" and random.random() < 0.3:
                school.next_seq()        # a message lost on the way: the cloud sees a hole in the seqs
                self.stats.lost += 1
                continue
            payload = school.env.encode_batch("metrics", school.next_seq(), batch, now)
            self._send(school, "metrics", payload)
            self.stats.messages += 1
            self.stats.bytes += len(payload)
        self.stats.samples += len(items)
        school.reports += 1
        if fate == "declares" and school.reports == 2:
            first = school.seq + 1
            for _ in range(3):
                school.next_seq()
            self.stats.declared += 3
            self._send(school, "gap", school.env.encode("gap", school.next_seq(), {
                "dropped": "metrics", "reason": "disk_budget", "detail": "outbox over its disk budget",
                "messages": 3, "samples": 3 * len(items), "seqs": [[first, first + 2]],
                "first_time": round(now - self.interval, 3), "last_time": round(now, 3)}))
        if fate == "cut" and school.reports == 1:
            self.drop(school, now, forever=True)

    def drop(self, school: FleetSchool, now: float, forever: bool = False) -> None:
        """An unclean loss of the school's connection: the broker publishes its last will."""
        sock = school.client.socket()
        school.dropped_on_purpose = True
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
        school.offline_until = float("inf") if forever else now + 2 * self.interval
        self.stats.drops += 1
        self.stats.cut += int(forever)

    def run(self, duration: float, shutdown: bool = True) -> FleetStats:
        """Connect every school, publish every `interval` for `duration` seconds, then shut down cleanly (or, with
        `shutdown=False`, leave the connections as they are: a snapshot of a running city)."""
        for s in self.schools:
            self.connect(s)
        rng = random.Random(7)
        end = time.time() + duration
        due = {id(s): time.time() + rng.uniform(0, self.interval) for s in self.schools}
        next_report = time.time() + 5
        while time.time() < end:
            now = time.time()
            for s in self.schools:
                s.client.loop(timeout=0)
                if not s.connected and s.offline_until and now >= s.offline_until:
                    s.offline_until = 0.0
                    self.connect(s)
                if s.connected and now >= due[id(s)]:
                    due[id(s)] = now + self.interval
                    if s.link_drops and rng.random() < self.drop_chance:
                        self.drop(s, now)
                    else:
                        self.publish(s, now)
            if self.progress and now >= next_report:
                next_report = now + 10
                st = self.stats
                self.progress(f"{st.connected}/{st.schools} connected; births {st.births}, metrics messages "
                              f"{st.messages}, acknowledged {st.acked}, drops {st.drops}, reconnects {st.reconnects}")
            time.sleep(0.005)
        if shutdown:
            self.shutdown()
        else:
            self.wait_acked()
        return self.stats

    def wait_acked(self, timeout: float = 10.0) -> None:
        """Until the broker acknowledged what the connected schools sent (or `timeout`)."""
        end = time.time() + timeout
        while time.time() < end and any(s.unacked for s in self.schools if s.connected):
            for s in self.schools:
                s.client.loop(timeout=0)
            time.sleep(0.005)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Each connected school says `death` (shutdown); wait for the broker's acknowledgements."""
        self.stopping = True
        for s in self.schools:
            if s.connected:
                self._send(s, "death", s.env.encode("death", s.next_seq(), {"bdSeq": s.bd_seq, "reason": "shutdown"}))
        self.wait_acked(timeout)
        for s in self.schools:
            s.client.disconnect()
            s.client.loop(timeout=0)
