"""An offer above the frontline limit sets the recover-incident run aside for a manager:
paused in a terminal, suspended (no process held) when the run comes from a deployment.

Each path against the Prefect test harness, with mail over real SMTP: approve and adjust from
the Resume form (the API call the UI makes), decline from the CLI's path, and a timeout that
goes on with the frontline offer and escalates, then a late approval that reaches the customer.
"""

from __future__ import annotations

import email
import threading
import time
from dataclasses import replace
from email import policy as email_policy
from uuid import UUID

import pytest
from factories import make_incident
from prefect import get_client
from prefect.flow_runs import resume_flow_run
from sqlalchemy import select

from amends.delivery.mailcatcher import MailCatcher
from amends.flows.incident import recover_incident
from amends.recovery.approvals import decide
from amends.reporting.casebook import CaseOutcome, case_outcome
from amends.runtime import Runtime, use_runtime
from amends.storage import models

pytestmark = pytest.mark.usefixtures("prefect_harness")

# Costs 1400 + 6 h x 40 + 75 + 50 = 1765 for a standard customer (4,000 a year) in a critical
# failure: frontline limit 1,000, manager limit 5,000.
INCIDENT = make_incident(
    ref="INC-3001",
    severity="critical",
    costs={"economic": 1400},
    customer={"ref": "C-3001", "annual_value": 4000},
)


def start(incident=INCIDENT) -> tuple[threading.Thread, dict]:  # type: ignore[no-untyped-def]
    box: dict = {}

    def run() -> None:
        try:
            box["outcome"] = recover_incident(incident)
        except BaseException as error:
            box["error"] = error

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    return worker, box


def paused_run(rt: Runtime, worker: threading.Thread) -> UUID:
    """The run's id once Prefect shows it Paused for the approval."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and worker.is_alive():
        with rt.db.session() as session:
            run_id = session.scalar(select(models.Approval.flow_run_id))
        if run_id:
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(UUID(run_id)).state
            if state.is_paused():
                assert state.name == "Paused"
                return UUID(run_id)
        time.sleep(0.1)
    raise AssertionError("the run never paused for approval")


def finish(worker: threading.Thread, box: dict) -> CaseOutcome:
    worker.join(60)
    assert not worker.is_alive()
    if "error" in box:
        raise box["error"]
    return box["outcome"]


def apology_html(catcher: MailCatcher) -> str:
    for path in catcher.messages():
        message = email.message_from_bytes(path.read_bytes(), policy=email_policy.default)
        if message["In-Reply-To"]:
            return message.get_body(("html",)).get_content()
    raise AssertionError("no apology was sent")


def test_approved_in_the_resume_form(smtp_rt: Runtime, mail_catcher: MailCatcher) -> None:
    worker, box = start()
    run_id = paused_run(smtp_rt, worker)
    # Nothing reaches the customer while the offer waits.
    assert mail_catcher.messages() == []
    assert case_outcome(smtp_rt.db, "INC-3001").approval.status == "pending"
    resume_flow_run(
        run_id,
        run_input={"approve": True, "amount": 1765, "approver": "Maria", "reason": "Loyal"},
    )
    outcome = finish(worker, box)
    assert (outcome.offer.value, outcome.approval.status) == (1765, "approved")
    assert (outcome.approval.approver, outcome.approval.reason) == ("Maria", "Loyal")
    assert "1,765.00" in apology_html(mail_catcher)
    assert any(e.kind == "approval" and e.actor == "Maria" for e in outcome.timeline)
    kinds = [e.kind for e in outcome.timeline]
    assert kinds.index("approval_asked") < kinds.index("approval")
    assert [a.status for a in outcome.staff_actions if a.kind == "approve_offer"] == ["done"]


def test_adjusted_in_the_resume_form(smtp_rt: Runtime, mail_catcher: MailCatcher) -> None:
    worker, box = start()
    run_id = paused_run(smtp_rt, worker)
    resume_flow_run(
        run_id, run_input={"approve": True, "amount": 1500, "approver": "Maria", "reason": ""}
    )
    outcome = finish(worker, box)
    assert (outcome.offer.value, outcome.approval.status) == (1500, "adjusted")
    assert "1,500.00" in apology_html(mail_catcher)


def test_the_form_refuses_more_than_a_manager_may_grant(smtp_rt: Runtime) -> None:
    worker, box = start()
    run_id = paused_run(smtp_rt, worker)
    for bad in (
        {"approve": True, "amount": 99_999, "approver": "Maria"},  # above the manager's limit
        {"approve": True, "amount": 10, "approver": "Maria"},  # below the frontline's
        {"approve": True, "amount": 1765, "approver": "   "},
        {"approve": True, "amount": 1765, "approver": "Maria", "reason": "a\nBcc: x@y.z"},
    ):
        with pytest.raises(Exception, match="(?i)validat|less than|greater than|pattern"):
            resume_flow_run(run_id, run_input=bad)
    decide(smtp_rt, 1, approve=True, approver="Ana")  # `amends approve`: the run resumes itself
    outcome = finish(worker, box)
    assert (outcome.offer.value, outcome.approval.approver) == (1765, "Ana")


def test_declined_from_the_cli(smtp_rt: Runtime, mail_catcher: MailCatcher) -> None:
    worker, box = start()
    paused_run(smtp_rt, worker)
    decided = decide(smtp_rt, 1, approve=False, approver="Omar", reason="Budget")
    assert decided.now
    outcome = finish(worker, box)
    assert (outcome.offer.value, outcome.approval.status) == (1000, "declined")
    assert "1,000.00" in apology_html(mail_catcher)
    # A second answer, whichever way it comes, changes nothing.
    again = decide(smtp_rt, 1, approve=True, approver="Someone else")
    assert not again.now and again.request.approver == "Omar"


def watching() -> list[str]:
    """The threads that watch the database for a manager's answer."""
    return [t.name for t in threading.enumerate() if t.name.startswith("approval-watch")]


def test_a_run_set_aside_while_it_waits_stops_watching_for_the_answer(smtp_rt: Runtime) -> None:
    """`amends incident` cancels the run it leaves waiting, and returns. Prefect's pause
    outwaits a cancelled run until its timeout (hours); the thread that reads the database for
    the answer must not, in a process that goes on (a test run, a worker)."""
    from prefect.states import Cancelled

    worker, _ = start()
    run_id = paused_run(smtp_rt, worker)
    assert watching()
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run_id, Cancelled(message="set aside"), force=True)
    deadline = time.monotonic() + 10
    while watching() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert watching() == []
    assert case_outcome(smtp_rt.db, "INC-3001").approval.status == "pending"  # no answer came


@pytest.fixture
def quick(smtp_rt: Runtime) -> Runtime:
    """The SMTP runtime with a policy that waits two seconds for a manager."""
    figures = smtp_rt.policy.empower.model_copy(update={"approval_timeout_hours": 2 / 3600})
    runtime = replace(smtp_rt, policy=smtp_rt.policy.model_copy(update={"empower": figures}))
    use_runtime(runtime)
    return runtime


def test_a_timeout_goes_on_with_the_frontline_offer_and_escalates(
    quick: Runtime, mail_catcher: MailCatcher
) -> None:
    outcome = finish(*start())
    assert (outcome.offer.value, outcome.approval.status) == (1000, "timed_out")
    assert "1,000.00" in apology_html(mail_catcher)
    overdue = [a for a in outcome.staff_actions if a.kind == "approval_overdue"]
    assert [(a.role, a.status) for a in overdue] == [("manager", "open")]
    assert "approval_timed_out" in [e.kind for e in outcome.timeline]
    assert outcome.state == "awaiting_staff"

    # A late approval still counts, and the better offer goes to the customer.
    decided = decide(quick, outcome.case_id, approve=True, approver="Maria")
    assert decided.now and decided.request.amount == 1765
    late = case_outcome(quick.db, "INC-3001")
    assert late.offer.value == 1765
    assert [(m.kind, m.status) for m in late.messages if m.kind == "offer"] == [("offer", "queued")]
    assert [a.status for a in late.staff_actions if a.kind == "approval_overdue"] == ["done"]
    assert late.state == "open"  # the revised offer is queued: nothing waits for staff


def test_a_late_decline_settles_the_case(quick: Runtime) -> None:
    outcome = finish(*start())
    assert [
        a.kind for a in outcome.staff_actions if a.status == "open" and a.role == "manager"
    ] == [
        "approval_overdue"  # the ask was replaced by the escalation, not doubled
    ]
    decide(quick, outcome.case_id, approve=False, approver="Omar")
    late = case_outcome(quick.db, "INC-3001")
    assert late.state == "open" and late.offer.value == 1000
    assert [m.kind for m in late.messages if m.kind == "offer"] == []


def test_a_rerun_after_the_answer_does_not_pause(smtp_rt: Runtime) -> None:
    worker, box = start()
    paused_run(smtp_rt, worker)
    decide(smtp_rt, 1, approve=True, approver="Maria")
    first = finish(worker, box)
    with smtp_rt.db.session() as session:
        waited = session.scalar(select(models.Approval.flow_run_id))
    second = recover_incident(INCIDENT)
    assert second.approval == first.approval
    with smtp_rt.db.session() as session:  # a run that paused would have noted its own id
        assert session.scalar(select(models.Approval.flow_run_id)) == waited


# --- a deployment's run: suspended, holding no process, and resumed through the API -----------


def suspended(rt: Runtime, incident=INCIDENT):  # type: ignore[no-untyped-def]
    """Run the incident as a run of a deployment (as a worker would, in this process) until it
    is suspended for the approval; return the run."""
    from prefect.exceptions import Pause
    from prefect.flow_engine import run_flow

    with get_client(sync_client=True) as client:
        flow_id = client.create_flow(recover_incident)
        deployment_id = client.create_deployment(flow_id=flow_id, name="suspend-test")
        run = client.create_flow_run_from_deployment(
            deployment_id, parameters={"incident": incident.model_dump(mode="json")}
        )
    with pytest.raises(Pause):
        run_flow(recover_incident, flow_run=run, parameters={"incident": incident})
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run.id)
    assert run.state.name == "Suspended"
    return run


def latest(key: str) -> str:
    """The latest version of an artifact (Artifact.get leaves its client's socket open)."""
    with get_client(sync_client=True) as client:
        return {a.key: a for a in client.read_latest_artifacts(limit=100)}[key].data


def rerun(run):  # type: ignore[no-untyped-def]
    """What a worker does with a resumed run: start it again from the top."""
    from prefect.flow_engine import run_flow

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run.id)
    assert run.state.is_scheduled()  # resumed: waiting for a worker again
    return run_flow(recover_incident, flow_run=run, parameters={"incident": INCIDENT})


def test_a_deployment_run_is_suspended_the_manager_is_told_and_amends_approve_resumes_it(
    smtp_rt: Runtime, mail_catcher: MailCatcher
) -> None:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    from amends import runner

    told = replace(
        smtp_rt, settings=smtp_rt.settings.model_copy(update={"manager_email": "boss@acme.test"})
    )
    use_runtime(told)
    run = suspended(told)

    # The manager's email, the question in the log and atop the case's artifact and view.
    (notice,) = [
        email.message_from_bytes(p.read_bytes(), policy=email_policy.default)
        for p in mail_catcher.messages()
    ]
    assert notice["To"] == "boss@acme.test"
    assert notice["Subject"] == "Approval needed: case INC-3001"
    assert "amends approve INC-3001 --by NAME" in notice.get_body(("plain",)).get_content()
    APILogWorker.drain_all(timeout=10)  # logs go to the API from a background worker
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])), limit=200)
    warnings = [log.message for log in logs if log.level == 30]
    assert warnings[0].startswith("Waiting for a manager's approval. Case INC-3001:")
    case = latest("case-1")
    assert case.splitlines()[2].startswith("> **Waits for a manager's approval.**")
    assert "INC-3001" in latest("approvals-waiting")
    assert "Rodolfo" not in case.splitlines()[2]  # the question names no customer

    # `amends approve` from anywhere: recorded, then the run resumed through the API.
    decided = decide(told, 1, approve=True, approver="Maria")
    assert runner.resume_waiting_run(decided.request) == run.name
    outcome = rerun(run)
    assert (outcome.offer.value, outcome.approval.status) == (1765, "approved")
    empower_row = next(s for s in outcome.stages if s.name == "empower")
    assert "waits for a manager" not in empower_row.summary
    assert "asked a manager: offer approved at 1765.00" in empower_row.summary
    assert "No approval waiting." in latest("approvals-waiting")
    # Asked once: the run that started again did not email the manager twice.
    assert sum("Approval needed" in p.read_text() for p in mail_catcher.messages()) == 1


def test_the_resume_form_answers_a_suspended_run(smtp_rt: Runtime) -> None:
    run = suspended(smtp_rt)
    resume_flow_run(
        run.id, run_input={"approve": True, "amount": 1500, "approver": "Maria", "reason": ""}
    )
    outcome = rerun(run)
    assert (outcome.offer.value, outcome.approval.status) == (1500, "adjusted")
    assert outcome.approval.approver == "Maria"


def test_the_nightly_run_resumes_an_overdue_suspended_run(smtp_rt: Runtime) -> None:
    from datetime import timedelta

    from amends.tasks.approval import resume_answered_runs

    run = suspended(smtp_rt)
    request = case_outcome(smtp_rt.db, "INC-3001").approval
    assert resume_answered_runs(request.due_at - timedelta(minutes=1)) == 0  # not yet due
    assert resume_answered_runs(request.due_at + timedelta(minutes=1)) == 1
    outcome = rerun(run)
    assert (outcome.offer.value, outcome.approval.status) == (1000, "timed_out")
    assert [a.kind for a in outcome.staff_actions if a.status == "open"].count(
        "approval_overdue"
    ) == 1
