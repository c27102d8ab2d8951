"""Messages as the contract in agent/contract/ defines them: the envelope, batching under a size cap, gzip.

Every message carries the same envelope (schema name and version, message id, seq, time, school, agent
id/version/boot id). Batch types (metrics, findings, events) pack many items into one message; each item
is encoded once and spliced into the envelope's JSON, so a million samples cost one `json.dumps` each.

>>> env = Envelope("no3-primary", "yinchuan", "gw1", "0.1.0", "0" * 32)
>>> parts = env.batches([{"n": i} for i in range(1000)], limit=4096)
>>> len(parts) > 1 and all(len(env.encode_batch("metrics", 7, items)) <= 4096 for items in parts)
True
"""

from __future__ import annotations

import gzip
import json
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eduedge._version import __version__
from eduedge.agent.contract import SCHEMA_VERSION

BATCH_FIELD = {"metrics": "samples", "findings": "findings", "events": "events"}
MAX_SEQ = 2**63 - 1
# Payloads shorter than this are sent as plain JSON even with compression on: gzip's header and a small
# message's entropy make the saving nil, and plain JSON is easier to read on the wire.
COMPRESS_MIN_BYTES = 1024


def agent_version() -> str:
    return __version__


def uuid7(now: float | None = None) -> str:
    """A time-ordered UUID (RFC 9562 version 7): 48-bit milliseconds, then randomness.

    >>> a, b = uuid7(1.0), uuid7(2.0)
    >>> a < b and a[14] == "7"
    True
    """
    ms = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 68) & 0xFFF) << 64 | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Envelope:
    """Who is speaking: the parts of the envelope that do not change within one agent process."""

    school: str
    city: str
    agent_id: str
    agent_version: str
    boot_id: str
    epoch: str = ""  # the outbox's epoch (agent/outbox.py); the cloud keys seqs by (school, agent, epoch)

    def head(self, kind: str, seq: int, now: float | None = None, msg_id: str | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        return {"schema": {"name": kind, "version": SCHEMA_VERSION}, "id": msg_id or uuid7(now), "seq": seq,
                "time": round(now, 3), "school": {"id": self.school, "city": self.city},
                "agent": self._agent}

    @property
    def _agent(self) -> dict[str, str]:
        agent = {"id": self.agent_id, "version": self.agent_version, "boot_id": self.boot_id}
        if self.epoch:
            agent["epoch"] = self.epoch
        return agent

    def message(self, kind: str, seq: int, body: dict[str, Any], now: float | None = None) -> dict[str, Any]:
        """A whole message as a dict: envelope plus the type's own fields."""
        return {**self.head(kind, seq, now), **body}

    def encode(self, kind: str, seq: int, body: dict[str, Any], now: float | None = None) -> bytes:
        return _dumps(self.message(kind, seq, body, now)).encode()

    def encode_batch(self, kind: str, seq: int, items: Sequence[str | dict[str, Any]],
                     now: float | None = None) -> bytes:
        """A batch message from items that are dicts or already-encoded JSON objects."""
        head = _dumps(self.head(kind, seq, now))
        parts = [i if isinstance(i, str) else _dumps(i) for i in items]
        return f'{head[:-1]},"{BATCH_FIELD[kind]}":[{",".join(parts)}]}}'.encode()

    def overhead(self, kind: str) -> int:
        """Bytes of a batch message of `kind` around its items, at the largest seq."""
        return len(self.encode_batch(kind, MAX_SEQ, [], now=4102444800.0)) + 8

    def batches(self, items: Sequence[dict[str, Any]], limit: int, kind: str = "metrics") -> list[list[str]]:
        """Split items (encoded once here) into groups whose messages stay within `limit` bytes.

        An item too big for any message on its own gets a message to itself; the caller sees it
        exceed the limit and decides (the outbox drops it with a gap record).
        """
        room = limit - self.overhead(kind)
        out: list[list[str]] = []
        cur: list[str] = []
        used = 0
        for item in items:
            text = _dumps(item)
            size = len(text.encode()) + 1
            if cur and used + size > room:
                out.append(cur)
                cur, used = [], 0
            cur.append(text)
            used += size
        if cur:
            out.append(cur)
        return out


def compress(payload: bytes, mode: str) -> bytes:
    """The payload as it goes on the wire: gzip when configured and worth it (see COMPRESS_MIN_BYTES)."""
    if mode == "gzip" and len(payload) >= COMPRESS_MIN_BYTES:
        return gzip.compress(payload, compresslevel=6, mtime=0)
    return payload
