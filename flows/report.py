"""The ``recovery-report`` flow: a period's complaints followed until closed, for managers and
the marketing team."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import flow
from pydantic import BaseModel, Field

from amends.tasks.report import ReportRun, build_recovery_report, publish_recovery_report


class ReportRequest(BaseModel):
    """Which period to report on, and where the files go."""

    since: date | None = Field(
        default=None,
        description="First day (YYYY-MM-DD, business time zone); with neither day, the 7 "
        "whole days before today.",
    )
    until: date | None = Field(
        default=None, description="Last day, included; up to now when empty."
    )
    output: Path | None = Field(
        default=None,
        description="Folder for the CSV files and chart; AMENDS_HOME/reports/<period>.",
    )


@flow(name="recovery-report")
def recovery_report(request: ReportRequest | None = None) -> ReportRun:
    """Report a period's complaints: by channel and category, our share of the fault, time to
    first response and to resolution, service-level breaches, recovery rate, customers lost,
    compensation spent against revenue kept, repeat failures and the feedback themes for
    marketing; as artifacts, CSV files and a chart.

    Args:
        request: The period (the 7 days before today by default, as the weekly schedule
            runs it).
    """
    request = request or ReportRequest()
    run = build_recovery_report(request.since, request.until, request.output)
    publish_recovery_report(run)
    return run
