"""The SNMP wire: gufo-snmp sessions built from eduedge credentials, with retries and clear errors.

gufo-snmp (Rust BER codec, asyncio) is the poll path because it costs ~3 µs of CPU per value against
pysnmp's ~250 µs (research/DEPENDENCIES.md). It returns plain Python values (bytes, int, str for OIDs),
drops missing OIDs from `get_many`, and raises `TimeoutError` for a dead host or a wrong community -
the two cannot be told apart on the wire, so the error says both.
"""

from __future__ import annotations

from dataclasses import dataclass

from gufo.snmp import (
    Aes128Key,
    Aes192Key,
    Aes256Key,
    DesKey,
    Md5Key,
    Sha1Key,
    Sha224Key,
    Sha256Key,
    Sha384Key,
    Sha512Key,
    SnmpAuthError,
    SnmpError,
    SnmpVersion,
    User,
)
from gufo.snmp.aio.client import SnmpSession

from agent.config import SnmpCredentials

_AUTH = {"MD5": Md5Key, "SHA": Sha1Key, "SHA224": Sha224Key, "SHA256": Sha256Key, "SHA384": Sha384Key,
         "SHA512": Sha512Key}
_PRIV = {"DES": DesKey, "AES": Aes128Key, "AES128": Aes128Key, "AES192": Aes192Key, "AES256": Aes256Key}

Value = bytes | str | int | float | None


class SnmpRequestError(Exception):
    """One failed SNMP exchange with a device; the message names the device and what failed."""


@dataclass(frozen=True)
class SnmpAuth:
    """Resolved credentials (secrets already read), ready for the wire."""

    version: str = "2c"
    community: str = "public"
    user: str | None = None
    auth_proto: str | None = None
    auth_key: str | None = None
    priv_proto: str | None = None
    priv_key: str | None = None

    @classmethod
    def from_config(cls, creds: SnmpCredentials, name: str) -> SnmpAuth:
        """Read the secrets that `creds` points at; `name` is how errors refer to them."""
        if creds.version in ("1", "2c"):
            assert creds.community is not None
            return cls(version=creds.version, community=creds.community.read(f"credentials {name}: community"))
        return cls(version="3", user=creds.user, auth_proto=creds.auth_proto,
                   auth_key=creds.auth_key.read(f"credentials {name}: auth_key") if creds.auth_key else None,
                   priv_proto=creds.priv_proto,
                   priv_key=creds.priv_key.read(f"credentials {name}: priv_key") if creds.priv_key else None)

    def describe(self) -> str:
        if self.version == "3":
            level = "authPriv" if self.priv_key else "authNoPriv" if self.auth_key else "noAuthNoPriv"
            return f"SNMPv3 user {self.user} ({level})"
        return f"SNMPv{self.version} community"


def open_session(host: str, port: int, auth: SnmpAuth, timeout: float, max_repetitions: int = 20,
                 rate_limit_rps: float | None = None) -> SnmpSession:
    kwargs: dict = dict(addr=host, port=port, timeout=timeout, max_repetitions=max_repetitions,
                        limit_rps=rate_limit_rps)
    if auth.version == "3":
        auth_key = _AUTH[auth.auth_proto](auth.auth_key.encode()) if auth.auth_proto and auth.auth_key else None
        priv_key = _PRIV[auth.priv_proto](auth.priv_key.encode()) if auth.priv_proto and auth.priv_key else None
        kwargs["user"] = User(auth.user or "", auth_key=auth_key, priv_key=priv_key)
    else:
        kwargs["community"] = auth.community
        kwargs["version"] = SnmpVersion.v1 if auth.version == "1" else SnmpVersion.v2c
    return SnmpSession(**kwargs)


class SnmpClient:
    """One device's SNMP conversation: GET of many OIDs, GETBULK walks of columns, with retries."""

    def __init__(self, device: str, host: str, port: int, auth: SnmpAuth, timeout: float = 2.0,
                 retries: int = 1, max_repetitions: int = 20, rate_limit_rps: float | None = None,
                 oids_per_request: int = 20):
        self.device = device
        self.host, self.port, self.auth = host, port, auth
        self.timeout, self.retries = timeout, retries
        self.oids_per_request = oids_per_request
        self.requests = 0
        self.values = 0
        self._session = open_session(host, port, auth, timeout, max_repetitions, rate_limit_rps)
        self._ready = auth.version != "3"

    def _fail(self, what: str, exc: BaseException) -> SnmpRequestError:
        where = f"{self.device} ({self.host}:{self.port})"
        if isinstance(exc, TimeoutError):
            why = (f"no answer within {self.timeout:g}s x {self.retries + 1} tries: the device is down or "
                   f"unreachable, or refuses our {self.auth.describe()}")
        elif isinstance(exc, SnmpAuthError):
            why = f"SNMPv3 authentication failed for {self.auth.describe()}: check user, keys and protocols"
        elif isinstance(exc, SnmpError):
            why = f"unusable SNMP reply ({type(exc).__name__}: {exc})"
        else:
            why = f"{type(exc).__name__}: {exc}"
        return SnmpRequestError(f"{where}: {what}: {why}")

    async def _ensure_ready(self) -> None:
        # SNMPv3 first discovers the engine id and time; doing it once keeps every later request one RTT.
        if self._ready:
            return
        for attempt in range(self.retries + 1):
            try:
                self.requests += 1
                await self._session.refresh()
                self._ready = True
                return
            except (TimeoutError, SnmpError) as e:
                if attempt == self.retries or not isinstance(e, TimeoutError):
                    raise self._fail("SNMPv3 engine discovery", e) from None

    async def get_many(self, oids: list[str]) -> dict[str, Value]:
        """GET the OIDs (in chunks); missing ones are absent from the result."""
        await self._ensure_ready()
        out: dict[str, Value] = {}
        for i in range(0, len(oids), self.oids_per_request):
            chunk = oids[i:i + self.oids_per_request]
            for attempt in range(self.retries + 1):
                try:
                    self.requests += 1
                    got = await self._session.get_many(chunk)
                    break
                except (TimeoutError, SnmpError) as e:
                    if attempt == self.retries or not isinstance(e, TimeoutError):
                        raise self._fail(f"GET {chunk[0]}" + (f" (+{len(chunk) - 1})" if len(chunk) > 1 else ""),
                                         e) from None
            self.values += len(got)
            out.update(got)
        return out

    async def walk(self, oid: str) -> dict[str, Value]:
        """GETBULK-walk one column or subtree; returns {index suffix: value}."""
        await self._ensure_ready()
        prefix = oid + "."
        for attempt in range(self.retries + 1):
            rows: dict[str, Value] = {}
            try:
                self.requests += 1
                async for roid, value in self._session.fetch(oid):
                    if not roid.startswith(prefix):
                        break
                    rows[roid[len(prefix):]] = value
                self.values += len(rows)
                return rows
            except (TimeoutError, SnmpError) as e:
                if attempt == self.retries or not isinstance(e, TimeoutError):
                    raise self._fail(f"walk {oid}", e) from None
        return {}
