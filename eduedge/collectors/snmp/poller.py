"""Poll one SNMP device through its firmware profile, and many devices at once within bounds.

What a poll does, per device:
1. GET the system group (sysObjectID, sysDescr, sysUpTime, snmpEngineTime) and the profile's scalars.
   Uptime going backwards means a reboot: every counter delta of the device is discarded.
2. On the first poll, after a reboot, and every `static_refresh`: match the profile, read the identity
   (vendor, model, OS version, serial) and the static columns (names, aliases, speeds).
3. GETBULK-walk only the columns the profile's metrics need (a column the device lacks is replaced by its
   `fallback`, e.g. 32-bit ifInOctets for ifHCInOctets, and that choice is remembered), with the columns
   that select rows (`where`), name them (tags, also through another column: `via`) and divide them
   (`denominator`, for used/(used+free)).
4. Turn rows into `Sample`s: gauges divided and scaled, states mapped, counters into rates
   (agent/rates.py); a reading at a metric's `saturated_at` ceiling is kept and tagged saturated=true.
   `DevicePoll.coverage` counts the readings each profile line yielded, so a test can prove every line.

Values are taken as the device gives them, whatever their SNMP type: numbers in strings are parsed,
sysDescr is read as text even with stray non-UTF-8 bytes or enclosing quotes, and a value that means
nothing for its metric is left out rather than invented.

Every device has a deadline: when it passes, the poll stops, keeps what it has and says so. Errors name
the device and the OID; a device that fails never stops the others. A value that cannot be decoded even
when asked for alone (client.py) cuts short only the column it is in: the poll goes on and says so.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from eduedge.collectors.snmp.client import SnmpClient, SnmpRequestError, SnmpUndecodableError, Value
from eduedge.collectors.snmp.enterprises import vendor_for
from eduedge.collectors.snmp.profiles import Metric, Profile, ProfileError, ProfileSet, Source, Tag, match_profile
from eduedge.core.pseudonym import Pseudonymizer
from eduedge.core.rates import RateTracker
from eduedge.core.samples import Sample

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
ENGINE_TIME = "1.3.6.1.6.3.10.2.1.3.0"
SYSTEM_OIDS = [SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME, SYS_NAME, ENGINE_TIME]

_PRINTABLE = re.compile(r"^[\t\r\n\x20-\x7e\u00a0-\uffff]*$")
_ASCII_TEXT = frozenset(b"\t\r\n" + bytes(range(0x20, 0x7f)))


def as_text(value: Value) -> str:
    """An SNMP value as text: printable UTF-8 as is, anything else (MACs, binary ids) as hex.

    Text with a few bytes that are not UTF-8 (DCN switches put 0xDA between the lines of sysDescr) stays
    text, with U+FFFD for those bytes: a sysDescr shown as hex would be no use to anyone.

    >>> as_text(b"Gi0/1"), as_text(b"\\x00\\x1e\\x13\\xaa\\x0b\\x01"), as_text(b"abc\\x00")
    ('Gi0/1', '00:1e:13:aa:0b:01', 'abc')
    >>> as_text(b"CS6200 Device\\xda SoftWare Version 7.5.3.0")
    'CS6200 Device\ufffd SoftWare Version 7.5.3.0'
    """
    if isinstance(value, bytes):
        raw = value.rstrip(b"\x00")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            if len(raw) < 16 or sum(b in _ASCII_TEXT for b in raw) < 0.9 * len(raw):
                return raw.hex(":")
            text = raw.decode("utf-8", errors="replace")
        return text if _PRINTABLE.match(text) else raw.hex(":")
    if value is None:
        return ""
    return str(value)


def mac_text(value: Value) -> str | None:
    """A MAC address as `aa:bb:cc:dd:ee:ff` from 6 octets, a hex string, or 6 decimal index arcs; None if the
    value is none of these. Octets are never read as text here: `as_text` would show a MAC whose bytes
    happen to be printable ("012345") as a word, and drop a trailing 00.

    >>> mac_text(b"\\x00\\x1e\\x13\\xaa\\x0b\\x00"), mac_text("0.30.19.170.11.1"), mac_text(b"012345")
    ('00:1e:13:aa:0b:00', '00:1e:13:aa:0b:01', '30:31:32:33:34:35')
    >>> mac_text("58:69:6c:6:82:3c"), mac_text("001e.13aa.0b01"), mac_text("Gi0/1")
    ('58:69:6c:06:82:3c', '00:1e:13:aa:0b:01', None)
    """
    if isinstance(value, bytes) and len(value) == 6:
        return value.hex(":")
    text = value.decode("ascii", errors="replace") if isinstance(value, bytes) else str(value or "")
    arcs = text.strip().split(".")
    if len(arcs) == 6 and all(a.isdigit() and int(a) < 256 for a in arcs):
        return ":".join(f"{int(a):02x}" for a in arcs)
    parts = re.split(r"[:\-]", text.strip())
    if len(parts) == 6 and all(1 <= len(p) <= 2 for p in parts):    # "58:69:6c:6:82:3c" (Ruijie)
        text = "".join(p.rjust(2, "0") for p in parts)
    digits = re.sub(r"[\s:.\-]", "", text).lower()
    if len(digits) == 12 and all(c in "0123456789abcdef" for c in digits):
        return ":".join(digits[i:i + 2] for i in range(0, 12, 2))
    return None


def clean_descr(text: str) -> str:
    """sysDescr as matched and shown: outer whitespace and one pair of enclosing quotes removed (some
    agents, and recordings of them, return the string quoted).

    >>> clean_descr('"Cisco IOS Software, C3560\\r\\n"  ')
    'Cisco IOS Software, C3560'
    """
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return text


def as_number(value: Value, regex: str | None = None) -> float | int | None:
    """A numeric reading; text is parsed (after `regex`), anything else is None."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and regex is None:
        return value
    text = as_text(value).strip()
    if regex is not None:
        m = re.search(regex, text)
        if not m:
            return None
        text = m.group(1) if m.groups() else m.group(0)
    try:
        return int(text)
    except ValueError:
        try:
            f = float(text)
        except ValueError:
            return None
        return f if math.isfinite(f) else None


def _oid_key(index: str) -> tuple[int, ...]:
    try:
        return tuple(int(a) for a in index.split("."))
    except ValueError:
        return ()


@dataclass
class Identity:
    sys_object_id: str = ""
    sys_descr: str = ""
    profile: str = ""
    matched_by: str = ""
    device_class: str | None = None
    vendor: str | None = None
    model: str | None = None
    os_version: str | None = None
    serial: str | None = None
    hostname: str | None = None
    capabilities: list[str] = field(default_factory=list)   # standard tables it answers (capabilities.yaml)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DevicePoll:
    """The result of one poll of one device."""

    device: str
    address: str
    time: float
    identity: Identity | None
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    requests: int = 0
    values: int = 0
    rebooted: bool = False
    complete: bool = True
    coverage: dict[str, int] = field(default_factory=dict)   # Metric.key -> readings it yielded this poll

    @property
    def ok(self) -> bool:
        return self.identity is not None and not self.errors


@dataclass(slots=True)
class _Plan:
    """Which OID each metric is read from on this device (primary or a fallback)."""

    oid: str
    bits: int | None
    scale: float | None
    saturated_at: int | None = None


class DevicePoller:
    """Keeps one device's session, identity, static columns and counter state between polls."""

    def __init__(self, client: SnmpClient, profiles: ProfileSet, rates: RateTracker | None = None,
                 forced_profile: str | None = None, deadline: float = 20.0, static_refresh: float = 3600.0,
                 pseudonymizer: Pseudonymizer | None = None):
        self.client = client
        # Tags marked `personal` (Wi-Fi clients' MACs) leave a poll only as this school's pseudonyms; without
        # a pseudonymizer those lines are not read at all.
        self.pseudonymizer = pseudonymizer
        self._pseudonyms: dict[str, str] = {}
        self.device = client.device
        self.profiles = profiles
        self.rates = rates if rates is not None else RateTracker()
        self.forced_profile = forced_profile
        self.deadline = deadline
        self.static_refresh = static_refresh
        self.identity: Identity | None = None
        self.profile: Profile | None = None
        self._static: dict[str, dict[str, Value]] = {}
        self._plans: dict[int, _Plan | None] = {}
        self._rows: dict[int, list[str]] = {}        # Metric id -> rows its `where` selects, see _selected_rows
        self._refreshed_at = -math.inf
        self._static_tags: dict[tuple, dict[str, dict[str, str]]] = {}   # see _build
        self._static_tags_for: tuple = ()
        self._static_samples: dict[int, tuple[list[tuple], int]] = {}  # see _static_metric
        self._tag_specs: dict[int, tuple[tuple, bool]] = {}     # the profile's, see _tag_specs_of
        self._cut: list[str] = []          # this poll's reads cut short by an undecodable value, see _read

    # -- fetching --------------------------------------------------------------------------------

    async def _read(self, read: Awaitable[Any]) -> Any:
        """What a walk or GET returns; one cut short by a value that cannot be decoded even alone gives what it
        did read, and the poll goes on and says so: the device answers, and its other columns are whole."""
        try:
            return await read
        except SnmpUndecodableError as e:
            self._cut.append(str(e))
            return e.rows

    async def identify(self) -> Identity:
        """Only find out what the device is (profile, vendor, model, version, serial); no metrics.

        Raises `SnmpRequestError` when the device cannot be asked.
        """
        self._cut = []
        scalars = await self.client.get_many(list(SYSTEM_OIDS))
        if not scalars:
            raise SnmpRequestError(f"{self.device}: answers SNMP but returned none of the system group")
        await self._identify(scalars)
        assert self.identity is not None
        return self.identity

    async def poll(self) -> DevicePoll:
        """Poll the device once; never raises for device trouble, it is reported in `errors`."""
        t0 = time.monotonic()
        result = DevicePoll(self.device, f"{self.client.host}:{self.client.port}", time.time(), None)
        req0, val0 = self.client.requests, self.client.values
        self._cut = []
        data: dict[str, dict[str, Value]] = {}
        scalars: dict[str, Value] = {}
        try:
            async with asyncio.timeout(self.deadline):
                await self._fetch(result, data, scalars)
        except TimeoutError:
            result.complete = False
            result.errors.append(f"{self.device}: poll deadline of {self.deadline:g}s reached; "
                                 f"kept the {len(data)} columns read so far")
        except SnmpRequestError as e:
            result.complete = False
            result.errors.append(str(e))
        except ProfileError as e:
            result.complete = False
            result.errors.append(f"{self.device}: {e}")
        if self._cut:
            result.complete = False
            result.errors[:0] = self._cut
        result.identity = self.identity if self.profile is not None else None
        if self.profile is not None and scalars:
            self._build(result, data, scalars, time.monotonic())
            data.clear()        # a controller's walks, let go before its samples are pseudonymised
            if self.pseudonymizer is not None:
                self._pseudonymise(result)
        result.duration_s = time.monotonic() - t0
        result.requests = self.client.requests - req0
        result.values = self.client.values - val0
        return result

    async def _fetch(self, result: DevicePoll, data: dict[str, dict[str, Value]],
                     scalars: dict[str, Value]) -> None:
        wanted = list(SYSTEM_OIDS)
        if self.profile is not None:
            wanted += [o for o in dict.fromkeys(_scalar_oids(self.profile.metrics)) if o not in wanted]
        scalars.update(await self._read(self.client.get_many(wanted)))
        if not scalars:
            # a device whose every reply is undecodable is that, not one whose view hides the system group
            raise SnmpRequestError(self._cut.pop() if self._cut else
                                   f"{self.device}: answers SNMP but returned none of the system group "
                                   "(sysDescr, sysObjectID, sysUpTime); check the view the credentials may read")
        uptime = _uptime_s(scalars)
        if uptime is not None and self.rates.observe_uptime(self.device, uptime):
            result.rebooted = True
        oid = as_text(scalars.get(SYS_OBJECT_ID)).lstrip(".")
        refresh = (self.profile is None or result.rebooted
                   or time.monotonic() - self._refreshed_at >= self.static_refresh
                   or (self.identity is not None and oid != self.identity.sys_object_id))
        if refresh:
            await self._identify(scalars)
            assert self.profile is not None
            missing = [o for o in dict.fromkeys(_scalar_oids(self.profile.metrics)) if o not in scalars]
            if missing:
                scalars.update(await self._read(self.client.get_many(missing)))
            self._static.clear()
            self._plans.clear()
            self._rows.clear()
        assert self.profile is not None
        data.update(self._static)
        for column in self._columns_needed(refresh):
            if column not in data:
                data[column] = await self._read(self.client.walk(column))
        walks: dict[str, None] = {}
        gets: dict[str, dict[str, None]] = {}       # column -> the rows a `where` selects
        for m in self.profile.metrics:
            if m.column is None or self._withheld(m):
                continue
            plan = await self._plan(m, data)
            if plan is None or plan.oid in data:
                continue
            rows = self._selected_rows(m, data)
            if rows is None:
                walks[plan.oid] = None
            else:
                gets.setdefault(plan.oid, {}).update(dict.fromkeys(rows))
        for column in walks:
            data[column] = await self._read(self.client.walk(column))
        gets = {c: list(rows) for c, rows in gets.items() if c not in walks}
        if gets:
            data.update(await self._read(self.client.get_rows(gets)))
        if refresh:
            self._refreshed_at = time.monotonic()
            self._static.update({c: data[c] for c in self._static_columns() if c in data})

    def _static_columns(self) -> set[str]:
        assert self.profile is not None
        cols: set[str] = set()
        for m in self.profile.metrics:
            if self._withheld(m):
                continue
            for t in m.tags:
                if t.static and t.column:
                    cols.update((t.column, *t.fallback, *((t.via,) if t.via else ()), *((t.match,) if t.match else ())))
            if m.where is not None:
                cols.add(m.where.oid)
            cols.update(r.column for r in m.row_scale)
            if m.subtract is not None:
                cols.add(m.subtract.where.oid)
            if m.static and m.column:
                cols.add(m.column)
                cols.update(f.oid for f in m.fallback)
        return cols

    def _columns_needed(self, refresh: bool) -> list[str]:
        """Tag, row-selection and denominator columns to read now (static ones only on a refresh), in a
        stable order."""
        assert self.profile is not None
        cols: dict[str, None] = {}
        for m in self.profile.metrics:
            if self._withheld(m):
                continue
            for t in m.tags:
                if t.column and (refresh or not t.static):
                    cols.update(dict.fromkeys((t.column, *t.fallback, *((t.via,) if t.via else ()),
                                               *((t.match,) if t.match else ()))))
            if m.where is not None and refresh:
                cols[m.where.oid] = None
            if refresh:
                cols.update(dict.fromkeys(r.column for r in m.row_scale))
            if m.subtract is not None:
                if refresh:
                    cols[m.subtract.where.oid] = None
                cols[m.subtract.column] = None
            cols.update(dict.fromkeys(m.denominator))
        return list(cols)

    def _selected_rows(self, m: Metric, data: dict[str, dict[str, Value]]) -> list[str] | None:
        """The rows a metric's `where` selects (None: every row). `where` columns are static, so between
        refreshes only these rows are read, by GET: a walk of the whole column would read every port's
        row of a board table (Huawei's hwEntityStateTable: 82 rows for one board's CPU and memory)."""
        if m.where is None:
            return None
        key = id(m)
        rows = self._rows.get(key)
        if rows is None:
            where = m.where
            rows = self._rows[key] = [i for i, v in data.get(where.oid, {}).items()
                                      if where.accepts(as_text(v).strip())]
        return rows

    async def _plan(self, m: Metric, data: dict[str, dict[str, Value]]) -> _Plan | None:
        key = id(m)
        if key in self._plans:
            return self._plans[key]
        candidates = [_Plan(m.column or "", m.bits, m.scale, m.saturated_at)] + [
            _Plan(f.oid, f.bits or m.bits, f.scale if f.scale is not None else m.scale,
                  f.saturated_at if f.saturated_at is not None else m.saturated_at) for f in m.fallback]
        chosen = None
        for c in candidates:
            if c.oid not in data:
                data[c.oid] = self._static.get(c.oid) or await self._read(self.client.walk(c.oid))
            if data[c.oid]:
                chosen = c
                break
        self._plans[key] = chosen
        return chosen

    async def _answers(self, oids: Iterable[str]) -> set[str]:
        """Which of these OIDs the device has anything under: one GETNEXT each (capability and match probes,
        asked at identification only, never on a plain poll)."""
        out = set()
        for oid in oids:
            if await self.client.first_row(oid) is not None:
                out.add(oid)
        return out

    async def _identify(self, scalars: dict[str, Value]) -> None:
        sys_oid = as_text(scalars.get(SYS_OBJECT_ID)).strip().lstrip(".")
        sys_descr = clean_descr(as_text(scalars.get(SYS_DESCR)))
        answered: set[str] = set()
        if self.forced_profile:
            profile = self.profiles.get(self.forced_profile)
            matched_by = "set in the configuration"
        else:
            answered = await self._answers(self.profiles.match_probes(sys_oid, sys_descr))
            match = match_profile(self.profiles, sys_oid, sys_descr, answered)
            profile, matched_by = match.profile, match.reason
        # the standard tables worth asking about for this profile, each probed once, kept with the identity
        caps = self.profiles.useful_capabilities(profile)
        answered |= await self._answers(dict.fromkeys(o for c in caps for o in c.probe if o not in answered))
        found = [c.name for c in caps if any(o in answered for o in c.probe)]
        effective = self.profiles.compose(profile, found)
        ident = Identity(sys_object_id=sys_oid, sys_descr=sys_descr, profile=profile.name, matched_by=matched_by,
                         device_class=self.profiles.device_class_for(profile, found), vendor=profile.vendor,
                         capabilities=found)
        walked: dict[str, dict[str, Value]] = {}   # identity sources share columns (the chassis row)
        for fld, sources in effective.identity.items():
            value = await self._first_source(sources, scalars, walked)
            if value:
                setattr(ident, fld, value)
        if not ident.vendor:            # no profile names the maker: the enterprise that owns the sysObjectID does
            ident.vendor = vendor_for(sys_oid)
        self.profile, self.identity = effective, ident

    async def _first_source(self, sources: Sequence[Source], scalars: dict[str, Value],
                            walked: dict[str, dict[str, Value]]) -> str | None:
        for src in sources:
            if src.value is not None:
                return src.value
            assert src.oid is not None
            if src.where is not None:
                for oid in (src.oid, src.where.oid):
                    if oid not in walked:
                        walked[oid] = await self._read(self.client.walk(oid))
                col, sel = walked[src.oid], walked[src.where.oid]
                order = sorted(col, key=_oid_key)
                if src.where.same_as is not None:
                    if src.where.same_as not in scalars:
                        scalars.update(await self._read(self.client.get_many([src.where.same_as])))
                    want = as_text(scalars.get(src.where.same_as)).strip()
                    rows = [i for i in order if want and as_text(sel.get(i)).strip() == want]
                else:
                    rows = [i for i in order if src.where.accepts(as_text(sel.get(i)).strip())]
                # the first selected row that has a value (a stack's root row often has none)
                text = next((t for t in (as_text(col[i]).strip() for i in rows) if t), "")
            else:
                if src.oid not in scalars:
                    scalars.update(await self._read(self.client.get_many([src.oid])))
                if src.text and isinstance(scalars.get(src.oid), int):
                    continue
                text = as_text(scalars.get(src.oid)).strip()
                if src.oid == SYS_DESCR:
                    text = clean_descr(text)
            if text and src.regex:
                m = re.search(src.regex, text)
                if not m:
                    continue
                if src.template:
                    text = src.template.format(*([m.group(0), *m.groups()]))
                else:
                    text = m.group(1) if m.groups() else m.group(0)
                text = (text or "").strip()
            if text and _meaningful(text):
                return text
        return None

    def _withheld(self, m: Metric) -> bool:
        """A line with personal tags is not read when there is no pseudonymizer to hide them with."""
        return self.pseudonymizer is None and any(t.personal for t in m.tags)

    def _pseudonymise(self, result: DevicePoll) -> None:
        """Replace every personal tag of this poll's samples by its pseudonym (new tag dicts: the cached
        row tags keep the clear value, on this box only, for the next poll)."""
        assert self.pseudonymizer is not None and self.profile is not None
        lines: dict[str, list[Tag]] = {}
        for m in self.profile.metrics:
            lines.setdefault(m.name, []).extend(t for t in m.tags if t.personal)
        # (tag, format) pairs: equal for metrics with the same personal tags (a station's RSSI, SNR and rate), so
        # that the samples of one row share one pseudonymised tag dict below
        personal = {name: tuple((t.tag, t.format) for t in tags) for name, tags in lines.items() if tags}
        if not personal:
            return
        # Only this poll's and the last poll's clients are kept: randomised MACs come and go, and a campus's
        # clients of a whole day would hold far more than its clients of now (the HMAC is cheap to redo).
        last, pseudo = self._pseudonyms, self.pseudonymizer
        cache: dict[str, str] = {}
        # the samples of one row share their tag dict (see _build), and so share its pseudonymised copy; the
        # original is held with it so that its id is not reused during the loop
        hidden_tags: dict[tuple[int, tuple], tuple[Mapping[str, str], dict[str, str]]] = {}
        for i, smp in enumerate(result.samples):
            specs = personal.get(smp.metric)
            if specs is None:
                continue
            key = (id(smp.tags), specs)
            done = hidden_tags.get(key)
            if done is not None:
                tags = done[1]
            else:
                tags = dict(smp.tags)
                for tag, form in specs:
                    clear = tags.get(tag)
                    if clear is None:
                        continue
                    hidden = cache.get(clear) or last.get(clear)
                    if hidden is None:
                        hidden = pseudo.mac(clear) if form == "mac" else pseudo.hostname(clear)
                    tags[tag] = cache[clear] = hidden
                hidden_tags[key] = (smp.tags, tags)
            result.samples[i] = Sample(smp.time, smp.device, smp.metric, smp.value, smp.unit, tags)
        self._pseudonyms = cache

    # -- turning rows into samples ---------------------------------------------------------------

    def _build(self, result: DevicePoll, data: dict[str, dict[str, Value]], scalars: dict[str, Value],
               mono: float) -> None:
        assert self.profile is not None
        tag_cache: dict[tuple, dict[str, dict[str, str]]] = {}
        # Tags from the row index and static columns (names, aliases, types) change only when the static
        # columns are re-read, so they are kept across polls instead of being rebuilt row by row.
        stamp = (self._refreshed_at, id(self.profile), len(self._static))
        if stamp != self._static_tags_for:
            self._static_tags, self._static_samples = {}, {}
            self._tag_specs = _tag_specs_of(self.profile)
            self._static_tags_for = stamp
        for m in self.profile.metrics:
            if m.scalar is not None:
                divisor = None
                if m.denominator:       # a scalar over the sum of others (free over total memory)
                    parts = [as_number(scalars.get(d)) for d in m.denominator]
                    if any(p is None for p in parts) or not sum(p for p in parts if p is not None):
                        continue
                    divisor = sum(p for p in parts if p is not None)
                if m.scalar in scalars and self._emit(result, m, _Plan(m.scalar, m.bits, m.scale, m.saturated_at),
                                                      (), scalars[m.scalar], {}, mono, divisor):
                    result.coverage[m.key] = result.coverage.get(m.key, 0) + 1
                continue
            plan = self._plans.get(id(m))
            if plan is None:
                continue
            rows = data.get(plan.oid, {})
            # metrics with equal tag specs (every IF-MIB metric, via a YAML anchor) share one dict per row
            tags_key, static = self._tag_specs[id(m)]
            row_tags = (self._static_tags if static else tag_cache).setdefault(tags_key, {})
            selector = data.get(m.where.oid, {}) if m.where is not None else {}
            plain = m.where is None and not m.denominator and not m.row_scale and m.subtract is None
            if static and m.static and m.kind != "counter" and not (m.denominator or m.row_scale or m.subtract):
                readings = self._static_metric(result, m, plan, rows, row_tags, data, mono, selector)
            elif (m.kind == "counter" and m.rate is not None and m.regex is None and not m.skip_values
                    and plan.saturated_at is None and plain):
                readings = self._rates(result, m, plan, rows, row_tags, data, mono)
            elif m.kind == "state" and plain:
                readings = self._states(result, m, plan, rows, row_tags, data, mono)
            else:
                readings = 0
                minus = _subtrahend(m, data)
                for index, raw in rows.items():
                    if m.where is not None and not m.where.accepts(as_text(selector.get(index)).strip()):
                        continue
                    divisor = None
                    if m.denominator:
                        parts = [as_number(data.get(d, {}).get(index)) for d in m.denominator]
                        if any(p is None for p in parts) or not sum(p for p in parts if p is not None):
                            continue
                        divisor = sum(p for p in parts if p is not None)
                    if m.row_scale:
                        power = _row_power(m, index, data)
                        if power is None:
                            continue
                        divisor = (divisor or 1) * 10.0 ** -power if power < 0 else (divisor or 1) / 10 ** power
                    tags = row_tags.get(index)
                    if tags is None:
                        tags = row_tags[index] = _row_tags(m.tags, index, data)
                    readings += self._emit(result, m, plan, index, raw, tags, mono, divisor, minus)
            if readings:        # counted once per metric: Metric.key builds a string
                result.coverage[m.key] = result.coverage.get(m.key, 0) + readings

    def _static_metric(self, result: DevicePoll, m: Metric, plan: _Plan, rows: dict[str, Value],
                       row_tags: dict[str, dict[str, str]], data: dict[str, dict[str, Value]], mono: float,
                       selector: dict[str, Value]) -> int:
        """A static metric (speeds, duplex) of static rows and tags reads the same until the next refresh:
        its values are worked out once and only stamped with each poll's time; returns the readings."""
        cached = self._static_samples.get(id(m))
        if cached is None:
            out, first, readings = result.samples, len(result.samples), 0
            for index, raw in rows.items():
                if m.where is not None and not m.where.accepts(as_text(selector.get(index)).strip()):
                    continue
                tags = row_tags.get(index)
                if tags is None:
                    tags = row_tags[index] = _row_tags(m.tags, index, data)
                readings += self._emit(result, m, plan, index, raw, tags, mono)
            self._static_samples[id(m)] = ([(s.metric, s.value, s.unit, s.tags) for s in out[first:]], readings)
            return readings
        now, device, append = result.time, self.device, result.samples.append
        for name, value, unit, tags in cached[0]:
            append(Sample(now, device, name, value, unit, tags))
        return cached[1]

    def _states(self, result: DevicePoll, m: Metric, plan: _Plan, rows: dict[str, Value],
                row_tags: dict[str, dict[str, str]], data: dict[str, dict[str, Value]], mono: float) -> int:
        """_emit's path for a state column with no conditions (ifOperStatus, ifAdminStatus: a third of a
        switch's samples), with the per-column lookups done once; returns the readings."""
        assert m.mapping is not None
        now, device, append = result.time, self.device, result.samples.append
        name, unit, mapping = m.name, m.unit, m.mapping
        for index, raw in rows.items():
            tags = row_tags.get(index)
            if tags is None:
                tags = row_tags[index] = _row_tags(m.tags, index, data)
            if type(raw) is int:
                value = mapping.get(raw)
                append(Sample(now, device, name, str(raw) if value is None else value, unit, tags))
            else:                       # codes as text: the general path decides
                self._emit(result, m, plan, index, raw, tags, mono)
        return len(rows)

    def _rates(self, result: DevicePoll, m: Metric, plan: _Plan, rows: dict[str, Value],
               row_tags: dict[str, dict[str, str]], data: dict[str, dict[str, Value]], mono: float) -> int:
        """_emit's path for a counter column with a rate and no conditions (octets, errors, discards: most
        of every poll), with the per-column lookups done once; returns the readings."""
        assert m.rate is not None
        out, now, device, update = result.samples, result.time, self.device, self.rates.update_row
        oid, bits = plan.oid, plan.bits or 64
        state = self.rates.column(device, (oid,))      # the counters `_emit` keys (device, oid, index)
        name, unit, scale = m.rate.name, m.rate.unit, m.rate.scale
        readings = 0
        for index, raw in rows.items():
            tags = row_tags.get(index)
            if tags is None:
                tags = row_tags[index] = _row_tags(m.tags, index, data)
            if type(raw) is not int:        # text or float readings: the general path decides
                readings += self._emit(result, m, plan, index, raw, tags, mono)
            elif raw >= 0:
                readings += 1
                rate = update(state, index, raw, bits, mono)
                if rate is not None:
                    out.append(Sample(now, device, name, rate * scale, unit, tags))
        if plan.oid in data and not self._cut:     # read whole this poll: not left out by the deadline, not cut short
            self.rates.retain(state, rows)
        return readings

    def _emit(self, result: DevicePoll, m: Metric, plan: _Plan, index: str | tuple, raw: Value,
              tags: dict[str, str], mono: float, divisor: float | None = None, minus: float = 0.0) -> bool:
        """Append the sample(s) of one reading; return whether it was a usable reading (for coverage)."""
        out, now = result.samples, result.time
        if m.kind == "state":
            assert m.mapping is not None
            code = raw if type(raw) is int else as_number(raw)
            if code is not None:
                value: Any = m.mapping.get(code, str(code))
            else:                       # a state the device spells out ("Connect", "ng")
                text = _text_code(raw, m.regex)
                value = m.mapping.get(text, text)
            out.append(Sample(now, self.device, m.name, value, m.unit, tags))
            return True
        if m.kind == "info":
            text = (mac_text(raw) or "") if m.format == "mac" else as_text(raw).strip()
            if text:
                out.append(Sample(now, self.device, m.name, text, m.unit, tags))
            return bool(text)
        num = raw if type(raw) is int and m.regex is None else as_number(raw, m.regex)   # ints: most values
        if m.mapping is not None:       # a code that stands for a number (channel width 4 -> 80 MHz)
            mapped = m.mapping.get(num if num is not None else _text_code(raw, m.regex))
            num = mapped if isinstance(mapped, int | float) else None
        if num is None or num in m.skip_values:
            return False
        if m.kind == "counter" and (not isinstance(num, int) or num < 0):
            return False
        if plan.saturated_at is not None and num == plan.saturated_at:
            tags = {**tags, "saturated": "true"}
        oid, bits, scale = plan.oid, plan.bits, plan.scale
        if m.kind == "counter":
            if m.rate is None:
                out.append(Sample(now, self.device, m.name, num, m.unit, tags))
                return True
            rate = self.rates.update((self.device, oid, index), num, bits or 64, mono)
            if rate is not None:
                out.append(Sample(now, self.device, m.rate.name, rate * m.rate.scale, m.rate.unit, tags))
            return True
        if minus:
            num = num - minus
        if divisor is not None:
            num = num / divisor
        if scale is not None:
            num = num * scale
        if m.offset is not None:
            num = num + m.offset
        out.append(Sample(now, self.device, m.name, num, m.unit, tags))
        return True


_TRADEMARK = re.compile(r"[(\[]\s*(?:r|tm|c)\s*[)\]]", re.I)


def _meaningful(text: str) -> bool:
    """Whether a parsed identity value says something: not punctuation, not a lone trademark sign.

    Firmware strings change under the rules written for them; what such a rule then catches is a fragment
    (Maipu's `(R)`, a Linux sysDescr's `|`), which must be rejected so the next source is tried.

    >>> [_meaningful(t) for t in ("(R)", "|", "-", "S3100-28TP", "225", "(TM)", "5")]
    [False, False, False, True, True, False, True]
    """
    rest = _TRADEMARK.sub("", text)
    return bool(re.search(r"[A-Za-z0-9]", rest))


def _scalar_oids(metrics: Iterable[Metric]) -> list[str]:
    """The scalars a profile's metrics read: their own OIDs and the scalars they divide by."""
    return [o for m in metrics if m.scalar for o in (m.scalar, *m.denominator)]


def _subtrahend(m: Metric, data: dict[str, dict[str, Value]]) -> float:
    """What `subtract` takes off each reading of this poll: the column's sum over the rows its `where` selects."""
    if m.subtract is None:
        return 0.0
    sel, col = data.get(m.subtract.where.oid, {}), data.get(m.subtract.column, {})
    where = m.subtract.where
    return float(sum(as_number(v) or 0 for i, v in col.items() if where.accepts(as_text(sel.get(i)).strip())))


def _row_power(m: Metric, index: str, data: dict[str, dict[str, Value]]) -> int | None:
    """The power of ten a row's own columns set (`row_scale`); None when one of them is missing."""
    power = 0
    for r in m.row_scale:
        code = as_number(data.get(r.column, {}).get(index))
        if not isinstance(code, int):
            return None
        if r.powers is not None:
            if code not in r.powers:
                return None
            power += r.powers[code]
        else:
            power += code * (r.per_unit or 0)
    return power


# Profile id -> (the profile, weakly; Metric id -> (its _specs_key, whether all its tags are static)). The same for
# every device of a profile, so worked out once per loaded profile and shared: kept per device, the keys of a
# 356-device campus took 5 MB. An entry goes with its profile (a reload makes new ones).
_PROFILE_SPECS: dict[int, tuple[weakref.ref, dict[int, tuple[tuple, bool]]]] = {}


def _tag_specs_of(profile: Profile) -> dict[int, tuple[tuple, bool]]:
    key = id(profile)
    held = _PROFILE_SPECS.get(key)
    if held is None or held[0]() is not profile:
        specs = {id(m): (_specs_key(m.tags), all(t.index is not None or t.static for t in m.tags))
                 for m in profile.metrics}

        def gone(ref: weakref.ref, key: int = key) -> None:
            if _PROFILE_SPECS.get(key, (None,))[0] is ref:
                del _PROFILE_SPECS[key]

        held = _PROFILE_SPECS[key] = (weakref.ref(profile, gone), specs)
    return held[1]


def _specs_key(specs: tuple[Tag, ...]) -> tuple:
    """A hashable stand-in for tag specs (a Tag holds a dict), equal for equal specs."""
    return tuple((t.tag, t.value, t.index, t.column, t.index_transform, t.via, t.via_format, t.match, t.fallback,
                  tuple(t.mapping.items()) if t.mapping else None, t.regex, t.format, t.personal) for t in specs)


def _row_tags(specs: Iterable[Tag], index: str, data: dict[str, dict[str, Value]]) -> dict[str, str]:
    arcs = index.split(".")
    tags: dict[str, str] = {}
    for t in specs:
        if t.value is not None:
            value = t.value
        elif t.index is not None:
            if t.format == "text":
                value = _index_text(arcs, t.index)
            else:
                first, last = (t.index, t.index) if isinstance(t.index, int) else t.index
                value = ".".join(_arcs(arcs, first, last))
                if t.format == "mac":
                    value = mac_text(value) or ""
        else:
            lookup = index
            if t.index_transform is not None:
                lookup = ".".join(_arcs(arcs, *t.index_transform))
            elif t.via is not None:
                lookup = _via_lookup(t, data.get(t.via, {}).get(index), data)
            value = ""
            # the first column with a value that the tag's regex accepts (an lldpLocPortId that is a MAC
            # gives way to the port's description or name)
            for col in (t.column, *t.fallback):
                raw = data.get(col or "", {}).get(lookup)
                if raw in (None, b"", ""):
                    continue
                value = _tag_value(t, raw)
                if value:
                    break
        if value:
            tags[t.tag] = value
    return tags


def _tag_value(t: Tag, raw: Value) -> str:
    """One column's value as the tag `t` shows it ("" when its regex does not accept it)."""
    if t.format == "mac":
        value = mac_text(raw) or ""
    elif t.mapping is not None:
        code = as_number(raw)
        text = as_text(raw).strip()
        value = t.mapping.get(code, str(code)) if code is not None else t.mapping.get(text, text)
    else:
        value = as_text(raw).strip()
    if t.regex and value:
        mm = re.search(t.regex, value)
        if not mm:
            return ""
        value = (mm.group(1) if mm.groups() else mm.group(0)) or ""
    return value


def _arcs(arcs: list[str], first: int, last: int) -> list[str]:
    """Arcs `first`..`last` (1-based, inclusive; negative counts from the end: -1 is the last arc).

    >>> _arcs("6.104.40.207.199.233.192.0".split("."), 2, -2), _arcs(["3", "7"], -1, -1)
    (['104', '40', '207', '199', '233', '192'], ['7'])
    """
    n = len(arcs)
    lo = first - 1 if first > 0 else n + first
    hi = last if last > 0 else n + last + 1
    return arcs[lo:hi]


def _index_text(arcs: list[str], spec: int | tuple[int, int]) -> str:
    """A string index as text: `N` is length-prefixed from arc N, `[first, last]` are the characters.

    >>> _index_text("6.87.73.70.73.79.71".split("."), 1), _index_text(["97", "112", "49", "2"], (1, -2))
    ('WIFIOG', 'ap1')
    """
    try:
        if isinstance(spec, int):
            start = spec - 1 if spec > 0 else len(arcs) + spec
            length = int(arcs[start])
            octets = [int(a) for a in arcs[start + 1:start + 1 + length]]
            if len(octets) != length:
                return ""
        else:
            octets = [int(a) for a in _arcs(arcs, *spec)]
        return as_text(bytes(octets)) if all(0 <= o < 256 for o in octets) else ""
    except ValueError:
        return ""


def _via_lookup(t: Tag, raw: Value, data: dict[str, dict[str, Value]]) -> str:
    """The row `t.column` is read at, from the value of the metric row's `via` column: that value as the
    index (a MAC or a string turned into index arcs when `via_format` says so), or, with `match`, the index
    of the row whose `match` column holds the same value (an AP found by its address)."""
    if t.via_format == "mac":
        mac = mac_text(raw)
        return ".".join(str(int(b, 16)) for b in mac.split(":")) if mac else ""
    if t.via_format == "text":
        octets = raw if isinstance(raw, bytes) else as_text(raw).encode()
        return ".".join([str(len(octets)), *(str(b) for b in octets)])
    value = as_text(raw).strip()
    if t.match is None:
        return value
    key = f"~match:{t.match}"           # value -> index of the matched column, built once per poll
    rev = data.get(key)
    if rev is None:
        rev = data[key] = {as_text(v).strip(): i for i, v in data.get(t.match, {}).items()}
    found = rev.get(value, "")
    return found if isinstance(found, str) else ""


def _text_code(raw: Value, regex: str | None) -> str:
    """A code the device gives as text, after `regex` (its first group, if it has one)."""
    text = as_text(raw).strip()
    if regex is not None:
        mm = re.search(regex, text)
        text = (mm.group(1) if mm.groups() else mm.group(0)) if mm else ""
    return text or ""


def _uptime_s(scalars: dict[str, Value]) -> float | None:
    ticks = scalars.get(SYS_UPTIME)
    if isinstance(ticks, int):
        return ticks / 100.0
    engine_time = scalars.get(ENGINE_TIME)
    if isinstance(engine_time, int):
        return float(engine_time)
    return None


async def poll_many(pollers: Sequence[DevicePoller], concurrency: int = 64,
                    on_done: Callable[[DevicePoll], None] | None = None) -> list[DevicePoll]:
    """Poll devices concurrently, at most `concurrency` at a time; each keeps its own deadline. `on_done` hears
    of each poll as it ends (the technician's commands count them on the screen)."""
    sem = asyncio.Semaphore(concurrency)

    async def one(p: DevicePoller) -> DevicePoll:
        async with sem:
            result = await p.poll()
        if on_done is not None:
            on_done(result)
        return result

    return list(await asyncio.gather(*(one(p) for p in pollers)))
