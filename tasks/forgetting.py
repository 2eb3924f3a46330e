"""Erasing a customer from Prefect (their right to erasure): through Prefect's API, the flow
runs of their incidents (and the subflows under them) with their logs, the result files those
runs left in result storage, and their case artifacts.

Called by ``amends forget`` before amends erases its own data: a failure here leaves amends'
data in place, so running ``forget`` again finds every run still named.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterName,
    FlowRunFilterParentFlowRunId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun

from amends.privacy import Traces

FLOW = "recover-incident"
PAGE = 200


@dataclass
class PrefectErasure:
    """What was removed from Prefect."""

    flow_runs: int = 0
    artifacts: int = 0
    result_files: int = 0


def forget_in_prefect(traces: Traces) -> PrefectErasure:
    """Remove what Prefect holds about the customer of ``traces``."""
    erased = PrefectErasure()
    with get_client(sync_client=True) as client:
        runs = _their_runs(client, traces)
        run_ids = [run.id for run in runs]
        for artifact in _their_artifacts(client, traces, run_ids):
            client.delete_artifact(artifact.id)
            erased.artifacts += 1
        for run in runs:
            erased.result_files += _delete_results(client, run)
            client.delete_flow_run(run.id)
            erased.flow_runs += 1
    return erased


def _their_runs(client: SyncPrefectClient, traces: Traces) -> list[FlowRun]:
    """Runs named after their incidents, runs whose parameters still hold one of them (filed,
    not yet taken in), and every subflow under those."""
    refs = set(traces.incident_refs)
    found: dict[UUID, FlowRun] = {}
    if refs:
        named = FlowRunFilter(name=FlowRunFilterName(any_=sorted(refs)))
        found |= {run.id: run for run in _pages(client, flow_run_filter=named)}
    of_flow = FlowFilter(name=FlowFilterName(any_=[FLOW]))
    for run in _pages(client, flow_filter=of_flow):
        incident = run.parameters.get("incident")
        if (
            isinstance(incident, dict)
            and (
                incident.get("ref") in refs
                or (incident.get("customer") or {}).get("ref") == traces.customer_ref
            )
        ) or run.parameters.get("incident_ref") in refs:
            found[run.id] = run
    parents = list(found)
    while parents:
        children = FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=parents))
        parents = []
        for run in _pages(client, flow_run_filter=children):
            if run.id not in found:
                found[run.id] = run
                parents.append(run.id)
    return list(found.values())


def _pages(client: SyncPrefectClient, **filters: Any) -> list[FlowRun]:
    runs: list[FlowRun] = []
    while True:
        page = client.read_flow_runs(**filters, limit=PAGE, offset=len(runs))
        runs += page
        if len(page) < PAGE:
            return runs


def _their_artifacts(client: SyncPrefectClient, traces: Traces, run_ids: list[UUID]) -> list:
    artifacts = {}
    for artifact_filter in (
        ArtifactFilter(key=ArtifactFilterKey(any_=traces.artifact_keys)),
        ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=run_ids)) if run_ids else None,
    ):
        if artifact_filter is None:
            continue
        # Every version of a keyed artifact, not only the latest.
        offset = 0
        while page := client.read_artifacts(
            artifact_filter=artifact_filter, limit=PAGE, offset=offset
        ):
            artifacts |= {artifact.id: artifact for artifact in page}
            offset += len(page)
    return list(artifacts.values())


def _delete_results(client: SyncPrefectClient, run: FlowRun) -> int:
    """Delete the result files (local result storage) of the run and of its task runs."""
    states = [run.state]
    tasks = TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[run.id]))
    states += [task.state for task in client.read_task_runs(task_run_filter=tasks)]
    states += client.read_flow_run_states(run.id)
    deleted = 0
    for state in states:
        data = getattr(state, "data", None)
        key = getattr(getattr(data, "metadata", data), "storage_key", None)
        if isinstance(data, dict):
            key = data.get("storage_key") or (data.get("metadata") or {}).get("storage_key")
        if not key:
            continue
        for path in (Path(key), _local_storage() / key):
            if path.is_file():
                path.unlink()
                deleted += 1
                break
    return deleted


def _local_storage() -> Path:
    from prefect.settings import get_current_settings

    return Path(get_current_settings().results.local_storage_path).expanduser()
