"""The recovery-report flow under the Prefect test harness: artifacts by their keys, and the
CSV files and chart written beside them."""

from __future__ import annotations

import csv
import json
from datetime import date

import pytest
from factories import recover
from prefect import get_client

from amends.flows.report import ReportRequest, recovery_report
from amends.nightly.aftercare import record_exit_answers
from amends.runtime import Runtime

pytestmark = pytest.mark.usefixtures("prefect_harness")

KEYS = ("recovery-report", "recovery-report-figures", "recovery-report-themes")


def artifacts() -> dict[str, object]:
    with get_client(sync_client=True) as client:
        return {a.key: a for a in client.read_latest_artifacts(limit=100)}


def test_a_scheduled_run_reports_the_last_week_even_when_it_is_empty(rt: Runtime) -> None:
    run = recovery_report()  # as the weekly schedule runs it: no parameters
    assert run.report.complaints == 0
    latest = artifacts()
    assert "No complaints in this period." in latest["recovery-report"].data
    # Text, which the UI shows in any browser (an image artifact's file:// URL showed broken).
    assert latest["recovery-report-chart"].type == "markdown"
    assert "Complaints by category\n(none)" in latest["recovery-report-chart"].data
    folder = rt.settings.home / "reports" / run.report.period.label
    assert run.files["figures"].parent == folder
    assert run.files["feedback"].read_text().splitlines() == [
        "theme,source,customer_ref,recorded_at,text"
    ]


def test_a_period_with_a_complaint_leaves_artifacts_and_files(rt: Runtime) -> None:
    recover(rt)  # INC-1001, received 2026-11-20, an apology sent by email
    record_exit_answers(rt, "C-42", {"why": "The crew never came on time"}, actor="dana")
    run = recovery_report(ReportRequest(since=date(2026, 11, 20)))
    assert (run.report.complaints, run.report.first_response.cases) == (1, 1)
    latest = artifacts()
    for key in KEYS:
        assert key in latest
    markdown = latest["recovery-report"].data
    assert "1 complaints" in markdown and "reliability and timing: 1" in markdown
    assert str(run.files["chart"]) in markdown
    chart = latest["recovery-report-chart"].data
    assert "service failure █" in chart and "file://" not in chart
    table = json.loads(latest["recovery-report-figures"].data)  # a table's data is JSON text
    figures = {row["figure"]: row["value"] for row in table}
    assert figures["complaints"] == 1
    # The customer's words and address reach the CSV for staff, never the artifacts.
    # (The report's own artifacts: other tests in this session leave theirs on the server.)
    shown = " ".join(str(latest[key].data) for key in (*KEYS, "recovery-report-chart"))
    assert "never came" not in shown and "rk@example" not in shown
    with run.files["feedback"].open(newline="") as handle:
        rows = [(r["theme"], r["customer_ref"], r["text"]) for r in csv.DictReader(handle)]
    quote = "The crew never came on time"  # one quote under each of its two themes
    assert rows == [
        ("reliability and timing", "C-42", quote),
        ("staff and attitude", "C-42", quote),
    ]
    assert run.files["chart"].read_bytes()[:4] == b"\x89PNG"
