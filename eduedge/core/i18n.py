"""The technician's language: Simplified Chinese or English, through gettext catalogues.

Every message a person reads is written in English in the code and wrapped, its variable parts named so
that the translation may put them in its own order:

    _("{answered} of {total} devices answered").format(answered=a, total=n)
    N_("Check the school against its standards now")    # marked where it is defined, translated where shown

The catalogue is eduedge/locale/zh_CN/LC_MESSAGES/eduedge.po (its compiled .mo ships in the package);
Babel manages it: `make messages` extracts the wrapped texts into eduedge/locale/eduedge.pot, merges them
into the .po and compiles it. tests/test_i18n.py fails while a message has no Chinese or the .pot is stale.
The lookup at run time is the standard library's gettext.

Which language: `--lang` on the command line, else the configuration's `ui.lang`, else the locale (the
first of LC_ALL, LC_MESSAGES, LANG that is set; zh_CN and every other zh* is Chinese), else English. The
configuration comes before the locale because a school's box runs with whatever locale its installer chose
(often C.UTF-8 or en_US.UTF-8), while `ui.lang` is the site's choice; a technician who wants the other
language says `--lang`. The language is the process's (the daemon's threads all speak the configuration's).

>>> with using("zh"):
...     _("{answered} of {total} devices answered").format(answered=3, total=4)
'4 台设备中 3 台应答'
>>> _("{answered} of {total} devices answered").format(answered=3, total=4)
'3 of 4 devices answered'
>>> normalise("zh_CN.UTF-8"), normalise("en-US"), from_locale({"LANG": "C.UTF-8"})
('zh', 'en', None)
"""

from __future__ import annotations

import functools
import gettext
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Lang = Literal["en", "zh"]
LANGUAGES: tuple[Lang, ...] = ("en", "zh")
DOMAIN = "eduedge"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
_GETTEXT_NAME = {"zh": "zh_CN"}          # the catalogue's folder under LOCALE_DIR
_LOCALE_VARS = ("LC_ALL", "LC_MESSAGES", "LANG")   # POSIX order: the first that is set decides


def normalise(name: str) -> Lang:
    """`zh`, `zh_CN`, `zh-CN`, `zh_CN.UTF-8`, `zh_TW` -> `zh`; `en`, `en_US` -> `en`; anything else: ValueError."""
    base = name.strip().split(".", 1)[0].split("@", 1)[0].replace("-", "_").lower()
    lang = base.split("_", 1)[0]
    if lang in LANGUAGES:
        return lang  # type: ignore[return-value]
    raise ValueError(_("{name} is not a language eduedge speaks (zh or en)").format(name=repr(name)))


def from_locale(environ: Mapping[str, str] | None = None) -> Lang | None:
    """The language the locale names, or None when it names none we speak (unset, C, POSIX, de_DE, ...)."""
    env = os.environ if environ is None else environ
    for var in _LOCALE_VARS:
        value = env.get(var, "")
        if value:
            try:
                return normalise(value)
            except ValueError:
                return None      # the locale that decides is one we do not speak: English, not the next variable
    return None


def resolve(flag: str | None = None, configured: str | None = None,
            environ: Mapping[str, str] | None = None) -> Lang:
    """The language that wins: the command line's, the configuration's, the locale's, English.

    >>> resolve(None, None, {"LANG": "zh_CN.UTF-8"}), resolve("en", "zh", {}), resolve(None, "zh", {"LANG": "en_US"})
    ('zh', 'en', 'zh')
    """
    for choice in (flag, configured):
        if choice:
            return normalise(choice)
    return from_locale(environ) or "en"


@functools.cache
def catalogue(lang: Lang) -> gettext.NullTranslations:
    """The translations of `lang`; English is the messages as written. A missing catalogue is a broken
    install (the wheel carries the .mo files), so it raises rather than quietly speak English."""
    if lang == "en":
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[_GETTEXT_NAME[lang]])


@dataclass
class _Choice:
    flag: str | None = None          # --lang
    configured: str | None = None    # ui.lang
    lang: Lang = "en"


_choice = _Choice()          # English until the end of this module, where the locale speaks


def start(flag: str | None = None) -> Lang:
    """A command begins: forget what an earlier one chose (tests run many in one process), take the command
    line's `--lang` (None: not given) and switch to the language that wins so far. Returns it."""
    lang = resolve(flag)      # a bad --lang raises before anything changes
    _choice.flag, _choice.configured, _choice.lang = flag, None, lang
    return lang


def choose(*, configured: str | None) -> Lang:
    """The configuration is read: its `ui.lang` counts unless `--lang` said otherwise. Returns the language."""
    _choice.configured = configured
    _choice.lang = resolve(_choice.flag, configured)
    return _choice.lang


def language() -> Lang:
    return _choice.lang


@contextmanager
def using(lang: Lang) -> Iterator[None]:
    """Speak `lang` inside the block (tests, and a report written in a language of its own)."""
    before = _choice.lang
    _choice.lang = lang
    try:
        yield
    finally:
        _choice.lang = before


def _(message: str) -> str:
    """`message` in the current language."""
    return catalogue(_choice.lang).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural of a message for `n` (Chinese has one form)."""
    return catalogue(_choice.lang).ngettext(singular, plural, n)


def clauses(parts: Iterable[str]) -> str:
    """Sentences' parts one after the other: `a; b` in English, `a；b` in Chinese."""
    return _("; ").join(parts)


def listing(parts: Iterable[str]) -> str:
    """Names in a list: `a, b` in English, `a、b` in Chinese (rule ids and device names keep ", ")."""
    return _(", ").join(parts)


def N_(message: str) -> str:
    """Marks a message for the catalogue where it is defined; `_` translates it where it is shown."""
    return message


def cells(text: str) -> int:
    """How many terminal columns `text` takes: a Chinese character takes two."""
    from rich.cells import cell_len  # its width tables load with the first table drawn, not with the agent

    return cell_len(text)


def ljust(text: str, width: int) -> str:
    """`text` padded with spaces to `width` terminal columns (str.ljust counts a Chinese character as one)."""
    return text + " " * max(0, width - cells(text))


_choice.lang = resolve()     # before any command or configuration: the locale's language
