"""Commands from the city cloud: an allow-list, validated, rate-limited, idempotent, always answered.

A command arrives on `edu/v1/{city}/{school}/cmd/{name}`; the topic's last level is the command, the
payload is a `cmd` message (agent/contract/cmd.schema.json). Allowed:

| command        | args                     | effect                                               |
|----------------|--------------------------|------------------------------------------------------|
| `rebirth`      | none                     | re-send the birth on the current connection          |
| `run-check`    | `check`                  | run `snmp`, `snmp:DEVICE` or `host` now; answer with what it got |
| `set-interval` | `check`, `interval_s`    | set how often it runs, within commands.interval_min..max |

Everything else is refused: unknown commands, bad JSON, payloads over 64 KiB or nested deeper than the
contract's limit (both refused before parsing), arguments the schema does not allow, unknown checks,
intervals out of bounds, expired requests, and anything beyond the rate limit. A request whose handling
raises is answered with `error`. Every request
gets an answer on `cmd-result` through the outbox (priority 0). A request id that was executed before is
not executed again: its first answer is sent again with `duplicate: true`. Nothing a command carries is
ever used as a shell command or a file name - the names only select from the agent's own table of checks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from eduedge.agent import contract
from eduedge.agent.config import CommandsConfig
from eduedge.agent.outbox import Outbox

log = logging.getLogger("eduedge.commands")

Done = Callable[[dict[str, Any] | None, str | None], None]  # (result, error)


class Actions(Protocol):
    """What the daemon lets commands do."""

    def rebirth(self) -> None: ...

    def checks(self) -> list[str]: ...

    def run_check(self, check: str, done: Done) -> None: ...

    def set_interval(self, check: str, seconds: float) -> float: ...


@dataclass
class TokenBucket:
    """`rate` tokens per second up to `burst`; `take()` is False when empty.

    >>> b = TokenBucket(rate=1.0, burst=2, tokens=2, at=0.0)
    >>> [b.take(0.0), b.take(0.0), b.take(0.0), b.take(1.0)]
    [True, True, False, True]
    """

    rate: float
    burst: int
    tokens: float
    at: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class CommandHandler:
    """Turns one command message into at most one action and exactly one answer (see module doc)."""

    def __init__(self, cfg: CommandsConfig, outbox: Outbox, actions: Actions, now: Callable[[], float] = time.time):
        self.cfg = cfg
        self.outbox = outbox
        self.actions = actions
        self._now = now
        self._bucket = TokenBucket(cfg.rate_per_minute / 60.0, cfg.burst, cfg.burst, time.monotonic())
        # Refusals are answered too, but a flood must not fill the outbox with answers: past a wider
        # bucket, refused requests are only counted in the log.
        self._answer_bucket = TokenBucket(cfg.rate_per_minute / 6.0, cfg.burst * 10, cfg.burst * 10, time.monotonic())
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self.unanswered = 0

    def handle(self, name: str, payload: bytes) -> None:
        """Called by the link for each message on `.../cmd/+`; never blocks on the work itself, never raises: a
        request whose handling fails is answered with `error` and the reason."""
        self._request_id: str | None = None
        try:
            self._handle(name, payload)
        except Exception as e:
            log.exception("command %r could not be handled", name[:64])
            self._answer_error(self._request_id, name, f"internal error: {type(e).__name__}: {str(e)[:300]}")

    def _answer_error(self, request_id: str | None, name: str, reason: str) -> None:
        try:
            if request_id is not None:
                self._answer(request_id, name, "error", reason=reason)
            else:
                self._refuse(None, name, reason)
        except Exception:
            log.exception("command %r: the error answer could not be stored either", name[:64])

    def _handle(self, name: str, payload: bytes) -> None:
        now = time.monotonic()
        request_id: str | None = None
        try:
            # A size limit and a depth limit before parsing (contract.decode).
            req = contract.decode(payload, max_bytes=contract.COMMAND_MAX_BYTES)
        except contract.ContractError as e:
            self._refuse(None, name, f"malformed: {e}")
            return
        if isinstance(req, dict) and isinstance(req.get("request_id"), str):
            rid = req["request_id"]
            request_id = rid if not contract.command_problems("rebirth", {"schema": {"name": "cmd", "version": 1},
                                                                          "request_id": rid}) else None
            self._request_id = request_id
        if not self._bucket.take(now):
            self._refuse(request_id, name, f"rate limited: more than {self.cfg.rate_per_minute:g} commands per "
                                           f"minute (burst {self.cfg.burst})")
            return
        if not self.cfg.enabled:
            self._refuse(request_id, name, "commands are disabled in this agent's configuration")
            return
        problems = contract.command_problems(name, req)
        if problems:
            self._refuse(request_id, name, "; ".join(problems)[:500])
            return
        assert request_id is not None
        expires = req.get("expires")
        if expires is not None and expires < self._now():
            self._refuse(request_id, name, "expired before it arrived")
            return
        earlier = self.outbox.answer_for(request_id)
        if earlier is not None:
            self.outbox.add_answer(None, {**earlier, "duplicate": True})
            return
        with self._lock:
            if request_id in self._running:
                log.info("command %s %s is still running; its answer will follow", name, request_id)
                return
        self._execute(name, request_id, req.get("args", {}))

    def _execute(self, name: str, request_id: str, args: dict[str, Any]) -> None:
        if name == "rebirth":
            self.actions.rebirth()
            self._answer(request_id, name, "ok", result={})
        elif name == "set-interval":
            check, seconds = args["check"], float(args["interval_s"])
            if not self.cfg.interval_min <= seconds <= self.cfg.interval_max:
                self._refuse(request_id, name, f"interval {seconds:g}s is outside the allowed "
                                               f"{self.cfg.interval_min:g}..{self.cfg.interval_max:g}s")
                return
            if check not in self.actions.checks():
                self._refuse(request_id, name, f"unknown check {check!r} (known: {', '.join(self.actions.checks())})")
                return
            old = self.actions.set_interval(check, seconds)
            self._answer(request_id, name, "ok", result={"check": check, "interval_s": seconds, "was_s": old})
        elif name == "run-check":
            check = args["check"]
            if check not in self.actions.checks():
                self._refuse(request_id, name, f"unknown check {check!r} (known: {', '.join(self.actions.checks())})")
                return
            with self._lock:
                self._running.add(request_id)

            def done(result: dict[str, Any] | None, error: str | None) -> None:
                with self._lock:
                    self._running.discard(request_id)
                if error is not None:
                    self._answer(request_id, name, "error", reason=error, result=result or {})
                else:
                    self._answer(request_id, name, "ok", result=result or {})

            self.actions.run_check(check, done)

    def _answer(self, request_id: str, name: str, status: str, reason: str | None = None,
                result: dict[str, Any] | None = None) -> None:
        body: dict[str, Any] = {"request_id": request_id, "command": name, "status": status}
        if reason:
            body["reason"] = reason
        if result is not None:
            body["result"] = result
        self.outbox.add_answer(request_id, body)
        log.info("command %s %s: %s%s", name, request_id, status, f" ({reason})" if reason else "")

    def _refuse(self, request_id: str | None, name: str, reason: str) -> None:
        if not self._answer_bucket.take(time.monotonic()):
            self.unanswered += 1
            if self.unanswered % 100 == 1:
                log.warning("commands: flood; %d refused requests left unanswered so far", self.unanswered)
            return
        log.warning("command %r %s refused: %s", name[:64], request_id or "(no request id)", reason)
        body: dict[str, Any] = {"request_id": request_id, "command": name[:128], "status": "refused", "reason": reason}
        # Refusals are not remembered: a request refused for its rate or timing may be tried again.
        self.outbox.add_answer(None, body)
