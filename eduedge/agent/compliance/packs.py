"""Rule packs: the standards as data (eduedge/config/standards/<pack>.yaml), validated with file and line.

A pack is one document's rules. Each rule says what it applies to (school types), what it measures (the
canonical input it needs), its threshold and unit, which kind of judgement it is (`link-speed`,
`capacity`, `statistic`, `wifi-coverage`, `wifi-access`, `device-ratio`, `all-of` for a rule made of
parts, `region` for a rule only the city cloud can judge, `live-class` for a classroom's readiness for a live
lesson of the rule's `profile`), and its source: the document, the clause,
the words in Chinese and an English gloss. A number the project chose because the source gives none
says so in `proposal`.

A school names its packs in `standards.packs`; a city may set a threshold in `standards.overrides`
(by rule id, or `rule-id.part` for a part), and the finding then says it judged the city's number.

>>> rs = load_packs(["hebei-2019"])
>>> [r.id for r in rs.for_school("primary")], [r.id for r in rs.for_school("kindergarten")]
(['hebei-2019.egress'], [])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from eduedge.agent.config import STANDARDS_DIR, SchoolType
from eduedge.core.i18n import _, language
from eduedge.core.model import Duration, Strict
from eduedge.core.yamlfile import YamlFileError, load_yaml, validation_errors

Kind = Literal["link-speed", "capacity", "statistic", "wifi-coverage", "wifi-access", "device-ratio", "all-of",
               "region", "live-class"]
Op = Literal[">=", ">", "<=", "<"]
SCHOOL_TYPES: tuple[str, ...] = SchoolType.__args__  # type: ignore[attr-defined]


class PackError(YamlFileError):
    """Rule packs that cannot be used; `problems` name the file, line and field (or the config key)."""


class Text(Strict):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)

    def local(self) -> str:
        """The text in the reader's language (the Chinese is the source document's wording)."""
        return self.zh if language() == "zh" else self.en


class Source(Strict):
    document: Text
    issuer: str | None = None
    number: str | None = None          # the document number (文号), when it has one
    date: str | None = None
    clause: str = Field(min_length=1)  # where in the document
    quote: str = Field(min_length=1)   # the words, in Chinese, as the source gives them
    gloss: str = Field(min_length=1)   # what they say, in English
    seed: str | None = None            # seeds/<seed>_*.txt when the text is one of the project's seeds
    evidence: Literal["seed", "secondary"] = "seed"
    url: str | None = None


class Reference(Strict):
    """A public source a number of the project's is drawn from (a profile's, which no policy gives)."""

    title: str = Field(min_length=1)
    url: str = Field(pattern=r"^https?://")
    says: str = Field(min_length=1)     # what it gives that the number rests on


class LiveProfile(Strict):
    """What one kind of live lesson needs of a classroom's path to the live-class server (live_class.py)."""

    name: Text
    down_mbps: float = Field(ge=0)              # what the room receives
    up_mbps: float = Field(ge=0)                # what it sends
    one_way_delay_ms: float = Field(gt=0)       # mouth to ear, both schools' legs
    jitter_ms: float = Field(gt=0)
    loss_percent: float = Field(gt=0, le=100)
    max_load_percent: float = Field(75.0, gt=0, le=100)   # of a link, the lesson included, at lesson peaks
    references: list[Reference] = Field(min_length=1)


class RuleBase(Strict):
    model_config = ConfigDict(extra="forbid")

    title: Text
    kind: Kind
    measures: str = ""                 # the canonical metric (input) the rule reads
    threshold: float | None = None
    unit: str = ""
    op: Op = ">="
    window: Duration = 86400.0
    hours: Literal["all", "school"] = "all"
    impact: Literal["school", "building", "room"] = "school"
    proposal: str | None = None        # set when the number is the project's proposal, not the source's
    source: Source | None = None
    # parameters of some kinds
    links: Literal["backbone", "classroom"] | None = None
    statistic: Literal["mean", "median", "p20", "p95", "percent-true"] | None = None
    relative_to: str | None = None     # statistic of `measures` divided by the same statistic of this metric
    min_samples: int = Field(1, ge=1)
    zone_types: list[str] | None = None  # Wi-Fi zone types that must be covered; ["all"] for every zone
    zone_share: float = Field(90.0, gt=0, le=100)   # % of a zone's client-minutes with a usable signal
    min_client_minutes: int = Field(300, ge=1)      # fewer in the window: the zone is unknown, not covered
    presence: float = Field(99.0, gt=0, le=100)     # % of the window at least one AP of the zone is up
    phy_factor: float = Field(2.0, gt=0)            # negotiated PHY rate that stands for the threshold
    profile: LiveProfile | None = None              # live-class: the lesson the classrooms are judged for
    city_override_of: float | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _kind_needs(self) -> RuleBase:
        needs: dict[str, tuple[str, ...]] = {
            "link-speed": ("measures", "threshold", "links"), "capacity": ("measures", "threshold"),
            "statistic": ("measures", "threshold", "statistic"), "wifi-coverage": ("measures", "zone_types"),
            "wifi-access": ("measures", "threshold"), "device-ratio": ("measures", "threshold"),
            "all-of": (), "region": ("measures",), "live-class": ("profile", "threshold")}
        missing = [f for f in needs[self.kind] if getattr(self, f) in (None, "")]
        if missing:
            raise ValueError(f"a `{self.kind}` rule needs {', '.join(f'`{m}`' for m in missing)}")
        return self


class Part(RuleBase):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")

    @model_validator(mode="after")
    def _no_nesting(self) -> Part:
        if self.kind in ("all-of", "region"):
            raise ValueError(f"a part cannot be of kind `{self.kind}`")
        return self


class Rule(RuleBase):
    id: str = Field(pattern=r"^[a-z0-9-]+\.[a-z0-9-]+$")
    applies_to: list[SchoolType] | Literal["all"]
    scope: Literal["school", "region"] = "school"
    deadline: str | None = None
    source: Source
    parts: list[Part] = Field(default_factory=list)

    @model_validator(mode="after")
    def _parts(self) -> Rule:
        if (self.kind == "all-of") != bool(self.parts):
            raise ValueError("`parts` go with `kind: all-of`, and an all-of rule needs them")
        if (self.kind == "region") != (self.scope == "region"):
            raise ValueError("a rule judged across schools has `kind: region` and `scope: region`")
        ids = [p.id for p in self.parts]
        if len(ids) != len(set(ids)):
            raise ValueError("two parts share an id")
        return self

    def applies_to_type(self, school_type: str) -> bool:
        return self.applies_to == "all" or school_type in self.applies_to

    def part_id(self, part: Part) -> str:
        return f"{self.id}.{part.id}"


class Pack(Strict):
    pack: str = Field(pattern=r"^[a-z0-9-]+$")
    title: Text
    jurisdiction: str
    evidence_note: str | None = None
    rules: list[Rule] = Field(min_length=1)


def load_pack(path: Path | str) -> Pack:
    """Read and validate one pack file; raise `PackError` with a line per problem."""
    try:
        doc = load_yaml(path)
    except YamlFileError as e:
        raise PackError(path, e.problems) from None
    if not isinstance(doc.data, dict):
        raise PackError(path, [_("{path}:1: a rule pack must be a YAML mapping").format(path=path)])
    # Top-level keys starting with `_` hold YAML anchors (the document every rule cites), nothing else.
    data = {k: v for k, v in doc.data.items() if not str(k).startswith("_")}
    try:
        pack = Pack.model_validate(data)
    except ValidationError as e:
        raise PackError(path, validation_errors(doc, e)) from None
    problems = []
    if pack.pack != Path(path).stem:
        problems.append(_("{path}:{line}: pack: {pack} must match the file name {stem}").format(
            path=path, line=doc.line_of(("pack",)) or 1, pack=repr(pack.pack), stem=repr(Path(path).stem)))
    seen: set[str] = set()
    for i, r in enumerate(pack.rules):
        where = f"{path}:{doc.line_of(('rules', i, 'id')) or 1}: rules[{i}].id"
        if not r.id.startswith(pack.pack + "."):
            problems.append(_("{where}: {rule} must start with the pack name {pack}").format(
                where=where, rule=repr(r.id), pack=repr(pack.pack)))
        if r.id in seen:
            problems.append(_("{where}: {rule} is used twice").format(where=where, rule=repr(r.id)))
        seen.add(r.id)
    if problems:
        raise PackError(path, problems)
    return pack


def pack_paths(dirs: Iterable[Path] = ()) -> dict[str, Path]:
    """{pack name: file} of the bundled packs, then of `dirs` (a later directory's pack of the same name wins)."""
    out: dict[str, Path] = {}
    for d in (STANDARDS_DIR, *dirs):
        for p in sorted(Path(d).glob("*.yaml")):
            out[p.stem] = p
    return out


@dataclass
class RuleSet:
    """The rules of the named packs, with the city's overrides applied."""

    packs: list[Pack] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    overrides: dict[str, float] = field(default_factory=dict)

    def for_school(self, school_type: str) -> list[Rule]:
        """The rules the agent judges for a school of this type (region rules are the cloud's)."""
        return [r for r in self.rules if r.scope == "school" and r.applies_to_type(school_type)]


def _override(rule: Rule, overrides: Mapping[str, float], used: set[str]) -> Rule:
    changes: dict[str, object] = {}
    if rule.id in overrides:
        used.add(rule.id)
        changes.update(threshold=float(overrides[rule.id]), city_override_of=rule.threshold)
    parts = []
    for p in rule.parts:
        key = rule.part_id(p)
        if key in overrides:
            used.add(key)
            p = p.model_copy(update={"threshold": float(overrides[key]), "city_override_of": p.threshold})
        parts.append(p)
    if parts:
        changes["parts"] = parts
    return rule.model_copy(update=changes) if changes else rule


def load_packs(names: Sequence[str], dirs: Iterable[Path] = (), overrides: Mapping[str, float] | None = None
               ) -> RuleSet:
    """The rules of the packs `names` (bundled, or from `dirs`), overrides applied; `PackError` lists
    every problem: a pack that is missing or invalid, an override of no rule or of a rule without a number."""
    paths = pack_paths(dirs)
    problems: list[str] = []
    packs: list[Pack] = []
    for name in names:
        if name not in paths:
            problems.append(_("standards.packs: no rule pack {name} (available: {available})").format(
                name=repr(name), available=", ".join(sorted(paths))))
            continue
        try:
            packs.append(load_pack(paths[name]))
        except PackError as e:
            problems += e.problems
    overrides = dict(overrides or {})
    used: set[str] = set()
    rules = [_override(r, overrides, used) for p in packs for r in p.rules]
    known = {r.id: r for r in rules} | {r.part_id(p): p for r in rules for p in r.parts}
    for key in sorted(set(overrides) - used):
        problems.append(_("standards.overrides: {key} is no rule (or rule.part) of the packs {packs}").format(
            key=repr(key), packs=", ".join(names) or _("(none named)")))
    for key in sorted(used):
        if known[key].kind in ("all-of", "region"):
            problems.append(_("standards.overrides: {key} has no threshold of its own (override its parts)").format(
                key=repr(key)))
    if problems:
        raise PackError("standards", problems)
    return RuleSet(packs, rules, overrides)
