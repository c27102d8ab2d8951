"""The telemetry contract between the agent and the city cloud, as data both ends validate against.

One JSON Schema per message type sits beside this file (`<type>.schema.json`, all sharing
`envelope.schema.json`), and `asyncapi.yaml` describes the topics, QoS and the rules around them.
This module only loads those files and checks messages; it knows nothing of MQTT or SQLite, so the
cloud receiver imports it as it is.

Payloads are UTF-8 JSON objects, or the same JSON gzip-compressed: a receiver tells them apart by the
first bytes (`{` or the gzip magic 1f 8b).

>>> msg = {"schema": {"name": "cmd", "version": 1}, "request_id": "r1", "args": {}}
>>> command_problems("rebirth", msg)
[]
>>> command_problems("shell", msg)
["command 'shell' is not allowed (allowed: rebirth, run-check, set-interval)"]
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:    # jsonschema loads with the first check (~3 MB): an agent checks only the commands it gets
    from jsonschema import Draft202012Validator
    from referencing import Registry

HERE = Path(__file__).resolve().parent
TOPIC_ROOT = "edu/v1"
MESSAGE_TYPES = ("birth", "death", "metrics", "findings", "inventory", "events", "cmd-result", "gap")
COMMANDS = ("rebirth", "run-check", "set-interval")
SCHEMA_VERSION = 1
GZIP_MAGIC = b"\x1f\x8b"
# No message of the contract nests deeper than this; anything deeper is refused before it is parsed, since
# json.loads recurses once per level (200 kB of brackets end in a RecursionError) and so do validators.
MAX_DEPTH = 32
COMMAND_MAX_BYTES = 64 * 1024
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class ContractError(ValueError):
    """A message that does not meet the contract; the text says which field and why."""


def topic(city: str, school: str, kind: str) -> str:
    """The topic of one message type (or `cmd/<name>`) for one school.

    >>> topic("yinchuan", "no3-primary", "metrics")
    'edu/v1/yinchuan/no3-primary/metrics'
    """
    return f"{TOPIC_ROOT}/{city}/{school}/{kind}"


@cache
def _registry() -> Registry:
    from referencing import Registry, Resource

    resources = []
    for path in sorted(HERE.glob("*.schema.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        resources.append((doc["$id"], Resource.from_contents(doc)))
    return Registry().with_resources(resources)


@cache
def schema(name: str) -> dict[str, Any]:
    """The JSON Schema document of a message type (`metrics`, `cmd`, ...)."""
    return json.loads((HERE / f"{name}.schema.json").read_text(encoding="utf-8"))


@cache
def _validator(name: str) -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema(name), registry=_registry())


@cache
def _args_validator(command: str) -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema("cmd")["$defs"][command], registry=_registry())


def _problems(validator: Draft202012Validator, doc: object, prefix: str = "") -> list[str]:
    out = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in err.absolute_path)
        out.append(f"{prefix}{where or '(message)'}: {err.message}")
    return out


def problems(message: object) -> list[str]:
    """Why `message` (a decoded agent-to-cloud message) breaks the contract; empty when it is valid."""
    if not isinstance(message, dict):
        return ["(message): not a JSON object"]
    name = (message.get("schema") or {}).get("name") if isinstance(message.get("schema"), dict) else None
    if name not in MESSAGE_TYPES:
        return [f"schema.name: {name!r} is not one of {', '.join(MESSAGE_TYPES)}"]
    return _problems(_validator(name), message)


def validate(message: object) -> None:
    """Raise `ContractError` listing every problem of `message`."""
    found = problems(message)
    if found:
        raise ContractError("; ".join(found))


def command_problems(command: str, request: object) -> list[str]:
    """Why a command request (topic name `command`, decoded payload) must be refused; empty when valid."""
    if command not in COMMANDS:
        return [f"command {command!r} is not allowed (allowed: {', '.join(COMMANDS)})"]
    found = _problems(_validator("cmd"), request)
    if not found:
        assert isinstance(request, dict)
        found = _problems(_args_validator(command), request.get("args", {}), "args.")
    return found


def too_deep(text: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON text nests arrays/objects deeper than `limit` (or its brackets do not pair up), found without
    parsing it: strings are cut out, and each round removes every innermost `[]` and `{}` pair (all at C speed).

    >>> too_deep(b'{"a": [1, {"b": "]]]"}]}', 3), too_deep(b"[" * 5 + b"]" * 5, 4), too_deep(b"[[]]", 4)
    (False, True, False)
    """
    rest = _STRINGS.sub(b"", text).translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        if not rest:
            return False
        rest = rest.replace(b"[]", b"").replace(b"{}", b"")
    return bool(rest)


def gunzip(payload: bytes, limit: int) -> bytes:
    """Decompress a gzip payload, refusing to produce more than `limit` bytes (a small bomb stays small)."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = d.decompress(payload, limit + 1)
    if len(out) > limit:
        raise OverflowError(f"more than {limit} bytes once decompressed")
    if not d.eof:
        raise ValueError("truncated gzip data")
    return out


def decode(payload: bytes, max_bytes: int | None = None, max_depth: int = MAX_DEPTH) -> Any:
    """A payload as JSON, gunzipped first when it is compressed; `ContractError` if it is neither, if it is bigger
    than `max_bytes` (on the wire or unzipped) or nests deeper than `max_depth` - both checked before parsing."""
    if max_bytes is not None and len(payload) > max_bytes:
        raise ContractError(f"payload of {len(payload)} bytes; the limit is {max_bytes}")
    try:
        if payload[:2] == GZIP_MAGIC:
            payload = gunzip(payload, max_bytes) if max_bytes is not None else gzip.decompress(payload)
    except OverflowError as e:
        raise ContractError(f"gzip payload: {e}") from None
    except (OSError, EOFError, ValueError, zlib.error) as e:
        raise ContractError(f"payload is neither JSON nor gzip-compressed JSON: {e}") from None
    if too_deep(payload, max_depth):
        raise ContractError(f"payload nests deeper than {max_depth} levels (or its brackets do not pair up)")
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ContractError(f"payload is neither JSON nor gzip-compressed JSON: {e}") from None
