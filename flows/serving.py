"""amends' deployments, served from one process: for a small business without a work pool.

``amends serve`` (or ``python deployments/serve.py``) runs this; ``deployments/prefect.yaml``
declares the same deployments for a Prefect server with a process work pool.
"""

from __future__ import annotations

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from amends.settings import Settings
from flows.incident import recover_incident
from flows.nightly import nightly_reengagement

# Two in the morning, business time: after the day's activity is imported, before anyone works.
NIGHTLY_CRON = "0 2 * * *"


def deployments(settings: Settings) -> list[RunnerDeployment]:
    """The incident deployment (triggered per incident) and the nightly one (on its cron, in
    the business's time zone)."""
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
    ]


def serve_all(settings: Settings) -> None:
    """Serve every deployment until interrupted (Ctrl+C)."""
    serve(*deployments(settings))
