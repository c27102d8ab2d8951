"""What every command shares: the default configuration path, loading it or exiting, and the options of
the commands that talk to one SNMP device (`walk`, `poll`, `profile match`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from eduedge.agent.config import AgentConfig, ConfigError, load_config
from eduedge.core import i18n
from eduedge.core.i18n import N_, _

# Where the packaged service (eduedge/config/eduedge.service) and every command look unless told otherwise.
DEFAULT_CONFIG = Path("/etc/eduedge/eduedge.yaml")
ERROR = N_("error: ")       # the prefix of a command's error lines (config_or_exit translates it)


def config_or_exit(path: Path, prefix: str = "") -> AgentConfig:
    """The configuration at `path`; otherwise print every problem (file, line, field) and exit 2."""
    if path == DEFAULT_CONFIG and not path.exists():
        typer.echo(f"{prefix}no configuration at {path}, the default: give --config FILE (or set "
                   "EDUEDGE_CONFIG)", err=True)
        raise typer.Exit(2)
    try:
        cfg = load_config(path)
    except ConfigError as e:
        for line in e.problems:
            typer.echo((_(prefix) if prefix else "") + line, err=True)
        raise typer.Exit(2) from None
    i18n.choose(configured=cfg.ui.lang)     # the site's language, unless --lang said otherwise
    return cfg


def config_option(help: str = N_("the agent's configuration"), default: Path | None = DEFAULT_CONFIG) -> Any:
    """The `--config`/`-c` option: one spelling, one short flag and one environment variable everywhere."""
    return typer.Option(default, "--config", "-c", envvar="EDUEDGE_CONFIG", help=help)


# Options shared by every command that talks to a device. The community has no short flag: `-c` is
# `--config` in every command (with snmpwalk's meaning, `eduedge poll core -c agent.yaml` took the file name
# as the community).
community_opt = typer.Option("public", "--community", help="SNMP v1/v2c community")
version_opt = typer.Option(None, "--snmp-version", "-v", help="1, 2c or 3 (default: 3 with --user, else 2c)")
user_opt = typer.Option(None, "--user", "-u", help="SNMPv3 user name")
auth_proto_opt = typer.Option("SHA", "--auth-proto", help="MD5, SHA, SHA224, SHA256, SHA384, SHA512")
auth_key_opt = typer.Option(None, "--auth-key-file", help="file holding the SNMPv3 auth passphrase")
priv_proto_opt = typer.Option("AES", "--priv-proto", help="DES, AES, AES192, AES256")
priv_key_opt = typer.Option(None, "--priv-key-file", help="file holding the SNMPv3 privacy passphrase")
timeout_opt = typer.Option(2.0, "--timeout", help="seconds to wait for each answer")
retries_opt = typer.Option(1, "--retries", help="how many times to ask again after a timeout")
json_opt = typer.Option(False, "--json", help="print one JSON object")
dirs_opt = typer.Option([], "--profile-dir", help="extra directory of site profiles (repeatable)")
device_config_opt = config_option(N_("agent configuration: HOST may then be a configured device's name"), None)
