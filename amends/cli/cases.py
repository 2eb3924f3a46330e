"""Cases: file an incident, list and read cases, add to their record, close them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from amends import runner
from amends.cli._app import (
    EXIT_QUEUED,
    EXIT_WAITING,
    JsonFlag,
    VerboseFlag,
    app,
    err,
    fail,
    friendly,
    out,
    runtime,
    start_prefect,
)
from amends.exit_questions import QUESTIONS

if TYPE_CHECKING:
    from amends.recovery.approvals import ApprovalRequest
    from amends.reporting.casebook import CaseLine, CaseOutcome
    from amends.runtime import Runtime

PANEL = "Cases"
# Each exit question's option says the question it answers (amends.exit_questions).
_ASKED = {question.key: question.asked_in("en") for question in QUESTIONS}


def _read_incident(file: str) -> bytes:
    from amends.recovery.intake import MAX_INCIDENT_BYTES

    if file == "-":
        return sys.stdin.buffer.read(MAX_INCIDENT_BYTES + 1)
    path = Path(file)
    if path.is_dir():
        raise fail(f"{file} is a folder, not an incident file")
    if not path.is_file():
        raise fail(f"no such file: {file}")
    with path.open("rb") as handle:
        return handle.read(MAX_INCIDENT_BYTES + 1)


@app.command(rich_help_panel=PANEL)
@friendly
def incident(
    file: Annotated[
        str, typer.Argument(help="Incident JSON file, or - for standard input.", metavar="FILE")
    ],
    as_json: JsonFlag = False,
    verbose: VerboseFlag = False,
    via_deployment: Annotated[
        bool,
        typer.Option(
            "--via-deployment",
            help="Hand it to the recover-incident deployment on the Prefect server "
            "(PREFECT_API_URL), for a worker to run, instead of running it here.",
        ),
    ] = False,
    via_event: Annotated[
        bool,
        typer.Option(
            "--via-event",
            help="Emit an amends.incident.filed event instead; the deployment's trigger "
            "starts the run.",
        ),
    ] = False,
) -> None:
    """Run one incident through the recover-incident flow.

    Filing the same incident again resumes its case; nothing is repeated or sent twice. Exits
    with 3 when the case is recorded but some mail could not be sent yet (it stays queued), and
    with 4 at once when the offer waits for a manager's approval (`amends approve`, then file
    it again). With --via-deployment or --via-event it exits 0 once the server has the run or
    the event; a run of the deployment that waits for approval is suspended, holding no worker,
    and resumes when answered.
    """
    from amends.recovery.intake import check_can_file, parse_incident

    if via_deployment and via_event:
        raise fail("choose one of --via-deployment and --via-event")
    parsed = parse_incident(_read_incident(file), runtime().settings.business_timezone)
    check_can_file(runtime(), parsed)  # refuse before Prefect starts a run
    start_prefect(verbose)
    if via_deployment or via_event:
        report, line = runner.file_incident(parsed, by_event=via_event)
        if as_json:
            out.print_json(json.dumps(report))
        else:
            out.print(line, markup=False, highlight=False)
        return
    from amends.cli._recover import run_answering_approval
    from amends.recovery.approvals import ApprovalRequest

    with err.status(f"Recovering {parsed.ref}…", spinner="dots"):
        # A large offer waits for a manager: say so and return, rather than hang for hours.
        outcome = run_answering_approval(
            runtime(), parsed, runner.run_incident, err, wait=False, leave=True
        )
    if isinstance(outcome, ApprovalRequest):
        _print_waiting(outcome, file, as_json)
        raise typer.Exit(EXIT_WAITING)
    if as_json:
        out.print_json(outcome.model_dump_json())
    else:
        _print_case(outcome)
    queued = [m for m in outcome.messages if m.status == "queued"]
    if queued:
        err.print(
            f"[bold yellow]warning:[/] {len(queued)} message(s) could not be sent yet and stay "
            f"queued: {queued[0].last_error}. Check AMENDS_SMTP_HOST and AMENDS_SMTP_PORT, or run "
            "`amends mailcatcher` for a local test server; filing the incident again retries.",
            highlight=False,
        )
        raise typer.Exit(EXIT_QUEUED)


def _print_waiting(request: ApprovalRequest, file: str, as_json: bool) -> None:
    from amends.domain import business_time

    again = "amends incident " + (file if file != "-" else "FILE")
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "incident_ref": request.incident_ref,
                    "case_id": request.case_id,
                    "status": "waiting_for_approval",
                    "question": request.question,
                    "answer": f"amends approve {request.incident_ref} --by NAME",
                    "then": again,
                }
            )
        )
    zone = runtime().settings.business_timezone
    err.print(
        f"[bold yellow]{request.incident_ref} waits for a manager's approval[/] (until "
        f"{business_time(request.due_at, zone)}): {escape(request.question)}\n  Answer with "
        f"[bold]amends approve {request.incident_ref} --by NAME[/] (--amount N, --decline), "
        f"then [bold]{escape(again)}[/] finishes the case (nothing done is repeated). A run "
        "filed with --via-deployment waits suspended instead and resumes by itself when "
        "answered.",
        highlight=False,
    )


@app.command(rich_help_panel=PANEL)
@friendly
def cases(
    as_json: JsonFlag = False,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Print CSV, for a spreadsheet, instead of a table.")
    ] = False,
    limit: Annotated[int, typer.Option(help="How many cases, newest first.", min=1)] = 50,
    every: Annotated[bool, typer.Option("--all", help="Every case, however many.")] = False,
) -> None:
    """List cases with their stage and state, newest first. When there are more than shown,
    standard error says how many (standard output stays pure JSON or CSV)."""
    from amends.reporting.casebook import CaseLine, count_cases, list_cases

    rt = runtime()
    lines = list_cases(rt.db, limit=None if every else limit)
    total = len(lines) if every else count_cases(rt.db)
    if as_json:
        out.print_json(json.dumps([line.model_dump(mode="json") for line in lines]))
    elif as_csv:
        from amends.reporting.spreadsheet import write_csv

        rows = [line.model_dump(mode="json") for line in lines]
        write_csv(rows, list(CaseLine.model_fields), sys.stdout)
    else:
        _print_cases(rt, lines)
    if total > len(lines):
        err.print(
            f"The newest {len(lines):,} of {total:,} cases; --limit N or --all shows more.",
            highlight=False,
        )


def _print_cases(rt: Runtime, lines: list[CaseLine]) -> None:
    from amends.domain import spoken

    if not lines:
        where = rt.db.engine.url.render_as_string(hide_password=True)
        out.print(
            f"No cases yet in {where}. File one with [bold]amends incident FILE[/] or try "
            "[bold]amends demo[/]."
        )
        return
    table = Table("case", "incident", "customer", "complained by", "decision", "stage", "state")
    for line in lines:
        table.add_row(
            str(line.case_id),
            line.incident_ref,
            escape(f"{line.customer_name} ({line.customer_ref})"),
            spoken(line.complaint_channel),
            spoken(line.decision),
            spoken(line.stage),
            spoken(line.state),
        )
    out.print(table)


@app.command(rich_help_panel=PANEL)
@friendly
def case(
    ref: Annotated[str, typer.Argument(help="The incident's ref, or the case number.")],
    as_json: JsonFlag = False,
) -> None:
    """Show one case: decision and reasons, stages, messages, offer, check-ins and timeline."""
    from amends.reporting.casebook import case_outcome

    outcome = case_outcome(runtime().db, ref)
    if as_json:
        out.print_json(outcome.model_dump_json())
        return
    _print_case(outcome, timeline=True)


@app.command(rich_help_panel=PANEL)
@friendly
def note(
    ref: Annotated[str, typer.Argument(help="The case: its incident's ref, or its number.")],
    text: Annotated[str, typer.Argument(help="The note, in a line (at most 1000 characters).")],
    by: Annotated[str, typer.Option("--by", help="Your name, for the case record.")],
) -> None:
    """Add a note to a case's timeline (open or closed): what you did, heard or decided."""
    from amends.nightly.aftercare import add_note

    case_id = add_note(runtime(), ref, text, actor=by)
    out.print(f"Noted on case {case_id}.")


@app.command("exit-answers", rich_help_panel=PANEL)
@friendly
def exit_answers(
    customer: Annotated[str, typer.Argument(help="The customer's ref.")],
    by: Annotated[str, typer.Option("--by", help="Your name, for the record.")],
    why: Annotated[str, typer.Option(help=_ASKED["why"])] = "",
    where: Annotated[str, typer.Option(help=_ASKED["went_to"])] = "",
    second_chance: Annotated[str, typer.Option(help=_ASKED["second_chance"])] = "",
    stay: Annotated[str, typer.Option(help=_ASKED["stay"])] = "",
) -> None:
    """Record a leaving customer's answers to the exit questions (as told on the phone or in a
    letter), for the report's themes.

    The answers are the customer's words: they reach `amends report` and its CSV for staff,
    never the Prefect artifacts.
    """
    from amends.nightly.aftercare import record_exit_answers

    given = {"why": why, "went_to": where, "second_chance": second_chance, "stay": stay}
    record = record_exit_answers(runtime(), customer, given, actor=by)
    noted = f"; noted on case {record.incident_ref}" if record.incident_ref else ""
    out.print(f"Exit answers of {record.customer_ref} recorded{noted}.", markup=False)


@app.command(rich_help_panel=PANEL)
@friendly
def close(
    ref: Annotated[str, typer.Argument(help="The case: its incident's ref, or its number.")],
    by: Annotated[str, typer.Option("--by", help="Your name, for the case record.")],
    reason: Annotated[str, typer.Option(help="Why it closes, in a line.")],
    withdrawn: Annotated[
        bool,
        typer.Option(
            "--withdrawn", help="The customer withdrew (asked to stop, left): no thank-you note."
        ),
    ] = False,
) -> None:
    """Close a case now, cancelling its remaining check-ins.

    The customer's calendar gets the cancellation too, and the customer one closing thank-you.
    Refused while the put-right the apology promised is not recorded as done (`amends done`),
    unless the customer withdrew.
    """
    from amends.nightly.aftercare import close_case

    cancelled = close_case(runtime(), ref, reason=reason, actor=by, resolved=not withdrawn)
    out.print(f"Case {ref} closed; {cancelled} check-in(s) cancelled.", markup=False)


@app.command(rich_help_panel=PANEL)
@friendly
def done(
    ref: Annotated[str, typer.Argument(help="The case: its incident's ref, or its number.")],
    by: Annotated[str, typer.Option("--by", help="Your name, for the case record.")],
) -> None:
    """Record that the put-right the apology promised is done (the suit replaced, the money
    refunded): only then does the case close with its thank-you."""
    from amends.nightly.aftercare import confirm_put_right

    closed = confirm_put_right(runtime(), ref, actor=by)
    then = "; the case is closed and the thank-you follows" if closed else ""
    out.print(f"Put-right of {ref} recorded as done{then}.", markup=False)


def _print_case(outcome: CaseOutcome, *, timeline: bool = False) -> None:
    from zoneinfo import ZoneInfo

    from amends.domain import spoken

    zone = runtime().settings.business_timezone  # every time as the business reads it

    out.print(
        f"[bold]Case {outcome.case_id}[/]: incident {outcome.incident_ref}, "
        f"{escape(outcome.customer_name)} ({outcome.customer_ref}); complained by "
        f"{outcome.complaint_channel}, reply by {outcome.reply_channel}; "
        f"state [bold]{spoken(outcome.state)}[/]",
        highlight=False,
    )
    out.print(f"\n[bold]Decision: {spoken(outcome.decision)}[/]")
    for reason in outcome.reasons:
        out.print(f"  • {escape(reason)}", highlight=False)
    stages = Table("stage", "status", "outcome", title="Stages", title_justify="left")
    for stage in outcome.stages:
        stages.add_row(spoken(stage.name), stage.status, escape(stage.summary))
    out.print(stages)
    if outcome.messages:
        messages = Table(
            "kind", "channel", "status", "to", "note", title="Messages", title_justify="left"
        )
        for m in outcome.messages:
            note = m.last_error or (Path(m.attachment).name if m.attachment else "")
            messages.add_row(
                spoken(m.kind), m.channel, spoken(m.status), escape(m.recipient), escape(note)
            )
        out.print(messages)
    if outcome.offer:
        o = outcome.offer
        out.print(
            f"[bold]Offer[/]: {spoken(o.kind)}, {o.value:.2f} {o.currency} ({o.status})",
            highlight=False,
        )
        if outcome.approval:
            approval = escape(outcome.approval.describe(o.currency, zone))
            out.print(f"[bold]Approval[/]: {approval}", highlight=False)
    if outcome.checkins:
        out.print(
            "[bold]Check-ins[/]: " + ", ".join(c.describe(zone) for c in outcome.checkins),
            highlight=False,
        )
        for c in outcome.checkins:
            if c.feedback:
                out.print(f"  Check-in {c.number} feedback: {escape(c.feedback)}", highlight=False)
    waiting = [a for a in outcome.staff_actions if a.status == "open"]
    for action in waiting:
        out.print(f"[bold]For the {action.role}[/]: {escape(action.instructions)}", highlight=False)
    if timeline:
        events = Table(
            "when", "stage", "what", "who", title=f"Timeline ({zone})", title_justify="left"
        )
        for event in outcome.timeline:
            events.add_row(
                f"{event.at.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M}",
                spoken(event.stage),
                escape(event.text),
                escape(event.actor),
            )
        out.print(events)
