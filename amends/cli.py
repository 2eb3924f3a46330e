"""The ``amends`` command line.

Prefect is imported only by the commands that run flows, so ``amends --help`` and the read-only
commands answer at once.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from amends.errors import AmendsError

if TYPE_CHECKING:
    from amends.domain import Incident
    from amends.reporting.casebook import CaseOutcome
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
app.add_typer(db_app, name="db")
policy_app = typer.Typer(help="The recovery policy.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
import_app = typer.Typer(
    help="Import customers and their activity from your own systems (CSV).", no_args_is_help=True
)
app.add_typer(import_app, name="import")
templates_app = typer.Typer(help="The message templates.", no_args_is_help=True)
app.add_typer(templates_app, name="templates")
actions_app = typer.Typer(
    help="Staff work: call-backs, letters to print, visits, reviews. Lists the open ones."
)
app.add_typer(actions_app, name="actions")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
VerboseFlag = Annotated[
    bool, typer.Option("--verbose", "-v", help="Show Prefect's run logs on the terminal.")
]


# Exit codes: 1 for an error, 3 when the run completed but some mail stays queued.
EXIT_QUEUED = 3


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


def _runtime() -> Runtime:
    from amends.runtime import runtime

    return runtime()


def _prepare_prefect(verbose: bool) -> None:
    """Quiet, offline-friendly Prefect defaults for a terminal; the environment still wins."""
    # The run's logs still reach the Prefect UI; the terminal gets this command's own report.
    os.environ.setdefault(
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "INFO" if verbose else "CRITICAL"
    )
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")


def run_incident(incident: Incident) -> CaseOutcome:
    """Run the recover-incident flow in this process and return the case's outcome."""
    from prefect import tags

    from amends.flows.in_process import in_process_run
    from amends.flows.incident import recover_incident
    from amends.tasks.intake import run_tags

    # Here, in the thread that runs the flow: both are context variables. Tags given at the
    # run's creation spare label-run a call to the API.
    with in_process_run(), tags(*run_tags(incident)):
        return recover_incident(incident)


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


@app.command()
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
    with 3 when the case is recorded but some mail could not be sent yet (it stays queued).
    With --via-deployment or --via-event it exits 0 once the server has the run or the event.
    """
    from amends.recovery.intake import check_can_file, parse_incident

    if via_deployment and via_event:
        raise fail("choose one of --via-deployment and --via-event")
    parsed = parse_incident(_read_incident(file))
    check_can_file(_runtime(), parsed)  # refuse before Prefect starts a run
    _prepare_prefect(verbose)
    if via_deployment or via_event:
        _file_remotely(parsed, by_event=via_event, as_json=as_json)
        return
    from amends.demo import run_answering_approval

    with err.status(f"Recovering {parsed.ref}…", spinner="dots"):
        # A large offer pauses the run for a manager: say so rather than hang in silence.
        outcome = run_answering_approval(_runtime(), parsed, run_incident, err, wait=True)
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


def _file_remotely(parsed: Incident, *, by_event: bool, as_json: bool) -> None:
    """Hand the incident to the Prefect server and say where to watch it."""
    from prefect.utilities.urls import url_for

    from amends.tasks.filing import file_by_deployment, file_by_event

    if by_event:
        event = file_by_event(parsed)
        report = {"event": event.event, "event_id": str(event.id)}
        line = f"Incident {parsed.ref} filed as event {event.id}; the deployment's trigger runs it."
    else:
        run = file_by_deployment(parsed)
        report = {"flow_run_id": str(run.id), "flow_run_name": run.name, "url": url_for(run)}
        line = f"Flow run {run.name} ({run.id}) scheduled: {report['url']}"
    if as_json:
        out.print_json(json.dumps(report))
    else:
        out.print(line, markup=False, highlight=False)


@app.command()
@friendly
def cases(
    as_json: JsonFlag = False,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Print CSV, for a spreadsheet, instead of a table.")
    ] = False,
    limit: Annotated[int, typer.Option(help="How many cases, newest first.", min=1)] = 50,
) -> None:
    """List cases with their stage and state."""
    from amends.domain import spoken
    from amends.reporting.casebook import CaseLine, list_cases

    rt = _runtime()
    lines = list_cases(rt.db, limit=limit)
    if as_json:
        out.print_json(json.dumps([line.model_dump(mode="json") for line in lines]))
        return
    if as_csv:
        from amends.reporting.spreadsheet import write_csv

        rows = [line.model_dump(mode="json") for line in lines]
        write_csv(rows, list(CaseLine.model_fields), sys.stdout)
        return
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


@app.command()
@friendly
def report(
    since: Annotated[
        str | None,
        typer.Option(
            help="First day, YYYY-MM-DD in the business time zone; by default the week up to "
            "--until, or with neither day the 7 whole days before today."
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Last day, included (YYYY-MM-DD); up to now by default.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(help="Folder for the CSV files and chart; AMENDS_HOME/reports/<period>."),
    ] = None,
    verbose: VerboseFlag = False,
) -> None:
    """Report a period's complaints, as the weekly recovery-report deployment does.

    Complaints by channel and category, the share that was our fault, time to first response
    and to resolution (median, 90th percentile), service-level breaches, recovery rate,
    customers lost, compensation spent against revenue kept, repeat failures, and the feedback
    themes with their quotes for the marketing team. Writes CSV files and a chart.
    """
    from amends.reporting.report import parse_day, report_period

    first = parse_day(since, "--since") if since else None
    last = parse_day(until, "--until") if until else None
    report_period(_runtime().settings.business_timezone, since=first, until=last)  # refuse early
    _prepare_prefect(verbose)
    from amends.flows.report import ReportRequest, recovery_report

    run = recovery_report(ReportRequest(since=first, until=last, output=output))
    _print_report(run.report, run.files)


def _print_report(report: Any, files: dict[str, Path]) -> None:
    from amends.reporting.report import figures

    p = report.period
    out.print(
        f"[bold]Recovery report[/] {p.since:%Y-%m-%d %H:%M} to {p.until:%Y-%m-%d %H:%M} UTC",
        highlight=False,
    )
    if not report.complaints:
        out.print("No complaints in this period.")
    table = Table("figure", Column("value", justify="right"))
    for row in figures(report):
        table.add_row(row["figure"], str(row["value"]))
    out.print(table)
    for title, counts in (("By channel", report.by_channel), ("By category", report.by_category)):
        if counts:
            out.print(f"[bold]{title}[/]: " + ", ".join(f"{c.name} {c.complaints}" for c in counts))
    if report.repeat_customers:
        out.print("[bold]Repeat failures[/]: " + escape(", ".join(report.repeat_customers)))
    for theme in report.themes:
        out.print(f"[bold]{theme.name}[/] ({theme.count})", highlight=False)
        for quote in theme.quotes:
            out.print(
                f"  {escape(quote.customer_ref)} ({quote.source}): {escape(quote.text)}",
                highlight=False,
            )
    out.print("Files: " + ", ".join(str(path) for path in files.values()), highlight=False)


@app.command()
@friendly
def note(
    ref: Annotated[str, typer.Argument(help="The case: its incident's ref, or its number.")],
    text: Annotated[str, typer.Argument(help="The note, in a line (at most 1000 characters).")],
    by: Annotated[str, typer.Option("--by", help="Your name, for the case record.")],
) -> None:
    """Add a note to a case's timeline (open or closed): what you did, heard or decided."""
    from amends.nightly.aftercare import add_note

    case_id = add_note(_runtime(), ref, text, actor=by)
    out.print(f"Noted on case {case_id}.")


@app.command("exit-answers")
@friendly
def exit_answers(
    customer: Annotated[str, typer.Argument(help="The customer's ref.")],
    by: Annotated[str, typer.Option("--by", help="Your name, for the record.")],
    why: Annotated[str, typer.Option(help="Why they left.")] = "",
    where: Annotated[str, typer.Option(help="Where they went instead.")] = "",
    second_chance: Annotated[str, typer.Option(help="What would earn us a second chance.")] = "",
    stay: Annotated[str, typer.Option(help="What would have made them stay.")] = "",
) -> None:
    """Record a leaving customer's answers to the exit questions, for the report's themes.

    The answers are the customer's words: they reach `amends report` and its CSV for staff,
    never the Prefect artifacts.
    """
    from amends.nightly.aftercare import record_exit_answers

    record = record_exit_answers(
        _runtime(),
        customer,
        actor=by,
        why=why,
        went_to=where,
        second_chance=second_chance,
        stay=stay,
    )
    noted = f"; noted on case {record.incident_ref}" if record.incident_ref else ""
    out.print(f"Exit answers of {record.customer_ref} recorded{noted}.", markup=False)


@app.command()
@friendly
def case(
    ref: Annotated[str, typer.Argument(help="The incident's ref, or the case number.")],
    as_json: JsonFlag = False,
) -> None:
    """Show one case: decision and reasons, stages, messages, offer, check-ins and timeline."""
    from amends.reporting.casebook import case_outcome

    outcome = case_outcome(_runtime().db, ref)
    if as_json:
        out.print_json(outcome.model_dump_json())
        return
    _print_case(outcome, timeline=True)


@app.command()
@friendly
def monitor(
    files: Annotated[
        list[Path] | None,
        typer.Option("--file", help="A social-listening export (CSV or JSON Lines) or a folder."),
    ] = None,
    feeds: Annotated[
        list[str] | None, typer.Option("--feed", help="An RSS or Atom feed URL.")
    ] = None,
    mastodon: Annotated[
        str | None, typer.Option(help="A Mastodon server's URL, with --query.")
    ] = None,
    query: Annotated[
        str | None, typer.Option(help="For --mastodon: a #hashtag, or words to search.")
    ] = None,
    handles: Annotated[
        list[str] | None,
        typer.Option("--handle", help="The business's own handle; AMENDS_SOCIAL_HANDLES if none."),
    ] = None,
    max_incidents: Annotated[
        int | None,
        typer.Option(
            min=0, help="Incidents to open in this run; the policy's max_incidents_per_run."
        ),
    ] = None,
    as_json: JsonFlag = False,
    verbose: VerboseFlag = False,
) -> None:
    """Read public mentions and answer the complaints, as the monitor-mentions deployment does.

    With no source given, reads those of AMENDS_LISTENING_SOURCES, or the drop folder
    AMENDS_HOME/listening. Every post is kept once; each complaint opens a social incident
    whose recovery replies in the same channel (at most --max-incidents a run: the rest wait
    for the next). Exits with 3 when a source could not be read (the others were).
    """
    from dataclasses import asdict

    from pydantic import ValidationError

    from amends.listening.sources import SourceSpec
    from amends.recovery.intake import describe

    if mastodon and not query:
        raise fail("--mastodon needs --query: a #hashtag, or words to search")
    try:
        specs = [
            SourceSpec(name=f"file-{n}", kind="file", location=str(path))
            for n, path in enumerate(files or [], start=1)
        ] + [
            SourceSpec(name=f"feed-{n}", kind="feed", location=u)
            for n, u in enumerate(feeds or [], 1)
        ]
        if mastodon:
            specs.append(
                SourceSpec(name="mastodon", kind="mastodon", location=mastodon, query=query)
            )
    except ValidationError as error:
        raise fail(f"a source is not right: {describe(error)}") from None
    _prepare_prefect(verbose)
    from amends.flows.monitor import MonitorRequest, monitor_mentions

    request = MonitorRequest(
        sources=specs or None, handles=handles or None, max_incidents=max_incidents
    )
    with err.status("Listening…", spinner="dots"):
        run = monitor_mentions(request)
    if as_json:
        out.print_json(json.dumps(asdict(run), default=str))
    else:
        table = Table("figure", Column("count", justify="right"))
        for row in run.counts():
            table.add_row(str(row["figure"]), str(row["count"]))
        out.print(table)
        sources = Table("source", "kind", Column("posts", justify="right"), "refused", "error")
        for row in run.by_source():
            sources.add_row(
                *(escape(str(row[k])) for k in ("source", "kind", "posts", "refused", "error"))
            )
        out.print(sources)
        if run.opened:
            out.print("Opened: " + ", ".join(run.opened) + ". See them with `amends case REF`.")
    for source in run.failing:
        err.print(f"[bold yellow]warning:[/] {escape(source.error or '')}", highlight=False)
    if run.failing:
        raise typer.Exit(EXIT_QUEUED)


@app.command()
@friendly
def demo(
    home: Annotated[
        Path | None,
        typer.Option(help="Data folder for the demo (default: AMENDS_HOME, else ./var)."),
    ] = None,
    wait_for_approval: Annotated[
        bool,
        typer.Option(
            "--wait-for-approval",
            help="Leave the offer that needs a manager to you (the Prefect UI's Resume form, or "
            "`amends approve` in another terminal) instead of approving it as the demo.",
        ),
    ] = False,
    verbose: VerboseFlag = False,
) -> None:
    """Run sample incidents end to end, with a local mail catcher; asks nothing, sends nothing out.

    Mail goes to a real SMTP server on 127.0.0.1 that saves each message under the data
    folder's mail/ folder. One run pauses for a manager's approval of a large offer.
    """
    from amends.demo import run_demo

    _prepare_prefect(verbose)
    run_demo(home, out=out, err=err, wait_for_approval=wait_for_approval)


@app.command()
@friendly
def mailcatcher(
    port: Annotated[int, typer.Option(help="Port to listen on, on 127.0.0.1.")] = 8025,
) -> None:
    """Run a local mail catcher on 127.0.0.1 until Ctrl-C.

    An SMTP server that keeps every message as an .eml file in the data folder's mail/ folder;
    amends sends to 127.0.0.1:8025 unless AMENDS_SMTP_HOST and AMENDS_SMTP_PORT say otherwise.
    """
    import time

    from amends.delivery.mailcatcher import MailCatcher
    from amends.settings import Settings

    settings = Settings()
    with MailCatcher(settings.mail_dir, port=port):
        err.print(f"Catching mail on 127.0.0.1:{port} into {settings.mail_dir}; Ctrl-C stops.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


@app.command()
@friendly
def preview(
    kind: Annotated[str, typer.Argument(help="Message kind: apology, offer, thank_you, …")],
    channel: Annotated[
        str, typer.Option(help="email, letter, phone, sms, chat, visit, social.")
    ] = "email",
    locale: Annotated[
        str | None, typer.Option(help="en or es; the case customer's by default.")
    ] = None,
    case_ref: Annotated[
        str | None, typer.Option("--case", help="Use a real case's data instead of sample data.")
    ] = None,
) -> None:
    """Show a message as it would go out, before it does."""
    from amends.domain import MessageKind, ReplyChannel
    from amends.messages.catalogue import FORMS, case_context, render_message, sample_context
    from amends.reporting.casebook import find_case

    if kind not in set(MessageKind):
        raise fail(f"no message kind {kind!r}; the kinds: {', '.join(k.value for k in FORMS)}")
    message_kind = MessageKind(kind)
    ways = ", ".join(c.value for c in FORMS[message_kind])
    if channel not in set(ReplyChannel) or ReplyChannel(channel) not in FORMS[message_kind]:
        raise fail(f"{kind} is not written for {channel}; it goes by {ways}")
    reply_channel = ReplyChannel(channel)
    rt = _runtime()
    if case_ref is None:
        language = locale or "en"
        context = sample_context(rt.settings, locale=language)
    else:
        with rt.db.session() as session:
            found = find_case(session, case_ref)
            context = case_context(session, found, rt.settings)
            language = locale or found.customer.locale
    rendered = render_message(rt.templates, message_kind, reply_channel, language, context)
    if rendered.subject:
        out.print(f"[bold]Subject:[/] {rendered.subject}", highlight=False)
    out.print(f"[dim]{kind}.{channel} in {rendered.locale}[/]\n", highlight=False)
    out.print(rendered.body, markup=False, highlight=False)


@templates_app.command("check")
@friendly
def templates_check() -> None:
    """Render every message kind, channel and locale with sample data; exit 1 on any problem,
    a missing translation included."""
    from amends.messages.catalogue import FORMS, LOCALES, check_templates

    rt = _runtime()
    problems = check_templates(rt.templates, rt.settings)
    for problem in problems:
        err.print(f"[red]✗[/] {problem}", highlight=False)
    total = sum(len(channels) for channels in FORMS.values()) * len(LOCALES)
    if problems:
        raise fail(f"{len(problems)} of {total} messages have problems")
    out.print(f"All {total} messages render in {', '.join(LOCALES)}.")


@app.command()
@friendly
def send(
    now: Annotated[
        bool, typer.Option("--now", help="Also try messages still pausing after a failure.")
    ] = False,
) -> None:
    """Deliver the queued mail of every case.

    What failed for a while, or was left half-sent by a sender that stopped. Each message goes
    out once; run it from cron as often as you like (the nightly run does it too).
    """
    from datetime import timedelta

    from amends.delivery.outbox import drain, queued_messages
    from amends.storage.models import utcnow

    rt = _runtime()
    if rt.settings.smtp_block:  # credentials kept in Prefect: read them the tasks' way
        from amends.tasks._runtime import task_runtime

        rt = task_runtime()
    total = len(queued_messages(rt.db, due_by=None if now else utcnow()))
    with err.status(f"Sending {total} queued message(s)…") as status:
        done = 0

        def progress(_: object) -> None:
            nonlocal done
            done += 1
            status.update(f"Sending queued messages: {done} of {total}…")

        report = drain(
            rt.db,
            rt.channels,
            claim_timeout=timedelta(seconds=rt.settings.claim_timeout_seconds),
            due_only=not now,
            on_each=progress,
        )
    out.print(
        f"Sent {report.sent}; {report.retrying} will be retried later; {report.failed} failed "
        f"and {report.to_staff} went to staff (see `amends actions`); {report.requeued} "
        "half-sent by a stopped sender went again."
    )
    if report.retrying or report.failed:
        raise typer.Exit(EXIT_QUEUED)


@actions_app.callback(invoke_without_command=True)
@friendly
def actions(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List open staff work, soonest due first."""
    if ctx.invoked_subcommand is not None:
        return
    from amends.domain import spoken
    from amends.recovery.staff import open_actions

    lines = open_actions(_runtime().db)
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

    line = find_action(_runtime().db, action_id)
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

    line = complete_action(_runtime().db, action_id, note=note, actor=by)
    where = f"incident {line.incident_ref}" if line.incident_ref else line.customer_name
    out.print(f"Action {line.id} done; noted on {where}.", markup=False, highlight=False)


@app.command()
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

    The answer is recorded on the case; the run paused for it resumes within seconds. After the
    run's wait timed out, a raised offer is sent to the customer.
    """
    from amends.domain import spoken
    from amends.recovery.approvals import decide
    from amends.reporting.casebook import find_case

    if decline and amount is not None:
        raise fail("--amount and --decline contradict each other: choose one")
    rt = _runtime()
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


@app.command()
@friendly
def nightly(
    at: Annotated[
        str | None,
        typer.Option(
            help="Run the night as of this moment (ISO 8601 with its UTC offset, e.g. "
            "2026-12-01T02:00+01:00); now by default."
        ),
    ] = None,
    verbose: VerboseFlag = False,
) -> None:
    """Run tonight's re-engagement now, as the nightly-reengagement deployment does.

    Check-in reminders, progress updates, thank-you notes, win-back offers to lapsed
    customers and service-level escalations; then what is queued is sent.

    Nobody who opted out, is do-not-contact, abusive or lost is written to, and the policy's
    frequency cap holds. Running it twice sends nothing new.
    """
    from datetime import UTC, datetime, timedelta

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from amends.domain import spoken

    moment = None
    if at is not None:
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            raise fail(f"--at {at!r} is not an ISO 8601 date and time") from None
        if moment.tzinfo is None:
            raise fail(f"--at {at!r} needs its UTC offset, e.g. {at}+01:00 or {at}Z")
        if moment > datetime.now(UTC) + timedelta(minutes=5):
            raise fail(f"--at {at} is in the future: a night can only be run for now or before")
    _prepare_prefect(verbose)
    from amends.flows.in_process import in_process_run
    from amends.flows.nightly import nightly_reengagement
    from amends.tasks.nightly import watching

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        steps: dict[str, int] = {}

        def watch(step: str, done: int, total: int) -> None:
            if step not in steps:
                steps[step] = bar.add_task(spoken(step).capitalize(), total=total)
            bar.update(steps[step], completed=done, total=total)

        with watching(watch), in_process_run():
            night = nightly_reengagement(now=moment)
    table = Table("action", Column("candidates", justify="right"), Column("done", justify="right"))
    for report in night.actions:
        table.add_row(report.title, str(report.candidates), str(report.done))
    out.print(table)
    sent = night.sent
    out.print(
        f"Sent {sent.sent}; {sent.retrying} will be retried; {sent.failed} failed and "
        f"{sent.to_staff} went to staff. Staff work: `amends actions`."
    )
    if sent.retrying or sent.failed:
        raise typer.Exit(EXIT_QUEUED)


@app.command()
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
    record = record_checkin(_runtime(), ref, held=held, actor=by, number=number, feedback=feedback)
    what = f"Check-in {record.number} of {record.incident_ref}"
    if record.held:
        out.print(f"{what} held." + (" The case is closed." if record.case_closed else ""))
    else:
        out.print(f"{what} missed; moved to {record.moved_to:%Y-%m-%d %H:%M %Z}.")
    if record.call_asked:
        out.print(f"{record.misses} check-ins missed: a call is in `amends actions`.")


@app.command()
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

    The customer's calendar gets the cancellation too, and the nightly run sends the thank-you
    note.
    """
    from amends.nightly.aftercare import close_case

    cancelled = close_case(_runtime(), ref, reason=reason, actor=by, resolved=not withdrawn)
    out.print(f"Case {ref} closed; {cancelled} check-in(s) cancelled.", markup=False)


@app.command()
@friendly
def unsubscribe(
    address: Annotated[str, typer.Argument(help="An email address or a phone number (+...).")],
    everything: Annotated[
        bool,
        typer.Option("--all", help="Nothing at all, not just win-back offers (e.g. a complaint)."),
    ] = False,
) -> None:
    """Stop win-back offers to an address (or, with --all, every nightly message)."""
    from amends.delivery.consent import suppress

    scope = "all" if everything else "marketing"
    new = suppress(_runtime().db, address, scope=scope, reason="opt_out")
    what = "any nightly message" if everything else "win-back offers"
    state = "now gets no" if new else "already got no"
    out.print(f"{address.strip()} {state} {what}.", markup=False, highlight=False)


@app.command()
@friendly
def serve(verbose: VerboseFlag = False) -> None:
    """Serve amends' deployments (incident, nightly, mentions, weekly report) from this
    process, until Ctrl+C.

    For a small business without a work pool. Needs a Prefect server (PREFECT_API_URL); the
    nightly run starts at 02:00 in AMENDS_BUSINESS_TIMEZONE. With AMENDS_UNSUBSCRIBE_SECRET set,
    it also answers the opt-out links of win-back mail on 127.0.0.1:AMENDS_OPTOUT_PORT.
    """
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        raise fail(
            "amends serve needs a Prefect server: start one with `prefect server start` and "
            "set PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    import threading

    from amends.delivery.optout import PATH, optout_server

    rt = _runtime()
    optout = None
    if rt.settings.unsubscribe_secret is not None:
        optout = optout_server(rt.settings, rt.db)
        threading.Thread(target=optout.serve_forever, daemon=True).start()
        host, port = optout.server_address[:2]
        out.print(f"Opt-out links answered at http://{host}:{port}{PATH}", highlight=False)
    _prepare_prefect(verbose)
    from amends.flows.serving import serve_all

    try:
        serve_all(rt.settings)
    finally:
        if optout is not None:
            optout.shutdown()
            optout.server_close()


@app.command()
@friendly
def export(
    ref: Annotated[str, typer.Argument(help="The customer's reference (as in your systems).")],
    output: Annotated[
        Path | None, typer.Option(help="Write the JSON to this file instead of the terminal.")
    ] = None,
) -> None:
    """Give a customer everything amends holds about them, as JSON."""
    from amends.privacy import export as export_customer

    data = json.dumps(export_customer(_runtime().db, ref), indent=2, ensure_ascii=False)
    if output is None:
        print(data)
        return
    output.write_text(data + "\n", encoding="utf-8")
    err.print(f"Wrote {output}.", markup=False, highlight=False)


@app.command()
@friendly
def forget(
    ref: Annotated[str, typer.Argument(help="The customer's reference (as in your systems).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase a customer's personal data everywhere, keeping the anonymous figures.

    Names, addresses, messages, notes, feedback and the letters and invitations written for
    them are erased; their cases stay in the reports as numbers. Their opt-outs are kept, so
    that they are never written to again. This cannot be undone.
    """
    from amends.privacy import forget as forget_customer

    rt = _runtime()
    if not yes:
        typer.confirm(f"Erase everything personal about {ref}? This cannot be undone", abort=True)
    files = forget_customer(rt.db, ref, mail_dir=rt.settings.mail_dir)
    out.print(f"{ref} is forgotten; {files} file(s) deleted.", markup=False, highlight=False)


@policy_app.command("check")
@friendly
def policy_check(
    file: Annotated[Path, typer.Argument(help="The policy file (YAML) to check.")],
) -> None:
    """Check a policy file, and show what it decides and offers for the sample incidents."""
    from amends.demo import sample_incidents
    from amends.domain import spoken
    from amends.recovery.assess import assess
    from amends.recovery.empower import choose_offer
    from amends.recovery.policy import load_policy

    policy = load_policy(file)
    table = Table(
        Column("incident", no_wrap=True), "customer", "severity", "fault", "decision", "offer",
        "approval",
        title=f"{file} is valid. What it decides for the sample incidents, each as if it "
        "were the customer's first failure:",
        title_justify="left",
    )  # fmt: skip
    for incident in sample_incidents():
        result = assess(incident, forgiven_before=False, policy=policy)
        offer = choose_offer(result, incident.severity, incident.customer.annual_value, policy)
        table.add_row(
            incident.ref,
            f"{incident.customer.name} ({policy.empower.tier_of(incident.customer.annual_value)})",
            incident.severity.value,
            incident.fault.value,
            spoken(result.decision),
            f"{spoken(offer.kind)} {offer.value:.2f} {offer.currency}" if offer else "-",
            f"manager: up to {offer.approvable:.2f}" if offer and offer.needs_approval else "-",
        )
    out.print(table)


ImportFile = Annotated[Path, typer.Argument(help="The CSV file, UTF-8, with a header row.")]


@import_app.command("customers")
@friendly
def import_customers(file: ImportFile) -> None:
    """Add or update customers by ref. Columns: ref, name (required), email, phone,
    postal_address, social_platform, social_handle, locale, timezone, annual_value,
    preferred_channel, do_not_contact (yes/no). An empty cell leaves what amends knows.

    Bad rows are listed with their line numbers and left out; the good rows are kept. Importing
    the same file again changes nothing. Exits with 1 when some rows were refused.
    """
    from amends.storage.imports import import_customers as run

    _report_import(file, run)


@import_app.command("activity")
@friendly
def import_activity(file: ImportFile) -> None:
    """Record customers' latest activity. Columns: customer_ref (required), last_purchase,
    last_contact (dates, YYYY-MM-DD), unanswered_calls. Dates only move forward.

    Bad rows are listed with their line numbers and left out; the good rows are kept. Importing
    the same file again changes nothing. Exits with 1 when some rows were refused.
    """
    from amends.storage.imports import import_activity as run

    _report_import(file, run)


def _report_import(file: Path, run: Callable) -> None:
    db = _runtime().db
    with err.status(f"Reading {file}…") as status:
        report = run(db, file, lambda done: status.update(f"Importing {file}: {done:,} rows…"))
    out.print(
        f"{file}: {report.read:,} rows: {report.added:,} added, {report.updated:,} updated, "
        f"{report.unchanged:,} unchanged, {len(report.refused):,} refused.",
        highlight=False,
    )
    for line, problem in report.refused[:50]:
        err.print(f"  line {line}: {problem}", markup=False, highlight=False)
    if len(report.refused) > 50:
        err.print(f"  … and {len(report.refused) - 50:,} more", highlight=False)
    if report.refused:
        raise typer.Exit(1)


@db_app.command("upgrade")
@friendly
def db_upgrade() -> None:
    """Apply pending migrations to the database (AMENDS_DATABASE_URL, else the data folder's)."""
    from amends.settings import Settings
    from amends.storage.db import Database

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
            approval = escape(outcome.approval.describe(o.currency))
            out.print(f"[bold]Approval[/]: {approval}", highlight=False)
    if outcome.checkins:
        out.print(
            "[bold]Check-ins[/]: " + ", ".join(c.describe() for c in outcome.checkins),
            highlight=False,
        )
        for c in outcome.checkins:
            if c.feedback:
                out.print(f"  Check-in {c.number} feedback: {escape(c.feedback)}", highlight=False)
    waiting = [a for a in outcome.staff_actions if a.status == "open"]
    for action in waiting:
        out.print(f"[bold]For the {action.role}[/]: {escape(action.instructions)}", highlight=False)
    if timeline:
        events = Table("when (UTC)", "stage", "what", "who", title="Timeline", title_justify="left")
        for event in outcome.timeline:
            events.add_row(
                f"{event.at:%Y-%m-%d %H:%M:%S}",
                spoken(event.stage),
                escape(event.text),
                escape(event.actor),
            )
        out.print(events)
