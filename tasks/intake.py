"""Intake: take the incident in (validate, record, open its case), and keep the customer's
details out of Prefect: the run's parameters end up naming the incident by its reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect import get_client, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.context import FlowRunContext

from amends.domain import Incident
from amends.errors import IncidentConflict, InvalidIncident, NotFound
from amends.privacy import mask
from amends.recovery import intake
from amends.tasks._runtime import task_runtime


@task(name="open-case", cache_policy=NONE, persist_result=False)
def open_case(incident: Incident) -> int:
    """Record the incident and open its case (or find it, when re-run); return the case id."""
    case_id = intake.open_case(task_runtime(), incident)
    get_run_logger().info("Case %s is open for incident %s", case_id, incident.ref)
    return case_id


def run_tags(incident: Incident) -> list[str]:
    """The complaint's channel and severity as flow-run tags, so the UI can filter by them."""
    return [f"channel:{incident.channel.value}", f"severity:{incident.severity.value}"]


@dataclass(frozen=True)
class TakenIn:
    """The incident's case, or why the incident was refused: one line naming the field."""

    case_id: int | None = None
    refused: str | None = None


# Retried when the API fails to answer: recording the incident again finds its case.
@task(name="take-in", cache_policy=NONE, persist_result=False, retries=2, retry_delay_seconds=1)
def take_in(incident: Incident | dict[str, Any] | None, incident_ref: str | None) -> TakenIn:
    """Validate the incident with every rule, record it and open its case (or find the case
    of ``incident_ref``, on file already); then leave in the run's parameters only the
    reference, and name the run after it. A refusal is returned, not raised: the flow ends
    Failed with its line, without a traceback or anything personal."""
    rt = task_runtime()
    ref = _ref_of(incident, incident_ref)
    try:
        if incident is not None:
            filed = intake.validate_incident(incident, rt.settings.business_timezone)
            ref = filed.ref
            case_id = intake.open_case(rt, filed)
        elif incident_ref:
            filed = intake.filed_incident(rt, intake.valid_ref(incident_ref))
            case_id = intake.open_case(rt, filed)
        else:
            raise InvalidIncident("incident: give the incident, or the incident_ref of one on file")
    except (InvalidIncident, IncidentConflict, NotFound) as error:
        _leave_reference(ref, [])
        refused = mask(str(error))
        get_run_logger().error("Incident refused: %s", refused)
        return TakenIn(refused=refused)
    _leave_reference(filed.ref, run_tags(filed))
    get_run_logger().info("Case %s is open for incident %s", case_id, filed.ref)
    return TakenIn(case_id=case_id)


def _ref_of(incident: Incident | dict[str, Any] | None, incident_ref: str | None) -> str | None:
    """The reference to name the run after, if the filed data holds a well-formed one."""
    given = incident.ref if isinstance(incident, Incident) else None
    if isinstance(incident, dict) and isinstance(incident.get("ref"), str):
        given = incident["ref"]
    given = given or incident_ref
    try:
        return intake.valid_ref(given) if given else None
    except InvalidIncident:
        return None


def _leave_reference(ref: str | None, tags: list[str]) -> None:
    """The run's parameters become ``{"incident": None, "incident_ref": ref}`` (its other
    parameters, the blocks, stay), its name the reference, its tags the complaint's channel and
    severity."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    # The run as the engine read it when it started: its parameters and tags as the API holds
    # them (blocks as references), without asking again.
    run = context.flow_run
    parameters = {**run.parameters, "incident": None, "incident_ref": ref}
    labels = sorted(set(run.tags).union(tags))
    with get_client(sync_client=True) as client:
        response = client.update_flow_run(run.id, parameters=parameters, name=ref, tags=labels)
        response.raise_for_status()
