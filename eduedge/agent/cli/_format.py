"""Ages and sizes the way the service commands (`status`, `outbox`) print them."""

from __future__ import annotations

from eduedge.core.i18n import _


def age(t: float | None, now: float) -> str:
    """How long ago `t` was, in the unit that reads best: `42s ago`, `3m ago`, `2.5h ago`, `4.0d ago`."""
    if t is None:
        return _("never")
    return _("{span} ago").format(span=span(max(0.0, now - t)))


def span(s: float) -> str:
    """A length of time in the unit that reads best: `42s`, `3m`, `2.5h`, `4.0d`."""
    if s < 120:
        return _("{n}s").format(n=f"{s:.0f}")
    if s < 7200:
        return _("{n}m").format(n=f"{s / 60:.0f}")
    if s < 172800:
        return _("{n}h").format(n=f"{s / 3600:.1f}")
    return _("{n}d").format(n=f"{s / 86400:.1f}")


def size(n: float) -> str:
    """Bytes in decimal units: `512 B`, `1.5 kB`, `3.2 MB`."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
