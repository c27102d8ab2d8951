"""Who is asking: the page's and API's accounts (`serve.users`), their tokens, and signed session cookies.

A request is someone's when it carries `Authorization: Bearer <token>` (scripts, the API) or a session
cookie (`eduedge_session`) that /login gave in exchange for a token. The cookie holds the user's name and
an expiry signed with HMAC-SHA256 under `serve.session_key` (random per process without one), never the
token itself. Tokens are compared in constant time. A role is `viewer` (read) or `operator` (read, and send
commands to schools).

>>> a = Accounts({"ana": ("viewer", "t0k3n-ana")}, b"k" * 32, 3600)
>>> a.by_token("t0k3n-ana").role, a.by_token("wrong")
('viewer', None)
>>> cookie = a.session("ana", now=100.0)
>>> a.by_session(cookie, now=200.0).name, a.by_session(cookie, now=4000.0), a.by_session(cookie + "x", now=200.0)
('ana', None, None)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from eduedge.cloud.config import Serve

COOKIE = "eduedge_session"


@dataclass(frozen=True)
class User:
    name: str
    role: str                 # viewer | operator

    @property
    def may_command(self) -> bool:
        return self.role == "operator"


class Accounts:
    def __init__(self, users: dict[str, tuple[str, str]], key: bytes, lifetime_s: float):
        """`users`: {name: (role, token)}."""
        self.users = {name: User(name, role) for name, (role, _) in users.items()}
        self._tokens = [(hashlib.sha256(token.encode()).digest(), name) for name, (_, token) in users.items()]
        self._key = key
        self.lifetime_s = lifetime_s

    @classmethod
    def from_config(cls, serve: Serve) -> Accounts:
        users = {u.name: (u.role, u.token.read(f"serve.users[{u.name}].token")) for u in serve.users}
        for name, (_, token) in users.items():
            if len(token) < 16:
                raise ValueError(f"serve.users[{name}].token: at least 16 characters, please")
        key = serve.session_key.read("serve.session_key").encode() if serve.session_key else secrets.token_bytes(32)
        return cls(users, key, serve.session_hours * 3600)

    def by_token(self, token: str) -> User | None:
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for known, name in self._tokens:          # every one compared: the time says nothing of which matched
            if hmac.compare_digest(known, digest):
                found = name
        return self.users.get(found) if found else None

    def _sign(self, body: str) -> str:
        mac = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def session(self, name: str, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + self.lifetime_s)
        body = f"{name}.{expires}"
        return f"{body}.{self._sign(body)}"

    def by_session(self, cookie: str, now: float | None = None) -> User | None:
        try:
            name, expires, mac = cookie.rsplit(".", 2)
            if not hmac.compare_digest(mac, self._sign(f"{name}.{expires}")):
                return None
            if int(expires) < (time.time() if now is None else now):
                return None
        except ValueError:
            return None
        return self.users.get(name)
