"""Intake: record the incident, open its case, and label the flow run for the Prefect UI."""

from __future__ import annotations

from prefect import get_client, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.runtime import flow_run

from amends.domain import Incident
from amends.recovery import intake
from amends.tasks._runtime import task_runtime


@task(name="open-case", cache_policy=NONE)
def open_case(incident: Incident) -> int:
    """Record the incident and open its case (or find it, when re-run); return the case id."""
    case_id = intake.open_case(task_runtime(), incident)
    get_run_logger().info("Case %s is open for incident %s", case_id, incident.ref)
    return case_id


def run_tags(incident: Incident) -> list[str]:
    """The complaint's channel and severity as flow-run tags, so the UI can filter by them."""
    return [f"channel:{incident.channel.value}", f"severity:{incident.severity.value}"]


@task(name="label-run", cache_policy=NONE, retries=2, retry_delay_seconds=1)
def label_run(incident: Incident) -> None:
    """Tag the flow run with :func:`run_tags`, unless it was created with them (as
    ``amends incident`` does, sparing a call to the API)."""
    run_id = flow_run.get_id()
    if run_id is None:
        return
    tags = set(flow_run.get_tags())
    if tags.issuperset(run_tags(incident)):
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(run_id, tags=sorted(tags.union(run_tags(incident))))
