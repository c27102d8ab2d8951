"""`eduedge sim up` and `eduedge sim down` as functions: start a campus, stop everything it started.

`sim_up` validates the campus, gives every device its address, builds the namespaces (namespace
mode), starts the runner (simulator/runner.py) and waits until it answers, then writes the agent
configuration. `sim_down` stops the runner and every child it recorded, by PID, deletes the campus's
namespaces by name, and reports anything it could not remove. Loopback mode needs no root: devices
get 127.<slot>.x.y addresses (one /16 per running campus, claimed with a lock file).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from eduedge.simulator import netns
from eduedge.simulator.agentconfig import write_agent_config
from eduedge.simulator.campus import load_campus
from eduedge.simulator.state import Endpoint, SimState, default_state_dir
from eduedge.simulator.world import World

SNMP_PORT_LOOPBACK = 1161
PJLINK_PORT = 4352
SPEEDTEST_PORT = 5201
SLOTS = range(64, 128)
SLOT_DIR = Path("/tmp/eduedge-sim-slots")


class SimError(RuntimeError):
    pass


@dataclass
class DownReport:
    stopped: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return False
    return True


def _claim_slot(state_dir: Path, kind: str = "lo") -> int:
    """A slot no other running campus uses (loopback: 127.<slot>.0.0/16; namespace mode: see
    netns.NetnsPlan), claimed by a file naming our state dir."""
    SLOT_DIR.mkdir(mode=0o1777, parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):
        SLOT_DIR.chmod(0o1777)          # shared by every user's campuses
    slots = SLOTS if kind == "lo" else netns.SLOTS
    lock_path = SLOT_DIR / ".lock"
    if not lock_path.exists():
        with contextlib.suppress(FileExistsError):
            os.close(os.open(lock_path, os.O_CREAT | os.O_EXCL | os.O_RDONLY, 0o444))
    with open(lock_path) as lock:       # flock needs no write access
        fcntl.flock(lock, fcntl.LOCK_EX)
        for slot in slots:
            path = SLOT_DIR / f"{kind}{slot}"
            with contextlib.suppress(FileNotFoundError):
                if _claimed_by_another(path.read_text(), state_dir):
                    continue
            if kind == "lo":
                try:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                        s.bind((f"127.{slot}.0.1", SNMP_PORT_LOOPBACK))
                except OSError:
                    continue
            try:
                path.unlink(missing_ok=True)
                path.write_text(f"{state_dir}\n{os.getpid()}\n")
            except PermissionError:      # a stale claim of another user's: leave it to them
                continue
            return slot
    raise SimError(f"no free loopback slot: {len(SLOTS)} campuses already run (see {SLOT_DIR})")


def _claimed_by_another(claim: str, state_dir: Path) -> bool:
    """Whether a slot's claim (its state dir, and the PID of the `sim_up` that wrote it) belongs to another
    live campus. A campus that is still starting has no runner PID in its state yet: its claimer's PID keeps
    the slot, or two campuses started together take the same addresses."""
    lines = claim.split()
    if not lines or Path(lines[0]) == state_dir or not Path(lines[0]).is_dir():
        return False
    other = SimState.load(Path(lines[0]))
    runner = (other.pids.get("runner", 0) or 0) if other is not None else 0
    if runner:
        return _pid_alive(runner)
    return len(lines) > 1 and lines[1].isdigit() and _pid_alive(int(lines[1]))


def _release_slot(state_dir: Path) -> None:
    for path in SLOT_DIR.glob("[ln]*[0-9]"):
        with contextlib.suppress(OSError):
            if path.read_text().split()[:1] == [str(state_dir)]:
                path.unlink()


def loopback_host(slot: int, n: int) -> str:
    return f"127.{slot}.{n // 250}.{n % 250 + 1}"


def sim_up(campus_path: Path, state_dir: Path | None = None, use_netns: bool = False, broker: bool = False,
           ready_timeout: float = 120.0) -> SimState:
    """Start the campus; return its state (endpoints, agent config path, PIDs, namespaces)."""
    state_dir = (state_dir or default_state_dir()).resolve()
    old = SimState.load(state_dir)
    if old is not None and old.pids.get("runner") and _pid_alive(old.pids["runner"]):
        raise SimError(f"a campus from {old.campus} already runs with state in {state_dir} "
                       f"(runner PID {old.pids['runner']}); `eduedge sim down` first")
    if use_netns and os.geteuid() != 0:
        raise SimError("namespace mode (--netns) needs root; loopback mode does not")
    campus = load_campus(campus_path)
    launch = time.time()
    world = World(campus, launch)
    state_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("ready.json", "children.json", "events.jsonl", "control.sock"):
        with contextlib.suppress(FileNotFoundError):
            (state_dir / stale).unlink()
    state = SimState(str(Path(campus_path).resolve()), "netns" if use_netns else "loopback", launch,
                     world.clock.start.isoformat(), str(state_dir), broker="start" if broker else "")
    try:
        if use_netns:
            _plan_netns(world, state)
        else:
            _plan_loopback(world, state)
        state.save()
        _start_runner(state, ready_timeout)
        state.agent_config = str(write_agent_config(world, state))
        state.save()
    except BaseException:
        sim_down(state_dir)
        raise
    return state


def _plan_loopback(world: World, state: SimState) -> None:
    slot = _claim_slot(state.dir)
    pj_nodes = {n.name for n in world.pjlink_nodes()}
    n = 0
    for node in world.nodes.values():
        if node.kind == "tablet":
            continue
        pj = PJLINK_PORT if node.name in pj_nodes else None
        snmp = SNMP_PORT_LOOPBACK if node.answers_snmp else None
        state.endpoints.append(Endpoint(node.name, node.kind, loopback_host(slot, n), snmp, pj))
        n += 1
    state.speedtest = f"127.{slot}.255.253:{SPEEDTEST_PORT}"


def _plan_netns(world: World, state: SimState) -> None:
    slot = _claim_slot(state.dir, "ns")
    prefix = f"ees{slot}x{os.getpid() % 10000}"
    plan = netns.plan(world, prefix, slot)
    # gw and isp first: the runner and `down` find them by position
    state.namespaces = [plan.gw, plan.isp] + [ns for k, ns in plan.namespaces.items() if k not in ("gw", "isp")]
    state.wan_iface = plan.host_iface
    state.save()
    netns.create(world, plan, world.campus.wan.down_mbps, world.campus.wan.up_mbps)
    pj_nodes = {n.name for n in world.pjlink_nodes()}
    for node in world.nodes.values():
        if node.name not in plan.addresses:
            continue
        state.endpoints.append(Endpoint(node.name, node.kind, plan.addresses[node.name],
                                        161 if node.answers_snmp else None,
                                        PJLINK_PORT if node.name in pj_nodes else None, plan.namespaces[node.name]))
    state.speedtest = f"{plan.isp_wan}:{SPEEDTEST_PORT}"


def _start_runner(state: SimState, timeout: float) -> None:
    log = open(state.dir / "runner.log", "ab")  # noqa: SIM115 - the runner keeps it
    proc = subprocess.Popen([sys.executable, "-m", "eduedge.simulator.runner", "--state-dir", str(state.dir)],
                            stdout=log, stderr=log, start_new_session=True)
    state.pids["runner"] = proc.pid
    state.save()
    deadline = time.monotonic() + timeout
    ready = state.dir / "ready.json"
    while time.monotonic() < deadline:
        if ready.exists():
            info = json.loads(ready.read_text())
            if info.get("broker"):
                state.broker = info["broker"]
            elif state.broker == "start":
                state.broker = ""
            return
        if proc.poll() is not None:
            raise SimError(f"the campus runner exited ({proc.returncode}):\n{_tail(state.dir / 'runner.log')}")
        time.sleep(0.1)
    raise SimError(f"the campus did not come up within {timeout:g}s:\n{_tail(state.dir / 'runner.log')}")


def _tail(path: Path, n: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def sim_down(state_dir: Path | None = None, timeout: float = 10.0) -> DownReport:
    """Stop the runner and its children by PID, delete the namespaces by name; say what is left."""
    state_dir = (state_dir or default_state_dir()).resolve()
    report = DownReport()
    state = SimState.load(state_dir)
    if state is None:
        return report
    children: dict[str, int] = {}
    with contextlib.suppress(FileNotFoundError, ValueError):
        children = json.loads((state_dir / "children.json").read_text())
    runner = state.pids.get("runner")
    if runner and _pid_alive(runner):
        os.kill(runner, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(runner) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(runner):
            os.kill(runner, signal.SIGKILL)
        report.stopped.append(f"runner {runner}")
    with contextlib.suppress(ChildProcessError):
        if runner:
            os.waitpid(runner, os.WNOHANG)
    for name, pid in children.items():
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            report.stopped.append(f"{name} {pid}")
    deadline = time.monotonic() + timeout
    for name, pid in [("runner", runner or 0), *children.items()]:
        while pid and _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid and _pid_alive(pid):
            report.left.append(f"process {name} {pid} is still running")
    if state.namespaces:
        report.left += netns.delete(state.namespaces)
        report.deleted = [ns for ns in state.namespaces if ns not in netns.existing(state.namespaces)]
        report.left += [f"namespace {ns}" for ns in netns.existing(state.namespaces)]
    _release_slot(state_dir)
    if not report.left:
        for name in ("state.json", "ready.json", "children.json", "control.sock"):
            with contextlib.suppress(FileNotFoundError):
                (state_dir / name).unlink()
    return report


def control(state_dir: Path | None, msg: dict, timeout: float = 10.0) -> dict:
    """Send one command to the running campus's control socket; return its answer."""
    state_dir = (state_dir or default_state_dir()).resolve()
    state = SimState.load(state_dir)
    if state is None:
        raise SimError(f"no simulated campus runs with state in {state_dir} (`eduedge sim up` first)")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(state.control_socket))
        except OSError as e:
            raise SimError(f"the campus runner does not answer on {state.control_socket}: {e.strerror}") from None
        s.sendall(json.dumps(msg).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)
