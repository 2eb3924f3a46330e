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
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import func, select
from typer.testing import CliRunner

from amends.cli import app
from amends.flows.incident import recover_incident
from amends.recovery.intake import parse_incident
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


def test_an_incident_is_handed_to_the_deployment(
    rt: Runtime, incident_file: Path, deployed: str
) -> None:
    result = runner.invoke(app, ["incident", str(incident_file), "--via-deployment", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(report["flow_run_id"])
    assert str(run.deployment_id) == deployed
    assert run.name == report["flow_run_name"] == "REMOTE-1"
    # The incident as validated here: every field, defaults filled in.
    assert run.parameters == {"incident": parse_incident(incident_file.read_text()).model_dump(
        mode="json"
    )}  # fmt: skip
    assert report["url"].endswith(f"/runs/flow-run/{run.id}")
    assert _incidents(rt) == 0  # the worker's run files it, not this command


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
