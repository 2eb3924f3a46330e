"""A local Prefect server for the data folder: started once, reused by every command, stopped
on request."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from amends.cli._app import app, fail, friendly, out

PANEL = "Prefect"

server_app = typer.Typer(
    help="A Prefect server for this data folder: commands start at once and their runs stay in "
    "the Prefect UI.",
    no_args_is_help=True,
)
app.add_typer(server_app, name="server", rich_help_panel=PANEL)


def _home() -> Path:
    from amends.settings import Settings

    return Settings().home


@server_app.command("start")
@friendly
def server_start(
    port: Annotated[
        int | None,
        typer.Option(help="Port on 127.0.0.1 (default 4200, or a free one if it is taken).", min=1),
    ] = None,
) -> None:
    """Start the data folder's Prefect server (its database in AMENDS_HOME/prefect), or say
    where it already runs. Commands with no PREFECT_API_URL use it."""
    from amends.runner import LocalServer

    with out.status("Starting the Prefect server (10-20 s the first time)…"):
        server = LocalServer.start(_home(), port=port)
    out.print(
        f"Prefect server running: the UI at {server.ui_url}, the API at {server.api_url}. "
        "Stop it with `amends server stop`.",
        highlight=False,
    )


@server_app.command("stop")
@friendly
def server_stop() -> None:
    """Stop the data folder's Prefect server; its runs stay in its database."""
    from amends.runner import stop_local_server

    stopped = stop_local_server(_home())
    out.print("Prefect server stopped." if stopped else "No Prefect server was running here.")


@server_app.command("status")
@friendly
def server_status() -> None:
    """Say whether the data folder's Prefect server runs, and where; exit 1 when it does not."""
    from amends.runner import LocalServer

    server = LocalServer.find(_home())
    if server is None:
        raise fail("no Prefect server runs for this data folder; `amends server start` starts one")
    out.print(f"Prefect server running: the UI at {server.ui_url}.", highlight=False)
