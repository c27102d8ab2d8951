"""Ages and sizes the way the service commands (`status`, `outbox`) print them."""

from __future__ import annotations


def age(t: float | None, now: float) -> str:
    """How long ago `t` was, in the unit that reads best: `42s ago`, `3m ago`, `2.5h ago`, `4.0d ago`."""
    if t is None:
        return "never"
    s = max(0.0, now - t)
    if s < 120:
        return f"{s:.0f}s ago"
    if s < 7200:
        return f"{s / 60:.0f}m ago"
    if s < 172800:
        return f"{s / 3600:.1f}h ago"
    return f"{s / 86400:.1f}d ago"


def size(n: float) -> str:
    """Bytes in decimal units: `512 B`, `1.5 kB`, `3.2 MB`."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
