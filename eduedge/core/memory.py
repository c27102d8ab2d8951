"""Handing freed memory back to the system, on glibc (the boxes' C library); elsewhere these do nothing.

CPython returns small objects to its own pools, and large ones to malloc, but glibc keeps what is freed
inside its heaps until something asks for it back, and gives every thread that allocates a heap
("arena") of its own. A long-running agent whose work comes in bursts (a poll cycle's samples, the MAC
vendor database read once) then holds its peak for good. bench/footprint.py measures what these save.

>>> limit_arenas(2), isinstance(give_back(), bool)        # this box's C library is glibc
(True, True)

glibc also serves a large block (128 KiB and up) from the system, and gives it back when it is freed, but it
raises that threshold to the size of every such block freed, up to 32 MiB: after a poll's first big list,
walk or message, every later one comes from the heap, and the heap's holes between the blocks that outlive a
poll are what grew by megabytes an hour on campus-large. `fix_mmap_threshold` keeps it where it starts.

SQLite is the other heap that only grows: each connection's page cache fills to 2 MiB (its default) as the
sample store and the outbox are read and written, and the agent holds four. One soft limit for the process
keeps them together near `SQLITE_HEAP`: past it, a cache reuses its own pages instead of asking for more.

>>> before = limit_sqlite(SQLITE_HEAP)
>>> limit_sqlite(before) == SQLITE_HEAP
True
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import sqlite3
import sys

M_ARENA_MAX = -8            # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 * 1024     # glibc's own starting value
SQLITE_HEAP = 4 * 2**20     # the page caches' pages a poll and a delivery touch; the OS caches the files too


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


def fix_mmap_threshold(size: int = MMAP_THRESHOLD) -> bool:
    """Blocks of `size` bytes and more from the system, back to it when freed, for good (as
    MALLOC_MMAP_THRESHOLD_=size does; glibc would otherwise raise the threshold as big blocks are freed).
    Whether it took effect."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_MMAP_THRESHOLD, size))


def give_back() -> bool:
    """Return the free memory of every malloc heap to the system (malloc_trim(0)); whether any was."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))


def limit_sqlite(limit: int = SQLITE_HEAP) -> int:
    """Set SQLite's soft heap limit for the whole process (`PRAGMA soft_heap_limit`; 0 is none, SQLite's
    default): caches give pages back rather than grow past it, and nothing fails at it. The limit before."""
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        before = db.execute("PRAGMA soft_heap_limit").fetchone()[0]
        db.execute(f"PRAGMA soft_heap_limit={int(limit)}")
    return before
