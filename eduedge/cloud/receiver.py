"""`eduedge cloud ingest`: one receiver process - MQTT in, checked, de-duplicated, stored, acknowledged.

- Subscribes to `$share/<group>/edu/v1/#` (MQTT 5 shared subscription): receivers of one group split the
  schools' messages, and the broker (a cluster past one machine: EMQX, VerneMQ, HiveMQ) balances them.
- A persistent session (clean start off, `mqtt.session_expiry`) with a stable client id: while a receiver
  restarts, the broker keeps its share of the messages.
- Manual acknowledgement: paho does not PUBACK a message when it hands it over; the receiver does, after
  the transaction that stored it committed. A receiver killed at any moment loses nothing; what the broker
  sends again is a duplicate the database recognises.
- `mqtt.receive_maximum` bounds how many unacknowledged messages the broker sends at once: a receiver
  that falls behind slows its share down instead of buffering without end.
- Batches: up to `ingest.batch_messages` messages or `ingest.batch_seconds`, one transaction each.
- Every message is checked (cloud/checker.py); a refused one is stored in `rejects` with its reason and
  acknowledged, never retried, never fatal. A database error is retried after reconnecting; a batch that
  still fails is stored message by message, and a message that cannot be stored is kept aside as
  `store-error` - the receiver does not stop on a message.
- Between batches: the seq sweep (cloud/sweep.py) every `ingest.sweep_every`, retention (cloud/retention.py)
  every `retention.every`, and a `rebirth` command to a school whose data comes without a birth.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from eduedge.agent import contract
from eduedge.cloud.checker import Accepted, Checker, Rejected
from eduedge.cloud.client import connect_properties, mqtt_client, subscription
from eduedge.cloud.commands import command_message
from eduedge.cloud.config import CloudConfig
from eduedge.cloud.db import Db, connect
from eduedge.cloud.ingest import Ingestor
from eduedge.cloud.retention import apply_retention
from eduedge.cloud.sweep import sweep
from eduedge.core.netaddr import split_host_port

log = logging.getLogger("eduedge.cloud.receiver")

REBIRTH_EVERY_S = 60.0
STATS_EVERY_S = 10.0


@dataclass
class Incoming:
    generation: int
    mid: int
    qos: int
    topic: str
    payload: bytes
    received: float


class Receiver:
    """One receiver: `run()` until `stop()` (from a signal handler or another thread)."""

    def __init__(self, cfg: CloudConfig, client_id: str | None = None, db: Db | None = None):
        self.cfg = cfg
        self.client_id = client_id or cfg.mqtt.default_client_id()
        self.db = db or connect(cfg.storage)
        self.checker = Checker(cfg.ingest.max_message_bytes)
        self.ingestor = Ingestor(self.db, cfg.ingest.dedup_window, self.client_id)
        self.inbox: queue.SimpleQueue[Incoming] = queue.SimpleQueue()
        self.subscribed = threading.Event()
        self.stats: Counter[str] = Counter()
        self._stop = threading.Event()
        self._generation = 0
        self._next_sweep = 0.0
        self._next_retention = time.monotonic() + 5.0
        self.client = mqtt_client(cfg.mqtt, self.client_id, persistent=True, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()

    # -- MQTT (paho's thread) ------------------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("broker %s refused the receiver: %s", self.cfg.mqtt.broker, reason)
            return
        self._generation += 1
        log.info("connected to %s as %s (session %s); subscribing to %s", self.cfg.mqtt.broker, self.client_id,
                 "resumed" if flags.session_present else "new", subscription(self.cfg.mqtt))
        client.subscribe(subscription(self.cfg.mqtt), qos=1)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.subscribed.clear()
        if not self._stop.is_set():
            log.warning("lost the broker %s (%s); reconnecting", self.cfg.mqtt.broker, reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, m: mqtt.MQTTMessage) -> None:
        self.inbox.put(Incoming(self._generation, m.mid, m.qos, m.topic, m.payload, time.time()))

    # -- the worker ----------------------------------------------------------------------------------------

    def start_mqtt(self) -> None:
        host, port = split_host_port(self.cfg.mqtt.broker, 1883)
        self.client.connect_async(host, port, keepalive=max(5, int(self.cfg.mqtt.keepalive)), clean_start=False,
                                  properties=connect_properties(self.cfg.mqtt, persistent=True))
        self.client.loop_start()

    def run(self) -> None:
        """Connect, then store batches until `stop()`; what is queued when it stops is stored first."""
        self.start_mqtt()
        last_stats, counted = time.monotonic(), Counter(self.stats)
        try:
            while not self._stop.is_set():
                batch = self._next_batch()
                if batch:
                    self._process(batch)
                self._housekeeping()
                if time.monotonic() - last_stats >= STATS_EVERY_S:
                    dt = time.monotonic() - last_stats
                    new = self.stats - counted
                    if new:
                        log.info("last %.0fs: %d messages (%d samples/s), %d duplicates, %d refused", dt,
                                 new["messages"], new["samples"] / dt, new["duplicates"], new["rejected"])
                    last_stats, counted = time.monotonic(), Counter(self.stats)
            # What arrived before the stop is stored and acknowledged; anything later the broker keeps
            # for the group (another receiver, or this one when it is back).
            for _ in range(self.inbox.qsize()):
                batch = self._next_batch()
                if batch:
                    self._process(batch)
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            self.db.close()

    def stop(self) -> None:
        self._stop.set()

    def _next_batch(self) -> list[Incoming]:
        try:
            first = self.inbox.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.cfg.ingest.batch_seconds
        while len(batch) < self.cfg.ingest.batch_messages:
            try:
                batch.append(self.inbox.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _process(self, batch: list[Incoming]) -> None:
        ok: list[Accepted] = []
        refused: list[tuple[str, str, str, int, bytes]] = []
        keep = self.cfg.ingest.reject_bytes
        for item in batch:
            if "/cmd/" in item.topic:       # the cloud's own commands to schools come back on edu/v1/#
                continue
            try:
                verdict = self.checker.check(item.topic, item.payload)
            except Exception as e:  # a message must never end the receiver: it would be redelivered forever
                log.exception("checking a message on %s raised; kept aside as an error", item.topic[:200])
                verdict = Rejected("error", f"checking it raised {type(e).__name__}: {str(e)[:500]}")
            if isinstance(verdict, Rejected):
                log.warning("refused %s message on %s: %s", verdict.reason, item.topic[:200], verdict.detail[:300])
                refused.append((item.topic[:1000], verdict.reason, verdict.detail, len(item.payload),
                                item.payload[:keep]))
            else:
                ok.append(verdict)
        received = batch[-1].received
        self._store(ok, refused, received)
        self.stats["rejected"] += len(refused)
        for item in batch:
            if item.qos > 0 and item.generation == self._generation:
                self.client.ack(item.mid, item.qos)

    def _store(self, ok: list[Accepted], refused: list[tuple[str, str, str, int, bytes]], received: float) -> None:
        for attempt in range(2):
            try:
                self._count(self.ingestor.apply(ok, received, refused))
                return
            except Exception as e:
                log.error("storing a batch of %d messages failed (%s); %s", len(ok) + len(refused), e,
                          "reconnecting to the database" if attempt == 0 else "storing them one by one")
                self._reconnect_db()
        for m in ok:
            try:
                self._count(self.ingestor.apply([m], received))
            except Exception as e:
                log.exception("%s: message %s (seq %s) cannot be stored; kept aside", m.school, m.msg["id"],
                              m.msg["seq"])
                self._reconnect_db()
                refused.append((f"{contract.TOPIC_ROOT}/{m.city}/{m.school}/{m.kind}", "store-error", str(e)[:2000],
                                m.size, b""))
        while True:
            try:
                self._count(self.ingestor.apply([], received, refused))
                return
            except Exception as e:
                log.error("cannot store refused messages (%s); retrying in 5 s", e)
                time.sleep(5.0)
                self._reconnect_db()

    def _count(self, res: Any) -> None:
        self.stats.update({"messages": res.stored, "duplicates": res.duplicates, "samples": res.samples})

    def _reconnect_db(self) -> None:
        with contextlib.suppress(Exception):
            self.db.close()
        while True:
            try:
                self.db = connect(self.cfg.storage)
                self.ingestor.use(self.db)
                return
            except Exception as e:
                log.error("cannot reach the database (%s); retrying in 5 s", e)
                if self._stop.wait(5.0):
                    raise

    def _housekeeping(self) -> None:
        now = time.monotonic()
        try:
            if now >= self._next_sweep:
                self._next_sweep = now + self.cfg.ingest.sweep_every
                sweep(self.db)
                if self.cfg.ingest.rebirth_unknown:
                    self._ask_rebirth()
            if now >= self._next_retention:
                self._next_retention = now + self.cfg.retention.every
                apply_retention(self.db, self.cfg)
        except Exception:
            log.exception("housekeeping failed; trying again later")
            self._reconnect_db()

    def _ask_rebirth(self) -> None:
        """Ask a school for its birth whenever data comes from an agent whose current birth the cloud lacks: it
        has none (it started after the school connected), the school is offline since a death yet heard from
        after it (the new connection's birth was lost while both sides reconnected, e.g. a broker restart), or
        the ingestor saw data from a newer process or outbox than the birth's (`want_rebirth`). At most once a
        `REBIRTH_EVERY_S` per school, until its birth comes."""
        now = time.time()
        rows = self.db.query("SELECT school, city FROM schools WHERE last_seen IS NOT NULL AND "
                             "(birth_time IS NULL OR (online = 0 AND offline_since IS NOT NULL AND "
                             "last_seen > offline_since) OR want_rebirth IS NOT NULL) "
                             "AND (rebirth_asked IS NULL OR rebirth_asked < ?)", [now - REBIRTH_EVERY_S])
        for school, city in rows:
            name, payload = command_message("rebirth", {}, f"cloud-rebirth-{school}-{int(now)}", now, REBIRTH_EVERY_S)
            self.client.publish(contract.topic(city, school, f"cmd/{name}"), payload, qos=1)
            self.db.execute("UPDATE schools SET rebirth_asked = ? WHERE school = ?", [now, school])
            log.info("%s: data from an agent whose current birth is missing; asked it for one", school)
