"""The command line's frame: the app and its groups, the consoles, shared flags, and how an
error becomes one line and an exit code."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec

import typer
from rich.console import Console
from rich.markup import escape

from amends.errors import AmendsError

if TYPE_CHECKING:
    from amends.runtime import Runtime

P = ParamSpec("P")

app = typer.Typer(
    name="amends",
    help="Win customers back: run each incident through assess, empower, monitor, report, "
    "follow up and re-engage, as Prefect flows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="The amends database.", no_args_is_help=True)
app.add_typer(db_app, name="db", rich_help_panel="Your data")
policy_app = typer.Typer(help="The recovery policy.", no_args_is_help=True)
app.add_typer(policy_app, name="policy", rich_help_panel="Your data")
import_app = typer.Typer(
    help="Import customers and their activity from your own systems (CSV).", no_args_is_help=True
)
app.add_typer(import_app, name="import", rich_help_panel="Your data")
templates_app = typer.Typer(help="The message templates.", no_args_is_help=True)
app.add_typer(templates_app, name="templates", rich_help_panel="Messages")
actions_app = typer.Typer(
    help="Staff work: call-backs, letters to print, visits, reviews. Lists the open ones."
)
app.add_typer(actions_app, name="actions", rich_help_panel="Staff work")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
VerboseFlag = Annotated[
    bool, typer.Option("--verbose", "-v", help="Show Prefect's run logs on the terminal.")
]


# Exit codes: 1 for an error, 3 when the run completed but some mail stays queued, 4 when the
# run waits for a manager's approval.
EXIT_QUEUED = 3
EXIT_WAITING = 4


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


def explain(error: Exception) -> str | None:
    """One line for an error a user can fix; None for a bug, which keeps its traceback."""
    from pydantic import ValidationError
    from sqlalchemy.exc import OperationalError

    if isinstance(error, AmendsError):
        return str(error)
    if isinstance(error, ValidationError) and error.title == "Settings":
        return "configuration: " + "; ".join(
            f"AMENDS_{'_'.join(str(part) for part in problem['loc']).upper()}: {problem['msg']}"
            for problem in error.errors()
        )
    if isinstance(error, OperationalError):
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        return f"cannot use the database: {reason}"
    if isinstance(error, OSError) and error.strerror:  # a file or a port: the system's words
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return None


def friendly(command: Callable[P, None]) -> Callable[P, None]:
    """Turn the errors a user can fix into one line and exit code 1, in every command."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except typer.Exit:
            raise
        except Exception as error:
            message = explain(error)
            if message is None:
                raise
            raise fail(message) from None

    return run


def start_prefect(verbose: bool, home: Path | None = None) -> None:
    """Ready Prefect for a command that runs flows: the configured server (PREFECT_API_URL),
    else the data folder's own, started by the first command that needs it and reused after;
    with ``AMENDS_PREFECT_SERVER=temporary``, a server Prefect starts for this command alone.
    Either start is said in a line."""
    from amends import runner
    from amends.settings import Settings

    settings = Settings()
    home = home or settings.home
    runner.prepare(verbose, home)
    if runner.api_url() is not None:
        return
    if settings.prefect_server == "temporary":
        err.print(
            "[dim]Prefect starts a temporary server for this command (10-20 s); "
            "`amends server start` keeps one running, so commands start at once and their "
            "runs stay in the Prefect UI.[/]",
            highlight=False,
        )
        return
    with err.status("Starting a Prefect server for this data folder (once, 10-20 s)…"):
        server = runner.use_local_server(home)
    err.print(
        f"[dim]Prefect server started for this data folder: the UI at {server.ui_url}. Later "
        "commands use it; `amends server stop` stops it.[/]",
        highlight=False,
    )


def runtime() -> Runtime:
    from amends.runtime import runtime as current

    return current()
