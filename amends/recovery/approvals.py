"""Approvals: a manager's say on an offer above the frontline limit (seed 003, empowerment).

The empower stage asks (:func:`request_approval`); a manager answers once, from the Prefect UI's
Resume form or with ``amends approve`` (:func:`decide`): approve the value that absorbs the
customer's costs, adjust it, or decline and keep the frontline offer. A run that waits longer than
the policy allows goes on with the frontline offer and escalates to a manager
(:func:`time_out`); a late answer still counts, and a raised offer is then sent to the customer.
The first answer wins: a second one is refused, whichever way it comes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import make_msgid

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from amends.delivery.adapter import Outgoing
from amends.domain import ApprovalStatus, Stage, business_time, staff_line
from amends.errors import InvalidInput, NotFound
from amends.recovery.staff import add_action, settle
from amends.recovery.stages import AWAITS_APPROVAL, queue_revised_offer
from amends.runtime import Runtime
from amends.settings import Settings
from amends.storage import models

PENDING, TIMED_OUT = ApprovalStatus.PENDING, ApprovalStatus.TIMED_OUT
OPEN = (PENDING, TIMED_OUT)  # a manager may still answer


class ApprovalError(InvalidInput):
    """An answer to an approval request cannot be accepted; the message says why."""


@dataclass(frozen=True)
class ApprovalRequest:
    """What a manager is asked, and where the answer stands."""

    case_id: int
    incident_ref: str
    customer_name: str
    wanted: float
    frontline_limit: float
    manager_limit: float
    currency: str
    status: str
    amount: float | None
    approver: str | None
    reason: str | None
    due_at: datetime
    flow_run_id: str | None

    @property
    def approvable(self) -> float:
        return min(self.wanted, self.manager_limit)

    @property
    def answered(self) -> bool:
        return self.status not in OPEN

    @property
    def question(self) -> str:
        """The request in one paragraph, for the UI form, the logs and the artifacts: by
        reference only, as the Prefect UI is often shared."""
        money = self.currency
        return (
            f"Case {self.incident_ref}: absorbing the customer's costs "
            f"takes {self.wanted:.2f} {money}, above the frontline limit of "
            f"{self.frontline_limit:.2f}. Approve up to {self.approvable:.2f} (change the amount "
            f"to adjust), or decline to keep the frontline offer of {self.frontline_limit:.2f}."
        )


def find_request(session: Session, case_id: int) -> ApprovalRequest:
    """The approval request of a case.

    Raises:
        NotFound: the case never asked for one.
    """
    approval = session.scalar(select(models.Approval).where(models.Approval.case_id == case_id))
    if approval is None:
        case = session.get(models.Case, case_id)
        ref = case.incident.ref if case else case_id
        raise NotFound(f"case {ref} has no offer awaiting approval")
    return _request(session, approval)


def _request(session: Session, approval: models.Approval) -> ApprovalRequest:
    case = session.get(models.Case, approval.case_id)
    return ApprovalRequest(
        case_id=approval.case_id,
        incident_ref=case.incident.ref,
        customer_name=case.customer.name,
        wanted=approval.wanted,
        frontline_limit=approval.frontline_limit,
        manager_limit=approval.manager_limit,
        currency=approval.currency,
        status=approval.status,
        amount=approval.amount,
        approver=approval.approver,
        reason=approval.reason,
        due_at=approval.due_at,
        flow_run_id=approval.flow_run_id,
    )


def approval_request(rt: Runtime, case_id: int) -> ApprovalRequest:
    """The approval request of a case, read in its own transaction."""
    with rt.db.session() as session:
        return find_request(session, case_id)


def note_waiting_run(rt: Runtime, case_id: int, flow_run_id: str) -> None:
    """Remember which run waits for the answer, so that an answer from the CLI resumes it."""
    with rt.db.session() as session:
        session.execute(
            update(models.Approval)
            .where(models.Approval.case_id == case_id)
            .values(flow_run_id=flow_run_id)
        )


@dataclass(frozen=True)
class Decided:
    """The answer that stands, and whether this call gave it (False: an earlier answer won)."""

    request: ApprovalRequest
    now: bool


def decide(
    rt: Runtime,
    case_id: int,
    *,
    approve: bool,
    approver: str,
    reason: str = "",
    amount: float | None = None,
) -> Decided:
    """Record a manager's answer: approve (``amount`` adjusts the value), or decline.

    The first answer wins; a later one returns the standing answer with ``now=False``.

    Raises:
        NotFound: the case has no approval request.
        ApprovalError: no approver named, or an amount outside 0 .. the manager's limit.
    """
    try:
        approver, reason = staff_line(approver, "approver", 120), staff_line(reason, "reason", 1000)
    except InvalidInput as error:
        raise ApprovalError(str(error)) from None
    if not approver:
        raise ApprovalError("name the approver (--by NAME): approvals are recorded with a name")
    with rt.db.session() as session:
        request = find_request(session, case_id)
        if request.answered:
            return Decided(request, now=False)
        if not approve:
            granted, status = request.frontline_limit, "declined"
        else:
            granted = request.approvable if amount is None else round(amount, 2)
            # Below the frontline limit is less than staff may grant without asking.
            if not request.frontline_limit <= granted <= request.manager_limit:
                raise ApprovalError(
                    f"amount {granted:.2f} is outside {request.frontline_limit:.2f} to "
                    f"{request.manager_limit:.2f}: from the frontline limit to what a manager "
                    f"may grant for case {request.incident_ref} (--decline keeps the frontline "
                    "offer)"
                )
            status = "approved" if granted == request.approvable else "adjusted"
        # Claimed with a conditional update: of two answers at the same moment, one counts.
        claimed = session.execute(
            update(models.Approval)
            .where(models.Approval.case_id == case_id, models.Approval.status.in_(OPEN))
            .values(
                status=status,
                amount=granted,
                approver=approver,
                reason=reason or None,
                decided_at=models.utcnow(),
            )
        ).rowcount
        if not claimed:
            return Decided(find_request(session, case_id), now=False)
        offer = session.scalar(select(models.Offer).where(models.Offer.case_id == case_id))
        raised = granted > offer.value
        offer.value = granted
        offer.capped = False
        _close_action(session, case_id)
        words = {
            "approved": f"Offer approved at {granted:.2f} {request.currency}",
            "adjusted": f"Offer adjusted to {granted:.2f} {request.currency}",
            "declined": f"Raise declined; the offer stays at {granted:.2f} {request.currency}",
        }[status]
        _answer_empower_row(session, case_id, f"{words[0].lower()}{words[1:]} by {approver}")
        session.add(
            models.CaseEvent(
                case_id=case_id,
                stage=Stage.EMPOWER,
                kind="approval",
                text=words + (f": {reason}" if reason else "."),
                actor=approver,
            )
        )
        apologised = session.scalar(
            select(models.StageOutcome.id).where(
                models.StageOutcome.case_id == case_id,
                models.StageOutcome.stage == Stage.FOLLOW_UP,
            )
        )
        if apologised and raised:
            # The apology already quoted the frontline offer: tell the customer the better one.
            queue_revised_offer(rt, session, case_id)
        settle(session, session.get(models.Case, case_id))
    return Decided(approval_request(rt, case_id), now=True)


def time_out(rt: Runtime, case_id: int) -> bool:
    """No answer in time: the run goes on with the frontline offer, and a manager is told.

    Returns False when an answer arrived first (it stands).
    """
    with rt.db.session() as session:
        timed_out = session.execute(
            update(models.Approval)
            .where(models.Approval.case_id == case_id, models.Approval.status == PENDING)
            .values(status=TIMED_OUT)
        ).rowcount
        if not timed_out:
            return False
        request = find_request(session, case_id)
        session.add(
            models.CaseEvent(
                case_id=case_id,
                stage=Stage.EMPOWER,
                kind="approval_timed_out",
                text="No manager answered in time: the run went on with the frontline offer of "
                f"{request.frontline_limit:.2f} {request.currency}.",
            )
        )
        _close_action(session, case_id)  # the approve_offer ask, replaced by the escalation
        _answer_empower_row(
            session,
            case_id,
            f"no answer in time, the frontline offer of {request.frontline_limit:.2f} "
            f"{request.currency} stands",
        )
        add_action(
            session,
            customer_id=session.get(models.Case, case_id).customer_id,
            case_id=case_id,
            key=f"case-{case_id}:empower:approval_overdue",
            kind="approval_overdue",
            role="manager",
            instructions=(
                f"No manager answered in time: the run went on with the frontline offer of "
                f"{request.frontline_limit:.2f} {request.currency}. Raise it up to "
                f"{request.approvable:.2f} or decline: `amends approve {request.incident_ref} "
                "--by NAME` (`--amount N`, `--decline`); a raise is sent to the customer."
            ),
            due_at=models.utcnow(),
        )
    return True


def _close_action(session: Session, case_id: int) -> None:
    for action in session.scalars(
        select(models.StaffAction).where(
            models.StaffAction.case_id == case_id,
            models.StaffAction.kind.in_(("approve_offer", "approval_overdue")),
            models.StaffAction.status == "open",
        )
    ):
        action.status, action.done_at = "done", models.utcnow()


def _answer_empower_row(session: Session, case_id: int, answer: str) -> None:
    """The empower stage's summary says how the approval ended, not that it still waits."""
    outcome = session.scalar(
        select(models.StageOutcome).where(
            models.StageOutcome.case_id == case_id, models.StageOutcome.stage == Stage.EMPOWER
        )
    )
    if outcome is not None and AWAITS_APPROVAL in outcome.summary:
        outcome.summary = outcome.summary.replace(AWAITS_APPROVAL, f"asked a manager: {answer}")


def waiting_answers(rt: Runtime, now: datetime) -> list[ApprovalRequest]:
    """The requests whose run is set aside waiting (``flow_run_id``) and can now go on: those
    answered, and those past their time, which time out first (the frontline offer stands)."""
    with rt.db.session() as session:
        rows = session.scalars(
            select(models.Approval).where(models.Approval.flow_run_id.is_not(None))
        ).all()
        overdue = [a.case_id for a in rows if a.status == PENDING and a.due_at <= now]
    for case_id in overdue:
        time_out(rt, case_id)
    with rt.db.session() as session:
        rows = session.scalars(
            select(models.Approval).where(
                models.Approval.flow_run_id.is_not(None), models.Approval.status != PENDING
            )
        ).all()
        return [_request(session, a) for a in rows]


def manager_notice(request: ApprovalRequest, settings: Settings, run_url: str | None) -> Outgoing:
    """The email that tells the manager a run waits for an answer, and how to give it."""
    where = f"Open the run and press Resume: {run_url}\n" if run_url else ""
    return Outgoing(
        recipient=settings.manager_email or "",
        subject=f"Approval needed: case {request.incident_ref}",
        body=(
            f"{request.question}\n\n"
            f"Customer: {request.customer_name}.\n"
            f"{where}"
            f"Or from a terminal: amends approve {request.incident_ref} --by NAME "
            "(--amount N, --decline).\n"
            f"Without an answer by {business_time(request.due_at, settings.business_timezone)}, "
            "the frontline offer stands and the nightly run goes on with it."
        ),
        message_id=make_msgid(f"approval-{request.case_id}", domain=_domain(settings)),
    )


def _domain(settings: Settings) -> str:
    return settings.sender_email.rpartition("@")[2] or "amends.invalid"
