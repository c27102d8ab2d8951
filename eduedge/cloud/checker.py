"""Is this MQTT message one the cloud can take? Topic, size, JSON (or gzip), contract, and who says it.

The contract is the agent's own: the JSON Schemas in agent/contract/ (loaded through `agent.contract`),
compiled once into jsonschema-rs validators. The Python `jsonschema` the agent's tests use costs ~23 ms
for a metrics message of 100 samples; the compiled validator ~0.1 ms (bench/cloud_ingest.py measures
both), which is what lets one receiver keep up with a city. tests/test_cloud_checker.py holds both engines
to the same verdicts.

A message is refused, with a reason of one of these kinds (counted per kind):
- `topic`: not `edu/v1/{city}/{school}/{type}` with a type agents send;
- `oversized`: bigger than `ingest.max_message_bytes` on the wire or after gunzip;
- `malformed`: neither JSON nor gzip-compressed JSON, or nested deeper than the contract ever nests (checked
  before parsing: a parser that recurses per level must never see 200 kB of brackets);
- `version`: a schema version this cloud does not know;
- `schema`: breaks the contract (the first problems are kept);
- `mismatch`: the message's school, city or type is not the one its topic names (a school publishing
  under another school's topic);
- `error`: checking or storing it raised (a bug the message found): kept with the exception, acknowledged, never
  redelivered (cloud/receiver.py).

>>> c = Checker(max_bytes=1 << 20)
>>> c.check("edu/v1/c1/s1/metrics", b"{not json").reason
'malformed'
>>> c.check("edu/v1/c1/s1/shell", b"{}").detail
"topic edu/v1/c1/s1/shell: 'shell' is not a message type agents send"
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from functools import cache
from typing import Any

import jsonschema_rs

from eduedge.agent import contract

REJECT_KINDS = ("topic", "oversized", "malformed", "version", "schema", "mismatch", "error")


@dataclass(frozen=True)
class Accepted:
    kind: str
    city: str
    school: str
    msg: dict[str, Any]
    size: int

    @property
    def agent(self) -> str:
        return self.msg["agent"]["id"]

    @property
    def epoch(self) -> str:
        """The agent's outbox epoch ('' from agents before epochs): seqs are per (school, agent, epoch)."""
        return self.msg["agent"].get("epoch", "")


@dataclass(frozen=True)
class Rejected:
    reason: str          # one of REJECT_KINDS
    detail: str


@cache
def validators() -> dict[str, Any]:
    """A compiled jsonschema-rs validator per message type, from the same files the agent validates with."""
    registry = jsonschema_rs.Registry([(contract.schema(n)["$id"], contract.schema(n))
                                       for n in (*contract.MESSAGE_TYPES, "envelope", "cmd")])
    return {name: jsonschema_rs.validator_for(contract.schema(name), registry=registry)
            for name in contract.MESSAGE_TYPES}


def schema_problems(validator: Any, msg: object, limit: int) -> list[str]:
    """The first `limit` contract problems of `msg`, as `field.path: message`."""
    out = []
    for err in validator.iter_errors(msg):
        where = ".".join(str(p) for p in err.instance_path)
        out.append(f"{where or '(message)'}: {err.message}")
        if len(out) >= limit:
            break
    return out


def parse_topic(topic: str) -> tuple[str, str, str] | str:
    """(city, school, type) of an agent-to-cloud topic, or why it is not one."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != contract.TOPIC_ROOT:
        return f"topic {topic[:200]}: not {contract.TOPIC_ROOT}/{{city}}/{{school}}/{{type}}"
    city, school, kind = parts[2:]
    if kind not in contract.MESSAGE_TYPES:
        return f"topic {topic[:200]}: {kind[:64]!r} is not a message type agents send"
    return city, school, kind


class Checker:
    """Checks messages against the contract; one per receiver thread (validators are shared and read-only)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.validators = validators()

    def check(self, topic: str, payload: bytes) -> Accepted | Rejected:
        where = parse_topic(topic)
        if isinstance(where, str):
            return Rejected("topic", where)
        city, school, kind = where
        if len(payload) > self.max_bytes:
            return Rejected("oversized", f"{len(payload)} bytes on the wire; the limit is {self.max_bytes}")
        try:
            text = contract.gunzip(payload, self.max_bytes) if payload[:2] == contract.GZIP_MAGIC else payload
            if contract.too_deep(text):
                return Rejected("malformed", f"nests deeper than {contract.MAX_DEPTH} levels (or its brackets do "
                                             "not pair up); refused before parsing")
            msg = json.loads(text)
        except OverflowError as e:
            return Rejected("oversized", f"gzip payload of {len(payload)} bytes: {e}")
        except (ValueError, zlib.error, UnicodeDecodeError, RecursionError) as e:
            return Rejected("malformed", f"neither JSON nor gzip-compressed JSON: {str(e)[:200]}")
        if not isinstance(msg, dict):
            return Rejected("malformed", "the payload is JSON but not an object")
        head = msg.get("schema")
        name = head.get("name") if isinstance(head, dict) else None
        version = head.get("version") if isinstance(head, dict) else None
        if name in contract.MESSAGE_TYPES and version != contract.SCHEMA_VERSION:
            return Rejected("version", f"schema {name} version {version!r}; this cloud reads version "
                                       f"{contract.SCHEMA_VERSION}")
        validator = self.validators.get(name) if isinstance(name, str) else None
        if validator is None:
            return Rejected("schema", f"schema.name: {name!r} is not one of {', '.join(contract.MESSAGE_TYPES)}")
        if not validator.is_valid(msg):
            return Rejected("schema", "; ".join(schema_problems(validator, msg, 5))[:2000])
        if name != kind or msg["school"]["id"] != school or msg["school"]["city"] != city:
            said = f"{msg['school']['city']}/{msg['school']['id']}/{name}"
            return Rejected("mismatch", f"message says {said} but came on topic {topic}")
        return Accepted(kind, city, school, msg, len(payload))
