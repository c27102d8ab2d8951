"""The MQTT link: takes rows from the outbox, publishes them at QoS 1, and acknowledges them on PUBACK.

One thread owns the paho client (callback API v2, MQTT 5 or 3.1.1) and drives its network loop itself
(paho's external-loop API), so that it decides when to (re)connect, with which last will. It reads the next
rows from the outbox itself, a read-ahead at a time; an acknowledgement thread deletes delivered rows, so
that commits and their fsyncs never stall the sending.

- Every CONNECT gets a new bdSeq (persisted by the outbox) and a last will `death` carrying it; the first
  thing sent on a connection is the `birth` with the same bdSeq; a clean shutdown publishes `death`
  (reason `shutdown`) and disconnects normally, so the broker discards the will.
- Reconnecting waits with exponential backoff and decorrelated jitter between `reconnect_min` and
  `reconnect_max`, so a city of schools does not reconnect in the same second after a broker restart.
- At most `max_inflight` messages (and never more than the broker's MQTT 5 Receive Maximum, the birth
  included) are unacknowledged at once. The link keeps that window itself and hands paho only what fits in
  it, a burst at a time (one corked TCP write). paho keeps them across a reconnect and re-sends them
  itself; after a restart of the agent the outbox hands out every stored row again. A row is deleted only
  on a successful PUBACK; packet ids are used only to find the row a PUBACK belongs to.
- A PUBACK that does not come within `ack_timeout` forces a new connection.
- Commands arrive on `.../cmd/+` and are handed to a callback that must not block.

The password is passed to paho and nowhere else: it is never logged or put in a message.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eduedge.agent.config import MqttConfig
from eduedge.agent.contract import topic
from eduedge.agent.envelope import Envelope
from eduedge.agent.outbox import Outbox
from eduedge.core.imports import without
from eduedge.core.netaddr import split_host_port

# paho imports dnspython, where installed, for connect_srv() alone (~5 MB resident); the link never looks a broker
# up by SRV record. The live-class probes import dnspython themselves when they run.
with without("dns.resolver"):
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

log = logging.getLogger("eduedge.link")

# MQTT 5 PUBACK reason codes after which re-sending the same message cannot succeed.
PERMANENT_REFUSALS = {0x87, 0x90, 0x95, 0x99}
ACK_BATCH_SECONDS = 0.05
ACK_BATCH_MAX = 500
# How many rows are read ahead of the wire, in seconds of current sending rate (at least 16, at most
# READ_AHEAD_WINDOWS windows): enough to refill the window at once on a fast link, little enough that a new
# command answer never waits long behind a backlog on a slow school line.
AHEAD_S = 0.1
READ_AHEAD_WINDOWS = 4
# Linux only: hold a burst of publishes back until it is all written, so it leaves in full segments.
TCP_CORK = getattr(socket, "TCP_CORK", None)
STABLE_CONNECTION_S = 10.0
CONNECT_TIMEOUT_S = 10.0


@dataclass
class LinkStatus:
    """What `eduedge status` shows about the connection."""

    broker: str
    connected: bool = False
    since: float | None = None
    bd_seq: int | None = None
    last_error: str | None = None
    connects: int = 0
    delivered: int = 0
    rate_per_s: float = 0.0
    inflight: int = 0
    rate_window: list[tuple[float, int]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "rate_window"}


def backoff(previous: float, low: float, high: float, rng: random.Random) -> float:
    """The next reconnect delay: decorrelated jitter (random between `low` and 3x the last delay), capped.

    >>> r = random.Random(1); d = [0.0]
    >>> for _ in range(12): d.append(backoff(d[-1], 1.0, 120.0, r))
    >>> all(1.0 <= x <= 120.0 for x in d[1:]) and max(d) > 30
    True
    """
    return min(high, rng.uniform(low, max(low, previous * 3)))


def _cork(sock: Any, on: bool) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):  # a socket paho has just closed: the reconnect takes over
            sock.setsockopt(socket.IPPROTO_TCP, TCP_CORK, int(on))


class Link(threading.Thread):
    """The thread that owns the MQTT connection; `start()` it, `stop()` it."""

    def __init__(self, cfg: MqttConfig, outbox: Outbox, env: Envelope, birth: Callable[[], dict[str, Any]],
                 on_command: Callable[[str, bytes], None] | None = None, password: str | None = None,
                 client_id: str | None = None):
        super().__init__(name="mqtt-link", daemon=True)
        self.cfg = cfg
        self.outbox = outbox
        self.env = outbox.env  # the outbox's envelope: it carries the outbox's epoch
        self.birth_body = birth
        self.on_command = on_command
        self.host, self.port = split_host_port(cfg.broker, 8883 if cfg.tls else 1883)
        self.status = LinkStatus(broker=f"{self.host}:{self.port}")
        self._rng = random.Random()
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._rebirth = threading.Event()
        self._state = "down"
        self._delay = 0.0
        self._next_attempt = time.monotonic() + self._rng.uniform(0, cfg.reconnect_min)
        self._attempt_started = 0.0
        self._up_since = 0.0
        self._window = cfg.max_inflight
        self._mids: dict[int, tuple[int, float]] = {}  # packet id -> (outbox seq, sent at)
        self._session_mids: set[int] = set()  # birth/death: not outbox rows
        # PUBACKed seqs are collected here and handed, a batch at a time (one hand-over per batch, not per
        # message, which would cost a thread switch each), to a second thread that deletes them: a commit waits
        # for an fsync (tens of ms on a slow disk), and publishing must not wait with it.
        self._acked: list[int] = []
        self._acked_since = time.monotonic()
        self._acks: queue.SimpleQueue[list[int] | None] = queue.SimpleQueue()
        self._acker = threading.Thread(target=self._ack_loop, name="mqtt-acks", daemon=True)
        self._ready: deque = deque()  # rows read ahead, not yet handed to paho
        self._read_again_at = 0.0
        self._bd_seq = 0
        self.client = self._make_client(password, client_id or f"eduedge-{env.school}-{env.agent_id}")

    # -- set-up ------------------------------------------------------------------------------------

    def _make_client(self, password: str | None, client_id: str) -> mqtt.Client:
        v5 = self.cfg.protocol == "5"
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id[:128],
                        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, clean_session=None if v5 else True)
        # paho's own window and queue stay unused (0: unlimited): the link hands it only what fits in the window,
        # which it keeps itself. paho's queue would rescan every message in flight on each PUBACK, and its limit
        # cannot follow the broker's Receive Maximum within a connection.
        c.max_inflight_messages_set(0)
        c.max_queued_messages_set(0)
        if self.cfg.username is not None:
            c.username_pw_set(self.cfg.username, password)
        tls = self.cfg.tls
        if tls is not None:
            c.tls_set(ca_certs=str(tls.ca_file) if tls.ca_file else None,
                      certfile=str(tls.cert_file) if tls.cert_file else None,
                      keyfile=str(tls.key_file) if tls.key_file else None,
                      cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        kwargs: dict[str, Any] = {"clean_start": True} if v5 else {}
        c.connect_async(self.host, self.port, keepalive=max(5, int(self.cfg.keepalive)), **kwargs)
        return c

    def topic(self, kind: str) -> str:
        return topic(self.env.city, self.env.school, kind)

    # -- the thread ----------------------------------------------------------------------------------

    def run(self) -> None:
        self._acker.start()
        try:
            while not self._stop.is_set():
                try:
                    self._step()
                except Exception:
                    # The link must outlive any one bad event; the connection is rebuilt from scratch.
                    log.exception("mqtt: unexpected error in the link loop; reconnecting")
                    self._lost("internal error")
            self._shutdown()
        finally:
            self._hand_over_acks(force=True)
            self._acks.put(None)
            self._acker.join(10)
            self._stopped.set()

    def _step(self) -> None:
        now = time.monotonic()
        if self._state == "down":
            if now < self._next_attempt:
                time.sleep(min(0.05, self._next_attempt - now))
                return
            self._attempt()
            return
        if self._state == "connecting" and now - self._attempt_started > CONNECT_TIMEOUT_S:
            self._lost(f"no CONNACK within {CONNECT_TIMEOUT_S:g}s")
            return
        if self._state == "up":
            if self._rebirth.is_set():
                self._rebirth.clear()
                self._publish_birth(rebirth=True)
            self._refill()
            self._watchdog(now)
        busy = bool(self._mids)
        rc = self._loop(timeout=0.01 if busy else 0.05)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS and self._state != "down":
            self._lost(mqtt.error_string(rc))
        self._hand_over_acks()
        self.status.inflight = len(self._mids)

    def _attempt(self) -> None:
        self._bd_seq = self.outbox.next_bd_seq()
        # Session messages take no data seq (0): a will that is never published leaves no hole.
        will = self.env.encode("death", 0, {"bdSeq": self._bd_seq, "reason": "connection_lost"})
        self.client.will_set(self.topic("death"), will, qos=1, retain=False)
        self._attempt_started = time.monotonic()
        try:
            rc = self.client.reconnect()
        except (OSError, ssl.SSLError, ValueError) as e:
            self._failed(f"cannot connect to {self.status.broker}: {e}")
            return
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._failed(f"cannot connect to {self.status.broker}: {mqtt.error_string(rc)}")
            return
        self._state = "connecting"

    def _failed(self, why: str) -> None:
        if why != self.status.last_error:
            log.warning("mqtt: %s", why)
        self.status.last_error = why
        self._state = "down"
        self.status.connected = False
        self._delay = backoff(self._delay, self.cfg.reconnect_min, self.cfg.reconnect_max, self._rng)
        self._next_attempt = time.monotonic() + self._delay

    def _lost(self, why: str) -> None:
        was_up = self._state == "up"
        with contextlib.suppress(Exception):
            self.client._sock_close()  # paho has no public "drop the socket without DISCONNECT"
        if was_up and time.monotonic() - self._up_since >= STABLE_CONNECTION_S:
            self._delay = 0.0
        if was_up:
            log.warning("mqtt: connection to %s lost (%s); %d messages in flight will be re-sent",
                        self.status.broker, why, len(self._mids))
        self._failed(f"connection lost: {why}" if was_up else why)

    def _loop(self, timeout: float) -> MQTTErrorCode:
        """One round of paho's network work through its external-loop API (`loop_read`, `loop_write`,
        `loop_misc`). `client.loop()` would add a socket pair that wakes a loop running in another thread: a
        syscall per publish, for nothing, as only this thread publishes."""
        sock = self.client.socket()
        if sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        # TLS may hold bytes already decrypted, which select() cannot see.
        pending = sock.pending() if isinstance(sock, ssl.SSLSocket) else 0
        try:
            readable, writable, _ = select.select([sock], [sock] if self.client.want_write() else [], [],
                                                  0.0 if pending else timeout)
        except (OSError, ValueError, TypeError):  # the socket was closed under us
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if readable or pending:
            rc = self.client.loop_read()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or self.client.socket() is None:
                return rc or MQTTErrorCode.MQTT_ERR_CONN_LOST
        if writable:
            rc = self.client.loop_write()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or self.client.socket() is None:
                return rc or MQTTErrorCode.MQTT_ERR_CONN_LOST
        return self.client.loop_misc()

    # -- paho callbacks (all on this thread, inside _loop) ---------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._lost(f"broker {self.status.broker} refused the connection: {reason}")
            return
        self._state = "up"
        self._up_since = time.monotonic()
        # paho re-sends what was in flight on the old connection; its ack clock starts now.
        self._mids = {mid: (seq, self._up_since) for mid, (seq, _) in self._mids.items()}
        receive_max = getattr(props, "ReceiveMaximum", None) if props is not None else None
        self._window = min(self.cfg.max_inflight, receive_max or self.cfg.max_inflight)
        self.status.connected = True
        self.status.since = time.time()
        self.status.bd_seq = self._bd_seq
        self.status.connects += 1
        self.status.last_error = None
        log.info("mqtt: connected to %s (bdSeq %d)", self.status.broker, self._bd_seq)
        client.subscribe(self.topic("cmd/+"), qos=1)
        self._publish_birth(rebirth=False)
        self.outbox.link_up()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if self._state != "down" and not self._stop.is_set():
            self._lost(str(reason))

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        if mid in self._session_mids:
            self._session_mids.discard(mid)
            return
        entry = self._mids.pop(mid, None)
        if entry is None:
            return
        seq = entry[0]
        if reason is not None and reason.is_failure:
            code = reason.value
            self.outbox.release(seq, permanent=code in PERMANENT_REFUSALS, reason=f"PUBACK {reason} (0x{code:02x})")
            return
        self._acked.append(seq)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        name = msg.topic.rsplit("/", 1)[-1]
        if self.on_command is None:
            return
        try:
            self.on_command(name, msg.payload)
        except Exception:
            log.exception("mqtt: command %r could not be handled", name)

    # -- sending --------------------------------------------------------------------------------------

    def _publish_birth(self, rebirth: bool) -> None:
        body = {**self.birth_body(), "bdSeq": self._bd_seq}
        if rebirth:
            body["rebirth"] = True
        payload = self.env.encode("birth", 0, body)
        info = self.client.publish(self.topic("birth"), payload, qos=1)
        self._session_mids.add(info.mid)

    def _read_ahead(self) -> int:
        rate = self.status.rate_per_s
        if not rate:  # nothing delivered yet: one window, so that the first refill fills it
            return self._window
        return max(16, min(self._window * READ_AHEAD_WINDOWS, int(rate * AHEAD_S)))

    def _read(self) -> None:
        """Read up to the read-ahead, here rather than in a thread of its own: sqlite3 takes the GIL back for
        every row it returns, and a reader thread then traded the GIL with this one for every row, which cost
        this thread more than the reads themselves (bench/README.md)."""
        now = time.monotonic()
        if now < self._read_again_at:
            return
        try:
            self._ready.extend(self.outbox.take(self._read_ahead() - len(self._ready)))
        except Exception:
            # A failing read (e.g. a database locked past its busy timeout) must not end the sending; the rows
            # stay stored.
            log.exception("outbox: could not read the next rows to send; trying again in 1 s")
            self._read_again_at = now + 1.0

    def _refill(self) -> None:
        # The broker's Receive Maximum counts the birth in flight too.
        free = self._window - len(self._mids) - len(self._session_mids)
        if free <= 0:
            return
        if len(self._ready) < free:
            self._read()
        if not self._ready:
            return
        now = time.monotonic()
        rows = [self._ready.popleft() for _ in range(min(free, len(self._ready)))]
        # paho writes each message with its own send(): uncorked, each is a TCP segment and a wake-up of the broker
        # of its own; corked, the burst leaves in full segments (bench/README.md: less CPU on both ends).
        sock = self.client.socket() if TCP_CORK is not None and len(rows) > 1 else None
        _cork(sock, True)
        try:
            for row in rows:
                info = self.client.publish(row.topic, row.payload, qos=1)
                if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:  # paho refuses a packet id still in use
                    self.outbox.release(row.seq, permanent=False, reason="paho queue full")
                    continue
                # MQTT_ERR_NO_CONN still queues the message in paho; it goes out after the reconnect.
                self._mids[info.mid] = (row.seq, now)
        finally:
            _cork(sock, False)

    def _hand_over_acks(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._acked and (force or len(self._acked) >= ACK_BATCH_MAX or now - self._acked_since >= ACK_BATCH_SECONDS):
            self._acks.put(self._acked)
            self._acked = []
            self._acked_since = now

    def _ack_loop(self) -> None:
        window = self.status.rate_window
        while True:
            try:
                batch = self._acks.get(timeout=1.0)
            except queue.Empty:
                batch = []
            if batch is None:
                return
            if batch:
                try:
                    self.outbox.ack(batch)
                except Exception:
                    log.exception("outbox: could not record %d acknowledgements; they will be sent again", len(batch))
                self.status.delivered += len(batch)
            now = time.monotonic()
            window.append((now, self.status.delivered))
            while len(window) > 2 and now - window[0][0] > 10.0:
                window.pop(0)
            if window[-1][0] > window[0][0]:
                self.status.rate_per_s = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])

    def _watchdog(self, now: float) -> None:
        if not self._mids:
            return
        # Sent times only grow in insertion order (a reconnect gives all the same time): the first is the oldest.
        oldest = next(iter(self._mids.values()))[1]
        if now - oldest > self.cfg.ack_timeout:
            self._lost(f"no PUBACK for {self.cfg.ack_timeout:g}s")

    # -- control from other threads --------------------------------------------------------------------

    def rebirth(self) -> None:
        """Re-send the birth on the current connection (same bdSeq), from the link's own thread."""
        self._rebirth.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish `death` (shutdown), wait up to `timeout` for its PUBACK and for in-flight rows, disconnect."""
        self._shutdown_timeout = timeout
        self._stop.set()
        if self.is_alive():
            self._stopped.wait(timeout + 2.0)

    def _shutdown(self) -> None:
        timeout = getattr(self, "_shutdown_timeout", 5.0)
        if self._state == "up":
            self._refill()  # what was stored last (e.g. the agent.stop event) goes out if there is time
            payload = self.env.encode("death", 0, {"bdSeq": self._bd_seq, "reason": "shutdown"})
            info = self.client.publish(self.topic("death"), payload, qos=1)
            self._session_mids.add(info.mid)
            end = time.monotonic() + timeout
            while time.monotonic() < end and self._state == "up" and (info.mid in self._session_mids or self._mids):
                self._loop(timeout=0.02)
            with contextlib.suppress(Exception):
                self.client.disconnect()
                self._loop(timeout=0.1)
        self.status.connected = False
        self._state = "down"
