"""The `eduedge` command: the agent's commands, and the city's and the simulator's where they are installed.

The box installs `eduedge` alone; `eduedge[cloud]` and `eduedge[sim]` bring the dependencies of the
`cloud` and `sim` command groups. A group whose dependencies are missing is left out, so the base install
never imports the city's or the simulator's code.
"""

from __future__ import annotations

import functools
import importlib.util

import typer

from eduedge.agent.cli import app


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


@functools.cache
def build() -> typer.Typer:
    """The whole `eduedge` app: the agent's commands, and the groups whose dependencies are installed.
    Cached, so that a test (or completion) may ask for it again without registering a group twice."""
    if _installed("psycopg", "jsonschema_rs"):
        from eduedge.cloud import cli as cloud_cli
        cloud_cli.register(app)
    if _installed("snmpsim"):
        from eduedge.simulator import cli as sim_cli
        from eduedge.simulator import cli_demo
        sim_cli.register(app)
        cli_demo.register(app)
    return app


def main() -> None:
    build()()
