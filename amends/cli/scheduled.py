"""What the deployments run on a schedule, run now: the nightly run, listening, the report;
and serving the deployments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from amends import runner
from amends.cli._app import (
    EXIT_QUEUED,
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
from amends.cli.messages import sending_line

if TYPE_CHECKING:
    pass

PANEL = "Scheduled work, run now"


@app.command(rich_help_panel=PANEL)
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
    start_prefect(verbose)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        steps: dict[str, int] = {}

        def watch(step: str, done: int, total: int) -> None:
            if step not in steps:
                steps[step] = bar.add_task(spoken(step).capitalize(), total=total)
            bar.update(steps[step], completed=done, total=total)

        night = runner.run_nightly(moment, watch)
    table = Table("action", Column("candidates", justify="right"), Column("done", justify="right"))
    for report in night.actions:
        table.add_row(report.title, str(report.candidates), str(report.done))
    out.print(table)
    out.print(
        f"{night.staff_actions} staff action(s) opened; {sending_line(night.sent)} Staff work: "
        "`amends actions`."
    )
    if night.sent.retrying or night.sent.failed:
        raise typer.Exit(EXIT_QUEUED)


@app.command(rich_help_panel=PANEL)
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
    start_prefect(verbose)
    with err.status("Listening…", spinner="dots"):
        run = runner.run_monitor(specs or None, handles or None, max_incidents)
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


@app.command(rich_help_panel=PANEL)
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
    report_period(runtime().settings.business_timezone, since=first, until=last)  # refuse early
    start_prefect(verbose)
    run = runner.run_report(first, last, output)
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


@app.command(rich_help_panel=PANEL)
@friendly
def serve(verbose: VerboseFlag = False) -> None:
    """Serve amends' deployments (incident, nightly, mentions, report) here, until Ctrl+C.

    For a small business without a work pool, on the Prefect server of PREFECT_API_URL, or the
    data folder's own (started if it is not running). The nightly run starts at 02:00 in the
    business profile's time zone. With AMENDS_UNSUBSCRIBE_SECRET set, it also answers the
    opt-out links of win-back mail, and the exit questions' answer form, on
    127.0.0.1:AMENDS_OPTOUT_PORT.
    """
    import threading

    from amends.delivery.optout import ANSWERS_PATH, PATH, optout_server

    rt = runtime()
    start_prefect(verbose, rt.settings.home)
    if runner.api_url() is None:  # AMENDS_PREFECT_SERVER=temporary: it would end with this
        raise fail(
            "amends serve needs a Prefect server that outlives it: unset "
            "AMENDS_PREFECT_SERVER for the data folder's own, or set PREFECT_API_URL to yours"
        )
    optout = None
    if rt.settings.unsubscribe_secret is not None:
        optout = optout_server(rt.settings, rt.db)
        threading.Thread(target=optout.serve_forever, daemon=True).start()
        host, port = optout.server_address[:2]
        out.print(
            f"Opt-out links answered at http://{host}:{port}{PATH}, exit-question forms at "
            f"http://{host}:{port}{ANSWERS_PATH}",
            highlight=False,
        )
    try:
        runner.serve(rt.settings)
    finally:
        if optout is not None:
            optout.shutdown()
            optout.server_close()


@app.command(rich_help_panel=PANEL)
@friendly
def deploy(
    pool: Annotated[
        str | None,
        typer.Option(
            help="The work pool whose workers run them (default: prefect.yaml's, amends)."
        ),
    ] = None,
    prefect_file: Annotated[
        Path | None,
        typer.Option(help="An edited copy of amends' prefect.yaml to deploy instead."),
    ] = None,
    verbose: VerboseFlag = False,
) -> None:
    """Deploy amends' four deployments to a Prefect server, for a work pool's workers.

    The same as `prefect deploy --all` on the installed prefect.yaml, with the schedules in
    the business profile's time zone. A worker needs only `pip install amends` and its settings. The
    work pool must exist: `prefect work-pool create amends --type process`.
    """
    rt = runtime()
    runner.prepare(verbose, rt.settings.home)
    if runner.api_url() is None:
        raise fail(
            "amends deploy needs a Prefect server: set PREFECT_API_URL to yours, or "
            "`amends server start` for one on this machine"
        )
    for name in runner.deploy(rt.settings, pool, prefect_file):
        out.print(f"Deployed {name}", highlight=False)
