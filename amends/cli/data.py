"""Your data: imports from your own systems, a customer's export and erasure, the database and
the policy."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Column, Table

from amends.cli._app import (
    VerboseFlag,
    app,
    db_app,
    err,
    friendly,
    import_app,
    out,
    policy_app,
    runtime,
    start_prefect,
)

if TYPE_CHECKING:
    from amends.recovery.batch import IncidentImport

PANEL = "Your data"


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


@import_app.command("incidents")
@friendly
def import_incidents(
    file: ImportFile,
    map_file: Annotated[
        Path,
        typer.Option(
            "--map",
            help="How the file's columns become incidents (YAML), or a shipped map by name: "
            "cfpb (the CFPB consumer-complaint export), fcc (FCC complaints).",
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row and say what would be filed.")
    ] = False,
    verbose: VerboseFlag = False,
) -> None:
    """File a complaints export: each row an incident, through the recovery stages a batch at
    a time (one run for the file); a map's history files past complaints without sending.

    Bad rows are listed with their line and field and left out; the good rows are filed.
    Importing the same file again files nothing new. Offers above the frontline limit wait for
    a manager, as one incident's do. Exits with 1 when some rows were refused.
    """
    from amends.recovery.batch import dry_run as check
    from amends.recovery.mapping import find_map, load_map

    map_file = find_map(map_file)
    mapping = load_map(map_file)  # a wrong map is said before Prefect starts
    if dry_run:
        report = check(runtime(), file, mapping)
        out.print(
            f"{file}: {report.read:,} rows: {report.added:,} would be filed"
            + (f" ({report.history:,} as history)" if report.history else "")
            + f", {report.unchanged:,} filed before, {len(report.refused):,} refused. "
            "Nothing was written.",
            highlight=False,
        )
        _show_refusals(file, report.refused)
        return
    from amends import runner

    start_prefect(verbose)
    with err.status(f"Reading {file}…") as status:

        def watch(report: IncidentImport) -> None:
            status.update(
                f"Importing {file}: {report.read:,} rows, {report.added:,} filed, "
                f"{len(report.refused):,} refused…"
            )

        report = runner.run_import(file, map_file, watch)
    out.print(
        f"{file}: {report.read:,} rows: {report.added:,} filed"
        + (f" ({report.history:,} as history)" if report.history else "")
        + f", {report.unchanged:,} filed before, {len(report.refused):,} refused.",
        highlight=False,
    )
    if report.awaiting:
        out.print(
            f"{len(report.awaiting):,} offer(s) waited for a manager: "
            + ", ".join(report.awaiting[:20]),
            markup=False,
            highlight=False,
        )
    _show_refusals(file, report.refused)


SHOWN_REFUSALS = 50


def _report_import(file: Path, run: Callable) -> None:
    rt = runtime()
    with err.status(f"Reading {file}…") as status:
        report = run(rt.db, file, lambda done: status.update(f"Importing {file}: {done:,} rows…"))
    out.print(
        f"{file}: {report.read:,} rows: {report.added:,} added, {report.updated:,} updated, "
        f"{report.unchanged:,} unchanged, {len(report.refused):,} refused.",
        highlight=False,
    )
    _show_refusals(file, report.refused)


def _show_refusals(file: Path, refused: list[tuple[int, str]]) -> None:
    """The first refused rows on the terminal, all of them in a file; exit 1 if any."""
    from amends.reporting.spreadsheet import write_csv

    if not refused:
        return
    rt = runtime()
    for line, problem in refused[:SHOWN_REFUSALS]:
        err.print(f"  line {line}: {problem}", markup=False, highlight=False)
    # Every refusal, however many, in a file named after the import's: the last import of a
    # file of that name wins.
    refusals = rt.settings.imports_dir / f"{file.stem}.refused.csv"
    refusals.parent.mkdir(parents=True, exist_ok=True)
    with refusals.open("w", encoding="utf-8", newline="") as handle:
        rows = ({"line": line, "problem": problem} for line, problem in refused)
        write_csv(rows, ["line", "problem"], handle)
    more = len(refused) - SHOWN_REFUSALS
    err.print(
        (f"  … and {more:,} more. " if more > 0 else "  ")
        + f"All {len(refused):,} refused rows are in {refusals}.",
        markup=False,
        highlight=False,
    )
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


@policy_app.command("check")
@friendly
def policy_check(
    file: Annotated[Path, typer.Argument(help="The policy file (YAML) to check.")],
) -> None:
    """Check a policy file, and show what it decides and offers for the sample incidents."""
    from amends.cli._recover import sample_incidents
    from amends.domain import spoken
    from amends.recovery.assess import assess
    from amends.recovery.empower import choose_offer
    from amends.recovery.policy import load_policy
    from amends.settings import Settings

    policy = load_policy(file)
    settings = Settings()
    table = Table(
        Column("incident", no_wrap=True), "customer", "severity", "fault", "decision", "offer",
        "approval",
        title=f"{file} is valid. What it decides for the sample incidents, each as if it "
        "were the customer's first failure:",
        title_justify="left",
    )  # fmt: skip
    for incident in sample_incidents():
        result = assess(incident, forgiven_before=False, policy=policy)
        offer = choose_offer(result, incident, policy, settings.business)
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


@app.command(rich_help_panel=PANEL)
@friendly
def export(
    ref: Annotated[str, typer.Argument(help="The customer's reference (as in your systems).")],
    output: Annotated[
        Path | None, typer.Option(help="Write the JSON to this file instead of the terminal.")
    ] = None,
) -> None:
    """Give a customer everything amends holds about them, as JSON."""
    from amends.privacy import export as export_customer

    data = json.dumps(export_customer(runtime().db, ref), indent=2, ensure_ascii=False)
    if output is None:
        print(data)
        return
    output.write_text(data + "\n", encoding="utf-8")
    err.print(f"Wrote {output}.", markup=False, highlight=False)


@app.command(rich_help_panel=PANEL)
@friendly
def forget(
    ref: Annotated[str, typer.Argument(help="The customer's reference (as in your systems).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase a customer's personal data everywhere, keeping the anonymous figures.

    First in Prefect, through its API: their incidents' flow runs (with their subflows, logs
    and result files) and their case artifacts. Then their quotes in the reports'
    feedback.csv files, and in amends' data names, addresses, messages, notes, feedback and
    the letters and invitations written for them; their cases stay in the reports as numbers.
    Their opt-outs are kept, so that they are never written to again. This cannot be undone.
    """
    from amends import runner
    from amends.privacy import forget as forget_customer
    from amends.privacy import forget_report_rows, traces

    rt = runtime()
    found = traces(rt.db, ref)  # an unknown customer is refused before anything is erased
    if not yes:
        typer.confirm(f"Erase everything personal about {ref}? This cannot be undone", abort=True)
    # Prefect first: should it fail, amends still knows which runs to look for next time.
    start_prefect(False)
    erased = runner.forget_in_prefect(found)
    reports = forget_report_rows(rt.settings.home / "reports", ref)
    files = forget_customer(rt.db, ref, mail_dir=rt.settings.mail_dir)
    out.print(
        f"{ref} is forgotten: {erased.flow_runs} flow run(s), {erased.artifacts} artifact(s) "
        f"and {erased.result_files} result file(s) removed from Prefect; {reports} report "
        f"file(s) rewritten; {files} file(s) deleted.",
        markup=False,
        highlight=False,
    )
