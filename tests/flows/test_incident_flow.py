"""The recover-incident flow under the Prefect test harness, with mail over real SMTP."""

from __future__ import annotations

import email
from email import policy as email_policy

import pytest
from factories import incident_data, make_incident
from prefect import get_client
from prefect.exceptions import ParameterTypeError
from sqlalchemy import func, select

from amends.delivery.mailcatcher import MailCatcher
from amends.flows.incident import recover_incident
from amends.runtime import Runtime
from amends.storage import models
from amends.tasks.delivery import deliver_messages

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


def test_mail_server_down_leaves_the_apology_queued_and_visible(
    rt_without_smtp: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deliver_messages, "retry_delay_seconds", [0, 0])
    outcome = recover_incident(make_incident(ref="INC-3001"))
    apology = outcome.messages[0]
    assert apology.status == "queued"
    # Two deliveries in the flow (after follow-up, after re-engage), each tried three times.
    assert apology.attempts == 6
    assert "cannot reach SMTP server" in (apology.last_error or "")
    assert outcome.stages[-1].status == "completed"  # the recovery went on


def test_an_invalid_incident_is_refused_before_anything_is_written(rt: Runtime) -> None:
    with pytest.raises(ParameterTypeError, match=r"customer\.email"):
        recover_incident(incident_data(customer={"email": "nope"}))
    with rt.db.session() as session:
        assert session.scalar(select(func.count()).select_from(models.Incident)) == 0
