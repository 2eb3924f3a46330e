"""The ``nightly-reengagement`` flow: check-ins kept, cases moved on, lapsed customers invited
back, without nagging anyone."""

from __future__ import annotations

from datetime import datetime

from prefect import flow
from prefect.runtime import flow_run

from amends.nightly.reengagement import NightReport
from amends.storage.models import utcnow
from amends.tasks.approval import resume_answered_runs
from amends.tasks.nightly import ACTION_NAMES, publish_night, run_action, send_queued
from amends.tasks.views import publish_views


def _run_name() -> str:
    # A deployment's run gets its parameters as JSON: the moment may be an ISO string.
    now = flow_run.parameters.get("now") or utcnow()
    return f"night-{str(now)[:10]}"


@flow(name="nightly-reengagement", flow_run_name=_run_name)
def nightly_reengagement(now: datetime | None = None) -> NightReport:
    """Escalate cases past their service levels, ask staff for check-in outcomes, remind
    customers of check-ins, update unfinished cases, thank resolved ones and offer lapsed
    customers a way back; then send it all, resume the runs suspended for an approval that was
    answered (or is overdue), and leave the night's tables and the operator's views as
    artifacts.

    Every rule is the policy's (``nightly`` and ``service_levels``): a per-customer frequency
    cap, one win-back per window, and nothing for opted-out, do-not-contact, abusive or lost
    customers. Running it twice in a night sends nothing new.

    Args:
        now: The moment the night is run for; now, by default.
    """
    now = now or utcnow()
    night = NightReport([run_action(action, now) for action in ACTION_NAMES])
    night.sent = send_queued()
    # Runs set aside for an approval that was answered, or is overdue, go on.
    night.resumed = resume_answered_runs(now)
    publish_night(night)
    publish_views()
    return night
