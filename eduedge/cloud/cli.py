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
from eduedge.cloud.i18n import MESSAGES
from eduedge.cloud.i18n import text as pages_text
from eduedge.cloud.speedtest_server import SpeedtestServer, read_tokens, serve
from eduedge.core import i18n
from eduedge.core.i18n import _, language
from eduedge.core.netaddr import split_host_port
from eduedge.core.secrets import SecretError
from eduedge.core.tables import add, key, num, table, terminal

CONFIG = typer.Option(..., "--config", "-c",
                      help="the cloud's YAML configuration (see eduedge/config/cloud-example.yaml)")


def _load(path: Path) -> CloudConfig:
    """The configuration; a `city.language` written in it is the language of what the command prints from here on,
    unless `--lang` said otherwise (the same order as the agent's `ui.lang`). Left out, the locale speaks: the
    pages' default of zh is for browsers, not for the integrator's terminal."""
    try:
        cfg = load_cloud_config(path)
    except CloudConfigError as e:
        for line in e.problems:
            typer.echo(line, err=True)
        raise typer.Exit(2) from None
    i18n.choose(configured=cfg.city.language if "language" in cfg.city.model_fields_set else None)
    return cfg


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def _db(cfg: CloudConfig) -> Any:
    from eduedge.cloud.db import connect

    try:
        return connect(cfg.storage)
    except (SecretError, OSError, RuntimeError) as e:
        typer.echo(_("eduedge cloud: cannot open the database: {error}").format(error=e), err=True)
        raise typer.Exit(2) from None
    except Exception as e:   # psycopg's OperationalError and friends: say it, no traceback
        typer.echo(_("eduedge cloud: cannot open the database: {error}").format(error=f"{type(e).__name__}: {e}"),
                   err=True)
        raise typer.Exit(2) from None


def _on_stop(stop: Any) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop())


def _word(kind: str, value: str) -> str:
    """A status or a state in the words of the city's pages (cloud/i18n.py), so the terminal and the page agree."""
    return pages_text(language(), f"{kind}.{value}") if f"{kind}.{value}" in MESSAGES["en"] else value


def _counts(counts: dict[str, int], kind: str) -> str:
    return i18n.listing(_("{n} {word}").format(n=n, word=_word(kind, s)) for s, n in sorted(counts.items()))


def _print_city(rep: dict[str, Any]) -> None:
    from eduedge.cloud.city import access_why

    console, lang = terminal(), language()
    typer.echo(_("{n} schools: {states}").format(n=len(rep["schools"]), states=_counts(rep["states"], "state")))
    typer.echo(_("rules only the city can judge:"))
    t = table(key(_("status")), key(_("rule")), key(_("region")), num(_("value %")), _("why"))
    for f in rep["region_findings"]:
        add(t, _word("status", f["status"]).upper(), f["rule"], f["region"],
            None if f["value"] is None else f"{f['value']:g}", access_why(f["evidence"], lang))
    console.print(Padding(t, (0, 0, 0, 2), expand=False))
    typer.echo(_("schools per rule status:"))
    t = table(key(_("rule")), _("schools"))
    for rule, counts in rep["status_counts"].items():
        add(t, rule, _counts(counts, "status"))
    console.print(Padding(t, (0, 0, 0, 2), expand=False))
    typer.echo(_("not online (nothing for {seconds} s, or the session ended): {n}").format(
        seconds=f"{rep['offline_after_s']:g}", n=len(rep["offline"])))
    if rep["offline"]:
        t = table(key(_("school")), key(_("state")), _("offline"))
        for r in rep["offline"]:
            add(t, r["school"], _word("state", r["state"]), _("never heard from") if r["for_s"] is None
                else _("for {seconds} s").format(seconds=f"{r['for_s']:.0f}"))
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
            typer.echo(_("eduedge cloud serve: no `serve.users` in the configuration - nobody could log in "
                         "(see eduedge/config/cloud-example.yaml)"), err=True)
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
        typer.echo(_("{streams} streams swept; {folded} raw samples folded into rollups; removed {messages} old "
                     "message ids, {rollups} rollups, {rejects} refused messages").format(
            streams=streams, folded=rep.folded, messages=rep.messages, rollups=rep.rollups, rejects=rep.rejects))

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
            typer.echo(_("eduedge cloud cmd: unknown command {command} (allowed: {allowed})").format(
                command=repr(command), allowed=", ".join(shapes)), err=True)
            raise typer.Exit(2)
        want, build = shapes[command]
        if len(args) != len(want):
            typer.echo(_("eduedge cloud cmd: {command} takes {arguments}").format(
                command=command, arguments=" ".join(want)) if want else
                _("eduedge cloud cmd: {command} takes no arguments").format(command=command), err=True)
            raise typer.Exit(2)
        try:
            cmd_args = build(args)
        except ValueError:
            typer.echo(_("eduedge cloud cmd: SECONDS must be a number, not {value}").format(value=repr(args[-1])),
                       err=True)
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
            said = " ".join([command, *args]) + " -> " + _word("status", answer.status).upper()
            if answer.duplicate:
                said += _(" (a repeat of request {request})").format(request=answer.request_id)
            if answer.reason:
                said += _(": {reason}").format(reason=answer.reason)
            if answer.status == "timeout":
                said += _(" - no answer within {seconds} s (sent {n} times)").format(seconds=f"{timeout:g}",
                                                                                     n=answer.sent)
            else:
                said += _(" after {seconds} s").format(seconds=f"{answer.waited_s:.1f}")
            typer.echo(f"{school}: {said}")
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
            typer.echo(_("eduedge cloud speedtest-server: cannot listen on {address}: {error}").format(
                address=listen, error=e.strerror or e), err=True)
            raise typer.Exit(2) from None
