"""Handing freed memory back to the system, on glibc (the boxes' C library); elsewhere these do nothing.

CPython returns small objects to its own pools, and large ones to malloc, but glibc keeps what is freed
inside its heaps until something asks for it back, and gives every thread that allocates a heap
("arena") of its own. A long-running agent whose work comes in bursts (a poll cycle's samples, the MAC
vendor database read once) then holds its peak for good. bench/footprint.py measures what these save.

>>> limit_arenas(2), isinstance(give_back(), bool)        # this box's C library is glibc
(True, True)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

M_ARENA_MAX = -8            # glibc's mallopt parameter (malloc.h)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 - glibc has both; musl (Alpine) has neither
    except (OSError, AttributeError):
        return None
    return libc


def limit_arenas(n: int = 2) -> bool:
    """At most `n` malloc heaps for all threads (glibc's default is 8 per core), as MALLOC_ARENA_MAX=n does;
    call it before the threads start. Whether it took effect."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, n))


def give_back() -> bool:
    """Return the free memory of every malloc heap to the system (malloc_trim(0)); whether any was."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))
