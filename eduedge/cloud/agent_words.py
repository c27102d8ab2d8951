"""The agents' sentences in the page's language.

A school's agent writes its findings' explanations (`why`, the problems' `what` and `hint`, what is
`missing`) and its events in the language its box speaks (`ui.lang`, else its locale: English on most
boxes), through its gettext catalogue, which this package carries too. The page reads them back through that
catalogue and the rule packs' titles: every message becomes a pattern whose `{placeholders}` capture what
the agent put there; a sentence one matches is written again from the other language's message with the
same parts, each part read back in turn (a link's words inside a "... is down"); lists joined by the agent's
`; ` and `, ` are read part by part. Of the ways a sentence can be read, the one whose messages' own words
cover most of it wins. Names (a device, a port, a room) and what a device said (an oper status, an error)
are kept as written; a sentence no message reads (an older agent's, a device's own text) is shown as the
agent wrote it. tests/test_cloud_agent_words.py proves it on the agent's own judgements in both languages.

>>> translate("capacity tests show 31 Mbit/s (needs 100)", "zh")
'带宽测试结果为 31 Mbit/s（要求 100）'
>>> translate("带宽测试结果为 31 Mbit/s（要求 100）", "en")
'capacity tests show 31 Mbit/s (needs 100)'
>>> translate("uplink GE0/0/1 on core negotiated 100 Mbit/s", "zh")     # "core" is a switch here, not a role
'core 上的上联端口 GE0/0/1 协商速率为 100 Mbit/s'
>>> translate("sw-1 (127.0.0.1:161): no answer from the device's own stack", "zh")
"sw-1 (127.0.0.1:161): no answer from the device's own stack"
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from eduedge.core.i18n import Lang, catalogue

_FIELD = re.compile(r"\{(\w+)(?:[!:][^{}]*)?\}")
LANGS: tuple[Lang, ...] = ("en", "zh")
# A message with fewer words of its own than this ("{type} zone {zone}", "{status} from {time}") matches too
# easily: it is a reading only where what it leaves unread is a name or a number.
_WEAK = 5
_NUMBER = re.compile(r"[-+]?[\d.,]+")
# The agent's messages name their number parts alike; a reading that puts words where one of them stands
# ("{share} % of ..." taking "office zone 办公楼: 75.3" for the share) is not the agent's sentence.
_NUMBERS = {"n", "value", "threshold", "speed", "need", "share", "minutes", "snr", "rssi", "total", "samples",
            "peak", "ceiling", "bad", "mbps", "loss", "jitter", "ms", "done", "presence", "down", "percent",
            "seconds"}
# And the lengths of time (eduedge.core.i18n's durations: "7 d", "30 天", "5 min").
_SPANS = {"span", "duration"}
_SPAN = re.compile(r"[\d.,]+ ?\S{1,3}")
# Parts that name something (a device, a port, a room) are shown as the agent wrote them, even where a name is
# also a word of the catalogue (a switch called "core"); one with spaces in it is words the agent put there.
_NAMES = {"device", "far", "port", "interface", "room", "name", "host", "ap", "school", "rule", "part", "id", "file",
          "path", "subnet", "subnets", "address", "profile", "user", "oid", "module", "server", "endpoint"}
# What a device or the system said (an oper status, an error text) is never the agent's words, spaces or not.
_RAW = {"oper", "error", "errors"}
_SPACE = re.compile(r"\s")
_DEPTH = 4              # parts within parts (a link inside a problem inside a list)


@dataclass(frozen=True)
class _Message:
    pattern: re.Pattern[str]
    target: str          # the same message in the other language, to format with the parts
    anchor: str          # the longest literal piece: a cheap test before the regex
    literal: int         # how many characters are the message's own; the most specific match wins
    fields: tuple[str, ...]
    wordy: bool          # False for "{zone}: {reason}", "{a}/{b}": punctuation alone between the parts
    leads: bool          # begins with words of its own ("missing {what}"), not with a part


def _weight(c: str) -> int:
    """How much a character of a message says: a Chinese character about as much as an English word."""
    return 0 if c.isspace() else 3 if ord(c) >= 0x2E80 else 1


def _compile(source: str, target: str) -> _Message | None:
    pieces = _FIELD.split(source)           # literal, field, literal, field, ..., literal
    literals, fields = pieces[0::2], pieces[1::2]
    if set(_FIELD.findall(target)) != set(fields):
        return None                          # a translation that drops or adds a part cannot be written back
    wordy = any(re.search(r"\w", lit) for lit in literals)
    if not wordy and not all(lit.strip() for lit in literals[1:-1]):
        return None             # "{room} {status}: {line}": where one part ends and the next begins is a guess
    regex, seen = [], set()
    for i, lit in enumerate(literals):
        regex.append(re.escape(lit))
        if i < len(fields):
            name = fields[i]
            regex.append(f"(?P={name})" if name in seen else f"(?P<{name}>.+?)")
            seen.add(name)
    return _Message(re.compile("".join(regex), re.S), target, max(literals, key=len),
                    sum(_weight(c) for lit in literals for c in lit), tuple(dict.fromkeys(fields)), wordy,
                    bool(literals[0].strip()))


@functools.cache
def _joiners(lang: Lang) -> tuple[str, str]:
    """What eduedge.core.i18n's clauses() and listing() put between parts in `lang`: `; ` and `, ` in English."""
    return catalogue(lang).gettext("; "), catalogue(lang).gettext(", ")


@functools.cache
def _pairs() -> list[tuple[str, str]]:
    """(English, Chinese) of every message of the agent's catalogue and every title of the shipped rule packs."""
    # The catalogue's own table: gettext has no public way to list its messages.
    return [(k, v) for k, v in catalogue("zh")._catalog.items()   # type: ignore[attr-defined]
            if isinstance(k, str) and k and v] + _pack_titles()


@functools.cache
def _messages(to: str) -> tuple[dict[str, str], tuple[_Message, ...], tuple[_Message, ...]]:
    """(plain sentence -> its translation, messages with parts between punctuation, with words) for `to`."""
    pairs = _pairs() if to == "zh" else [(zh, en) for en, zh in _pairs()]
    plain: dict[str, str] = {}
    with_parts = []
    for source, target in pairs:
        if not _FIELD.search(source):
            plain.setdefault(source, target)
        elif (m := _compile(source, target)) is not None:
            with_parts.append(m)
    with_parts.sort(key=lambda m: -m.literal)
    return (plain, tuple(m for m in with_parts if not m.wordy), tuple(m for m in with_parts if m.wordy))


def _pack_titles() -> list[tuple[str, str]]:
    """(English, Chinese) of every title the shipped rule packs give (an agent's "{title}: not enough data")."""
    from eduedge.agent.compliance.packs import Text, load_pack, pack_paths

    out: list[tuple[str, str]] = []

    def walk(x: Any) -> None:
        if isinstance(x, Text):
            out.append((x.en, x.zh))
        elif isinstance(x, BaseModel):
            for v in x.__dict__.values():
                walk(v)
        elif isinstance(x, list | tuple):
            for v in x:
                walk(v)

    for path in pack_paths().values():
        walk(load_pack(path))
    return out


def _fill(m: _Message, parts: dict[str, str]) -> str:
    return _FIELD.sub(lambda f: parts[f[1]], m.target)


Reading = tuple[str, int]      # the text in the other language, and how much of it the catalogue's words read
# What each message used costs a reading: of two that read as much, the one made of fewer, longer messages
# ("missing {what}" holding "{metric} in {hours} (have ...)") rather than more, shorter ones ("{metric} in {hours}"
# holding "missing {what}").
_EACH = 3


@functools.lru_cache(maxsize=65536)
def _parse(text: str, to: str, depth: int) -> Reading | None:
    """The best reading of `text` into `to`: of every way the catalogue's messages (and the agent's joiners) can
    make it, the one whose own words cover the most of it; None when none can."""
    if depth > _DEPTH or not text.strip():
        return None
    if text != text.strip():                 # a part as the message left it, with its spaces: read what is inside
        inside = _parse(text.strip(), to, depth)
        return None if inside is None else (
            text[:len(text) - len(text.lstrip())] + inside[0] + text[len(text.rstrip()):], inside[1])
    if _NUMBER.fullmatch(text):
        return text, len(text)
    plain, punctuated, wordy = _messages(to)
    if text in plain:
        return plain[text], sum(map(_weight, text)) - _EACH
    best: Reading | None = None
    best_leads = False
    for m in (*wordy, *punctuated):         # on a tie, the message with words of its own
        if m.anchor not in text:
            continue
        found = m.pattern.fullmatch(text)
        if found is None or any((name in _NUMBERS and not _NUMBER.fullmatch(found[name])) or
                                (name in _SPANS and not _SPAN.fullmatch(found[name])) for name in m.fields):
            continue
        parts = {name: (found[name], sum(map(_weight, found[name])))
                 if name in _RAW or (name in _NAMES and not _SPACE.search(found[name]))
                 else _parse(found[name], to, depth + 1) for name in m.fields}
        # "{zone}: {reason}" says nothing of its own that would tell it from a device's "GE0/0/1" or an error
        # text with a colon: it is a reading only when every part reads. "{status} from {time}" says little more:
        # a part it leaves unread may be one name, not words ("... no answer from the device's own stack").
        if not m.wordy and any(v is None for v in parts.values()):
            continue
        if m.literal < _WEAK and any(v is None and _SPACE.search(found[k]) for k, v in parts.items()):
            continue
        read = (_fill(m, {k: v[0] if v else found[k] for k, v in parts.items()}),
                m.literal - _EACH + sum(v[1] for v in parts.values() if v))
        # of two as good, the one that begins with its words: "missing X in Y" is missing (X in Y), as the agent
        # puts what is missing inside "missing {what}"
        if best is None or read[1] > best[1] or (read[1] == best[1] and m.leads and not best_leads):
            best, best_leads = read, m.leads
    for joiner, into in zip(_joiners("zh" if to == "en" else "en"), _joiners(to), strict=True):  # type: ignore[arg-type]
        pieces = text.split(joiner)
        if len(pieces) < 2:
            continue
        reads = [_parse(p, to, depth) for p in pieces]
        if all(r is None for r in reads):
            continue
        read = (into.join(r[0] if r else p for p, r in zip(pieces, reads, strict=True)),
                sum(r[1] for r in reads if r) + (len(pieces) - 1) * sum(map(_weight, joiner)))
        if best is None or read[1] > best[1]:
            best = read
    return best


def translate(text: str, to: str) -> str:
    """`text`, an agent's sentence, in `to` (zh or en) where the agent's catalogue has it; else `text`."""
    if to not in LANGS:
        return text
    read = _parse(text, to, 0)
    return text if read is None else read[0]


def problems(items: list[Any], to: str) -> list[dict[str, Any]]:
    """A finding's problems with their `what` and `hint` in `to`."""
    return [{**p, **{k: translate(p[k], to) for k in ("what", "hint") if isinstance(p.get(k), str)}}
            for p in items if isinstance(p, dict)]
