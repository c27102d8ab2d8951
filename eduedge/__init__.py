"""eduedge: the school network gateway agent, its collectors, the city cloud's receiver and the simulator.

One import package so that installing eduedge puts nothing named `agent` or `cloud` into site-packages.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("eduedge")
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"
