"""amends' four deployments, served from one process: for a small business without a work pool.

``amends serve`` (or ``python deployments/serve.py``) runs this; ``deployments/prefect.yaml``
declares the same deployments for a Prefect server with a process work pool.
"""

from __future__ import annotations

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron, Interval

from amends.flows.incident import recover_incident
from amends.flows.monitor import monitor_mentions
from amends.flows.nightly import nightly_reengagement
from amends.flows.report import recovery_report
from amends.settings import Settings

# Two in the morning, business time: after the day's activity is imported, before anyone works.
NIGHTLY_CRON = "0 2 * * *"
# Public mentions are answered within the quarter hour.
MONITOR_EVERY_SECONDS = 15 * 60
# Monday 07:00, business time: the week's report is there when the week starts.
REPORT_CRON = "0 7 * * 1"


def deployments(settings: Settings) -> list[RunnerDeployment]:
    """The incident deployment (triggered per incident), the nightly and weekly ones (on their
    crons, in the business's time zone) and the mentions monitor (every quarter hour).
    ``deployments/prefect.yaml`` declares the same, plus the incident event's trigger."""
    return [
        recover_incident.to_deployment(
            name="recover-incident",
            description="Recover a customer from one incident, stage by stage.",
            tags=["amends"],
        ),
        nightly_reengagement.to_deployment(
            name="nightly-reengagement",
            description="Check-ins, progress updates, thank-you notes and win-back offers.",
            tags=["amends"],
            schedule=Cron(NIGHTLY_CRON, timezone=settings.business_timezone),
        ),
        monitor_mentions.to_deployment(
            name="monitor-mentions",
            description="Look for public mentions of the business and answer the angry ones.",
            tags=["amends"],
            schedule=Interval(MONITOR_EVERY_SECONDS),
            # One run at a time: a slow run must not answer the same complaints as the next.
            concurrency_limit=ConcurrencyLimitConfig(
                limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
            ),
        ),
        recovery_report.to_deployment(
            name="recovery-report",
            description="The week's recoveries, for the people who run the business.",
            tags=["amends"],
            schedule=Cron(REPORT_CRON, timezone=settings.business_timezone),
        ),
    ]


def serve_all(settings: Settings) -> None:
    """Serve every deployment until interrupted (Ctrl+C)."""
    serve(*deployments(settings))
