"""The import-incidents flow under the Prefect test harness: one run for the file, a task per
batch, mail over real SMTP on loopback."""

from __future__ import annotations

import email
from email import policy as email_policy
from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from typer.testing import CliRunner

from amends.cli import app
from amends.delivery.mailcatcher import MailCatcher
from amends.flows.import_incidents import import_incidents
from amends.recovery import batch
from amends.runtime import Runtime
from tests.core.test_incident_import import helpdesk, ticket

pytestmark = pytest.mark.usefixtures("prefect_harness")


def caught(mail_catcher: MailCatcher) -> list[str]:
    return sorted(
        email.message_from_bytes(path.read_bytes(), policy=email_policy.default)["To"]
        for path in mail_catcher.messages()
    )


def test_one_run_files_the_file_in_batches_and_mails_each_customer_once(
    smtp_rt: Runtime, mail_catcher: MailCatcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "BATCH", 2)  # three good rows: two batches
    file, _ = helpdesk(tmp_path, [ticket(1), ticket(2), ticket(3, Via="Telex"), ticket(4)])
    map_file = tmp_path / "helpdesk.yaml"

    state = import_incidents(file=str(file), map_file=str(map_file), return_state=True)
    report = state.result()
    assert (report.added, report.refused) == (3, [(4, report.refused[0][1])])
    assert "channel: 'Telex'" in report.refused[0][1]
    # The apology, then the invitation to the check-ins, as for one incident.
    assert caught(mail_catcher) == [f"customer{n}@example.com" for n in (1, 1, 2, 2, 4, 4)]

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
        assert run.name == "import-tickets.csv"
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
        )
        names = {t.name for t in tasks}
    assert {"batch-1", "batch-2"} <= names

    again = import_incidents(file=str(file), map_file=str(map_file))
    assert (again.added, again.unchanged) == (0, 3)
    assert len(caught(mail_catcher)) == 6


def test_the_command_checks_a_shipped_map_dry(smtp_rt: Runtime, tmp_path: Path) -> None:
    from tests.factories import DATA

    result = CliRunner().invoke(
        app,
        [
            "import",
            "incidents",
            str(DATA / "fcc_comcast_complaints_2015_300.csv"),
            "--map",
            "fcc",
            "--dry-run",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "300 rows: 300 would be filed (300 as history)" in result.output
