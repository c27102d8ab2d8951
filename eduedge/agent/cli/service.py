"""`eduedge service install`: the agent as a systemd service, from the unit file eduedge/config/eduedge.service."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import typer

from eduedge.agent.cli._options import config_option, config_or_exit
from eduedge.agent.config import load_config
from eduedge.core.i18n import _

UNIT_TEMPLATE = Path(__file__).resolve().parents[2] / "config" / "eduedge.service"


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
    done.append(_("wrote {file}").format(file=target))
    if root != Path("/"):
        return done
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        subprocess.run(["useradd", "--system", "--home-dir", str(data_dir), "--no-create-home",
                        "--shell", "/usr/sbin/nologin", user], check=True)
        pw = pwd.getpwnam(user)
        done.append(_("created system user {user}").format(user=user))
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chown(data_dir, pw.pw_uid, pw.pw_gid)
    done.append(_("{dir} belongs to {user}").format(dir=data_dir, user=user))
    if shutil.which("systemctl") and Path("/run/systemd/system").is_dir():
        subprocess.run(["systemctl", "daemon-reload"], check=True)
        subprocess.run(["systemctl", "enable"] + (["--now"] if start else []) + ["eduedge"], check=True)
        done.append(_("enabled and started eduedge.service") if start else _("enabled eduedge.service"))
    else:
        done.append(_("no systemd running here: start it with `systemctl enable --now eduedge` on the box"))
    return done


def register(app: typer.Typer) -> None:
    service_app = typer.Typer(help="Install the agent as a systemd service.", no_args_is_help=True)
    app.add_typer(service_app, name="service")

    @service_app.command("install")
    def install_cmd(config: Path = config_option(),
                    user: str = typer.Option("eduedge", help="the unprivileged user the agent runs as"),
                    root: Path = typer.Option(Path("/"), help="install under this directory instead (staging)"),
                    start: bool = typer.Option(True, help="start the service now")) -> None:
        """Write /etc/systemd/system/eduedge.service, create the user and data directory, enable it."""
        config_or_exit(config)
        for line in install_service(config, user, root, start):
            typer.echo(line)
