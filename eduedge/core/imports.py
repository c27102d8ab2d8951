"""Importing a library without one of its optional extras.

>>> import sys
>>> with without("xml.dom.minidom"):
...     try:
...         import xml.dom.minidom
...     except ImportError:
...         print("left out")
left out
>>> "xml.dom.minidom" in sys.modules
False
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


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
