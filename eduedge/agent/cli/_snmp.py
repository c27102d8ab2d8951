"""The one SNMP device a technician's command talks to (`walk`, `poll`, `profile match`).

HOST accepts HOST:PORT, `--community` for v1/v2c and `--user`, `--auth-proto`, `--auth-key-file`,
`--priv-proto`, `--priv-key-file` for SNMPv3 (keys only from files, so that they never show in `ps` or the
shell history). Failures print one line naming the device and exit 1.
"""

from __future__ import annotations

import difflib
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from eduedge.agent.cli._options import DEFAULT_CONFIG, ERROR, config_or_exit
from eduedge.agent.config import AgentConfig
from eduedge.collectors.snmp.client import SnmpAuth, SnmpClient
from eduedge.collectors.snmp.poller import as_text
from eduedge.collectors.snmp.profiles import ProfileSet, load_profiles
from eduedge.core.i18n import N_, _
from eduedge.core.netaddr import split_host_port
from eduedge.core.secrets import SecretError


@dataclass
class Target:
    host: str
    port: int
    auth: SnmpAuth
    timeout: float
    retries: int

    def client(self, name: str | None = None) -> SnmpClient:
        return SnmpClient(name or f"{self.host}:{self.port}", self.host, self.port, self.auth,
                          timeout=self.timeout, retries=self.retries)


def _read_key(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, IndexError):
        raise typer.BadParameter(_("cannot read the {what} from {path}").format(what=_(what), path=path)) from None


def _configured(cfg: AgentConfig, name: str) -> Target | None:
    """The configured device called `name` (its address and credentials), or None if there is none."""
    device = next((d for d in cfg.snmp.devices if d.name == name), None)
    if device is None:
        return None
    defaults = cfg.snmp.defaults
    try:
        auth = SnmpAuth.from_config(cfg.snmp.credentials[device.credentials], device.credentials)
    except SecretError as e:
        typer.echo(_("error: {problem}").format(problem=f"{device.name}: {e}"), err=True)
        raise typer.Exit(2) from None
    h, port = split_host_port(device.host)
    return Target(_address(h, port, device.name), port, auth, device.timeout or defaults.timeout,
                  device.retries if device.retries is not None else defaults.retries)


def _address(host: str, port: int, what: str) -> str:
    """`host` as an IP address: itself when it is one, else what the resolver (/etc/hosts, DNS) says,
    IPv4 first. Raises `typer.BadParameter` naming `what` when there is no answer."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as e:
        raise typer.BadParameter(_("{what}: cannot resolve {host} ({error})").format(
            what=what, host=repr(host), error=getattr(e, "strerror", None) or e)) from None
    found.sort(key=lambda a: a[0] != socket.AF_INET)
    return str(found[0][4][0])


def build_target(host: str, community: str, snmp_version: str | None, user: str | None, auth_proto: str,
                 auth_key_file: Path | None, priv_proto: str, priv_key_file: Path | None,
                 timeout: float, retries: int, config: Path | None = None) -> Target:
    """Turn command-line options into a target; raises `typer.BadParameter` on nonsense.

    HOST is a configured device's name (with `config`, by default the installed agent's where there is
    one; it brings the device's credentials), an address, or a host name (`localhost:1161`). A name close
    to a configured device's is a typo, not a host to look up: the error lists the close names.
    """
    if config is None and DEFAULT_CONFIG.exists():
        config = DEFAULT_CONFIG
    names: list[str] = []
    if config is not None:
        cfg = config_or_exit(config, ERROR)
        known = _configured(cfg, host)
        if known is not None:
            return known
        names = [d.name for d in cfg.snmp.devices]
    try:
        h, port = split_host_port(host)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    close = difflib.get_close_matches(host, names, n=3)
    if close:
        raise typer.BadParameter(_("no device {host} under snmp.devices in {config} (close: {close})").format(
            host=repr(host), config=config, close=", ".join(close)))
    where = (_("{host} is no device in {config}") if config is not None else
             _("{host} (no configuration names devices here: {default}, the default, does not exist)")).format(
        host=repr(host), config=config, default=DEFAULT_CONFIG)
    h = _address(h, port, where)
    version = snmp_version or ("3" if user else "2c")
    if version == "3":
        if not user:
            raise typer.BadParameter(_("SNMPv3 needs --user"))
        auth = SnmpAuth(version="3", user=user,
                        auth_proto=auth_proto.upper() if auth_key_file else None,
                        auth_key=_read_key(auth_key_file, N_("auth key")),
                        priv_proto=priv_proto.upper() if priv_key_file else None,
                        priv_key=_read_key(priv_key_file, N_("privacy key")))
    elif version in ("1", "2c"):
        auth = SnmpAuth(version=version, community=community)
    else:
        raise typer.BadParameter(_("--snmp-version must be 1, 2c or 3, not {version}").format(version=repr(version)))
    return Target(h, port, auth, timeout, retries)


def profiles(profile_dirs: list[Path]) -> ProfileSet:
    """The bundled profiles and those in `profile_dirs`; a refused profile is a warning on stderr."""
    ps = load_profiles(profile_dirs)
    for err in ps.errors:
        typer.echo(_("warning: {problem}").format(problem=err), err=True)
    return ps


def fail(message: str) -> typer.Exit:
    typer.echo(_("error: {problem}").format(problem=message), err=True)
    return typer.Exit(1)


def json_value(v: Any) -> Any:
    return as_text(v) if isinstance(v, bytes) else v
