"""The casebook: what staff read about cases, as models for ``--json`` and text for people.

:func:`case_outcome` gives a case's outcome in the stable shape documented in the README;
:func:`case_markdown` is the same for the run's Prefect artifact.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from amends.domain import STAGES, StageStatus, business_time, spoken
from amends.errors import NotFound
from amends.privacy import mask
from amends.storage import models
from amends.storage.db import Database


class StageView(BaseModel):
    name: str
    status: str
    summary: str


class MessageView(BaseModel):
    channel: str
    kind: str
    status: str
    recipient: str
    subject: str
    message_id: str | None
    attempts: int
    last_error: str | None
    attachment: str | None
    due_at: datetime | None
    sent_at: datetime | None


class OfferView(BaseModel):
    kind: str
    value: float
    currency: str
    trial_days: int | None
    capped: bool
    status: str


class ApprovalView(BaseModel):
    status: str  # pending, timed_out, approved, adjusted, declined
    wanted: float
    frontline_limit: float
    manager_limit: float
    amount: float | None
    approver: str | None
    reason: str | None
    due_at: datetime
    decided_at: datetime | None

    def describe(self, currency: str, zone: str = "UTC") -> str:
        """The approval in one sentence, its times in ``zone``."""
        due = business_time(self.due_at, zone)
        if self.status == "pending":
            return (
                f"Waiting for a manager to approve {self.wanted:.2f} {currency} (frontline limit "
                f"{self.frontline_limit:.2f}) until {due}."
            )
        if self.status == "timed_out":
            return (
                f"No manager answered by {due}: the run went on with "
                f"the frontline offer and a manager was asked to decide."
            )
        verb = {"approved": "Approved", "adjusted": "Adjusted", "declined": "Raise declined"}
        return f"{verb[self.status]} at {self.amount:.2f} {currency} by {self.approver}" + (
            f": {self.reason}" if self.reason else "."
        )


class CheckInView(BaseModel):
    number: int
    starts_at: datetime
    status: str
    misses: int = 0
    feedback: str | None = None  # the customer's words: shown to staff, kept out of artifacts

    def describe(self, zone: str = "UTC") -> str:
        """When and where it stands: ``2026-12-01 10:00 CET (scheduled, missed 1x)``."""
        missed = f", missed {self.misses}x" if self.misses else ""
        return f"{business_time(self.starts_at, zone)} ({self.status}{missed})"


class StaffActionView(BaseModel):
    kind: str
    role: str
    instructions: str
    status: str
    due_at: datetime | None


class EventView(BaseModel):
    at: datetime
    stage: str | None
    kind: str
    text: str
    actor: str


class CaseOutcome(BaseModel):
    """A case as ``amends incident --json`` and ``amends case --json`` print it."""

    case_id: int
    incident_ref: str
    customer_ref: str
    customer_name: str
    complaint_channel: str
    reply_channel: str
    severity: str
    decision: str | None
    reasons: list[str]
    state: str
    stages: list[StageView]
    messages: list[MessageView]
    offer: OfferView | None
    approval: ApprovalView | None
    checkins: list[CheckInView]
    staff_actions: list[StaffActionView]
    timeline: list[EventView]


class CaseLine(BaseModel):
    """One line of ``amends cases``."""

    case_id: int
    incident_ref: str
    customer_ref: str
    customer_name: str
    complaint_channel: str
    decision: str | None
    stage: str | None
    state: str
    opened_at: datetime


def find_case(session: Session, ref: str) -> models.Case:
    """A case by its incident's ref or by its number.

    Raises:
        NotFound: no such case.
    """
    case = session.scalar(
        select(models.Case)
        .join(models.Incident, models.Case.incident_id == models.Incident.id)
        .where(models.Incident.ref == ref)
    )
    if case is None and ref.isdigit():  # a ref wins over a case number that looks the same
        case = session.get(models.Case, int(ref))
    if case is None:
        raise NotFound(f"no case for {ref!r}; `amends cases` lists them")
    return case


def case_outcome(db: Database, ref: str | int) -> CaseOutcome:
    """The whole story of one case."""
    with db.session() as session:
        case = find_case(session, str(ref))
        outcomes = {
            o.stage: o
            for o in session.scalars(
                select(models.StageOutcome).where(models.StageOutcome.case_id == case.id)
            )
        }
        stages = [
            StageView(
                name=stage.value,
                status=(outcomes[stage].status if stage in outcomes else StageStatus.PENDING).value,
                summary=outcomes[stage].summary if stage in outcomes else "",
            )
            for stage in STAGES
        ]
        assessment = outcomes.get(STAGES[0])
        offer = session.scalar(select(models.Offer).where(models.Offer.case_id == case.id))
        approval = session.scalar(select(models.Approval).where(models.Approval.case_id == case.id))

        def rows(model: type, order: object) -> list:
            return list(
                session.scalars(select(model).where(model.case_id == case.id).order_by(order))
            )

        return CaseOutcome(
            case_id=case.id,
            incident_ref=case.incident.ref,
            customer_ref=case.customer.ref,
            customer_name=case.customer.name,
            complaint_channel=case.incident.channel.value,
            reply_channel=case.reply_channel.value,
            severity=case.incident.severity.value,
            decision=case.decision.value if case.decision else None,
            # A forgotten customer's case keeps its figures; its reasons (which name them) go.
            reasons=[*assessment.data.get("figures", []), *assessment.data.get("reasons", [])]
            if assessment
            else [],
            state=case.state.value,
            stages=stages,
            messages=[
                MessageView(
                    channel=m.channel.value,
                    kind=m.kind.value,
                    status=m.status.value,
                    recipient=m.recipient,
                    subject=m.subject,
                    message_id=m.message_id,
                    attempts=m.attempts,
                    last_error=m.last_error,
                    attachment=m.attachment,
                    due_at=m.due_at,
                    sent_at=m.sent_at,
                )
                for m in rows(models.Message, models.Message.id)
            ],
            offer=(
                OfferView(
                    kind=offer.kind.value,
                    value=offer.value,
                    currency=offer.currency,
                    trial_days=offer.trial_days,
                    capped=offer.capped,
                    status=offer.status,
                )
                if offer
                else None
            ),
            approval=(
                ApprovalView.model_validate(approval, from_attributes=True) if approval else None
            ),
            checkins=[
                CheckInView.model_validate(c, from_attributes=True)
                for c in rows(models.CheckIn, models.CheckIn.number)
            ],
            staff_actions=[
                StaffActionView(
                    kind=a.kind,
                    role=a.role,
                    instructions=a.instructions,
                    status=a.status,
                    due_at=a.due_at,
                )
                for a in rows(models.StaffAction, models.StaffAction.id)
            ],
            timeline=[
                EventView(
                    at=e.at,
                    stage=e.stage.value if e.stage else None,
                    kind=e.kind,
                    text=e.text,
                    actor=e.actor,
                )
                for e in rows(models.CaseEvent, models.CaseEvent.id)
            ],
        )


def count_cases(db: Database) -> int:
    """How many cases there are."""
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(models.Case))


def list_cases(db: Database, *, limit: int | None = 200) -> list[CaseLine]:
    """The newest cases first; every case when ``limit`` is None."""
    with db.session() as session:
        cases = session.scalars(select(models.Case).order_by(models.Case.id.desc()).limit(limit))
        return [
            CaseLine(
                case_id=c.id,
                incident_ref=c.incident.ref,
                customer_ref=c.customer.ref,
                customer_name=c.customer.name,
                complaint_channel=c.incident.channel.value,
                decision=c.decision.value if c.decision else None,
                stage=c.stage.value if c.stage else None,
                state=c.state.value,
                opened_at=c.opened_at,
            )
            for c in cases
        ]


def plain_markdown(text: str) -> str:
    """Text shown as itself where markdown is rendered (artifacts, the UI's forms), with email
    addresses and phone numbers masked: the Prefect UI is often shared."""
    # Customer-supplied text must not turn into links, images or tables in the artifact, nor
    # break a table row with a line break. Masked first: escaping would hide an address.
    text = " ".join(mask(text).split())
    return "".join("\\" + ch if ch in "\\`*_{}[]()<>#+-.!|" else ch for ch in text)


def case_markdown(outcome: CaseOutcome, zone: str = "UTC") -> str:
    """The case summary for the run's markdown artifact, its times in ``zone`` (the business's
    time zone); a question waiting for a manager comes first."""
    md = plain_markdown
    waiting = outcome.approval is not None and outcome.approval.status == "pending"
    lines = [
        f"# Case {outcome.case_id}: incident {md(outcome.incident_ref)}",
        "",
        *(
            [
                f"> **Waits for a manager's approval.** "
                f"{md(outcome.approval.describe(outcome.offer.currency, zone))} Answer with "
                f"**Resume** on the run's page, or `amends approve {outcome.incident_ref} --by "
                "NAME`.",
                "",
            ]
            if waiting and outcome.offer
            else []
        ),
        f"**Customer** {md(outcome.customer_name)} ({md(outcome.customer_ref)}) · "
        f"**complained by** {outcome.complaint_channel} · **reply by** {outcome.reply_channel} · "
        f"**severity** {outcome.severity} · **state** {spoken(outcome.state)}",
        "",
        f"## Decision: {spoken(outcome.decision or 'not yet')}",
        "",
        *[f"- {md(reason)}" for reason in outcome.reasons],
        "",
        "## Stages",
        "",
        "| stage | status | outcome |",
        "|---|---|---|",
        *[f"| {spoken(s.name)} | {s.status} | {md(s.summary)} |" for s in outcome.stages],
        "",
        "## Offer",
        "",
        (
            f"{spoken(outcome.offer.kind)}: {outcome.offer.value:.2f} "
            f"{outcome.offer.currency} ({outcome.offer.status})"
            if outcome.offer
            else "None."
        ),
        *(
            ["", md(outcome.approval.describe(outcome.offer.currency, zone))]
            if outcome.approval and outcome.offer
            else []
        ),
        "",
        "## Messages",
        "",
        "| kind | channel | status | attempts | note |",
        "|---|---|---|---|---|",
        *[
            f"| {spoken(m.kind)} | {m.channel} | {spoken(m.status)} | "
            f"{m.attempts} | {md(m.last_error or '')} |"
            for m in outcome.messages
        ],
        "",
        "## Check-ins",
        "",
        *([f"- {c.number}: {c.describe(zone)}" for c in outcome.checkins] or ["None scheduled."]),
        "",
        "## Waiting for staff",
        "",
        *(
            [
                f"- **{a.role}** ({spoken(a.kind)}): {md(a.instructions)}"
                for a in outcome.staff_actions
                if a.status == "open"
            ]
            or ["Nothing."]
        ),
        "",
        # Every line, masked; the customer's own words (feedback, exit answers) are never in
        # the timeline, only a mention that they were recorded.
        "## Timeline",
        "",
        "| when | stage | what | who |",
        "|---|---|---|---|",
        *[
            f"| {business_time(e.at, zone)} | {spoken(e.stage) if e.stage else ''} | "
            f"{md(e.text)} | "
            f"{md(e.actor)} |"
            for e in outcome.timeline
        ],
    ]
    return "\n".join(lines) + "\n"
