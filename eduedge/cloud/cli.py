"""`eduedge cloud ...`: what the city runs - the receiver, the page, commands to schools, the broadband test server.

    eduedge cloud ingest --config cloud.yaml [--client-id rx2]   # one receiver; run several on a shared group
    eduedge cloud serve  --config cloud.yaml [--listen 0.0.0.0:8080]
    eduedge cloud judge  --config cloud.yaml [--json] [--schools] # region rules, rule status, offline; exit 1 on a fail
    eduedge cloud cmd SCHOOL rebirth|run-check NAME|set-interval NAME SECONDS --config cloud.yaml
    eduedge cloud maintain --config cloud.yaml                   # sweep seqs and apply retention once
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path
from typing import Any

import typer
from rich.padding import Padding

from eduedge.cloud.config import CloudConfig, CloudConfigError, load_cloud_config
from eduedge.cloud.speedtest_server import SpeedtestServer, read_tokens, serve
from eduedge.core.netaddr import split_host_port
from eduedge.core.secrets import SecretError
from eduedge.core.tables import add, key, num, table, terminal

CONFIG = typer.Option(..., "--config", "-c",
                      help="the cloud's YAML configuration (see eduedge/config/cloud-example.yaml)")


def _load(path: Path) -> CloudConfig:
    try:
        return load_cloud_config(path)
    except CloudConfigError as e:
        for line in e.problems:
            typer.echo(line, err=True)
        raise typer.Exit(2) from None


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def _db(cfg: CloudConfig) -> Any:
    from eduedge.cloud.db import connect

    try:
        return connect(cfg.storage)
    except (SecretError, OSError, RuntimeError) as e:
        typer.echo(f"eduedge cloud: cannot open the database: {e}", err=True)
        raise typer.Exit(2) from None
    except Exception as e:   # psycopg's OperationalError and friends: say it, no traceback
        typer.echo(f"eduedge cloud: cannot open the database: {type(e).__name__}: {e}", err=True)
        raise typer.Exit(2) from None


def _on_stop(stop: Any) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop())


def _print_city(rep: dict[str, Any]) -> None:
    console = terminal()
    typer.echo(f"{len(rep['schools'])} schools: " + ", ".join(f"{n} {s}" for s, n in sorted(rep["states"].items())))
    typer.echo("rules only the city can judge:")
    t = table(key("status"), key("rule"), key("region"), num("value %"), "why")
    for f in rep["region_findings"]:
        add(t, f["status"].upper(), f["rule"], f["region"], None if f["value"] is None else f"{f['value']:g}",
            f["evidence"]["why"])
    console.print(Padding(t, (0, 0, 0, 2), expand=False))
    typer.echo("schools per rule status:")
    t = table(key("rule"), "schools")
    for rule, counts in rep["status_counts"].items():
        add(t, rule, ", ".join(f"{n} {s}" for s, n in counts.items()))
    console.print(Padding(t, (0, 0, 0, 2), expand=False))
    typer.echo(f"not online (nothing for {rep['offline_after_s']:g} s, or the session ended): {len(rep['offline'])}")
    if rep["offline"]:
        t = table(key("school"), key("state"), "offline")
        for r in rep["offline"]:
            add(t, r["school"], r["state"], "never heard from" if r["for_s"] is None else f"for {r['for_s']:.0f} s")
        console.print(Padding(t, (0, 0, 0, 2), expand=False))


def register(app: typer.Typer) -> None:
    cloud = typer.Typer(help="The city cloud's side: receive, store and judge the schools' telemetry; the page; "
                             "commands; the broadband test server.", no_args_is_help=True)
    app.add_typer(cloud, name="cloud")

    @cloud.command("ingest")
    def ingest(config: Path = CONFIG,
               client_id: str | None = typer.Option(None, help="this receiver's MQTT client id (stable across "
                                                               "restarts; distinct per receiver)")) -> None:
        """Receive the schools' messages (shared subscription), check, de-duplicate and store them until SIGTERM."""
        from eduedge.cloud.receiver import Receiver

        cfg = _load(config)
        _logging()
        receiver = Receiver(cfg, client_id, _db(cfg))
        _on_stop(receiver.stop)
        receiver.run()

    @cloud.command("serve")
    def serve_web(config: Path = CONFIG,
                  listen: str | None = typer.Option(None, help="HOST:PORT (default: serve.listen)")) -> None:
        """Serve the city's pages and JSON API (uvicorn; OpenAPI at /api/openapi.json) until SIGTERM."""
        from eduedge.cloud.web import CityWeb, serve

        cfg = _load(config)
        _logging()
        if not cfg.serve.users:
            typer.echo("eduedge cloud serve: no `serve.users` in the configuration - nobody could log in "
                       "(see eduedge/config/cloud-example.yaml)", err=True)
            raise typer.Exit(2)
        try:
            host, port = split_host_port(listen or cfg.serve.listen, 8080)
            web = CityWeb(cfg, _db(cfg))
        except (ValueError, SecretError) as e:
            typer.echo(f"eduedge cloud serve: {e}", err=True)
            raise typer.Exit(2) from None
        serve(web, host, port, lambda p: logging.getLogger("eduedge.cloud.web").info(
            "serving on http://%s:%d%s/", host, p, cfg.serve.root_path))

    @cloud.command("judge")
    def judge(config: Path = CONFIG, as_json: bool = typer.Option(False, "--json"),
              district: str | None = None, school_type: str | None = typer.Option(None, "--type"),
              schools_too: bool = typer.Option(False, "--schools", help="also exit 1 when a school fails a rule")
              ) -> None:
        """Region rules (broadband access rate), schools per rule status, and offline schools, now.

        Exit 1 when a region rule fails (with --schools: or any school fails a rule), else 0."""
        from eduedge.cloud.city import city_report
        from eduedge.cloud.sweep import sweep

        cfg = _load(config)
        db = _db(cfg)
        sweep(db)
        rep = city_report(db, cfg, district=district, school_type=school_type)
        if as_json:
            typer.echo(json.dumps(rep, ensure_ascii=False, indent=1))
        else:
            _print_city(rep)
        failing = [f for f in rep["region_findings"] if f["status"] == "fail"]
        if schools_too:
            failing += [(r["school"], rule) for r in rep["schools"] for rule, st in r["rules"].items() if st == "fail"]
        raise typer.Exit(1 if failing else 0)

    @cloud.command("maintain")
    def maintain(config: Path = CONFIG) -> None:
        """Bring the seq bookkeeping up to date and apply retention once (the receivers also do it as they run)."""
        from eduedge.cloud.retention import apply_retention
        from eduedge.cloud.sweep import sweep

        cfg = _load(config)
        db = _db(cfg)
        streams = sweep(db)
        rep = apply_retention(db, cfg)
        typer.echo(f"{streams} streams swept; {rep.folded} raw samples folded into rollups; removed {rep.messages} "
                   f"old message ids, {rep.rollups} rollups, {rep.rejects} refused messages")

    @cloud.command("cmd", context_settings={"allow_extra_args": False})
    def cmd(school: str = typer.Argument(..., help="the school's id"),
            command: str = typer.Argument(..., help="rebirth | run-check | set-interval"),
            args: list[str] = typer.Argument(None, help="run-check: CHECK (snmp, snmp:DEVICE, host); "
                                                        "set-interval: CHECK SECONDS"),
            config: Path = CONFIG, timeout: float = typer.Option(30.0, min=1, help="seconds to wait for the answer"),
            city: str | None = typer.Option(None, help="the school's city (default: as the school reported it)"),
            as_json: bool = typer.Option(False, "--json")) -> None:
        """Send a command to a school's agent and show its answer (exit 0 ok, 1 refused/error/no answer)."""
        from eduedge.cloud.commands import CommandError, send_command

        args = args or []
        shapes: dict[str, tuple[list[str], Any]] = {
            "rebirth": ([], lambda a: {}),
            "run-check": (["CHECK"], lambda a: {"check": a[0]}),
            "set-interval": (["CHECK", "SECONDS"], lambda a: {"check": a[0], "interval_s": float(a[1])})}
        if command not in shapes:
            typer.echo(f"eduedge cloud cmd: unknown command {command!r} (allowed: {', '.join(shapes)})", err=True)
            raise typer.Exit(2)
        want, build = shapes[command]
        if len(args) != len(want):
            typer.echo(f"eduedge cloud cmd: {command} takes {' '.join(want) or 'no arguments'}", err=True)
            raise typer.Exit(2)
        try:
            cmd_args = build(args)
        except ValueError:
            typer.echo(f"eduedge cloud cmd: SECONDS must be a number, not {args[-1]!r}", err=True)
            raise typer.Exit(2) from None
        cfg = _load(config)
        db = _db(cfg)
        try:
            answer = send_command(cfg, db, school, command, cmd_args, timeout, city)
        except CommandError as e:
            typer.echo(f"eduedge cloud cmd: {e}", err=True)
            raise typer.Exit(2) from None
        if as_json:
            typer.echo(json.dumps(answer.to_dict(), ensure_ascii=False, indent=1))
        else:
            typer.echo(f"{school}: {command} {' '.join(args)} -> {answer.status.upper()}"
                       + (f" (a repeat of request {answer.request_id})" if answer.duplicate else "")
                       + (f": {answer.reason}" if answer.reason else "")
                       + (f" - no answer within {timeout:g} s (sent {answer.sent} times)"
                          if answer.status == "timeout" else f" after {answer.waited_s:.1f} s"))
            if answer.result:
                typer.echo(json.dumps(answer.result, ensure_ascii=False, indent=1))
        raise typer.Exit(0 if answer.status == "ok" else 1)

    @cloud.command("speedtest-server")
    def speedtest_server(
        listen: str = typer.Option("127.0.0.1:5201", help="HOST:PORT for TCP and UDP (0.0.0.0:5201 for schools)"),
        max_tests: int = typer.Option(32, min=1, help="tests at once; more are refused with `ERR busy`"),
        max_seconds: float = typer.Option(60.0, min=1, help="longest test (a school's default test asks for 40 s)"),
        max_streams: int = typer.Option(16, min=1, help="TCP streams per test"),
        token_file: Path | None = typer.Option(None, help="accepted tokens, one a line; without it anyone may test"),
    ) -> None:
        """Serve downloads, uploads and UDP echo (EEST/1, see cloud/speedtest_server.py) until SIGTERM."""
        try:
            host, port = split_host_port(listen, 5201)
            tokens = read_tokens(str(token_file)) if token_file else frozenset()
        except (ValueError, OSError) as e:
            typer.echo(f"eduedge cloud speedtest-server: {e}", err=True)
            raise typer.Exit(2) from None
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        try:
            asyncio.run(serve(SpeedtestServer(host, port, max_tests, max_seconds, tokens, max_streams)))
        except OSError as e:
            typer.echo(f"eduedge cloud speedtest-server: cannot listen on {listen}: {e.strerror or e}", err=True)
            raise typer.Exit(2) from None
