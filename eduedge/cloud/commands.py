"""Commands to a school (`eduedge cloud cmd SCHOOL rebirth|run-check NAME|set-interval NAME SECONDS`).

A command is a `cmd` message (agent/contract/cmd.schema.json) on `edu/v1/{city}/{school}/cmd/{name}`,
checked here against the same allow-list and schema the agent applies before it leaves. The agent
subscribes with a clean session, so a command sent while it is offline is not queued for it: the cloud
sends it again (same request id: the agent runs it once and answers a repeat with its first answer) until
the answer comes on `.../cmd-result` or the time is up. The request and its answer are recorded in the
`commands` table (the receivers record answers too, whoever sent the command).

>>> name, payload = command_message("run-check", {"check": "host"}, "r1", 100.0, 60.0)
>>> name, json.loads(payload)["args"], json.loads(payload)["expires"]
('run-check', {'check': 'host'}, 160.0)
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from eduedge.agent import contract
from eduedge.cloud.checker import Accepted, Checker
from eduedge.cloud.client import connect_properties, mqtt_client
from eduedge.cloud.config import CloudConfig
from eduedge.cloud.db import Db
from eduedge.core.netaddr import split_host_port

RESEND_EVERY_S = 5.0


class CommandError(Exception):
    """The command cannot be sent (refused here, unknown school, broker unreachable)."""


@dataclass
class Answer:
    request_id: str
    school: str
    command: str
    status: str                 # ok | refused | error | timeout
    reason: str | None = None
    result: dict[str, Any] | None = None
    duplicate: bool = False
    sent: int = 0               # how many times the request went out
    waited_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def command_message(name: str, args: dict[str, Any], request_id: str, now: float, ttl: float) -> tuple[str, bytes]:
    """The topic's last level and the payload of a command; `CommandError` if the agent would refuse it."""
    req = {"schema": {"name": "cmd", "version": contract.SCHEMA_VERSION}, "request_id": request_id,
           "issued": round(now, 3), "expires": round(now + ttl, 3), "args": args}
    problems = contract.command_problems(name, req)
    if problems:
        raise CommandError("; ".join(problems))
    return name, json.dumps(req, separators=(",", ":")).encode()


def school_city(db: Db, school: str) -> str:
    rows = db.query("SELECT city FROM schools WHERE school = ?", [school])
    if not rows:
        raise CommandError(f"school {school!r} is not known to this cloud (it has never reported)")
    return str(rows[0][0])


def send_command(cfg: CloudConfig, db: Db, school: str, name: str, args: dict[str, Any], timeout: float = 30.0,
                 city: str | None = None) -> Answer:
    """Send one command to `school` and wait for its answer (status `timeout` if none came in time)."""
    city = city or school_city(db, school)
    request_id = f"cloud-{uuid.uuid4().hex[:16]}"
    now = time.time()
    topic_name, payload = command_message(name, args, request_id, now, timeout)
    db.execute("INSERT INTO commands (request_id, school, city, command, args, sent, status) "
               "VALUES (?, ?, ?, ?, ?, ?, 'sent')", [request_id, school, city, name, json.dumps(args), now])
    checker = Checker(cfg.ingest.max_message_bytes)
    got: list[Accepted] = []
    arrived = threading.Event()
    subscribed = threading.Event()
    client = mqtt_client(cfg.mqtt, f"eduedge-cloud-cmd-{uuid.uuid4().hex[:8]}", persistent=False)

    def on_message(_c: Any, _u: Any, m: Any) -> None:
        verdict = checker.check(m.topic, m.payload)
        if isinstance(verdict, Accepted) and verdict.msg.get("request_id") == request_id:
            got.append(verdict)
            arrived.set()

    client.on_message = on_message
    client.on_connect = lambda c, u, f, rc, p: (None if rc.is_failure else
                                                c.subscribe(contract.topic(city, school, "cmd-result"), qos=1))
    client.on_subscribe = lambda *a: subscribed.set()
    host, port = split_host_port(cfg.mqtt.broker, 1883)
    try:
        client.connect(host, port, keepalive=30, clean_start=True, properties=connect_properties(cfg.mqtt, False))
    except OSError as e:
        raise CommandError(f"cannot reach the broker {cfg.mqtt.broker}: {e}") from None
    client.loop_start()
    answer = Answer(request_id, school, name, "timeout")
    try:
        start = time.monotonic()
        if not subscribed.wait(min(10.0, timeout)):
            raise CommandError(f"the broker {cfg.mqtt.broker} did not confirm the subscription to the answers")
        while time.monotonic() - start < timeout:
            client.publish(contract.topic(city, school, f"cmd/{topic_name}"), payload, qos=1)
            answer.sent += 1
            if arrived.wait(min(RESEND_EVERY_S, max(0.0, timeout - (time.monotonic() - start)))):
                msg = got[0].msg
                answer.status, answer.reason = msg["status"], msg.get("reason")
                answer.result, answer.duplicate = msg.get("result"), bool(msg.get("duplicate"))
                break
        answer.waited_s = round(time.monotonic() - start, 3)
    finally:
        client.disconnect()
        client.loop_stop()
    if answer.status == "timeout":
        db.execute("UPDATE commands SET status = 'timeout' WHERE request_id = ? AND answered IS NULL", [request_id])
    else:
        db.execute("UPDATE commands SET status = ?, reason = ?, result = ?, answered = ? WHERE request_id = ? "
                   "AND answered IS NULL", [answer.status, answer.reason,
                                            json.dumps(answer.result) if answer.result is not None else None,
                                            time.time(), request_id])
    return answer
