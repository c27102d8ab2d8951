"""What the MQTT tests share: a receiver that validates every message against the contract, and configs.

The receiver plays the cloud's part: a persistent MQTT session subscribed to `edu/v1/#` at QoS 1. Every
payload it sees is decoded and checked against agent/contract/*.schema.json (as the city checks it:
tests/contract_helpers.py); `problems` collects what broke the contract, and every test asserts it stays empty.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from eduedge.agent import contract
from tests.contract_helpers import problems


@dataclass
class Received:
    topic: str
    msg: dict[str, Any]
    at: float

    @property
    def kind(self) -> str:
        return self.topic.rsplit("/", 1)[-1]


@dataclass
class Receiver:
    host: str
    port: int
    topic: str = "edu/v1/#"

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._raw: list[tuple[str, bytes, float]] = []
        self._messages: list[Received] = []
        self._problems: list[str] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"cloud-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv311, clean_session=False)
        self.client.max_inflight_messages_set(1000)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(self.topic, qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(self.host, self.port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError(f"receiver could not subscribe on {self.host}:{self.port}")

    def _on_message(self, client: mqtt.Client, userdata: Any, m: mqtt.MQTTMessage) -> None:
        # Only store here: validating takes milliseconds per message, and a receiver that falls behind the
        # broker would make tests wait for messages that were delivered long ago.
        if "/cmd/" not in m.topic:
            with self._lock:
                self._raw.append((m.topic, m.payload, time.monotonic()))

    def _sync(self) -> None:
        """Decode and validate what arrived since the last call (in the test's thread)."""
        with self._lock:
            new, self._raw = self._raw, []
        for topic, payload, at in new:
            try:
                msg = contract.decode(payload)
            except contract.ContractError as e:
                self._problems.append(f"{topic}: {e}")
                continue
            found = problems(msg)
            kind = topic.rsplit("/", 1)[-1]
            if isinstance(msg, dict) and (msg.get("schema") or {}).get("name") != kind:
                found.append(f"schema.name {msg.get('schema')} does not match the topic")
            self._problems += [f"{topic}: {p}" for p in found]
            self._messages.append(Received(topic, msg, at))

    @property
    def messages(self) -> list[Received]:
        self._sync()
        return list(self._messages)

    @property
    def problems(self) -> list[str]:
        self._sync()
        return list(self._problems)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [r.msg for r in self.messages if r.kind == kind]

    def wait_for(self, predicate: Callable[[Receiver], bool], timeout: float = 30.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return
            time.sleep(0.05)
        kinds = {}
        for r in self.messages:
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
        raise AssertionError(f"timed out after {timeout:g}s waiting for {what or predicate}; received {kinds}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def write_config(path: Path, broker: str | None, data_dir: Path, **sections: Any) -> Path:
    """A complete agent configuration for tests; `sections` override or add top-level sections."""
    doc: dict[str, Any] = {
        "school": {"id": "test-school", "name": "Test School", "city": "testcity", "type": "primary"},
        "agent": {"id": "gw-test", "data_dir": str(data_dir), "log_level": "info"},
        "host": {"enabled": False},
    }
    if broker is not None:
        doc["mqtt"] = {"broker": broker, "reconnect_min": "200ms", "reconnect_max": "1s", "keepalive": "10s"}
    for k, v in sections.items():
        if isinstance(v, dict) and isinstance(doc.get(k), dict):
            doc[k] = {**doc[k], **v}
        else:
            doc[k] = v
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def stop_agent(proc: subprocess.Popen, timeout: float = 30) -> int:
    """Stop an `eduedge run` as systemd would (SIGTERM, then SIGKILL after `timeout`); its exit code."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
