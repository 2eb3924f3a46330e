"""The operator's views: what is open, what staff must do, what waits for a manager, what was
sent, and the recovery figures, as rows and markdown for the Prefect UI's artifacts.

By reference only, contact details masked, times in the business's time zone: the UI is often
shared and its readers are in the business's office.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from amends.domain import STAGES, ApprovalStatus, CaseState, ReplyChannel, business_time, spoken
from amends.privacy import mask, personal_details, redact
from amends.reporting.report import Headline
from amends.runtime import Runtime
from amends.storage import models

# The newest rows a view shows: an artifact is a page, not an archive (`amends cases --all`).
# Prefect keeps every version of a view, one per run that changed it: a page of 50 rows keeps
# its database from growing by megabytes an hour on a busy day.
ROWS = 50
OPEN_APPROVAL = (ApprovalStatus.PENDING, ApprovalStatus.TIMED_OUT)


def masked_recipient(channel: str, recipient: str) -> str:
    """Where a message went, as the UI may show it: an address or number masked, a postal
    address or handle reduced to what kind of place it is."""
    if channel in (ReplyChannel.LETTER, ReplyChannel.VISIT):
        return "postal address"
    if channel == ReplyChannel.SOCIAL:
        return "social handle"
    return mask(recipient)


def _when(moment: datetime | None, zone: str) -> str:
    return business_time(moment, zone) if moment else ""


def _refs(session: Session, case_ids: Iterable[int | None]) -> dict[int, str]:
    """The incident reference of each case, in one query."""
    wanted = {case_id for case_id in case_ids if case_id is not None}
    if not wanted:
        return {}
    return dict(
        session.execute(
            select(models.Case.id, models.Incident.ref)
            .join(models.Incident, models.Case.incident_id == models.Incident.id)
            .where(models.Case.id.in_(wanted))
        ).all()
    )


def open_cases(rt: Runtime) -> list[dict[str, Any]]:
    """Cases not closed, newest first: state, last stage, owner, next step and when it is due."""
    zone = rt.settings.business_timezone
    rows = []
    with rt.db.session() as session:
        cases = session.execute(
            select(models.Case, models.Incident.ref, models.StageOutcome.data)
            .join(models.Incident, models.Case.incident_id == models.Incident.id)
            .outerjoin(
                models.StageOutcome,
                (models.StageOutcome.case_id == models.Case.id)
                & (models.StageOutcome.stage == "report"),
            )
            .where(models.Case.state != CaseState.CLOSED)
            .order_by(models.Case.id.desc())
            .limit(ROWS)
        ).all()
        # Each case's soonest open staff action, for all the cases in one query.
        first_action: dict[int, models.StaffAction] = {}
        for action in session.scalars(
            select(models.StaffAction)
            .where(
                models.StaffAction.case_id.in_([case.id for case, _, _ in cases]),
                models.StaffAction.status == "open",
            )
            .order_by(models.StaffAction.due_at.desc(), models.StaffAction.id.desc())
        ):
            first_action[action.case_id] = action  # the soonest comes last
        for case, ref, report in cases:
            action = first_action.get(case.id)
            if action is not None:
                step, due = f"{action.role}: {spoken(action.kind)}", action.due_at
            elif case.stage != STAGES[-1]:
                done = STAGES.index(case.stage) + 1 if case.stage else 0
                step, due = f"stage {spoken(STAGES[done])}", case.first_response_due
            else:
                step, due = "check-ins, then closing", None
            rows.append(
                {
                    "case": ref,
                    "state": spoken(case.state),
                    "stage": spoken(case.stage) if case.stage else "opened",
                    "owner": (report or {}).get("owner", ""),
                    "next step": step,
                    "due": _when(due, zone),
                }
            )
    return rows


def staff_todos(rt: Runtime) -> list[dict[str, Any]]:
    """Open staff actions, soonest due first."""
    zone = rt.settings.business_timezone
    with rt.db.session() as session:
        actions = session.execute(
            select(models.StaffAction, models.Customer)
            .join(models.Customer, models.StaffAction.customer_id == models.Customer.id)
            .where(models.StaffAction.status == "open")
            .order_by(models.StaffAction.due_at, models.StaffAction.id)
            .limit(ROWS)
        ).all()
        refs = _refs(session, (a.case_id for a, _ in actions))
        rows = []
        for a, customer in actions:
            # Staff instructions address the customer by name and may give their street or
            # handle (a letter to write, a reply to post): here, the reference, and masks.
            details = [
                (customer.name, customer.ref),
                *personal_details(
                    email=customer.email,
                    phone=customer.phone,
                    postal_address=customer.postal_address,
                    handle=customer.social_handle,
                ),
            ]
            text = redact(" ".join(a.instructions.split()), details)
            rows.append(
                {
                    "case": refs.get(a.case_id, "") if a.case_id else "",
                    "who": a.role,
                    "what": spoken(a.kind),
                    "due": _when(a.due_at, zone),
                    "instructions": text,
                }
            )
        return rows


def approvals_waiting(rt: Runtime) -> list[dict[str, Any]]:
    """Offers a manager may still answer: waiting, or past their time with the frontline offer
    in force."""
    zone = rt.settings.business_timezone
    with rt.db.session() as session:
        approvals = session.scalars(
            select(models.Approval)
            .where(models.Approval.status.in_(OPEN_APPROVAL))
            .order_by(models.Approval.due_at)
            .limit(ROWS)
        ).all()
        refs = _refs(session, (a.case_id for a in approvals))
        rows = []
        for a in approvals:
            ref = refs[a.case_id]
            rows.append(
                {
                    "case": ref,
                    "status": spoken(a.status),
                    "asked": f"{a.wanted:.2f} {a.currency}",
                    "frontline limit": f"{a.frontline_limit:.2f}",
                    "manager limit": f"{a.manager_limit:.2f}",
                    "due": _when(a.due_at, zone),
                    "answer": f"Resume the run, or amends approve {ref} --by NAME",
                }
            )
        return rows


def messages_sent(rt: Runtime) -> list[dict[str, Any]]:
    """Every case's messages, newest first, recipients masked."""
    zone = rt.settings.business_timezone
    with rt.db.session() as session:
        messages = session.scalars(
            select(models.Message).order_by(models.Message.id.desc()).limit(ROWS)
        ).all()
        refs = _refs(session, (m.case_id for m in messages))
        return [
            {
                "case": refs.get(m.case_id, "") if m.case_id else "",
                "message": spoken(m.kind),
                "channel": m.channel.value,
                "to": masked_recipient(m.channel, m.recipient),
                "status": spoken(m.status),
                "sent": _when(m.sent_at, zone),
            }
            for m in messages
        ]


BAR = 30  # the longest bar, in characters


def bar_chart(report: Headline) -> str:
    """The report's chart as text the UI shows anywhere: complaints by category, then money
    spent against revenue kept, as bars of block characters in a code block."""

    def bars(rows: list[tuple[str, float]], fmt: str) -> list[str]:
        top = max((value for _, value in rows), default=0) or 1
        width = max((len(name) for name, _ in rows), default=0)
        return [
            f"{name.ljust(width)} {'█' * max(round(value / top * BAR), 1 if value else 0)} "
            f"{value:{fmt}}"
            for name, value in rows
        ]

    categories = [(c.name.replace("_", " "), c.complaints) for c in report.by_category]
    money = [
        (f"spent ({report.currency})", report.compensation_spent),
        (f"kept ({report.currency}/yr)", report.revenue_kept),
    ]
    lines = ["Complaints by category", *(bars(categories, "d") or ["(none)"]), ""]
    lines += ["Compensation against revenue kept", *bars(money, ",.2f")]
    return "```text\n" + "\n".join(lines) + "\n```"


def recovery_figures(report: Headline) -> str:
    """The figures an operator asks first, and the chart."""
    r = report
    rate = f"{r.recovery_rate:.0%}" if r.recovery_rate is not None else "no case pursued yet"
    return "\n".join(
        [
            f"# Recovery figures, {r.period.label.replace('_', ' to ')}",
            "",
            f"**Recovery rate** {rate} · **won back** {r.won_back} of {r.pursued} pursued · "
            f"**lost** {r.customers_lost} · **complaints** {r.complaints}",
            "",
            bar_chart(r),
            "",
        ]
    )
