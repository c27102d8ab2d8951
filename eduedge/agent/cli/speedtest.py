"""`eduedge speedtest`: the technician's one-shot broadband test, with progress and a readable result.

    eduedge speedtest                              # the server, token and WAN port from the configuration
    eduedge speedtest --server 198.19.100.2:5201   # any eduedge test server (EEST/1)
    eduedge speedtest --json                       # the whole result as one JSON object

With a configuration, the result is kept in the agent's store in `agent.data_dir` (its samples tagged
`window: technician`), so that the next `eduedge diag` (and the agent's next assessment) judges the school's
capacity by it too.

Exit status: 0 every figure measured, 1 a part of the test has no figure (the reason is printed),
2 the configuration or the options are wrong, 3 the test could not run at all (server unreachable or
refusing, another test running on this box).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from eduedge.agent.cli._options import DEFAULT_CONFIG, config_option, config_or_exit
from eduedge.agent.config import AgentConfig, ConfigError
from eduedge.agent.jobs import HOST_DEVICE
from eduedge.agent.samplestore import SampleStore
from eduedge.collectors.broadband.collector import result_samples
from eduedge.collectors.broadband.config import BroadbandConfig
from eduedge.collectors.broadband.result import BroadbandResult
from eduedge.collectors.broadband.schedule import ExclusiveLock
from eduedge.core.i18n import N_, _, ljust
from eduedge.core.secrets import SecretError

if TYPE_CHECKING:    # rich and the engine load when a test runs, not for every `eduedge`
    from rich.text import Text

    from eduedge.collectors.broadband.engine import Progress

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_NOT_RUN = 0, 1, 2, 3
TECHNICIAN = "technician"          # the `window` tag of a test a person ran, beside the agent's windows
_PHASE = {"connect": N_("connecting"), "idle": N_("idle latency"), "down": N_("download"), "up": N_("upload"),
          "done": N_("done")}     # translated where shown


def _f(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def describe(r: BroadbandResult) -> list[str]:
    """The result in lines a person reads: down/up, latency idle and loaded, jitter, loss, ceiling."""
    lines = [_("broadband test against {server} ({engine} engine)").format(
        server=r.server or _("no eduedge test server"), engine=r.engine)]
    if r.error:
        lines.append("  " + _("no result: {error}").format(error=r.error))
    limited = {t.direction for t in r.directions if r.port is not None and r.port.limits(t.mbps)}

    def during(d: str) -> str:
        return _("during download") if d == "down" else _("during upload")

    def label(text: str) -> str:          # the left column, 9 terminal columns wide (a Chinese character takes two)
        return ljust(text, 9)

    for th in r.directions:
        name = label(_("download") if th.direction == "down" else _("upload"))
        if th.mbps is None:
            lines.append(f"  {name} " + _("no figure: {error}").format(error=th.error))
            continue
        subs = (_("; 1 s intervals {low}-{high}").format(low=f"{min(th.intervals_mbps):.1f}",
                                                         high=f"{max(th.intervals_mbps):.1f}")
                if th.intervals_mbps else "")
        ramp = (_("ramp-up {seconds} s excluded") if th.stable else
                _("ramp-up did not settle, measured after {seconds} s")).format(seconds=f"{th.warmup_s:.1f}")
        mark = "  " + _("PORT-LIMITED") if th.direction in limited else ""
        how = _("{streams} streams, {seconds} s, {ramp}").format(streams=th.streams, seconds=f"{th.seconds:.1f}",
                                                                 ramp=ramp) + subs
        lines.append(f"  {name} {th.mbps:8.1f} Mbit/s{mark}  ({how})")
    idle = r.idle
    loaded = [_("{ms} ms {during}").format(ms=_f(t.loaded.median_ms), during=during(t.direction))
              for t in r.directions if t.loaded and t.loaded.answered]
    if idle is not None and idle.answered:
        lines.append("  " + label(_("latency")) + " " + _("{ms} ms idle (min {min})").format(
            ms=_f(idle.median_ms), min=_f(idle.min_ms)) + (", " + ", ".join(loaded) if loaded else ""))
        lines.append("  " + label(_("jitter")) + " " + _("{ms} ms (RFC 3550, idle)").format(ms=_f(idle.jitter_ms, 2)))
        lost = [_("{percent} % {during}").format(percent=_f(t.loaded.loss_percent), during=during(t.direction))
                for t in r.directions if t.loaded]
        lines.append("  " + label(_("loss")) + " " + _("{percent} % idle ({probes} probes)").format(
            percent=_f(idle.loss_percent), probes=idle.sent) + (", " + ", ".join(lost) if lost else ""))
    cross = [_("{mbps} Mbit/s {during}").format(mbps=f"{t.cross_mbps:.1f}", during=during(t.direction))
             for t in r.directions if t.cross_mbps is not None]
    if cross:
        lines.append("  " + _("other traffic on the WAN port: {traffic}").format(traffic=", ".join(cross)))
    p = r.port
    if p is not None and p.ceiling_mbps:
        lines.append("  " + label(_("ceiling")) + " " + _(
            "{interface} at {speed} Mbit/s, MTU {mtu}: TCP carries at most {ceiling} Mbit/s").format(
            interface=p.interface, speed=p.speed_mbps, mtu=p.mtu, ceiling=f"{p.ceiling_mbps:.2f}"))
        if limited:
            which = (_("download and upload") if len(limited) == 2 else
                     _("download") if "down" in limited else _("upload"))
            lines.append("            " + _("{which} reached it: the port, not the line, is the limit").format(
                which=which))
    elif p is not None:
        lines.append("  " + label(_("ceiling")) + " " + _("not known: {interface} does not report its speed").format(
            interface=p.interface))
    lines += ["  " + _("note: {note}").format(note=n) for n in r.notes]
    return lines


def exit_code(r: BroadbandResult) -> int:
    if r.error and not r.directions:
        return EXIT_NOT_RUN
    return EXIT_PARTIAL if r.problems else EXIT_OK


class ProgressView:
    """One status line, redrawn by rich while the test runs."""

    def __init__(self) -> None:
        from eduedge.collectors.broadband.engine import Progress

        self.p = Progress("connect")

    def update(self, p: Progress) -> None:
        self.p = p

    def __rich__(self) -> Text:
        from rich.text import Text

        p = self.p
        text = Text(ljust(_(_PHASE[p.phase]) if p.phase in _PHASE else p.phase, 13), style="bold")
        if p.planned:
            done = min(1.0, p.elapsed / p.planned)
            text.append("█" * int(done * 24) + "░" * (24 - int(done * 24)), style="cyan")
            text.append(f" {p.elapsed:4.1f}/{p.planned:g} s")
        if p.mbps is not None:
            text.append(f"  {p.mbps:8.1f} Mbit/s", style="green" if p.measuring else "yellow")
            text.append("" if p.measuring else " " + _("(ramp-up)"))
        if p.rtt_ms is not None:
            text.append(f"  rtt {p.rtt_ms:.1f} ms")
        return text


def keep(result: BroadbandResult, cfg: AgentConfig) -> str:
    """Store the test's samples where the agent and `eduedge diag` judge from; say where (or why not)."""
    samples = result_samples(result, HOST_DEVICE, TECHNICIAN)
    if not any(s.metric in ("wan.down_mbps", "wan.up_mbps") for s in samples):
        return _("not kept: the test measured no rate")
    try:
        store = SampleStore.in_data_dir(cfg.agent.data_dir)
        try:
            store.add(samples)
        finally:
            store.close()
    except (OSError, sqlite3.Error) as e:
        return _("not kept: cannot write {dir} ({error})").format(dir=cfg.agent.data_dir, error=e)
    return _("kept in {dir}: the next `eduedge diag` judges the school's capacity by it").format(dir=cfg.agent.data_dir)


def _settings(config: Path | None, server: str | None) -> tuple[BroadbandConfig, AgentConfig | None]:
    path = config if config is not None else (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    if path is None:
        return BroadbandConfig(server=server), None
    cfg = config_or_exit(path)
    return cfg.broadband, cfg


def register(app: typer.Typer) -> None:
    @app.command("speedtest")
    def speedtest(
        server: str | None = typer.Option(None, help="HOST:PORT (or eest://HOST:PORT) of an eduedge test server; "
                                                     "default broadband.server"),
        as_json: bool = typer.Option(False, "--json", help="print the whole result as JSON"),
        config: Path | None = config_option(N_("agent configuration (default /etc/eduedge/eduedge.yaml if present)"),
                                            None),
        token_file: Path | None = typer.Option(None, help="the school's token (default broadband.token)"),
        engine: str | None = typer.Option(None, help="builtin or iperf3 (default broadband.engine)"),
        iperf3_server: str | None = typer.Option(None, help="HOST:PORT of an iperf3 server, for --engine iperf3"),
        streams: int | None = typer.Option(None, min=1, max=16, help="TCP streams (default broadband.streams)"),
        duration: float | None = typer.Option(None, min=2, max=60, help="seconds measured per direction"),
        direction: str = typer.Option("both", help="down, up or both"),
        interface: str | None = typer.Option(None, help="the WAN interface (default host.wan_interface, else "
                                                        "the one routing to the server)"),
    ) -> None:
        """Measure the WAN link now: download and upload goodput, idle and loaded latency, jitter, loss,
        and the ceiling of the gateway's WAN port."""
        from rich.console import Console
        from rich.live import Live

        from eduedge.collectors.broadband.engine import Engine, MeasureOptions
        from eduedge.collectors.broadband.probe import parse_server, server_text

        err = Console(stderr=True)
        try:
            server = server_text(*parse_server(server)) if server else None
            b, cfg = _settings(config, server)
            update = {k: v for k, v in (("server", server), ("engine", engine), ("iperf3_server", iperf3_server),
                                        ("streams", streams), ("duration", duration)) if v is not None}
            if direction not in ("down", "up", "both"):
                raise ValueError(_("--direction: {direction} is not down, up or both").format(
                    direction=repr(direction)))
            if direction != "both":
                update["directions"] = [direction]
            if update.get("engine") not in (None, "builtin", "iperf3"):
                raise ValueError(_("--engine: {engine} is not builtin or iperf3").format(engine=repr(engine)))
            b = b.model_copy(update=update)
            if b.engine == "iperf3" and b.iperf3_server is None:
                raise ValueError(_("--engine iperf3 needs --iperf3-server HOST:PORT (or broadband.iperf3_server)"))
            token = token_file.read_text().splitlines()[0].strip() if token_file else (
                b.token.read("broadband.token") if b.token else None)
            if b.server is None and b.engine == "builtin":
                raise ValueError(_("no test server: give --server HOST:PORT or set broadband.server"))
        except ConfigError as e:
            for line in e.problems:
                err.print(line, markup=False)
            raise typer.Exit(EXIT_USAGE) from None
        except (ValueError, SecretError, OSError, IndexError) as e:
            err.print(f"eduedge speedtest: {e}", markup=False)
            raise typer.Exit(EXIT_USAGE) from None
        try:
            host, port = parse_server(b.server) if b.server else (None, 0)
            runner = None
            if b.engine == "iperf3":
                from eduedge.collectors.broadband.iperf3 import iperf3_runner

                assert b.iperf3_server is not None
                runner = iperf3_runner(*parse_server(b.iperf3_server))
        except ValueError as e:
            err.print(f"eduedge speedtest: {e}", markup=False)
            raise typer.Exit(EXIT_USAGE) from None
        opts = MeasureOptions(streams=b.streams, duration=b.duration, warmup_max=b.warmup_max,
                              directions=tuple(b.directions), idle_probes=b.idle_probes)
        wan = interface or (cfg.host.wan_interface if cfg else None)
        lock = ExclusiveLock(cfg.agent.data_dir / "broadband.lock") if cfg and cfg.agent.data_dir.is_dir() else None
        if lock is not None and not lock.acquire():
            err.print(_("eduedge speedtest: another broadband test is running on this box (the agent's scheduled "
                        "test?); try again in a minute"))
            raise typer.Exit(EXIT_NOT_RUN)
        view = ProgressView()
        try:
            live = Live(view, console=err, refresh_per_second=8, transient=True) if err.is_terminal else None
            with live or contextlib.nullcontext():
                result = asyncio.run(Engine(host, port, token, opts, view.update, wan, phase_runner=runner,
                                            engine_name=b.engine).run())
        finally:
            if lock is not None:
                lock.release()
        kept = keep(result, cfg) if cfg is not None else None
        if as_json:
            sys.stdout.write(json.dumps({**result.to_dict(), "kept": kept}, indent=1) + "\n")
        else:
            for line in describe(result):
                typer.echo(line)
            if kept:
                typer.echo(f"  {kept}")
        raise typer.Exit(exit_code(result))

