"""`eduedge cloud ...`: what the city runs. Now: the broadband test server the schools measure against."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import typer

from agent.config import split_host_port
from cloud.speedtest_server import SpeedtestServer, read_tokens, serve


def register(app: typer.Typer) -> None:
    cloud = typer.Typer(help="The city cloud's side: the broadband test server schools measure against.",
                        no_args_is_help=True)
    app.add_typer(cloud, name="cloud")

    @cloud.command("speedtest-server")
    def speedtest_server(
        listen: str = typer.Option("127.0.0.1:5201", help="HOST:PORT for TCP and UDP (0.0.0.0:5201 for schools)"),
        max_tests: int = typer.Option(32, min=1, help="tests at once; more are refused with `ERR busy`"),
        max_seconds: float = typer.Option(60.0, min=1, help="longest test (a school's default test needs ~32 s)"),
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
