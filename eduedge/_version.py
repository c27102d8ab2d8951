"""The version of eduedge: pyproject.toml reads it from here for the package, the agent for its telemetry."""

__version__ = "0.1.0"
