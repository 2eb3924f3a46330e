"""The recover-incident flow under the Prefect test harness, with mail over real SMTP."""

from __future__ import annotations

import email
import secrets
import time
from datetime import timedelta
from email import policy as email_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from factories import incident_data, make_incident
from prefect import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterName,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.events.worker import EventsWorker
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from amends import runner
from amends.cli import app
from amends.delivery.channels import EmailAdapter
from amends.delivery.mailcatcher import MailCatcher, free_port
from amends.domain import ReplyChannel
from amends.flows.incident import recover_incident
from amends.reporting.casebook import case_outcome
from amends.runtime import Runtime, use_runtime
from amends.storage import models
from amends.tasks.nightly import send_queued

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_an_incident_is_recovered_and_mailed(smtp_rt: Runtime, mail_catcher: MailCatcher) -> None:
    state = recover_incident(make_incident(customer={"locale": "es"}), return_state=True)
    outcome = state.result()
    assert [stage.status for stage in outcome.stages] == ["completed"] * 6
    assert {(m.kind, m.status) for m in outcome.messages} == {
        ("apology", "sent"),
        ("checkin_invitation", "sent"),
    }
    apology, invitation = (
        email.message_from_bytes(path.read_bytes(), policy=email_policy.default)
        for path in mail_catcher.messages()
    )
    assert apology["In-Reply-To"] == "<complaint-1@customer.example>"
    html = apology.get_body(("html",)).get_content()
    assert "Le hemos fallado y lo sentimos" in html  # the customer's language
    assert any(part.get_content_type() == "text/calendar" for part in invitation.walk())

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
        artifacts = client.read_latest_artifacts(limit=50)
    assert run.name == "INC-1001"
    assert {"channel:email", "severity:high"} <= set(run.tags)
    summary = next(a for a in artifacts if a.key == f"case-{outcome.case_id}")
    assert "Decision: recover" in summary.data
    assert "rk@example.com" not in summary.data  # the UI is often shared


def test_as_the_cli_runs_it_the_run_is_tagged_and_its_task_runs_are_not(
    smtp_rt: Runtime, mail_catcher: MailCatcher
) -> None:
    """A tagged task run asks the server for a concurrency slot per tag as it starts: the
    complaint's tags belong on the flow run only."""
    ref = f"INC-TAGS-{secrets.token_hex(4).upper()}"  # the harness's server is the session's
    runner.run_incident(make_incident(ref=ref))

    # Task runs reach the server as events, recorded a moment later: wait for all nine.
    EventsWorker.drain_all(timeout=10)
    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        [run] = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[ref]))
        )
        while True:
            task_runs = client.read_task_runs(
                task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[run.id]))
            )
            if len(task_runs) >= 9 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert {"channel:email", "severity:high"} <= set(run.tags)
    assert len(task_runs) >= 9
    assert [t.name for t in task_runs if t.tags] == []


def test_a_second_run_resumes_and_sends_nothing_twice(
    smtp_rt: Runtime, mail_catcher: MailCatcher
) -> None:
    incident = make_incident(ref="INC-2001")
    first = recover_incident(incident)
    sent = len(mail_catcher.messages())
    second = recover_incident(incident)
    assert len(mail_catcher.messages()) == sent == 2
    assert second.case_id == first.case_id
    assert [m.attempts for m in second.messages] == [1, 1]
    assert second.timeline == first.timeline + second.timeline[len(first.timeline) :]
    assert len(second.timeline) == len(first.timeline)


@pytest.mark.parametrize("sender", ["amends send", "the nightly run"])
def test_after_a_short_outage_the_apology_goes_first_within_minutes_of_the_server_s_return(
    rt_without_smtp: Runtime, tmp_path: Path, sender: str
) -> None:
    rt = rt_without_smtp
    outcome = recover_incident(make_incident(ref="INC-3001"))
    assert outcome.stages[-1].status == "completed"  # the recovery went on
    apology, invitation = outcome.messages
    assert (apology.status, invitation.status) == ("queued", "queued")
    assert "cannot reach SMTP server" in (apology.last_error or "")
    # One attempt in the run (not six in seconds), so its next one is due within a minute,
    # not hours later; the invitation was never tried: it waits for the apology.
    assert (apology.attempts, invitation.attempts) == (1, 0)
    if sender == "amends send":  # within the pause: nothing tried, and it says both wait
        early = CliRunner().invoke(app, ["send"])
        assert early.exit_code == 3
        assert "Sent 0; 0 failed for now and will be retried; 2 still queued" in early.output
    with rt.db.session() as session:
        pause = session.scalar(select(func.max(models.Message.next_attempt_at))) - models.utcnow()
        # The pause is over, as a minute later; the server is back, on the same port.
        session.execute(update(models.Message).values(next_attempt_at=models.utcnow()))
    assert pause <= timedelta(minutes=1)
    with MailCatcher(tmp_path / "back", port=rt.settings.smtp_port) as server:
        if sender == "amends send":  # as from cron, every few minutes
            result = CliRunner().invoke(app, ["send"])
            assert result.exit_code == 0, result.output
        else:
            assert send_queued().sent == 2
        arrived = [
            email.message_from_bytes(path.read_bytes())["Message-ID"] for path in server.messages()
        ]
    sent = case_outcome(rt.db, outcome.case_id).messages
    assert arrived == [apology.message_id, invitation.message_id]  # the apology first
    assert [(m.status, m.attempts) for m in sent] == [("sent", 2), ("sent", 1)]


def test_a_server_that_takes_the_apology_and_hangs_up_gets_it_once_from_the_run(
    rt: Runtime,
) -> None:
    received: list[str] = []

    class HangsUp:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            received.append(email.message_from_bytes(envelope.original_content)["Message-ID"])
            server.transport.close()
            return "250 OK"  # never reaches the sender

    port = free_port()
    controller = Controller(HangsUp(), hostname="127.0.0.1", port=port)
    controller.start()
    settings = rt.settings.model_copy(update={"smtp_port": port})
    use_runtime(
        Runtime.from_settings(settings, channels={ReplyChannel.EMAIL: EmailAdapter(settings)})
    )
    try:
        outcome = recover_incident(make_incident(ref="INC-3002"))
    finally:
        controller.stop()
    apology = outcome.messages[0]
    # Once by the run; its retries (were six) multiply nothing. The one resend a lost answer
    # allows comes from a later sender, after the pause.
    assert received == [apology.message_id]
    assert (apology.status, apology.attempts) == ("queued", 1)


def test_an_invalid_incident_is_refused_before_anything_is_written(rt: Runtime) -> None:
    state = recover_incident(incident_data(customer={"email": "nope"}), return_state=True)
    assert state.is_failed() and state.message.startswith("customer.email:")
    with rt.db.session() as session:
        assert session.scalar(select(func.count()).select_from(models.Incident)) == 0
