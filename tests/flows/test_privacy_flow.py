"""Personal data stays out of Prefect: the run's parameters, logs, artifacts and results."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from factories import make_incident
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.logging.handlers import APILogWorker

from amends.delivery.channels import EmailAdapter
from amends.delivery.mailcatcher import free_port
from amends.domain import ReplyChannel
from amends.flows.incident import recover_incident
from amends.runtime import Runtime, use_runtime

pytestmark = pytest.mark.usefixtures("prefect_harness")


class Refusing:
    """A mail server that refuses every recipient, quoting the address, as real ones do."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        return f"550 5.1.1 <{address}>: recipient address rejected"


@pytest.fixture
def refusing_port() -> Iterator[int]:
    port = free_port()
    controller = Controller(Refusing(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port
    controller.stop()


def test_an_smtp_refusal_reaches_the_logs_without_the_address(
    rt: Runtime, refusing_port: int
) -> None:
    settings = rt.settings.model_copy(update={"smtp_port": refusing_port})
    current = Runtime.from_settings(settings, channels={ReplyChannel.EMAIL: EmailAdapter(settings)})
    use_runtime(current)
    state = recover_incident(make_incident(ref="INC-PRIVATE"), return_state=True)
    outcome = state.result()
    # The apology bounced; the invitation to the same address is then withheld.
    assert [m.status for m in outcome.messages] == ["failed", "suppressed"]

    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        run = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        logs = [log.message for log in client.read_logs(log_filter=run, limit=200)]
        artifacts = client.read_artifacts(limit=200)
    refusals = [line for line in logs if "recipient address rejected" in line]
    assert refusals and all("<r***@***>" in line for line in refusals)
    assert not any("rk@example.com" in line or "612 345 678" in line for line in logs)
    # In any spelling: markdown escapes the dots (rk@example\.com).
    assert not any("rk@example" in str(artifact.data) for artifact in artifacts)


# The customer as make_incident files them, in every spelling a log or artifact could use.
PERSONAL = ["Rodolfo", "rk@example", "612 345 678", "612345678", "Calle Mayor", "@rk"]


def _holds_personal(text: str) -> list[str]:
    unescaped = text.replace("\\", "")
    return [detail for detail in PERSONAL if detail.lower() in unescaped.lower()]


def test_nothing_personal_in_the_runs_parameters_logs_artifacts_or_results(
    rt: Runtime, tmp_path: Path
) -> None:
    # A letter to their street, a public reply to their handle: each summary names them.
    incident = make_incident(ref="INC-QUIET", channel="letter")
    state = recover_incident(incident, return_state=True)
    assert state.is_completed(), state.message
    run_id = state.state_details.flow_run_id

    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=200
        )
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
        task_runs = client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[run_id]))
        )
    assert run.name == "INC-QUIET"
    assert run.parameters["incident"] is None and run.parameters["incident_ref"] == "INC-QUIET"
    assert logs and artifacts and task_runs
    assert _holds_personal(json.dumps(run.parameters)) == []
    assert [log.message for log in logs if _holds_personal(log.message)] == []
    assert [a.key for a in artifacts if _holds_personal(str(a.data))] == []
    # The masks show instead: someone reading the UI can still tell what happened.
    assert any("R*** K***" in str(a.data) for a in artifacts)
    # Results are never persisted: no file in Prefect's result storage holds them.
    assert all(task.state.data is None for task in task_runs)
    storage = Path(os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"])
    files = [p for p in storage.rglob("*") if p.is_file()] if storage.exists() else []
    assert [p for p in files if _holds_personal(p.read_bytes().decode("latin-1"))] == []


@pytest.mark.parametrize(
    ("incident_ref", "line"),
    [
        ("INC-NOWHERE", "no incident 'INC-NOWHERE' on file"),
        ("../../etc/passwd", "incident_ref is not an incident reference"),
        (None, "incident: give the incident, or the incident_ref of one on file"),
    ],
)
def test_a_run_by_reference_needs_one_on_file(
    rt: Runtime, incident_ref: str | None, line: str
) -> None:
    state = recover_incident(incident_ref=incident_ref, return_state=True)
    assert state.is_failed() and state.message == line
