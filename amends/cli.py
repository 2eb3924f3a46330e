"""The ``amends`` command line.

Prefect is imported only by the commands that run flows, so ``amends --help`` and the read-only
commands answer at once.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from amends.errors import AmendsError

if TYPE_CHECKING:
    from amends.casebook import CaseOutcome
    from amends.domain import Incident
    from amends.runtime import Runtime

app = typer.Typer(
    name="amends",
    help="Win customers back: run each incident through assess, empower, monitor, report, "
    "follow up and re-engage, as Prefect flows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="The amends database.", no_args_is_help=True)
app.add_typer(db_app, name="db")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
VerboseFlag = Annotated[
    bool, typer.Option("--verbose", "-v", help="Show Prefect's run logs on the terminal.")
]


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def _runtime() -> Runtime:
    from amends.runtime import runtime

    return runtime()


def _prepare_prefect(verbose: bool) -> None:
    """Quiet, offline-friendly Prefect defaults for a terminal; the environment still wins."""
    # Logs still reach the Prefect UI at INFO; only the terminal is kept to warnings.
    os.environ.setdefault(
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "INFO" if verbose else "WARNING"
    )
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")


def run_incident(incident: Incident) -> CaseOutcome:
    """Run the recover-incident flow in this process and return the case's outcome."""
    from flows.incident import recover_incident

    return recover_incident(incident)


@app.command()
def incident(
    file: Annotated[
        str, typer.Argument(help="Incident JSON file, or - for standard input.", metavar="FILE")
    ],
    as_json: JsonFlag = False,
    verbose: VerboseFlag = False,
) -> None:
    """Run one incident through the recover-incident flow.

    Filing the same incident again resumes its case; nothing is repeated or sent twice.
    """
    from amends.intake import MAX_INCIDENT_BYTES, check_reachable, parse_incident

    try:
        if file == "-":
            raw = sys.stdin.buffer.read(MAX_INCIDENT_BYTES + 1)
        else:
            path = Path(file)
            if not path.is_file():
                raise fail(f"no such file: {file}")
            with path.open("rb") as handle:
                raw = handle.read(MAX_INCIDENT_BYTES + 1)
        parsed = parse_incident(raw)
        rt = _runtime()
        check_reachable(rt.policy, parsed)
        _prepare_prefect(verbose)
        with err.status(f"Recovering {parsed.ref}…", spinner="dots"):
            outcome = run_incident(parsed)
    except AmendsError as error:
        raise fail(str(error)) from None
    if as_json:
        out.print_json(outcome.model_dump_json())
        return
    _print_case(outcome)


@app.command()
def cases(
    as_json: JsonFlag = False,
    limit: Annotated[int, typer.Option(help="How many cases, newest first.", min=1)] = 50,
) -> None:
    """List cases with their stage and state."""
    from amends.casebook import list_cases
    from amends.domain import spoken

    lines = list_cases(_runtime().db, limit=limit)
    if as_json:
        out.print_json(json.dumps([line.model_dump(mode="json") for line in lines]))
        return
    if not lines:
        out.print(
            "No cases yet. File one with [bold]amends incident FILE[/] or try [bold]amends demo[/]."
        )
        return
    table = Table("case", "incident", "customer", "complained by", "decision", "stage", "state")
    for line in lines:
        table.add_row(
            str(line.case_id),
            line.incident_ref,
            f"{line.customer_name} ({line.customer_ref})",
            line.complaint_channel,
            spoken(line.decision),
            spoken(line.stage),
            spoken(line.state),
        )
    out.print(table)


@app.command()
def case(
    ref: Annotated[str, typer.Argument(help="The incident's ref, or the case number.")],
    as_json: JsonFlag = False,
) -> None:
    """Show one case: decision and reasons, stages, messages, offer, check-ins and timeline."""
    from amends.casebook import case_outcome

    try:
        outcome = case_outcome(_runtime().db, ref)
    except AmendsError as error:
        raise fail(str(error)) from None
    if as_json:
        out.print_json(outcome.model_dump_json())
        return
    _print_case(outcome, timeline=True)


@app.command()
def demo(
    home: Annotated[
        Path | None,
        typer.Option(help="Data folder for the demo (default: AMENDS_HOME, else ./var)."),
    ] = None,
    verbose: VerboseFlag = False,
) -> None:
    """Run sample incidents end to end, with a local mail catcher; asks nothing, sends nothing out.

    Mail goes to a real SMTP server on 127.0.0.1 that saves each message under the data
    folder's mail/ folder.
    """
    from amends.demo import run_demo

    _prepare_prefect(verbose)
    try:
        run_demo(home, out=out, err=err)
    except AmendsError as error:
        raise fail(str(error)) from None


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to the database (AMENDS_DATABASE_URL, else the data folder's)."""
    from amends.db import Database
    from amends.settings import Settings

    settings = Settings()
    database = Database(settings.sqlalchemy_url)
    applied = database.upgrade()
    where = database.engine.url.render_as_string(hide_password=True)
    if applied:
        out.print(f"Applied {', '.join(applied)} to {where}.")
    else:
        out.print(f"{where} is up to date (revision {database.revision()}).")


def _print_case(outcome: CaseOutcome, *, timeline: bool = False) -> None:
    from amends.domain import spoken

    out.print(
        f"[bold]Case {outcome.case_id}[/]: incident {outcome.incident_ref}, "
        f"{outcome.customer_name} ({outcome.customer_ref}); complained by "
        f"{outcome.complaint_channel}, reply by {outcome.reply_channel}; "
        f"state [bold]{spoken(outcome.state)}[/]",
        highlight=False,
    )
    out.print(f"\n[bold]Decision: {spoken(outcome.decision)}[/]")
    for reason in outcome.reasons:
        out.print(f"  • {reason}", highlight=False)
    stages = Table("stage", "status", "outcome", title="Stages", title_justify="left")
    for stage in outcome.stages:
        stages.add_row(spoken(stage.name), stage.status, stage.summary)
    out.print(stages)
    if outcome.messages:
        messages = Table(
            "kind", "channel", "status", "to", "note", title="Messages", title_justify="left"
        )
        for m in outcome.messages:
            note = m.last_error or (Path(m.attachment).name if m.attachment else "")
            messages.add_row(spoken(m.kind), m.channel, spoken(m.status), m.recipient, note)
        out.print(messages)
    if outcome.offer:
        o = outcome.offer
        out.print(
            f"[bold]Offer[/]: {spoken(o.kind)}, {o.value:.2f} {o.currency} ({o.status}"
            + (", capped at the frontline limit" if o.capped else "")
            + ")",
            highlight=False,
        )
    if outcome.checkins:
        out.print(
            "[bold]Check-ins[/]: "
            + ", ".join(f"{c.starts_at:%Y-%m-%d %H:%M} UTC ({c.status})" for c in outcome.checkins),
            highlight=False,
        )
    waiting = [a for a in outcome.staff_actions if a.status == "open"]
    for action in waiting:
        out.print(f"[bold]For the {action.role}[/]: {action.instructions}", highlight=False)
    if timeline:
        events = Table("when (UTC)", "stage", "what", title="Timeline", title_justify="left")
        for event in outcome.timeline:
            events.add_row(f"{event.at:%Y-%m-%d %H:%M:%S}", spoken(event.stage), event.text)
        out.print(events)
