"""Where a running simulated campus keeps what it started, so that `eduedge sim down` can stop all of it.

The state directory holds `state.json` (PIDs, namespace names, addresses, the generated agent config),
the runner's control socket and log, and the fault/event log (`events.jsonl`). Nothing is found by
name matching: `down` stops exactly the PIDs and deletes exactly the namespaces written here.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path


def default_state_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"eduedge-sim-{os.getuid()}"


@dataclass
class Endpoint:
    name: str
    kind: str
    host: str
    snmp_port: int | None = None
    pjlink_port: int | None = None
    netns: str | None = None


@dataclass
class SimState:
    campus: str
    mode: str                              # loopback / netns
    launch: float
    start: str                             # simulated local time at launch (ISO)
    state_dir: str
    pids: dict[str, int] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)
    endpoints: list[Endpoint] = field(default_factory=list)
    agent_config: str = ""
    speedtest: str = ""                    # host:port of the WAN-side test server (through the WAN link)
    broker: str = ""                       # host:port of the campus's MQTT broker, if one was started
    wan_iface: str = ""                    # netns mode: namespace/interface pairs shaped by tc

    @property
    def dir(self) -> Path:
        return Path(self.state_dir)

    @property
    def control_socket(self) -> Path:
        return self.dir / "control.sock"

    def save(self) -> None:
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(self.dir / "state.json")

    @classmethod
    def load(cls, state_dir: Path) -> SimState | None:
        try:
            data = json.loads((state_dir / "state.json").read_text())
        except FileNotFoundError:
            return None
        data["endpoints"] = [Endpoint(**e) for e in data.get("endpoints", [])]
        return cls(**data)
