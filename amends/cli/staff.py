"""Staff work: open actions, a manager's approval, check-ins kept or missed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from amends import runner
from amends.cli._app import (
    JsonFlag,
    actions_app,
    app,
    err,
    fail,
    friendly,
    out,
    runtime,
)

if TYPE_CHECKING:
    pass

PANEL = "Staff work"


@actions_app.callback(invoke_without_command=True)
@friendly
def actions(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List open staff work, soonest due first."""
    if ctx.invoked_subcommand is not None:
        return
    from amends.domain import spoken
    from amends.recovery.staff import open_actions

    lines = open_actions(runtime().db)
    if as_json:
        out.print_json(json.dumps([line.model_dump(mode="json") for line in lines]))
        return
    if not lines:
        out.print("No open staff work.")
        return
    table = Table("id", "incident", "customer", "for", "what", "due (UTC)", "instructions")
    for line in lines:
        table.add_row(
            str(line.id),
            line.incident_ref or "-",
            escape(line.customer_name),
            line.role,
            spoken(line.kind),
            f"{line.due_at:%Y-%m-%d %H:%M}" if line.due_at else "-",
            escape(line.instructions),
        )
    out.print(table)
    out.print("[dim]amends actions show ID: the script or message; amends actions done ID[/]")


@actions_app.command("show")
@friendly
def actions_show(action_id: Annotated[int, typer.Argument(help="The action's id.")]) -> None:
    """Show one action, with the script, letter or message a person delivers."""
    from amends.domain import spoken
    from amends.recovery.staff import find_action

    line = find_action(runtime().db, action_id)
    out.print(
        f"[bold]{spoken(line.kind).capitalize()}[/] for the {line.role}: "
        + (f"incident {line.incident_ref}, " if line.incident_ref else "")
        + f"{escape(line.customer_name)} ({line.status})",
        highlight=False,
    )
    out.print(line.instructions, markup=False, highlight=False)
    if line.message_body:
        if line.message_subject:
            out.print(f"\n[bold]Subject:[/] {line.message_subject}", highlight=False)
        out.print("\n" + line.message_body, markup=False, highlight=False)


@actions_app.command("done")
@friendly
def actions_done(
    action_id: Annotated[int, typer.Argument(help="The action's id.")],
    note: Annotated[str, typer.Option(help="What happened: the outcome, in a line.")] = "",
    by: Annotated[str, typer.Option(help="Who did it.")] = "staff",
) -> None:
    """Record that an action was done, with a note on the case's timeline."""
    from amends.recovery.staff import complete_action

    line = complete_action(runtime().db, action_id, note=note, actor=by)
    where = f"incident {line.incident_ref}" if line.incident_ref else line.customer_name
    out.print(f"Action {line.id} done; noted on {where}.", markup=False, highlight=False)


@app.command(rich_help_panel=PANEL)
@friendly
def approve(
    ref: Annotated[str, typer.Argument(help="The case: its incident's ref, or its number.")],
    by: Annotated[str, typer.Option("--by", help="Your name, for the case record.")],
    amount: Annotated[
        float | None,
        typer.Option(help="Grant this much instead of what absorbs the customer's costs.", min=0),
    ] = None,
    decline: Annotated[
        bool, typer.Option("--decline", help="Decline the raise: the frontline offer stands.")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why, in a line.")] = "",
) -> None:
    """Answer a case's request to approve an offer above the frontline limit.

    The answer is recorded on the case, from any machine that reaches amends' database; a run
    suspended for it resumes through Prefect's API (PREFECT_API_URL), one paused in a terminal
    within seconds. After the run's wait timed out, a raised offer is sent to the customer.
    """
    from amends.domain import spoken
    from amends.recovery.approvals import decide
    from amends.reporting.casebook import find_case

    if decline and amount is not None:
        raise fail("--amount and --decline contradict each other: choose one")
    rt = runtime()
    with rt.db.session() as session:
        case_id = find_case(session, ref).id
    decided = decide(rt, case_id, approve=not decline, approver=by, reason=reason, amount=amount)
    request = decided.request
    answer = (
        f"{spoken(request.status)} at {request.amount:.2f} {request.currency} by {request.approver}"
    )
    if not decided.now:
        raise fail(f"case {request.incident_ref} was already {answer}; the first answer stands")
    out.print(f"Case {request.incident_ref}: {answer}.", markup=False, highlight=False)
    try:
        resumed = runner.resume_waiting_run(request)
    except Exception as error:  # the answer is recorded: the nightly run resumes the run
        err.print(
            f"[bold yellow]warning:[/] the run waiting for it was not resumed ({escape(str(error))}"
            "); the nightly run resumes it.",
            highlight=False,
        )
    else:
        if resumed:
            out.print(f"Run {resumed} resumes with this answer.", markup=False, highlight=False)


@app.command(rich_help_panel=PANEL)
@friendly
def checkin(
    ref: Annotated[str, typer.Argument(help="The case: its incident's ref, or its number.")],
    by: Annotated[str, typer.Option("--by", help="Your name, for the case record.")],
    held: Annotated[bool, typer.Option("--held", help="The check-in took place.")] = False,
    missed: Annotated[
        bool, typer.Option("--missed", help="The customer did not come: move it.")
    ] = False,
    number: Annotated[
        int | None, typer.Option(help="Which check-in; the next scheduled one by default.", min=1)
    ] = None,
    feedback: Annotated[
        str, typer.Option(help="What the customer said, for the reports (with --held).")
    ] = "",
) -> None:
    """Record a check-in as held, with the customer's feedback, or as missed.

    A missed check-in moves to the next working day after the policy's pause, and the customer
    gets the updated calendar invitation; after repeated misses a person is asked to call.
    """
    from amends.nightly.aftercare import record_checkin

    if held == missed:
        raise fail("say how it went: --held or --missed")
    if missed and feedback:
        raise fail("--feedback goes with --held: a missed check-in has none")
    record = record_checkin(runtime(), ref, held=held, actor=by, number=number, feedback=feedback)
    what = f"Check-in {record.number} of {record.incident_ref}"
    if record.held:
        out.print(f"{what} held." + (" The case is closed." if record.case_closed else ""))
    else:
        out.print(f"{what} missed; moved to {record.moved_to:%Y-%m-%d %H:%M %Z}.")
    if record.call_asked:
        out.print(f"{record.misses} check-ins missed: a call is in `amends actions`.")
