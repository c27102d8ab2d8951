"""eduedge: the school network gateway agent, its collectors, the city cloud's receiver and the simulator.

One import package so that installing eduedge puts nothing named `agent` or `cloud` into site-packages.
"""

from __future__ import annotations

from eduedge._version import __version__

__all__ = ["__version__"]
