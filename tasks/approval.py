"""Approval of an offer above the frontline limit: the run pauses for a manager's answer.

The run shows as *Paused* in the Prefect UI with a Resume form (approve, amount, approver,
reason); ``amends approve`` records the same answer and resumes the run. Past the policy's
timeout the run goes on with the frontline offer and a manager is asked to decide later.
"""

from __future__ import annotations

import math
from uuid import UUID

from prefect import get_client, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, resume_flow_run
from prefect.input import RunInput
from prefect.settings import PREFECT_API_URL
from prefect.states import Running
from pydantic import Field, create_model

from amends.approvals import (
    PENDING,
    ApprovalRequest,
    Decided,
    approval_request,
    decide,
    note_waiting_run,
    time_out,
)
from amends.models import utcnow
from amends.runtime import Runtime
from tasks._runtime import task_runtime

# How often a paused run asks whether it was resumed: an answer takes effect within this.
POLL_SECONDS = 3


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
                ge=0,
                le=request.manager_limit,
                description=f"What to grant, in {request.currency}; change it to adjust.",
            ),
        ),
        approver=(
            str,
            Field(min_length=1, max_length=120, description="Your name, for the case record."),
        ),
        reason=(str, Field(default="", max_length=1000, description="Why, in a line.")),
    )
    return form.with_initial_data(description=request.question)


def wait_for_approval(case_id: int) -> ApprovalRequest:
    """Pause the flow run until a manager answers, or the policy's timeout passes.

    Call it from the flow (a pause belongs to the flow run). Returns the request as it stands:
    answered, or timed out with the frontline offer in force.
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
    try:
        answer = pause_flow_run(
            wait_for_input=answer_form(request),
            timeout=seconds,
            poll_interval=min(POLL_SECONDS, seconds),
            key=f"approve-offer-case-{case_id}",
        )
    except FlowPauseTimeout:
        # The run carries on with the frontline offer: back to Running, or Prefect would
        # refuse the stages that follow.
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(run.id, Running(), force=True)
        if time_out(rt, case_id):
            logger.warning(
                "No answer in time: the offer stands at the frontline limit of %.2f %s; a "
                "manager action asks for a decision.",
                request.frontline_limit,
                request.currency,
            )
        return approval_request(rt, case_id)
    return record_approval(
        case_id,
        approve=answer.approve,
        amount=answer.amount,
        approver=answer.approver,
        reason=answer.reason,
    )


@task(name="record-approval", cache_policy=NONE, task_run_name="record-approval-case-{case_id}")
def record_approval(
    case_id: int, *, approve: bool, amount: float, approver: str, reason: str
) -> ApprovalRequest:
    """Record the manager's answer from the Resume form on the case (the first answer wins)."""
    decided = decide(
        task_runtime(),
        case_id,
        approve=approve,
        amount=amount if approve else None,
        approver=approver,
        reason=reason,
    )
    request = decided.request
    logger = get_run_logger()
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


def answer_and_resume(
    rt: Runtime,
    case_id: int,
    *,
    approve: bool,
    approver: str,
    reason: str = "",
    amount: float | None = None,
    resume: bool = True,
) -> tuple[Decided, str | None]:
    """Record an answer (``amends approve``, the demo) and resume the run that waits for it.

    Returns the answer that stands and, when a waiting run could not be resumed, why; it then
    picks the recorded answer up when its wait ends, or when the incident is filed again.
    ``resume=False`` when no Prefect server is configured: a run in another process waits on a
    temporary server this process cannot reach.
    """
    waiting = approval_request(rt, case_id)
    decided = decide(rt, case_id, approve=approve, approver=approver, reason=reason, amount=amount)
    if not decided.now or waiting.status != PENDING or not waiting.flow_run_id:
        return decided, None
    if not resume:
        return decided, "no Prefect server is configured (PREFECT_API_URL)"
    request = decided.request
    answer = {
        "approve": approve,
        "amount": request.amount,
        "approver": request.approver,
        "reason": request.reason or "",
    }
    try:
        resume_flow_run(UUID(waiting.flow_run_id), run_input=answer)
    except Exception as error:  # the server is gone, or the run ended: the answer is recorded
        return decided, f"{type(error).__name__}: {error}"
    return decided, None


def can_reach_runs() -> bool:
    """A Prefect server is configured: runs of other processes can be resumed through it."""
    return bool(PREFECT_API_URL.value())
