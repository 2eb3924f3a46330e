"""``amends incident FILE --via-deployment``: checked like a run here, then handed to the
recover-incident deployment on the Prefect server (the test harness's). The event path, and a
worker running what was handed over, are in tests/e2e/test_scale_out.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from factories import incident_data
from prefect import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import PrefectHTTPStatusError
from prefect.flow_engine import run_flow_sync
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import func, select
from typer.testing import CliRunner

from amends.cli import app
from amends.flows.incident import recover_incident
from amends.recovery.intake import filed_incident, parse_incident
from amends.runtime import Runtime
from amends.storage import models

pytestmark = pytest.mark.usefixtures("prefect_harness")
runner = CliRunner()


@pytest.fixture
def incident_file(tmp_path: Path) -> Path:
    path = tmp_path / "incident.json"
    path.write_text(json.dumps(incident_data(ref="REMOTE-1")))
    return path


@pytest.fixture
def deployed() -> Iterator[str]:
    """The recover-incident deployment on the harness's server (no worker: runs stay
    scheduled)."""
    deployment_id = recover_incident.to_deployment(name="recover-incident").apply()
    yield str(deployment_id)
    with get_client(sync_client=True) as client:
        client.delete_deployment(deployment_id)


def _incidents(rt: Runtime) -> int:
    with rt.db.session() as session:
        return session.scalar(select(func.count()).select_from(models.Incident))


def test_an_incident_is_recorded_and_only_its_ref_handed_to_the_deployment(
    rt: Runtime, incident_file: Path, deployed: str
) -> None:
    result = runner.invoke(app, ["incident", str(incident_file), "--via-deployment", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(report["flow_run_id"])
    assert str(run.deployment_id) == deployed
    assert run.name == report["flow_run_name"] == "REMOTE-1"
    # Nothing personal in Prefect: the worker's run finds the incident in amends' database.
    assert run.parameters == {"incident_ref": "REMOTE-1"}
    assert report["url"].endswith(f"/runs/flow-run/{run.id}")
    assert filed_incident(rt, "REMOTE-1") == parse_incident(incident_file.read_text())


def test_bad_input_gets_the_same_line_and_nothing_is_handed_over(
    rt: Runtime, tmp_path: Path, deployed: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(incident_data(severity="apocalyptic")))
    here = runner.invoke(app, ["incident", str(bad)])
    remote = runner.invoke(app, ["incident", str(bad), "--via-deployment"])
    assert remote.exit_code == here.exit_code == 1
    assert remote.output == here.output
    assert "severity:" in remote.output and len(remote.output.strip().splitlines()) == 1
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployed]))
        )
    assert runs == []
    assert _incidents(rt) == 0


@pytest.mark.parametrize("via", ["--via-deployment", "--via-event"])
def test_without_the_deployment_it_says_how_to_deploy(
    rt: Runtime, incident_file: Path, via: str
) -> None:
    result = runner.invoke(app, ["incident", str(incident_file), via])
    assert result.exit_code == 1
    assert "no deployment recover-incident/recover-incident on the Prefect server" in result.output
    assert "amends deploy" in result.output


@pytest.mark.parametrize("via", ["--via-deployment", "--via-event"])
def test_without_a_prefect_server_it_says_so(rt: Runtime, incident_file: Path, via: str) -> None:
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        result = runner.invoke(app, ["incident", str(incident_file), via])
    assert result.exit_code == 1
    assert "no Prefect server configured: set PREFECT_API_URL" in result.output
    assert _incidents(rt) == 0


def _form_run(deployment_id: str, incident: dict) -> FlowRun:
    """What the UI's Custom run form does: create a run of the deployment with the form's
    values as parameters (the server checks them against the parameter schema)."""
    with get_client(sync_client=True) as client:
        return client.create_flow_run_from_deployment(
            deployment_id, parameters={"incident": incident}
        )


def test_the_server_refuses_a_form_without_the_contact_its_channel_needs(
    rt: Runtime, deployed: str
) -> None:
    # A web-form complaint needs an email: the schema's if/then says so, and the server refuses
    # the form with 409 before any run exists.
    for channel, contact in [("web_form", {"email": None}), ("sms", {"phone": None})]:
        bad = incident_data(channel=channel, customer=contact)
        with pytest.raises(PrefectHTTPStatusError, match="409"):
            _form_run(deployed, bad)
    # Whichever one of several will do: in person, a phone alone is enough.
    _form_run(deployed, incident_data(channel="in_person", customer={"email": None}))
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployed]))
        )
    assert len(runs) == 1


def test_a_form_run_is_taken_in_named_and_scrubbed(rt: Runtime, deployed: str) -> None:
    # As the form sends it: no received_at (now), or a plain time in the business's zone.
    typed = incident_data(ref="FORM-1", received_at="2026-11-20 09:15")
    empty = incident_data(ref="FORM-2", complaint_message_id="<form-2@customer.example>")
    del empty["received_at"]
    for data in (typed, empty):
        run = _form_run(deployed, data)
        state = run_flow_sync(recover_incident, flow_run=run, parameters=run.parameters,
                              return_type="state")  # fmt: skip
        assert state.is_completed(), state.message
        with get_client(sync_client=True) as client:
            after = client.read_flow_run(run.id)
        assert after.name == data["ref"]
        assert after.parameters["incident"] is None
        assert after.parameters["incident_ref"] == data["ref"]
    assert filed_incident(rt, "FORM-1").received_at.isoformat() == "2026-11-20T09:15:00+01:00"


def test_an_invalid_form_fails_at_once_with_one_line_naming_the_field(
    rt: Runtime, deployed: str
) -> None:
    bad = incident_data(ref="FORM-BAD", customer={"email": "not-an-address"})
    run = _form_run(deployed, bad)
    state = run_flow_sync(recover_incident, flow_run=run, parameters=run.parameters,
                          return_type="state")  # fmt: skip
    assert state.is_failed()
    assert state.message.startswith("customer.email: is not a valid email address")
    assert "\n" not in state.message and "Traceback" not in state.message
    with get_client(sync_client=True) as client:
        after = client.read_flow_run(run.id)
    assert after.name == "FORM-BAD"
    assert after.parameters == {"incident": None, "incident_ref": "FORM-BAD"}
    assert _incidents(rt) == 0
