"""Approval of an offer above the frontline limit: the run pauses for a manager's answer.

The run shows as *Paused* in the Prefect UI with a Resume form (approve, amount, approver,
reason); ``amends approve`` records the same answer and resumes the run. Past the policy's
timeout the run goes on with the frontline offer and a manager is asked to decide later.
"""

from __future__ import annotations

import math
import threading
from uuid import UUID

from prefect import get_client, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.context import FlowRunContext
from prefect.exceptions import Abort, FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, resume_flow_run
from prefect.input import RunInput
from prefect.states import Running
from pydantic import Field, create_model

from amends.recovery.approvals import (
    PENDING,
    ApprovalError,
    ApprovalRequest,
    approval_request,
    decide,
    note_waiting_run,
    time_out,
)
from amends.reporting.casebook import plain_markdown
from amends.runtime import Runtime
from amends.storage.models import utcnow
from amends.tasks._runtime import task_runtime

# How often a paused run asks whether it was resumed: an answer takes effect within this.
POLL_SECONDS = 3


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


def wait_for_approval(case_id: int) -> ApprovalRequest:
    """Pause the flow run until a manager answers, or the policy's timeout passes.

    Call it from the flow (a pause belongs to the flow run). An answer recorded elsewhere
    (``amends approve``, on any machine that reaches the database) resumes the run too. Returns
    the request as it stands: answered, or timed out with the frontline offer in force.

    Raises:
        Abort: the run was cancelled while it waited.
    """
    rt = task_runtime()
    request = approval_request(rt, case_id)
    if request.status != PENDING:  # answered already, or a run before this one timed out
        return request
    logger = get_run_logger()
    run = FlowRunContext.get().flow_run
    note_waiting_run(rt, case_id, str(run.id))
    seconds = max(math.ceil((request.due_at - utcnow()).total_seconds()), 1)
    logger.warning(
        "%s Waiting until %s UTC: resume this run in the Prefect UI, or run "
        "`amends approve %s --by NAME`.",
        request.question,
        f"{request.due_at:%Y-%m-%d %H:%M}",
        request.incident_ref,
    )
    waited = threading.Event()
    watcher = threading.Thread(
        target=_resume_when_answered,
        args=(rt, case_id, run.id, waited),
        name=f"approval-watch-{case_id}",
        daemon=True,
    )
    watcher.start()
    try:
        answer = pause_flow_run(
            wait_for_input=answer_form(request),
            timeout=seconds,
            poll_interval=min(POLL_SECONDS, seconds),
            key=f"approve-offer-case-{case_id}",
        )
    except FlowPauseTimeout:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(run.id).state
            if not state.is_paused():  # cancelled while it waited: go no further
                raise Abort(
                    f"the run was {state.name.lower()} while it waited for approval"
                ) from None
            # The run carries on with the frontline offer: back to Running, or Prefect would
            # refuse the stages that follow.
            client.set_flow_run_state(run.id, Running(), force=True)
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
    return record_approval(
        case_id,
        approve=answer.approve,
        amount=answer.amount,
        approver=answer.approver,
        reason=answer.reason,
    )


def _resume_when_answered(rt: Runtime, case_id: int, run_id: UUID, done: threading.Event) -> None:
    """Resume the paused run once an answer is in the database (``amends approve``)."""
    while not done.wait(POLL_SECONDS):
        request = approval_request(rt, case_id)
        if request.status == PENDING:
            continue
        answer = {
            "approve": request.status != "declined",
            "amount": request.amount,
            "approver": request.approver,
            "reason": request.reason or "",
        }
        try:
            resume_flow_run(run_id, run_input=answer)
            return
        except Exception:  # not paused yet, or the form not saved yet: try on the next tick
            continue


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
