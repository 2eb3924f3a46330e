"""Report: track the case until it is closed and summarise it in the run's artifact; and the
recovery report over a period, as artifacts and files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import MarkdownArtifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from pydantic import BaseModel

from amends.domain import Stage
from amends.privacy import case_details, redact
from amends.recovery.stages import StageResult
from amends.reporting.casebook import CaseOutcome, case_markdown, case_outcome
from amends.reporting.report import (
    Report,
    build_report,
    figures,
    report_folder,
    report_markdown,
    report_period,
    write_report_files,
)
from amends.reporting.views import bar_chart
from amends.tasks._runtime import task_runtime
from amends.tasks._stage import run_and_log
from amends.tasks.views import publish, view_artifacts


@task(name="report", cache_policy=NONE, task_run_name="report-case-{case_id}")
def report(case_id: int) -> StageResult:
    """Record the case, its owner and its first-response deadline."""
    return run_and_log(Stage.REPORT, case_id)


def artifact_key(case_id: int) -> str:
    """The case's artifact key, ``case-<number>``: the same on every run, so the UI shows its
    versions; by case number, as a key allows only lowercase letters, digits and dashes, and
    refs that differ only in case or punctuation must never share one."""
    return f"case-{case_id}"


@task(name="publish-case-summary", cache_policy=NONE)
def publish_case_summary(case_id: int) -> CaseOutcome:
    """Leave the case's summary as a markdown artifact, bring the operator's views up to date
    with it (the case changed them), and return the case's outcome."""
    rt = task_runtime()
    outcome = case_outcome(rt.db, case_id)
    summary = MarkdownArtifact(
        key=artifact_key(outcome.case_id),
        # The UI is shared: the customer's name, handle and street masked.
        markdown=redact(
            case_markdown(outcome, rt.settings.business_timezone), case_details(rt.db, case_id)
        ),
        description=f"Recovery of incident {outcome.incident_ref}: decision, offer, messages",
    )
    publish([summary, *view_artifacts(rt)])
    return outcome


# --- the recovery report ----------------------------------------------------------------------

REPORT_KEY = "recovery-report"


class ReportRun(BaseModel):
    """A report as the flow made it: its figures and the files written beside it."""

    report: Report
    files: dict[str, Path]


@task(name="build-recovery-report", cache_policy=NONE)
def build_recovery_report(
    since: date | None, until: date | None, output: Path | None = None
) -> ReportRun:
    """Compute the period's figures and write its CSV files and chart (AMENDS_HOME/reports/
    <period>/ unless ``output`` says otherwise)."""
    rt = task_runtime()
    period = report_period(rt.settings.business_timezone, since=since, until=until)
    report = build_report(rt, period)
    files = write_report_files(report, report_folder(rt, period, output))
    get_run_logger().info(
        "%s: %d complaints, %d won back of %d pursued; files in %s",
        period.label,
        report.complaints,
        report.won_back,
        report.pursued,
        files["figures"].parent,
    )
    return ReportRun(report=report, files=files)


@task(name="publish-recovery-report", cache_policy=NONE)
def publish_recovery_report(run: ReportRun) -> None:
    """Leave the report as artifacts: its markdown, the figures and theme counts as tables, and
    the chart. No customer's words or references: the UI is often shared."""
    report, chart = run.report, run.files["chart"]
    period = report.period.label.replace("_", " to ")
    create_markdown_artifact(
        key=REPORT_KEY,
        markdown=report_markdown(report, chart=str(chart)),
        description=f"Recovery report, {period}",
    )
    create_table_artifact(
        key=f"{REPORT_KEY}-figures",
        table=figures(report),
        description=f"The recovery report's figures, {period}",
    )
    create_table_artifact(
        key=f"{REPORT_KEY}-themes",
        table=[{"theme": t.name, "count": t.count} for t in report.themes]
        or [{"theme": "no feedback recorded", "count": 0}],
        description=f"Feedback themes for marketing, {period} (quotes: the CSV, for staff)",
    )
    # As text: an image artifact's file:// URL shows only in a browser on the machine that
    # wrote the file (the PNG stays beside the CSV files for staff).
    create_markdown_artifact(
        key=f"{REPORT_KEY}-chart",
        markdown=f"# Recovery report chart, {period}\n\n{bar_chart(report)}\n",
        description=f"Complaints by category; compensation against revenue kept, {period}",
    )
