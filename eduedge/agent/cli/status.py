"""`eduedge run`, `eduedge status`, `eduedge outbox`, `eduedge service install`: the agent as a service.

The commands are thin: the daemon is agent/daemon.py, the numbers come from agent/outbox.inspect and the
state file the daemon writes (agent/state.py), and the unit file is eduedge/config/eduedge.service.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import typer

from eduedge.agent.cli_config import DEFAULT_CONFIG, config_or_exit
from eduedge.agent.config import AgentConfig, load_config
from eduedge.agent.outbox import OutboxError, inspect
from eduedge.agent.state import pid_alive, read_state, state_path
from eduedge.core.secrets import SecretError

UNIT_TEMPLATE = Path(__file__).resolve().parents[1] / "config" / "eduedge.service"
PRIORITY_NAMES = {0: "0 answers, gaps, lifecycle", 1: "1 findings, events, inventory", 2: "2 metrics"}


def setup_logging(level: str) -> None:
    # Under systemd the journal stamps time and unit itself; elsewhere the line carries its own time.
    fmt = ("%(levelname)s %(name)s: %(message)s" if os.environ.get("JOURNAL_STREAM")
           else "%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr, force=True)




def _age(t: float | None, now: float) -> str:
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


def _bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _found(summary: dict[str, Any] | None) -> str:
    """What a job's last run found, in a few words: `findings: 3 pass, 1 fail; changes: 1`."""
    parts = []
    for k, v in (summary or {}).items():
        if isinstance(v, dict):
            v = ", ".join(f"{n} {s}" for s, n in v.items())
        elif isinstance(v, list):
            v = ", ".join(map(str, v[:5])) + (" ..." if len(v) > 5 else "") if v else "none"
        parts.append(f"{k}: {v}")
    return "; ".join(parts)


def systemd_state(unit: str = "eduedge") -> str | None:
    """`systemctl is-active` of the unit, or None where there is no systemd."""
    exe = shutil.which("systemctl")
    if exe is None or not Path("/run/systemd/system").is_dir():
        return None
    out = subprocess.run([exe, "is-active", unit], capture_output=True, text=True, timeout=5)
    return out.stdout.strip() or None


def status_report(cfg: AgentConfig, now: float | None = None) -> tuple[dict[str, Any], list[str], int]:
    """The status as data, as printable lines, and as an exit code (0 running and connected, 1 degraded,
    3 not running)."""
    now = time.time() if now is None else now
    st = read_state(state_path(cfg.agent.data_dir))
    lines: list[str] = []
    unit = systemd_state()
    running = bool(st and st.get("running") and pid_alive(int(st.get("pid", 0))))
    if unit is not None:
        lines.append(f"service:   systemd unit eduedge is {unit}")
    if not running:
        lines.append("agent:     NOT RUNNING" + (f" (last seen {_age(st.get('updated'), now)}, pid {st.get('pid')})"
                                                 if st else f" (no state file in {cfg.agent.data_dir})"))
    else:
        assert st is not None
        lines.append(f"agent:     running, pid {st['pid']}, up {_age(st['started'], now).replace(' ago', '')}, "
                     f"state {_age(st.get('updated'), now)}")
    code = 0 if running else 3
    link = st.get("link") if st else None
    if st and link is None:
        lines.append("mqtt:      not configured (collecting into the outbox only)")
    elif link is not None:
        if link.get("connected") and running:
            lines.append(f"mqtt:      connected to {link['broker']} since {_age(link.get('since'), now)} "
                         f"(bdSeq {link.get('bd_seq')}), delivering {link.get('rate_per_s', 0):.1f} msg/s")
        else:
            lines.append(f"mqtt:      NOT CONNECTED to {link['broker']}: {link.get('last_error') or 'unknown'}")
            code = max(code, 1)
    for name, job in sorted((st or {}).get("collectors", {}).items()):
        ok = job.get("last_success")
        err = job.get("last_error")
        found = _found(job.get("last_summary"))
        lines.append(f"  {name:<28} last success {_age(ok, now):<12}" + (f" {found}" if found else "")
                     + (f" ERROR: {err}" if err else ""))
    ob = (st or {}).get("outbox") or {}
    if ob:
        lines.append(f"outbox:    {ob.get('rows', 0)} messages, {_bytes(ob.get('bytes', 0))}, oldest "
                     f"{_age(ob.get('oldest'), now)}, {ob.get('inflight', 0)} in flight")
    return (st or {}), lines, code


def outbox_report(cfg: AgentConfig, now: float | None = None) -> tuple[dict[str, Any], list[str]]:
    now = time.time() if now is None else now
    path = cfg.outbox.path or cfg.agent.data_dir / "outbox.db"
    stats = inspect(path)
    st = read_state(state_path(cfg.agent.data_dir)) or {}
    rate = ((st.get("link") or {}).get("rate_per_s") if st.get("running") and pid_alive(int(st.get("pid", 0)))
            else None)
    data = {**stats.to_dict(), "delivery_rate_per_s": rate, "budget_bytes": cfg.outbox.max_bytes}
    lines = [f"outbox {path}",
             f"  depth     {stats.rows} messages, {_bytes(stats.bytes)} of {_bytes(cfg.outbox.max_bytes)} budget "
             f"(file {_bytes(stats.file_bytes)})",
             f"  oldest    {_age(stats.oldest, now)}"]
    for p in (0, 1, 2):
        d = stats.by_priority.get(p, {"rows": 0, "bytes": 0, "items": 0, "oldest": None})
        lines.append(f"  priority {PRIORITY_NAMES[p]:<32} {d['rows']:>8} msgs {d['items']:>10} items "
                     f"{_bytes(d['bytes']):>10}  oldest {_age(d['oldest'], now)}")
    lines.append(f"  delivered {stats.delivered_messages} messages ({stats.delivered_items} items) since created"
                 + (f"; now {rate:.1f} msg/s" if rate is not None else "; agent not running"))
    if stats.drops:
        for d in stats.drops:
            lines.append(f"  DROPPED   {d.messages} {d.kind} messages ({d.items} items): {d.reason}")
    else:
        lines.append("  dropped   nothing")
    return data, lines


def install_service(config: Path, user: str = "eduedge", root: Path = Path("/"), start: bool = True,
                    executable: str | None = None) -> list[str]:
    """Put the unit in place (under `root`, for staging or tests) and, on the real root, create the
    user and the data directory and enable the service. Returns what was done, one line each."""
    cfg = load_config(config)
    exe = executable or shutil.which("eduedge") or str(Path(sys.argv[0]).resolve())
    data_dir = cfg.agent.data_dir
    unit = []
    for line in UNIT_TEMPLATE.read_text().splitlines():
        if line.startswith("ExecStart="):
            line = f"ExecStart={exe} run --config {config.resolve()}"
        elif line.startswith(("User=", "Group=")):
            line = f"{line.split('=')[0]}={user}"
        elif line.startswith("ReadWritePaths="):
            line = f"ReadWritePaths={data_dir}"
        unit.append(line)
    done = []
    target = root / "etc/systemd/system/eduedge.service"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(unit) + "\n")
    done.append(f"wrote {target}")
    if root != Path("/"):
        return done
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        subprocess.run(["useradd", "--system", "--home-dir", str(data_dir), "--no-create-home",
                        "--shell", "/usr/sbin/nologin", user], check=True)
        pw = pwd.getpwnam(user)
        done.append(f"created system user {user}")
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chown(data_dir, pw.pw_uid, pw.pw_gid)
    done.append(f"{data_dir} belongs to {user}")
    if shutil.which("systemctl") and Path("/run/systemd/system").is_dir():
        subprocess.run(["systemctl", "daemon-reload"], check=True)
        subprocess.run(["systemctl", "enable"] + (["--now"] if start else []) + ["eduedge"], check=True)
        done.append("enabled" + (" and started" if start else "") + " eduedge.service")
    else:
        done.append("no systemd running here: start it with `systemctl enable --now eduedge` on the box")
    return done


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_cmd(config: Path = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="the configuration file")) -> None:
        """Run the agent: schedule the collectors, keep results in the outbox, deliver them over MQTT."""
        from eduedge.agent.daemon import Daemon

        cfg = config_or_exit(config)
        setup_logging(cfg.agent.log_level)
        from eduedge.agent.compliance import PackError

        try:
            daemon = Daemon(config)
        except PackError as e:
            for line in e.problems:
                typer.echo(f"eduedge: cannot start: {line}", err=True)
            raise typer.Exit(2) from None
        except (OutboxError, SecretError, OSError, ValueError) as e:
            typer.echo(f"eduedge: cannot start: {e}", err=True)
            raise typer.Exit(1) from None
        daemon.install_signals()
        raise typer.Exit(daemon.run())

    @app.command("status")
    def status_cmd(config: Path = typer.Option(DEFAULT_CONFIG, "--config", "-c"),
                   as_json: bool = typer.Option(False, "--json", help="machine-readable")) -> None:
        """Is the agent running and connected, when did each collector last succeed, how deep is the outbox.

        Exit code: 0 running and connected, 1 running but not connected, 3 not running."""
        cfg = config_or_exit(config)
        data, lines, code = status_report(cfg)
        typer.echo(json.dumps(data, indent=1, default=str) if as_json else "\n".join(lines))
        raise typer.Exit(code)

    @app.command("outbox")
    def outbox_cmd(config: Path = typer.Option(DEFAULT_CONFIG, "--config", "-c"),
                   as_json: bool = typer.Option(False, "--json", help="machine-readable")) -> None:
        """What waits to be delivered: depth by priority, oldest row, bytes, drops, delivery rate."""
        cfg = config_or_exit(config)
        try:
            data, lines = outbox_report(cfg)
        except OutboxError as e:
            typer.echo(str(e), err=True)
            raise typer.Exit(1) from None
        typer.echo(json.dumps(data, indent=1, default=str) if as_json else "\n".join(lines))

    service_app = typer.Typer(help="Install the agent as a systemd service.", no_args_is_help=True)
    app.add_typer(service_app, name="service")

    @service_app.command("install")
    def install_cmd(config: Path = typer.Option(DEFAULT_CONFIG, "--config", "-c"),
                    user: str = typer.Option("eduedge", help="the unprivileged user the agent runs as"),
                    root: Path = typer.Option(Path("/"), help="install under this directory instead (staging)"),
                    start: bool = typer.Option(True, help="start the service now")) -> None:
        """Write /etc/systemd/system/eduedge.service, create the user and data directory, enable it."""
        config_or_exit(config)
        for line in install_service(config, user, root, start):
            typer.echo(line)
