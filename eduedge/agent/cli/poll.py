"""SNMP commands for the technician: `walk`, `poll`, `profile match`, `profile check`.

Every command that takes HOST accepts HOST:PORT, `--community` for v1/v2c and `--user`, `--auth-proto`,
`--auth-key-file`, `--priv-proto`, `--priv-key-file` for SNMPv3 (keys only from files, so that they never
show in `ps` or the shell history). Failures print one line naming the device and exit 1.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from eduedge.agent.cli_config import DEFAULT_CONFIG, config_or_exit
from eduedge.collectors.snmp.client import SnmpAuth, SnmpClient, SnmpRequestError
from eduedge.collectors.snmp.poller import DevicePoller, as_text
from eduedge.collectors.snmp.profiles import ProfileError, ProfileSet, load_profiles
from eduedge.collectors.snmp.recording import RecordingClient
from eduedge.collectors.snmp.report import summarise
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
        raise typer.BadParameter(f"cannot read the {what} from {path}") from None


def target_from_config(config: Path, name: str) -> Target | None:
    """The configured device called `name` (its address and credentials), or None if there is none."""
    cfg = config_or_exit(config, "error: ")
    device = next((d for d in cfg.snmp.devices if d.name == name), None)
    if device is None:
        return None
    defaults = cfg.snmp.defaults
    try:
        auth = SnmpAuth.from_config(cfg.snmp.credentials[device.credentials], device.credentials)
    except SecretError as e:
        typer.echo(f"error: {device.name}: {e}", err=True)
        raise typer.Exit(2) from None
    h, port = split_host_port(device.host)
    return Target(h, port, auth, device.timeout or defaults.timeout,
                  device.retries if device.retries is not None else defaults.retries)


def build_target(host: str, community: str, snmp_version: str | None, user: str | None, auth_proto: str,
                 auth_key_file: Path | None, priv_proto: str, priv_key_file: Path | None,
                 timeout: float, retries: int, config: Path | None = None) -> Target:
    """Turn command-line options into a target; raises `typer.BadParameter` on nonsense.

    With `config` (by default the installed agent's, where there is one), HOST may also be the name of a
    configured device, which brings its credentials.
    """
    if config is None and DEFAULT_CONFIG.exists():
        config = DEFAULT_CONFIG
    if config is not None:
        known = target_from_config(config, host)
        if known is not None:
            return known
    try:
        h, port = split_host_port(host)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    version = snmp_version or ("3" if user else "2c")
    if version == "3":
        if not user:
            raise typer.BadParameter("SNMPv3 needs --user")
        auth = SnmpAuth(version="3", user=user,
                        auth_proto=auth_proto.upper() if auth_key_file else None,
                        auth_key=_read_key(auth_key_file, "auth key"),
                        priv_proto=priv_proto.upper() if priv_key_file else None,
                        priv_key=_read_key(priv_key_file, "privacy key"))
    elif version in ("1", "2c"):
        auth = SnmpAuth(version=version, community=community)
    else:
        raise typer.BadParameter(f"--snmp-version must be 1, 2c or 3, not {version!r}")
    return Target(h, port, auth, timeout, retries)


def _profiles(profile_dirs: list[Path]) -> ProfileSet:
    ps = load_profiles(profile_dirs)
    for err in ps.errors:
        typer.echo(f"warning: {err}", err=True)
    return ps


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


async def walk(target: Target, oid: str) -> list[tuple[str, Any]]:
    """Walk `oid` on the target; [(oid, value)] in the agent's order."""
    client = target.client()
    rows = await client.walk(oid)
    return [(f"{oid}.{idx}", value) for idx, value in rows.items()]


def _json_value(v: Any) -> Any:
    return as_text(v) if isinstance(v, bytes) else v


def register(app: typer.Typer) -> None:
    # Options shared by every command that talks to a device.
    community_opt = typer.Option("public", "--community", "-c", help="SNMP v1/v2c community")
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
    config_opt = typer.Option(None, "--config", envvar="EDUEDGE_CONFIG",
                              help="agent configuration: HOST may then be a configured device's name")

    @app.command("walk")
    def walk_cmd(host: str = typer.Argument(..., help="HOST or HOST:PORT"),
                 oid: str = typer.Option("1.3.6.1.2.1.1", "--oid", help="subtree to walk"),
                 community: str = community_opt, snmp_version: str | None = version_opt,
                 user: str | None = user_opt, auth_proto: str = auth_proto_opt,
                 auth_key_file: Path | None = auth_key_opt, priv_proto: str = priv_proto_opt,
                 priv_key_file: Path | None = priv_key_opt, timeout: float = timeout_opt,
                 retries: int = retries_opt, as_json: bool = json_opt, config: Path | None = config_opt) -> None:
        """Walk a subtree of HOST (GETBULK on v2c/v3) and print OID = value."""
        target = build_target(host, community, snmp_version, user, auth_proto, auth_key_file, priv_proto,
                              priv_key_file, timeout, retries, config)
        try:
            rows = asyncio.run(walk(target, oid.lstrip(".")))
        except SnmpRequestError as e:
            raise _fail(str(e)) from None
        if as_json:
            typer.echo(json.dumps([{"oid": o, "value": _json_value(v)} for o, v in rows], ensure_ascii=False))
            return
        for o, v in rows:
            typer.echo(f"{o} = {_json_value(v)}")
        if not rows:
            typer.echo(f"(nothing under {oid})", err=True)

    @app.command("poll")
    def poll_cmd(host: str = typer.Argument(..., help="HOST or HOST:PORT"),
                 community: str = community_opt, snmp_version: str | None = version_opt,
                 user: str | None = user_opt, auth_proto: str = auth_proto_opt,
                 auth_key_file: Path | None = auth_key_opt, priv_proto: str = priv_proto_opt,
                 priv_key_file: Path | None = priv_key_opt, timeout: float = timeout_opt,
                 retries: int = retries_opt, as_json: bool = json_opt, config: Path | None = config_opt,
                 profile: str | None = typer.Option(None, "--profile", help="use this profile, not the match"),
                 profile_dir: list[Path] = dirs_opt,
                 rate_interval: float = typer.Option(
                     3.0, "--rate-interval", help="seconds between the two polls that give rates (0: no rates)"),
                 deadline: float = typer.Option(30.0, "--deadline", help="give up on the device after this")) -> None:
        """Poll HOST once through its profile: identity, interfaces, rates, LLDP neighbours, sensors."""
        target = build_target(host, community, snmp_version, user, auth_proto, auth_key_file, priv_proto,
                              priv_key_file, timeout, retries, config)
        ps = _profiles(profile_dir)
        if profile:
            try:
                ps.get(profile)
            except ProfileError as e:
                raise _fail(str(e)) from None
        poller = DevicePoller(target.client(host), ps, forced_profile=profile, deadline=deadline)

        async def twice() -> Any:
            first = await poller.poll()
            if rate_interval <= 0 or first.identity is None:
                return first
            await asyncio.sleep(rate_interval)
            return await poller.poll()

        result = asyncio.run(twice())
        summary = summarise(result)
        if as_json:
            typer.echo(json.dumps(summary, ensure_ascii=False, default=str))
        else:
            _print_poll(summary)
        if result.identity is None:
            raise typer.Exit(1)

    profile_app = typer.Typer(help="Firmware profiles: which one a device matches, and why.",
                              no_args_is_help=True)
    app.add_typer(profile_app, name="profile")

    @profile_app.command("match")
    def match_cmd(host: str | None = typer.Argument(None, help="HOST or HOST:PORT (or use --snmprec)"),
                  snmprec: Path | None = typer.Option(None, "--snmprec", help="a recording instead of a device"),
                  community: str = community_opt, snmp_version: str | None = version_opt,
                  user: str | None = user_opt, auth_proto: str = auth_proto_opt,
                  auth_key_file: Path | None = auth_key_opt, priv_proto: str = priv_proto_opt,
                  priv_key_file: Path | None = priv_key_opt, timeout: float = timeout_opt,
                  retries: int = retries_opt, as_json: bool = json_opt, config: Path | None = config_opt,
                  profile_dir: list[Path] = dirs_opt) -> None:
        """Say which profile a device (or a recording) matches, why, and the identity found."""
        if (host is None) == (snmprec is None):
            raise typer.BadParameter("give either HOST or --snmprec FILE")
        ps = _profiles(profile_dir)
        if snmprec is not None:
            if not snmprec.is_file():
                raise _fail(f"{snmprec}: no such recording")
            client: Any = RecordingClient(snmprec)
        else:
            assert host is not None
            client = build_target(host, community, snmp_version, user, auth_proto, auth_key_file, priv_proto,
                                  priv_key_file, timeout, retries, config).client(host)
        try:
            ident = asyncio.run(DevicePoller(client, ps).identify())
        except (SnmpRequestError, ProfileError) as e:
            raise _fail(str(e)) from None
        if as_json:
            typer.echo(json.dumps(ident.to_dict(), ensure_ascii=False))
            return
        typer.echo(f"{'profile:':<15}{ident.profile}  ({ident.matched_by})")
        for fld in ("vendor", "model", "os_version", "serial", "hostname", "device_class", "sys_object_id"):
            typer.echo(f"{fld + ':':<15}{getattr(ident, fld) or '-'}")

    @profile_app.command("check")
    def check_cmd(profile_dir: list[Path] = typer.Argument(None, help="site profile directories")) -> None:
        """Load the bundled (and given) profiles; print every refused one and exit 2 if any."""
        ps = load_profiles(profile_dir or [])
        for err in ps.errors:
            typer.echo(err, err=True)
        typer.echo(f"{len(ps.concrete())} profiles loaded, {len(ps.errors)} problems")
        if ps.errors:
            raise typer.Exit(2)


def _print_poll(summary: dict[str, Any]) -> None:
    if summary["identity"] is None:
        for e in summary["errors"]:
            typer.echo(f"error: {e}", err=True)
        return
    ident = summary["identity"]
    typer.echo(f"{summary['device']}  profile {summary['profile']}  "
               f"{ident.get('vendor') or ''} {ident.get('model') or ''} {ident.get('os_version') or ''}".rstrip())
    if ident.get("serial"):
        typer.echo(f"serial {ident['serial']}")
    typer.echo(f"{'if':>5} {'name':<28} {'admin':<6} {'oper':<8} {'Mbit/s':>7} {'in bit/s':>12} {'out bit/s':>12}"
               f" {'err/s':>6}  alias")
    for i in summary["interfaces"]:
        errs = (i.get("in_errors_pps") or 0) + (i.get("out_errors_pps") or 0)
        typer.echo(f"{i['index']:>5} {i['name'][:28]:<28} {i.get('admin_status', '-'):<6} "
                   f"{i.get('oper_status', '-'):<8} {i.get('speed_mbps', '-')!s:>7} "
                   f"{_fmt(i.get('in_bps')):>12} {_fmt(i.get('out_bps')):>12} {errs:>6.2f}  {i.get('alias', '')}")
    for n in summary["lldp_neighbors"]:
        typer.echo(f"lldp  {n['local_port']} -> {n['remote_name']} {n['remote_port']}")
    for s in summary["sensors"]:
        tags = ",".join(f"{k}={v}" for k, v in s["tags"].items())
        typer.echo(f"{s['metric']:<24} {s['value']} {s['unit']}  {tags}")
    for e in summary["errors"]:
        typer.echo(f"error: {e}", err=True)
    typer.echo(f"{len(summary['interfaces'])} interfaces, {summary['values']} values in "
               f"{summary['requests']} requests, {summary['duration_s']}s")


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:,.0f}"
