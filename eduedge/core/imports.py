"""Importing a library without one of its optional extras; doing something when a module is imported.

>>> import sys
>>> with without("xml.dom.minidom"):
...     try:
...         import xml.dom.minidom
...     except ImportError:
...         print("left out")
left out
>>> "xml.dom.minidom" in sys.modules
False

>>> seen = []
>>> _ = sys.modules.pop("xml.dom.pulldom", None)     # as if nothing had imported it yet
>>> when_imported("xml.dom.pulldom", lambda m: seen.append(m.__name__))
>>> seen
[]
>>> import xml.dom.pulldom
>>> seen
['xml.dom.pulldom']
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any


@contextlib.contextmanager
def without(*modules: str) -> Iterator[None]:
    """While inside, `import` of any of `modules` not yet loaded raises ImportError (a None entry in
    sys.modules, as the import system documents); afterwards they import normally again."""
    added = [m for m in modules if m not in sys.modules]
    for m in added:
        sys.modules[m] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for m in added:
            if sys.modules.get(m, ...) is None:
                del sys.modules[m]


def when_imported(name: str, then: Callable[[ModuleType], None]) -> None:
    """`then(module)` once the module `name` is imported: now if it already is, else right after the import
    system runs its code (before the importer gets it). For settings of a library that only some paths load, so
    that setting them does not load it."""
    module = sys.modules.get(name)
    if module is not None:
        then(module)
        return
    for finder in sys.meta_path:
        if isinstance(finder, _Hooks):
            finder.add(name, then)
            return
    hooks = _Hooks()
    hooks.add(name, then)
    sys.meta_path.insert(0, hooks)


class _Hooks(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for a hooked name it asks the finders after it and wraps the loader they give."""

    def __init__(self) -> None:
        self.pending: dict[str, list[Callable[[ModuleType], None]]] = {}

    def add(self, name: str, then: Callable[[ModuleType], None]) -> None:
        waiting = self.pending.setdefault(name, [])
        if then not in waiting:
            waiting.append(then)

    def find_spec(self, fullname: str, path: Any,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.pending:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Then(spec.loader, self.pending.pop(fullname))
                return spec
        return None


class _Then(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader, then: list[Callable[[ModuleType], None]]) -> None:
        self.loader, self.then = loader, then

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def __getattr__(self, name: str) -> Any:     # get_source, get_data, is_package...: the real loader's
        return getattr(self.loader, name)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        module.__loader__ = self.loader           # the module as the import system would have left it
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        for then in self.then:
            then(module)
