"""YAML files whose errors point at a line: configuration, firmware profiles and rule packs.

A technician fixing `/etc/eduedge/eduedge.yaml` needs "line 42, snmp.devices[3].host: ...", not a
Python traceback. `load_yaml` keeps the line of every mapping key and sequence item, and
`validation_errors` turns a pydantic `ValidationError` into one such line per problem.

Limits, checked on the parser's events before anything is built (the parser is iterative; building and
everything after it recurse once per level): at most MAX_DEPTH levels of nesting, no alias inside the node
its anchor names (`a: &a [*a]` is a loop), and at most MAX_NODES nodes once aliases are expanded (a
"billion laughs" file is a few lines long). Each is a `YamlFileError` with the file and line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from eduedge.core.i18n import N_, _, language

Loc = tuple[str | int, ...]
MAX_DEPTH = 64
MAX_NODES = 200_000


class YamlFileError(Exception):
    """A YAML file that cannot be used; `problems` are ready-to-print lines naming file and line."""

    def __init__(self, path: Path | str, problems: Sequence[str]):
        self.path = str(path)
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass
class YamlDoc:
    path: str
    data: Any
    lines: dict[Loc, int]

    def line_of(self, loc: Loc) -> int | None:
        """The line of `loc` or of its nearest enclosing key that has one."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*loc, str(key.value))
            lines[child] = key.start_mark.line + 1
            _walk(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*loc, i)
            lines[child] = item.start_mark.line + 1
            _walk(item, child, lines)


def _check_limits(text: str, path: Path | str) -> None:
    """Refuse YAML that nests too deep, loops through an alias or expands past MAX_NODES (see module doc)."""
    depth = 0
    open_anchors: list[str | None] = []        # the anchor of every open collection (None: none)
    sizes: dict[str, int] = {}                 # nodes an anchor's node expands to
    counts: list[int] = [0]                    # nodes counted inside each open collection, and the document
    total = 0

    def where(ev: yaml.Event) -> str:
        m = ev.start_mark
        return f"{path}:{m.line + 1}:{m.column + 1}" if m else str(path)

    for ev in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(ev, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise YamlFileError(path, [_("{where}: nested deeper than {depth} levels").format(
                    where=where(ev), depth=MAX_DEPTH)])
            open_anchors.append(ev.anchor)
            counts.append(1)
        elif isinstance(ev, yaml.CollectionEndEvent):
            depth -= 1
            anchor, n = open_anchors.pop(), counts.pop()
            counts[-1] += n
            if anchor is not None:
                sizes[anchor] = n
        elif isinstance(ev, yaml.ScalarEvent):
            counts[-1] += 1
            if ev.anchor is not None:
                sizes[ev.anchor] = 1
        elif isinstance(ev, yaml.AliasEvent):
            if ev.anchor in open_anchors:
                raise YamlFileError(path, [_("{where}: alias *{anchor} lies inside the node its anchor &{anchor} "
                                             "names (a loop)").format(where=where(ev), anchor=ev.anchor)])
            counts[-1] += sizes.get(ev.anchor, 1)
        if sum(counts) > MAX_NODES or total > MAX_NODES:
            raise YamlFileError(path, [_("{where}: more than {n} values once its aliases are expanded").format(
                where=where(ev), n=MAX_NODES)])
        if isinstance(ev, yaml.DocumentEndEvent):
            total += counts[0]
            counts = [0]


def parse_yaml(text: str, path: Path | str = "<string>") -> YamlDoc:
    """Parse YAML text, remembering where every key and item sits.

    >>> doc = parse_yaml("a:\\n  b: [1, 2]\\n")
    >>> doc.data, doc.line_of(("a", "b", 1))
    ({'a': {'b': [1, 2]}}, 2)
    """
    try:
        _check_limits(text, path)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise YamlFileError(path, [_("{where}: not valid YAML: {problem}").format(
            where=where, problem=e.problem or e.context)]) from None
    except yaml.YAMLError as e:
        raise YamlFileError(path, [_("{where}: not valid YAML: {problem}").format(where=path, problem=e)]) from None
    lines: dict[Loc, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return YamlDoc(str(path), data, lines)


def load_yaml(path: Path | str) -> YamlDoc:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise YamlFileError(path, [_("{path}: cannot read: {error}").format(path=path, error=e.strerror)]) from None
    except UnicodeDecodeError as e:
        raise YamlFileError(path, [_("{path}: not UTF-8 text ({reason} at byte {byte})").format(
            path=path, reason=e.reason, byte=e.start)]) from None
    return parse_yaml(text, p)


def dotted(loc: Loc) -> str:
    """`("snmp", "devices", 3, "host")` -> `snmp.devices[3].host`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


# pydantic's commonest errors (by type) in the reader's language, with the values pydantic gives (its ctx)
_PYDANTIC = {
    "literal_error": N_("must be one of {expected}"), "string_pattern_mismatch": N_("does not match {pattern}"),
    "int_parsing": N_("must be a whole number"), "int_type": N_("must be a whole number"),
    "int_from_float": N_("must be a whole number"), "float_parsing": N_("must be a number"),
    "float_type": N_("must be a number"), "bool_parsing": N_("must be true or false"),
    "bool_type": N_("must be true or false"), "string_type": N_("must be text"),
    "list_type": N_("must be a list"), "dict_type": N_("must be a mapping"), "model_type": N_("must be a mapping"),
    "greater_than": N_("must be greater than {gt}"), "greater_than_equal": N_("must be at least {ge}"),
    "less_than": N_("must be less than {lt}"), "less_than_equal": N_("must be at most {le}"),
    "string_too_short": N_("must have at least {min_length} characters"),
    "too_short": N_("must have at least {min_length} items"),
}


def _shown(v: object) -> str:
    return str(v).replace("'", "").replace(" or ", ", ") if isinstance(v, str) else str(v)


def validation_errors(doc: YamlDoc, err: ValidationError, prefix: Loc = ()) -> list[str]:
    """One line per pydantic error: `FILE:LINE: field.path: message`."""
    out = []
    for e in err.errors(include_url=False):
        # pydantic puts the tag of a tagged union or a validator name into `loc`; drop what is not in the file
        loc = tuple(p for p in (*prefix, *e["loc"]) if not (isinstance(p, str) and p.startswith("function-")))
        line = doc.line_of(loc)
        where = f"{doc.path}:{line}" if line else doc.path
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = _("unknown field (a typo?)")
        elif e["type"] == "missing":
            msg = _("required field is missing")
        elif e["type"] == "value_error" and language() != "en" and (e.get("ctx") or {}).get("error"):
            msg = str(e["ctx"]["error"])      # our validators' own words, without pydantic's English "Value error, "
        elif e["type"] in _PYDANTIC and language() != "en":
            # pydantic speaks English only; in another language its common errors are said here, in English
            # pydantic's own words stay
            msg = _(_PYDANTIC[e["type"]]).format(**{k: _shown(v) for k, v in (e.get("ctx") or {}).items()})
        out.append(f"{where}: {dotted(loc)}: {msg}")
    return out


M = TypeVar("M", bound=BaseModel)


def load_model(path: Path | str, model: type[M], error: type[YamlFileError] = YamlFileError) -> tuple[YamlDoc, M]:
    """Read a YAML mapping and validate it as `model`; raise `error` listing every problem with its line."""
    try:
        doc = load_yaml(path)
    except YamlFileError as e:
        raise error(path, e.problems) from None
    if not isinstance(doc.data, dict):
        raise error(path, [_("{path}:1: the configuration must be a YAML mapping").format(path=path)])
    try:
        return doc, model.model_validate(doc.data)
    except ValidationError as e:
        raise error(path, validation_errors(doc, e)) from None
