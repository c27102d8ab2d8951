"""Firmware profiles: what a device is and which OIDs mean what on it, as YAML data.

A profile (`firmware_profiles/<vendor>/<name>.yaml`) says which devices it matches (sysObjectID
patterns, sysDescr regexes and exclusions), which other profiles it `extends` (files whose name starts
with `_` are mixins, never matched alone), how to read the device's identity (vendor, model, OS
version, serial: first source that answers wins; a column source picks its row with `where`) and which
metrics to poll: scalars and table columns, each with a canonical name and unit from
`firmware_profiles/canonical-metrics.yaml`, a kind (gauge, counter with its bit width, state, info), tags
from the row index, other columns (directly, by index arcs, or `via` a column holding the other row's
index) or value mappings, and optionally the rows to keep (`where`), a `denominator` and a
`saturated_at` ceiling. `tag_overrides` redefine a tag in every metric a profile inherits (a vendor whose
ifDescr carries more than the port name). `unverified` says why no recording proves a profile or a line;
`Profile.origin` says which file defined each metric line. firmware_profiles/README.md has the schema.

Rules, as in Datadog's profiles but stricter where their users got hurt (ANCHORS §2, §10):
- sysObjectID patterns are arc-aware: `*` is exactly one arc, a trailing `**` one or more arcs.
- The most specific match wins: more literal arcs, then a sysDescr condition, then `priority`.
  Two bundled profiles with the same pattern and nothing else to tell them apart is a load error.
- A site profile (from a configured directory) replaces a bundled one only when it says
  `overrides: <name>`; the same name without it is a load error.
- A profile that does not validate is refused with its file, line and key; the others still load.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from eduedge.core.yamlfile import YamlDoc, YamlFileError, load_yaml, validation_errors

BUNDLED_DIR = Path(__file__).resolve().parents[2] / "firmware_profiles"
CANONICAL_FILE = BUNDLED_DIR / "canonical-metrics.yaml"
CAPABILITIES_FILE = BUNDLED_DIR / "capabilities.yaml"

_OID_RE = re.compile(r"^\.?\d+(\.\d+)+$")


def _oid(value: str) -> str:
    value = str(value).strip()
    if not _OID_RE.match(value):
        raise ValueError(f"{value!r} is not a numeric OID")
    return value.lstrip(".")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Where(_Strict):
    """Select rows by another column of the same row: the one whose value `equals` something (the
    chassis row of ENTITY-MIB), those whose value is `not_in` a list (boards that have memory, in a vendor
    table that has a row for every fan and port too; `not_in: []` is any row with a value), or, for an
    identity source, the row whose value is the `same_as` a scalar (the AP whose address is the
    controller's own). A row without that value is not selected.
    """

    oid: str
    equals: int | str | None = None
    one_of: tuple[int | str, ...] | None = None
    not_in: tuple[int | str, ...] | None = None
    same_as: str | None = None

    @field_validator("oid", "same_as")
    @classmethod
    def _check_oid(cls, v: str | None) -> str | None:
        return None if v is None else _oid(v)

    @model_validator(mode="after")
    def _one_of(self) -> Where:
        if sum(x is not None for x in (self.equals, self.one_of, self.not_in, self.same_as)) != 1:
            raise ValueError("give exactly one of `equals`, `one_of`, `not_in` or `same_as`")
        return self

    def accepts(self, text: str) -> bool:
        """Whether a row whose `oid` column reads `text` (as text; "" when absent) is selected."""
        if not text:
            return False
        if self.equals is not None:
            return text == str(self.equals)
        if self.one_of is not None:
            return text in {str(v) for v in self.one_of}
        return text not in {str(v) for v in self.not_in or ()}


class Source(_Strict):
    """One place an identity field can come from; the first source that yields a value wins."""

    oid: str | None = None
    value: str | None = None          # a constant
    where: Where | None = None        # for a column: the row to take
    regex: str | None = None          # the first group (or whole match) is the value
    template: str | None = None       # e.g. "{1} {2}" from several groups
    text: bool = False                # only a string counts: a number there is another object (older MIBs)

    @field_validator("oid")
    @classmethod
    def _check_oid(cls, v: str | None) -> str | None:
        return None if v is None else _oid(v)

    @field_validator("regex")
    @classmethod
    def _check_regex(cls, v: str | None) -> str | None:
        if v is not None:
            re.compile(v)
        return v

    @model_validator(mode="after")
    def _one_of(self) -> Source:
        if (self.oid is None) == (self.value is None):
            raise ValueError("give exactly one of `oid` or `value`")
        return self


class Tag(_Strict):
    """A tag on every sample of a table metric, taken from the row index or another column.

    Index arcs are 1-based; a negative arc counts from the end (-1 is the last), for indexes that start with
    a string of varying length. `format: text` reads index arcs as characters: `index: N` is a length-prefixed
    string starting at arc N (SNMP's encoding of a variable-length string index), `[first, last]` takes those
    arcs as they are.
    """

    tag: str
    value: str | None = None                     # a constant: which of several columns the line reads (band)
    index: int | tuple[int, int] | None = None   # 1-based arc, or [first, last] arcs of the row index
    column: str | None = None                    # a column indexed like the metric's table …
    index_transform: tuple[int, int] | None = None  # … or by these arcs of the metric's row index
    fallback: tuple[str, ...] = ()               # other columns to try when `column` has no value
    via: str | None = None                       # … or by the value of this column of the metric's row
    via_format: Literal["mac", "text"] | None = None  # that value is a MAC / a string: index arcs of its octets
    match: str | None = None                     # … or the row whose `match` column equals the `via` value
    mapping: dict[int | str, str] | None = None
    regex: str | None = None
    static: bool = True                          # names and aliases: re-read only on the slow refresh
    format: Literal["mac", "text"] | None = None  # a MAC: 6 octets or 6 index arcs -> aa:bb:cc:dd:ee:ff
    personal: bool = False                       # a person's identifier (client MAC): pseudonymised, never in clear

    @field_validator("column", "via", "match")
    @classmethod
    def _check_col(cls, v: str | None) -> str | None:
        return None if v is None else _oid(v)

    @field_validator("fallback")
    @classmethod
    def _check_fb(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_oid(x) for x in v)

    @model_validator(mode="after")
    def _one_of(self) -> Tag:
        if sum(x is not None for x in (self.index, self.column, self.value)) != 1:
            raise ValueError("give exactly one of `index`, `column` or `value`")
        if self.via is not None and self.index_transform is not None:
            raise ValueError("give at most one of `via` or `index_transform`")
        if (self.via_format is not None or self.match is not None) and self.via is None:
            raise ValueError("`via_format` and `match` say how to use the `via` value; give `via`")
        if self.via_format is not None and self.match is not None:
            raise ValueError("give at most one of `via_format` (the value is an index) or `match` (it is a value)")
        if self.format == "text" and self.index is None:
            raise ValueError("`format: text` reads index arcs as characters; give `index`")
        if self.personal and self.mapping is not None:
            raise ValueError("a `personal` tag is an identifier, not a code to map")
        return self


class Fallback(_Strict):
    """Where to read the metric when the device lacks the primary OID (e.g. 32-bit ifInOctets)."""

    oid: str
    bits: Literal[32, 64] | None = None
    scale: float | None = None
    saturated_at: int | None = None   # as for a metric, but only when this fallback is the one read

    @field_validator("oid")
    @classmethod
    def _check_oid(cls, v: str) -> str:
        return _oid(v)


class RowScale(_Strict):
    """A power of ten that another column of the row sets, for tables whose rows carry their own unit
    (ENTITY-SENSOR-MIB: entPhySensorScale 8 is milli, 10^-3; entPhySensorPrecision 2 is two decimals, 10^-2)."""

    column: str
    powers: dict[int, int] | None = None    # the column's code -> exponent
    per_unit: int | None = None             # exponent per unit of the column's value

    @field_validator("column")
    @classmethod
    def _check(cls, v: str) -> str:
        return _oid(v)

    @model_validator(mode="after")
    def _one_of(self) -> RowScale:
        if (self.powers is None) == (self.per_unit is None):
            raise ValueError("give exactly one of `powers` (code -> exponent) or `per_unit`")
        return self


class Subtract(_Strict):
    """Other rows of a column to take off each reading: net-snmp's RAM row counts the kernel's buffers and
    page cache as used, and its 'Memory buffers' and 'Cached memory' rows say how much that is."""

    column: str
    where: Where

    @field_validator("column")
    @classmethod
    def _check(cls, v: str) -> str:
        return _oid(v)


class Rate(_Strict):
    name: str
    unit: str
    scale: float = 1.0


class Metric(_Strict):
    name: str
    kind: Literal["gauge", "counter", "state", "info"] = "gauge"
    unit: str = ""
    scalar: str | None = None
    column: str | None = None
    bits: Literal[32, 64] | None = None
    rate: Rate | None = None
    fallback: tuple[Fallback, ...] = ()
    scale: float | None = None
    regex: str | None = None
    mapping: dict[int | str, str | float] | None = None   # code -> state word (state) or number (gauge)
    skip_values: tuple[int | float | str, ...] = ()
    offset: float | None = None      # added after `scale`: -256 for a value stored as "actual plus 256"
    tags: tuple[Tag, ...] = ()
    replace: bool = False
    static: bool = False             # e.g. interface speed: changes rarely, still polled on every refresh
    where: Where | None = None       # only the rows this selects (a column indexed like the metric's)
    denominator: tuple[str, ...] = ()  # divide by the sum of these columns of the row (used/(used+free))
    row_scale: tuple[RowScale, ...] = ()   # a power of ten per row, from other columns of the row
    subtract: Subtract | None = None       # minus the sum of a column over other rows (buffers, cache)
    saturated_at: int | None = None  # a raw reading that means "this or more": tagged saturated=true
    unverified: str | None = None    # why no recording proves this line (the coverage test reads it)
    format: Literal["mac"] | None = None   # an `info` value that is a MAC (octets are not text to guess at)

    @field_validator("scalar", "column")
    @classmethod
    def _check(cls, v: str | None) -> str | None:
        return None if v is None else _oid(v)

    @field_validator("denominator")
    @classmethod
    def _check_denominator(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_oid(x) for x in v)

    @model_validator(mode="after")
    def _shape(self) -> Metric:
        if (self.scalar is None) == (self.column is None):
            raise ValueError("give exactly one of `scalar` or `column`")
        if self.kind == "counter" and self.bits is None:
            raise ValueError("a counter needs `bits: 32` or `bits: 64` (its wrap point)")
        if self.kind != "counter" and self.rate is not None:
            raise ValueError("only a counter has a `rate`")
        if self.kind == "state" and not self.mapping:
            raise ValueError("a state needs a `mapping` of codes to names")
        if self.mapping and self.kind == "state" and not all(isinstance(v, str) for v in self.mapping.values()):
            raise ValueError("a state's `mapping` gives words (`up`, `down`), not numbers")
        if self.mapping and self.kind == "gauge" and any(isinstance(v, str) for v in self.mapping.values()):
            raise ValueError("a gauge's `mapping` gives numbers (a code that stands for 20 MHz: `1: 20`)")
        if self.mapping and self.kind in ("counter", "info"):
            raise ValueError(f"a `{self.kind}` has no `mapping`")
        if self.scalar is not None and self.tags and any(t.index is not None for t in self.tags):
            raise ValueError("a scalar has no row index to tag from")
        if self.scalar is not None and (self.where is not None or self.row_scale or self.subtract is not None):
            raise ValueError("`where`, `row_scale` and `subtract` pick and combine rows; a scalar has none")
        if self.where is not None and self.where.same_as is not None:
            raise ValueError("`where: {same_as: …}` picks an identity row; a metric selects with `equals` or `not_in`")
        if self.format is not None and self.kind != "info":
            raise ValueError("`format` is for `kind: info` values (a MAC is a name, not a number)")
        return self

    @property
    def oid(self) -> str:
        return self.column or self.scalar or ""

    @property
    def key(self) -> str:
        """Names one metric line of a profile, e.g. in `DevicePoll.coverage`: 'device.cpu_percent 1.3.6…'."""
        return f"{self.name} {self.oid}"


class Match(_Strict):
    sysobjectid: tuple[str, ...] = ()
    sysdescr: tuple[str, ...] = ()
    exclude_sysdescr: tuple[str, ...] = ()
    probe: tuple[str, ...] = ()          # and, if given, the device has something under one of these OIDs

    @field_validator("probe")
    @classmethod
    def _probes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_oid(x) for x in v)

    @field_validator("sysobjectid")
    @classmethod
    def _patterns(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for p in v:
            arcs = str(p).strip().lstrip(".").split(".")
            for i, a in enumerate(arcs):
                if a == "**" and i != len(arcs) - 1:
                    raise ValueError(f"{p!r}: `**` may only end a pattern")
                if a not in ("*", "**") and not a.isdigit():
                    raise ValueError(f"{p!r}: arc {a!r} is neither a number, `*` nor `**`")
            out.append(".".join(arcs))
        return tuple(out)

    @field_validator("sysdescr", "exclude_sysdescr")
    @classmethod
    def _regexes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for r in v:
            re.compile(r)
        return v


class ProfileFile(_Strict):
    """The YAML document as written; `extends` is resolved into a `Profile`."""

    description: str = ""
    extends: tuple[str, ...] = ()
    vendor: str | None = None
    device_class: str | None = None
    priority: int = 0
    overrides: str | None = None
    match: Match = Match()
    identity: dict[Literal["vendor", "model", "os_version", "serial", "hostname"], tuple[Source, ...]] = {}
    metrics: tuple[Metric, ...] = ()
    tag_overrides: tuple[Tag, ...] = ()   # replace the tag of that name in every metric, inherited ones too
    unverified: str | None = None          # why no recording proves this profile (e.g. none is public)
    without: tuple[str, ...] = ()          # capabilities (capabilities.yaml) not to read on these devices


class Capability(_Strict):
    """A standard table a device may answer (firmware_profiles/capabilities.yaml): probed once at
    identification, read through its base mixin whatever profile matched."""

    name: str
    probe: tuple[str, ...]               # the table answers when one GETNEXT under any of these stays inside it
    mixin: str | None = None             # the base mixin that reads it (none: it only tells what the device is)
    device_class: str | None = None      # what a device no profile classes is, when it answers this
    about: str = ""

    @field_validator("probe")
    @classmethod
    def _probes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_oid(x) for x in v)


class CapabilitiesFile(_Strict):
    capabilities: tuple[Capability, ...]


@dataclass
class Profile:
    name: str
    path: str
    description: str
    vendor: str | None
    device_class: str | None
    priority: int
    match: Match
    identity: dict[str, tuple[Source, ...]]
    metrics: list[Metric]
    bundled: bool = True
    lineage: list[str] = field(default_factory=list)
    tag_overrides: dict[str, Tag] = field(default_factory=dict)
    unverified: str | None = None
    origin: dict[str, str] = field(default_factory=dict)   # Metric.key -> the profile file that defines it
    without: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()   # those read through their mixins on this device (ProfileSet.compose)

    @property
    def abstract(self) -> bool:
        return self.name.startswith("_")


class ProfileError(Exception):
    pass


@dataclass
class ProfileSet:
    """The loaded, resolved profiles, and what was refused and why."""

    profiles: dict[str, Profile]
    errors: list[str]
    canonical: dict[str, str]
    capabilities: tuple[Capability, ...] = ()
    _composed: dict[tuple[str, tuple[str, ...]], Profile] = field(default_factory=dict, repr=False)

    def concrete(self) -> list[Profile]:
        return [p for p in self.profiles.values() if not p.abstract]

    def match_probes(self, sys_object_id: str, sys_descr: str) -> list[str]:
        """The `match.probe` OIDs of the profiles this device could be: what to ask before `match_profile`."""
        oid = (sys_object_id or "").strip().lstrip(".")
        out: dict[str, None] = {}
        for p in self.concrete():
            if p.match.probe and _matches_text(p.match, sys_descr) is not False and (
                    not p.match.sysobjectid or any(pattern_matches(x, oid) for x in p.match.sysobjectid)):
                out.update(dict.fromkeys(p.match.probe))
        return list(out)

    def useful_capabilities(self, profile: Profile) -> list[Capability]:
        """The capabilities worth probing for a device of this profile: those that would add a mixin it does
        not have, or, when the profile says nothing of the device's class, tell it."""
        have = {profile.name, *profile.lineage}
        classless = profile.device_class is None
        return [c for c in self.capabilities if c.name not in profile.without and (
            (c.mixin is not None and c.mixin not in have) or (classless and c.device_class is not None))]

    def compose(self, profile: Profile, answered: Iterable[str]) -> Profile:
        """The profile with the base mixins of the capabilities the device answers added: their metrics
        (except a metric the profile already reads under that name: the profile's own wins, which is how a
        vendor profile overrides a standard table) and their identity sources, after the profile's own.
        Capabilities the profile is `without` are not added. Built once per profile and set of capabilities."""
        names = tuple(c.name for c in self.capabilities if c.name in set(answered) and c.name not in profile.without)
        key = (profile.name, names)
        done = self._composed.get(key)
        if done is not None:
            return done
        have = {profile.name, *profile.lineage}
        mixins: list[Profile] = []
        for c in self.capabilities:
            if c.name in names and c.mixin and c.mixin not in have and c.mixin in self.profiles:
                have.add(c.mixin)
                mixins.append(self.profiles[c.mixin])
        own = {m.name for m in profile.metrics}
        metrics, origin = list(profile.metrics), dict(profile.origin)
        identity = {k: tuple(v) for k, v in profile.identity.items()}
        for mx in mixins:
            for m in mx.metrics:
                if m.name in own or any(x.name == m.name and _tagset(x) == _tagset(m) for x in metrics):
                    continue
                m = _retag(m, profile.tag_overrides) if profile.tag_overrides else m
                metrics.append(m)
                origin[m.key] = mx.origin.get(m.key, mx.name)
            for fld, sources in mx.identity.items():
                if fld == "vendor" and profile.vendor:      # a profile that names the maker is not overruled
                    continue
                identity[fld] = identity.get(fld, ()) + tuple(x for x in sources if x not in identity.get(fld, ()))
        done = Profile(name=profile.name, path=profile.path, description=profile.description, vendor=profile.vendor,
                       device_class=profile.device_class, priority=profile.priority, match=profile.match,
                       identity=identity, metrics=metrics, bundled=profile.bundled,
                       lineage=[*profile.lineage, *(m.name for m in mixins)], tag_overrides=profile.tag_overrides,
                       unverified=profile.unverified, origin=origin, without=profile.without, capabilities=names)
        self._composed[key] = done
        return done

    def device_class_for(self, profile: Profile, answered: Iterable[str]) -> str:
        """The profile's class; for a profile that has none (generic), the class of the first capability
        (in capabilities.yaml's order) the device answers that tells one, else `other`."""
        if profile.device_class is not None:
            return profile.device_class
        got = set(answered)
        return next((c.device_class for c in self.capabilities if c.name in got and c.device_class), "other")

    def get(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            raise ProfileError(f"no profile named {name!r} (known: {', '.join(sorted(self.profiles))})") from None


def load_canonical(path: Path = CANONICAL_FILE) -> dict[str, str]:
    """Canonical metric name -> unit."""
    doc = load_yaml(path)
    return {name: str(spec.get("unit", "")) for name, spec in (doc.data or {}).get("metrics", {}).items()}


def _read(path: Path) -> tuple[ProfileFile | None, YamlDoc | None, list[str]]:
    try:
        doc = load_yaml(path)
    except YamlFileError as e:
        return None, None, e.problems
    if not isinstance(doc.data, dict):
        return None, doc, [f"{path}:1: a profile is a YAML mapping"]
    try:
        return ProfileFile.model_validate(doc.data), doc, []
    except ValidationError as e:
        return None, doc, validation_errors(doc, e)


def _resolve(name: str, files: dict[str, tuple[Path, ProfileFile]], stack: tuple[str, ...] = ()) -> Profile:
    if name in stack:
        raise ProfileError(f"cyclic extends: {' -> '.join((*stack, name))}")
    if name not in files:
        raise ProfileError(f"extends unknown profile {name!r}")
    path, pf = files[name]
    metrics: list[Metric] = []
    identity: dict[str, tuple[Source, ...]] = {}
    vendor, device_class = None, None
    lineage = []
    overrides: dict[str, Tag] = {}
    origin: dict[str, str] = {}
    without: list[str] = []
    for base in pf.extends:
        b = _resolve(base, files, (*stack, name))
        lineage += [*b.lineage, b.name]
        for m in b.metrics:
            metrics = [x for x in metrics if x.name != m.name or _tagset(x) != _tagset(m)] + [m]
        for k, v in b.identity.items():
            identity[k] = v
        vendor = b.vendor or vendor
        device_class = b.device_class or device_class
        overrides.update(b.tag_overrides)
        origin.update(b.origin)
        without += b.without
    for m in pf.metrics:
        clash = [x for x in metrics if x.name == m.name and _tagset(x) == _tagset(m)]
        if clash and not m.replace:
            raise ProfileError(f"metric {m.name!r} is already defined by a base profile; say `replace: true`")
        metrics = [x for x in metrics if x not in clash] + [m]
        origin[m.key] = name
    identity.update({k: v for k, v in pf.identity.items()})
    overrides.update({t.tag: t for t in pf.tag_overrides})
    if overrides:
        metrics = [_retag(m, overrides) for m in metrics]
    return Profile(name=name, path=str(path), description=pf.description, vendor=pf.vendor or vendor,
                   device_class=pf.device_class or device_class, priority=pf.priority, match=pf.match,
                   identity=identity, metrics=metrics, lineage=lineage, tag_overrides=overrides,
                   unverified=pf.unverified, origin={m.key: origin.get(m.key, name) for m in metrics},
                   without=tuple(dict.fromkeys((*without, *pf.without))))


def _retag(m: Metric, overrides: dict[str, Tag]) -> Metric:
    """The metric with each tag that an override names replaced by the override (a scalar keeps its own)."""
    if m.scalar is not None or not any(t.tag in overrides for t in m.tags):
        return m
    return m.model_copy(update={"tags": tuple(overrides.get(t.tag, t) for t in m.tags)})


def _tagset(m: Metric) -> tuple[str, ...]:
    """What tells two lines of one metric apart: their tag names, and the values of constant tags."""
    return tuple(sorted(t.tag if t.value is None else f"{t.tag}={t.value}" for t in m.tags))


def _check_units(p: Profile, canonical: dict[str, str]) -> list[str]:
    problems = []
    for m in p.metrics:
        names = [(m.name, m.unit)] + ([(m.rate.name, m.rate.unit)] if m.rate else [])
        for n, unit in names:
            if n not in canonical:
                problems.append(f"metric {n!r} is not a canonical metric (see {CANONICAL_FILE.name})")
            elif canonical[n] != unit:
                problems.append(f"metric {n!r} must have unit {canonical[n]!r}, not {unit!r}")
    return problems


def load_profiles(extra_dirs: Iterable[Path | str] = (), bundled_dir: Path = BUNDLED_DIR) -> ProfileSet:
    """Load the bundled profiles and any site profile directories.

    Broken profiles are left out and described in `ProfileSet.errors`; nothing raises for one bad file.
    """
    canonical = load_canonical(bundled_dir / CANONICAL_FILE.name)
    errors: list[str] = []
    files: dict[str, tuple[Path, ProfileFile]] = {}
    bundled_names: set[str] = set()
    sources = [(p, True) for p in sorted(bundled_dir.glob("*/*.yaml"))]
    for d in extra_dirs:
        sources += [(p, False) for p in sorted(Path(d).glob("**/*.yaml"))]
    for path, is_bundled in sources:
        pf, _doc, problems = _read(path)
        if problems or pf is None:
            errors += [f"profile refused: {x}" for x in problems]
            continue
        name = path.stem
        if name in files and (is_bundled or pf.overrides != name):
            errors.append(f"profile refused: {path}: name {name!r} is already taken by {files[name][0]}"
                          + ("" if is_bundled else f"; to replace it say `overrides: {name}`"))
            continue
        if pf.overrides and pf.overrides not in files:
            errors.append(f"profile refused: {path}: overrides unknown profile {pf.overrides!r}")
            continue
        if pf.overrides:
            files.pop(pf.overrides, None)
            bundled_names.discard(pf.overrides)
        files[name] = (path, pf)
        if is_bundled:
            bundled_names.add(name)

    profiles: dict[str, Profile] = {}
    for name in files:
        try:
            p = _resolve(name, files)
        except ProfileError as e:
            errors.append(f"profile refused: {files[name][0]}: {e}")
            continue
        if not p.abstract:
            problems = _check_units(p, canonical)
            if problems:
                errors += [f"profile refused: {p.path}: {x}" for x in problems]
                continue
        p.bundled = name in bundled_names
        profiles[name] = p

    errors += _refuse_ties(profiles)
    capabilities, problems = _load_capabilities(bundled_dir / CAPABILITIES_FILE.name, profiles)
    errors += problems
    for p in profiles.values():
        unknown = sorted(set(p.without) - {c.name for c in capabilities})
        if unknown and capabilities:
            errors.append(f"profile {p.path}: `without` names no capability: {', '.join(unknown)} "
                          f"(see {CAPABILITIES_FILE.name})")
    return ProfileSet(profiles, errors, canonical, capabilities)


def _load_capabilities(path: Path, profiles: dict[str, Profile]) -> tuple[tuple[Capability, ...], list[str]]:
    if not path.exists():
        return (), []
    try:
        doc = load_yaml(path)
    except YamlFileError as e:
        return (), [f"capabilities refused: {x}" for x in e.problems]
    try:
        caps = CapabilitiesFile.model_validate(doc.data).capabilities
    except ValidationError as e:
        return (), [f"capabilities refused: {x}" for x in validation_errors(doc, e)]
    errors = [f"capabilities refused: {path}: {c.name}: mixin {c.mixin!r} is not a loaded profile"
              for c in caps if c.mixin is not None and c.mixin not in profiles]
    return (() if errors else caps), errors


def _refuse_ties(profiles: dict[str, Profile]) -> list[str]:
    """Two concrete profiles with one pattern and nothing else to tell them apart: refuse the later."""
    errors = []
    seen: dict[tuple[str, tuple[str, ...], tuple[str, ...], int], str] = {}
    for name in sorted(profiles):
        p = profiles[name]
        if p.abstract:
            continue
        for pattern in p.match.sysobjectid:
            key = (pattern, p.match.sysdescr, p.match.probe, p.priority)
            other = seen.get(key)
            if other and other != name:
                errors.append(f"profile refused: {p.path}: sysobjectid {pattern!r} is also matched by "
                              f"{profiles[other].path} with the same sysdescr rules, probes and priority; "
                              "make one more specific or give it a `priority`")
                profiles.pop(name)
                break
            seen[key] = name
    return errors


# --- matching -------------------------------------------------------------------------------------

def pattern_matches(pattern: str, oid: str) -> bool:
    """Arc-aware glob: `*` is one arc, a trailing `**` is one or more arcs.

    >>> pattern_matches("1.3.6.1.4.1.2011.**", "1.3.6.1.4.1.2011.2.23.291")
    True
    >>> pattern_matches("1.3.6.1.4.1.2011.**", "1.3.6.1.4.1.20110.1")
    False
    >>> pattern_matches("1.3.6.1.4.1.9.1.*", "1.3.6.1.4.1.9.1.2494.1")
    False
    """
    p = pattern.split(".")
    o = oid.strip().lstrip(".").split(".")
    if p and p[-1] == "**":
        head = p[:-1]
        return len(o) > len(head) and all(a in ("*", b) for a, b in zip(head, o, strict=False))
    return len(p) == len(o) and all(a in ("*", b) for a, b in zip(p, o, strict=True))


def specificity(pattern: str) -> tuple[int, int]:
    arcs = pattern.split(".")
    literal = sum(1 for a in arcs if a not in ("*", "**"))
    return literal, -sum(1 for a in arcs if a == "**")


@dataclass
class MatchResult:
    profile: Profile
    pattern: str | None
    sysdescr_rule: str | None
    reason: str


def _matches_text(m: Match, sys_descr: str) -> str | bool | None:
    """False when sysDescr rules out the profile; else the sysdescr rule that matched (None: it has none)."""
    if any(re.search(r, sys_descr or "") for r in m.exclude_sysdescr):
        return False
    if m.sysdescr:
        return next((r for r in m.sysdescr if re.search(r, sys_descr or "")), False)
    return None


def match_profile(profiles: ProfileSet, sys_object_id: str, sys_descr: str,
                  answered: Iterable[str] = ()) -> MatchResult:
    """Pick the profile for a device from its sysObjectID and sysDescr, and, for profiles with a
    `match.probe`, the probe OIDs the device `answered` (ProfileSet.match_probes says which to ask);
    fall back to `generic`. A condition that held (a sysDescr rule, a probe) makes a match more specific."""
    oid = (sys_object_id or "").strip().lstrip(".")
    got = set(answered)
    candidates: list[tuple[tuple[int, int, int, int], Profile, str, str | None, str | None]] = []
    for p in profiles.concrete():
        m = p.match
        descr_rule = _matches_text(m, sys_descr)
        if descr_rule is False:
            continue
        probe = next((x for x in m.probe if x in got), None)
        if m.probe and probe is None:
            continue
        rule = descr_rule if isinstance(descr_rule, str) else None
        held = (1 if rule else 0) + (1 if probe else 0)
        for pattern in m.sysobjectid:
            if pattern_matches(pattern, oid):
                lit, wild = specificity(pattern)
                candidates.append(((lit, wild, held, p.priority), p, pattern, rule, probe))
        if not m.sysobjectid and held:
            candidates.append(((0, 0, held, p.priority), p, "", rule, probe))
    if not candidates:
        generic = profiles.get("generic")
        return MatchResult(generic, None, None, f"no profile matches sysObjectID {oid or '(none)'}; "
                           "polled with the generic IF-MIB profile")
    candidates.sort(key=lambda c: c[0], reverse=True)
    best = candidates[0]
    ties = [c for c in candidates[1:] if c[0] == best[0] and c[1].name != best[1].name]
    if ties:
        raise ProfileError(f"sysObjectID {oid} matches {best[1].name} ({best[2]}) and {ties[0][1].name} "
                           f"({ties[0][2]}) equally; make one of them more specific")
    _, prof, pattern, rule, probe = best
    why = []
    if pattern:
        why.append(f"sysObjectID {oid} matches {pattern}")
    if rule:
        why.append(f"sysDescr matches /{rule}/")
    if probe:
        why.append(f"the device answers under {probe}")
    return MatchResult(prof, pattern or None, rule, "; ".join(why))
