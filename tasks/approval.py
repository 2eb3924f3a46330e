"""Approval of an offer above the frontline limit: the run waits for a manager's answer.

A deployment's run shows as *Suspended* in the Prefect UI (no worker held) with a Resume form
(approve, amount, approver, reason); a run in a terminal pauses. ``amends approve`` records the
same answer and resumes the run. Past the policy's timeout the run goes on with the frontline
offer and a manager is asked to decide later.
"""

from __future__ import annotations

import math
import threading
from datetime import datetime
from uuid import UUID

from prefect import get_client, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.context import FlowRunContext
from prefect.events import emit_event
from prefect.exceptions import Abort, FlowPauseTimeout, ObjectNotFound
from prefect.flow_runs import pause_flow_run, resume_flow_run, suspend_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run
from prefect.states import Running
from prefect.utilities.urls import url_for
from pydantic import Field, create_model

from amends.domain import ReplyChannel
from amends.errors import DeliveryError
from amends.recovery.approvals import (
    PENDING,
    TIMED_OUT,
    ApprovalError,
    ApprovalRequest,
    approval_request,
    decide,
    manager_notice,
    note_waiting_run,
    time_out,
    waiting_answers,
)
from amends.reporting.casebook import plain_markdown
from amends.runtime import Runtime
from amends.storage.models import utcnow
from amends.tasks._runtime import task_runtime
from amends.tasks.report import publish_case_summary

# How often a paused run asks whether it was resumed: an answer takes effect within twice this
# (the database is asked, then Prefect). Only a run paused in a terminal's process polls (the
# demo's); a deployment's run is suspended and asks nothing.
POLL_SECONDS = 1


# A name or a reason from the Resume form goes on the case record: one line, not blank.
ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
NOT_BLANK = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"


def answer_form(request: ApprovalRequest) -> type[RunInput]:
    """The Resume form a manager fills in: its bounds are this case's limits."""
    form = create_model(
        "OfferApproval",
        __base__=RunInput,
        approve=(
            bool,
            Field(default=True, description="Untick to decline: the frontline offer stands."),
        ),
        amount=(
            float,
            Field(
                default=request.approvable,
                ge=request.frontline_limit,
                le=request.manager_limit,
                description=f"What to grant, in {request.currency}; change it to adjust.",
            ),
        ),
        approver=(
            str,
            Field(
                min_length=1,
                max_length=120,
                pattern=NOT_BLANK,
                description="Your name, for the case record.",
            ),
        ),
        reason=(
            str,
            Field(default="", max_length=1000, pattern=ONE_LINE, description="Why, in a line."),
        ),
    )
    return form.with_initial_data(description=plain_markdown(request.question))


APPROVAL_REQUESTED = "amends.approval.requested"


def wait_for_approval(case_id: int) -> ApprovalRequest:
    """Set the flow run aside until a manager answers.

    Call it from the flow (a pause belongs to the flow run). A deployment's run is *Suspended*:
    it holds no worker while it waits, and starts again from the top once resumed (every stage
    before this one finds its work done); there is no time limit, the nightly run times the
    request out and resumes it (:func:`resume_answered_runs`). A run without a deployment (in a
    terminal) can only pause, until the policy's timeout. An answer recorded elsewhere
    (``amends approve``, on any machine that reaches the database) resumes the run too. Returns
    the request as it stands: answered, or timed out with the frontline offer in force.

    Raises:
        Abort: the run was cancelled while it waited.
    """
    rt = task_runtime()
    request = approval_request(rt, case_id)
    if request.status != PENDING:  # answered already, or a run before this one timed out
        return request
    ask_manager(case_id)
    run = FlowRunContext.get().flow_run
    key = f"approve-offer-case-{case_id}"
    if run.deployment_id is not None:
        # Returns only in the run that starts again after a Resume with the form's answer.
        answer = suspend_flow_run(wait_for_input=answer_form(request), key=key)
        return _record(case_id, answer)
    return _pause(rt, case_id, run.id, request, key)


@task(name="ask-manager", cache_policy=NONE, task_run_name="ask-manager-case-{case_id}")
def ask_manager(case_id: int) -> ApprovalRequest:
    """Tell a manager that the run waits for an answer: the question as a warning in the run's
    log and at the top of the case's artifact, an ``amends.approval.requested`` event (references
    only) for an automation to route, and an email to ``AMENDS_MANAGER_EMAIL`` with a link to
    the run. Once per run: a resumed run that starts again does not ask twice."""
    rt = task_runtime()
    logger = get_run_logger()
    request = approval_request(rt, case_id)
    run_id = flow_run.get_id()
    # The UI's own route (the runtime's ui_url names an older one).
    url = url_for("flow-run", obj_id=run_id) if run_id else None
    if run_id is None or request.flow_run_id == run_id:
        return request
    note_waiting_run(rt, case_id, run_id)
    logger.warning(
        "Waiting for a manager's approval. %s Answer with Resume on this run's page, or "
        "`amends approve %s --by NAME` (--amount N, --decline).",
        request.question,
        request.incident_ref,
    )
    # The question at the top of the case's artifact, and in approvals-waiting.
    publish_case_summary.fn(case_id)
    emit_event(
        APPROVAL_REQUESTED,
        resource={
            "prefect.resource.id": f"amends.case.{case_id}",
            "prefect.resource.name": request.incident_ref,
        },
        related=[
            {
                "prefect.resource.id": f"prefect.flow-run.{run_id}",
                "prefect.resource.role": "flow-run",
            }
        ],
        payload={
            "case_id": case_id,
            "incident_ref": request.incident_ref,
            "wanted": request.wanted,
            "frontline_limit": request.frontline_limit,
            "manager_limit": request.manager_limit,
            "currency": request.currency,
            "due_at": request.due_at.isoformat(),
            "run_url": url,
        },
    )
    if not rt.settings.manager_email:
        logger.info("AMENDS_MANAGER_EMAIL is not set: no manager is emailed")
        return request
    try:
        rt.channels[ReplyChannel.EMAIL].deliver(manager_notice(request, rt.settings, url))
    except DeliveryError as error:
        logger.warning("The manager could not be emailed (%s); the event still went out", error)
    else:
        logger.info("A manager was emailed the question")
    return request


def _pause(rt: Runtime, case_id: int, run_id: UUID, request: ApprovalRequest, key: str):
    """Pause this run (its process waits) until an answer, or the policy's timeout."""
    logger = get_run_logger()
    seconds = max(math.ceil((request.due_at - utcnow()).total_seconds()), 1)
    waited = threading.Event()
    watcher = threading.Thread(
        target=_resume_when_answered,
        args=(rt, case_id, run_id, waited),
        name=f"approval-watch-{case_id}",
        daemon=True,
    )
    watcher.start()
    try:
        answer = pause_flow_run(
            wait_for_input=answer_form(request),
            timeout=seconds,
            poll_interval=min(POLL_SECONDS, seconds),
            key=key,
        )
    except FlowPauseTimeout:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(run_id).state
            if not state.is_paused():  # cancelled while it waited: go no further
                raise Abort(
                    f"the run was {state.name.lower()} while it waited for approval"
                ) from None
            # The run carries on with the frontline offer: back to Running, or Prefect would
            # refuse the stages that follow.
            client.set_flow_run_state(run_id, Running(), force=True)
        if time_out(rt, case_id):
            logger.warning(
                "No answer in time: the run goes on with the frontline offer of %.2f %s; a "
                "manager action asks for a decision.",
                request.frontline_limit,
                request.currency,
            )
        return approval_request(rt, case_id)
    finally:
        waited.set()
        watcher.join()
    return _record(case_id, answer)


# The Resume form's filler when the request timed out: the run reads the database instead.
NO_ANSWER = "no answer in time"


def _record(case_id: int, answer: RunInput) -> ApprovalRequest:
    if answer.approver == NO_ANSWER:
        return approval_request(task_runtime(), case_id)
    return record_approval(
        case_id,
        approve=answer.approve,
        amount=answer.amount,
        approver=answer.approver,
        reason=answer.reason,
    )


def run_input(request: ApprovalRequest) -> dict[str, object]:
    """The Resume form filled in with the answer that stands (the run reads the database)."""
    return {
        "approve": request.status not in ("declined", TIMED_OUT),
        "amount": request.amount if request.amount is not None else request.frontline_limit,
        "approver": request.approver or NO_ANSWER,
        "reason": request.reason or "",
    }


def resume_suspended_run(request: ApprovalRequest) -> str | None:
    """Resume the suspended run that waits for this answer, through Prefect's API; return its
    name, or None when no run waits suspended (never set aside, already resumed, or a paused
    run, which its own process resumes)."""
    if not request.flow_run_id:
        return None
    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(UUID(request.flow_run_id))
        except ObjectNotFound:
            return None
    if run.state is None or run.state.name != "Suspended":
        return None
    resume_flow_run(run.id, run_input=run_input(request))
    return run.name


@task(name="resume-answered-runs", cache_policy=NONE)
def resume_answered_runs(now: datetime) -> int:
    """Resume the suspended runs whose approval was answered, or is past its time (the
    frontline offer then stands and a manager is asked to decide later); return how many."""
    logger = get_run_logger()
    resumed = 0
    for request in waiting_answers(task_runtime(), now):
        try:
            name = resume_suspended_run(request)
        except Exception as error:  # one run that cannot resume must not stop the night
            logger.warning("Run of case %s not resumed: %s", request.incident_ref, error)
            continue
        if name is not None:
            resumed += 1
            logger.info("Resumed %s (%s)", name, request.status)
    return resumed


def _resume_when_answered(rt: Runtime, case_id: int, run_id: UUID, done: threading.Event) -> None:
    """Resume the paused run once an answer is in the database (``amends approve``); stop
    once the run has ended otherwise. Prefect's pause outwaits a cancelled run until its
    timeout: `amends incident` cancels the run it sets aside and returns, and this thread must
    not go on reading the database for hours after."""
    with get_client(sync_client=True) as client:
        while not done.wait(POLL_SECONDS):
            if client.read_flow_run(run_id).state.is_final():  # cancelled: nobody waits
                return
            request = approval_request(rt, case_id)
            if request.status == PENDING:
                continue
            try:
                resume_flow_run(run_id, run_input=run_input(request))
                return
            except Exception:  # not paused (resumed another way, or ended), or the form not
                continue  # saved yet: the next tick tells


@task(name="record-approval", cache_policy=NONE, task_run_name="record-approval-case-{case_id}")
def record_approval(
    case_id: int, *, approve: bool, amount: float, approver: str, reason: str
) -> ApprovalRequest:
    """Record the manager's answer from the Resume form on the case (the first answer wins)."""
    rt = task_runtime()
    logger = get_run_logger()
    try:
        decided = decide(
            rt,
            case_id,
            approve=approve,
            amount=amount if approve else None,
            approver=approver,
            reason=reason,
        )
    except ApprovalError as error:
        # The form's bounds should have stopped it; never let a bad answer fail the recovery.
        logger.error("The answer cannot be recorded (%s); the frontline offer stands", error)
        time_out(rt, case_id)
        return approval_request(rt, case_id)
    request = decided.request
    if decided.now:
        logger.info("%s by %s: %.2f %s", request.status, approver, request.amount, request.currency)
    else:
        logger.info(
            "Already %s by %s at %.2f %s; that answer stands",
            request.status,
            request.approver,
            request.amount,
            request.currency,
        )
    return request
