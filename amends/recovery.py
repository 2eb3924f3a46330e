"""The six recovery stages, run against the database one at a time.

:func:`run_stage` makes each stage resumable: a stage's outcome, and everything it decided (the
offer, the messages it queued, the check-ins), is written in one transaction, and a stage that
has an outcome is never run again. Running a case twice therefore repeats nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from amends import models
from amends.assess import Assessment, assess
from amends.checkins import checkin_times, invitation
from amends.domain import (
    CaseState,
    Decision,
    Incident,
    MessageKind,
    MessageStatus,
    ReplyChannel,
    Stage,
    StageStatus,
)
from amends.empower import choose_offer
from amends.outbox import queue_message
from amends.runtime import Runtime

# Channels whose messages are rendered as HTML; the rest are plain text.
HTML_CHANNELS = {ReplyChannel.EMAIL, ReplyChannel.LETTER}


@dataclass(frozen=True)
class StageResult:
    """A stage's outcome: ``resumed`` when it had already run and was not repeated."""

    stage: Stage
    status: StageStatus
    summary: str
    data: dict[str, Any] = field(default_factory=dict)
    resumed: bool = False


@dataclass
class _Step:
    session: Session
    rt: Runtime
    case: models.Case
    incident: Incident

    @property
    def customer(self) -> models.Customer:
        return self.case.customer

    def event(self, stage: Stage | None, kind: str, text: str, actor: str = "amends") -> None:
        self.session.add(
            models.CaseEvent(case_id=self.case.id, stage=stage, kind=kind, text=text, actor=actor)
        )

    def outcome(self, stage: Stage) -> models.StageOutcome | None:
        return self.session.scalar(
            select(models.StageOutcome).where(
                models.StageOutcome.case_id == self.case.id, models.StageOutcome.stage == stage
            )
        )

    def staff_action(
        self, stage: Stage, kind: str, role: str, instructions: str, due_at: datetime | None = None
    ) -> None:
        key = f"case-{self.case.id}:{stage.value}:{kind}"
        if self.session.scalar(select(models.StaffAction.id).where(models.StaffAction.key == key)):
            return
        self.session.add(
            models.StaffAction(
                case_id=self.case.id,
                key=key,
                kind=kind,
                role=role,
                instructions=instructions,
                due_at=due_at,
            )
        )
        self.event(stage, "staff_action", f"For the {role}: {instructions}")


def run_stage(rt: Runtime, case_id: int, stage: Stage) -> StageResult:
    """Run one stage of a case unless it already ran; persist its outcome when it completes.

    Raises:
        LookupError: no case with that id.
        AmendsError: the stage could not complete (nothing of it is kept).
    """
    try:
        with rt.db.session() as session:
            step = _load(session, rt, case_id)
            done = step.outcome(stage)
            if done is not None:
                return _result(done, resumed=True)
            status, summary, data = STAGES[stage](step)
            session.add(
                models.StageOutcome(
                    case_id=case_id, stage=stage, status=status, summary=summary, data=data
                )
            )
            step.case.stage = stage
            step.event(stage, f"stage_{status.value}", f"{_title(stage)}: {summary}")
            return StageResult(stage, status, summary, data)
    except IntegrityError:
        # A concurrent run completed this stage first; its outcome stands and ours is discarded.
        with rt.db.session() as session:
            done = _load(session, rt, case_id).outcome(stage)
            if done is None:
                raise
            return _result(done, resumed=True)


def _load(session: Session, rt: Runtime, case_id: int) -> _Step:
    case = session.get(models.Case, case_id)
    if case is None:
        raise LookupError(f"no case {case_id}")
    incident = Incident.model_validate(case.incident.payload)
    return _Step(session=session, rt=rt, case=case, incident=incident)


def _result(outcome: models.StageOutcome, *, resumed: bool) -> StageResult:
    return StageResult(outcome.stage, outcome.status, outcome.summary, outcome.data, resumed)


def _words(value: StrEnum) -> str:
    return value.value.replace("_", " ")


def _title(stage: Stage) -> str:
    return _words(stage).capitalize()


# --- the stages ---------------------------------------------------------------------------------

Outcome = tuple[StageStatus, str, dict[str, Any]]


def _assess(step: _Step) -> Outcome:
    customer = step.customer
    forgiven_before = customer.forgiven_at is not None
    assessment = assess(step.incident, forgiven_before=forgiven_before, policy=step.rt.policy)
    step.case.decision = assessment.decision
    if assessment.decision is Decision.DO_NOT_PURSUE:
        step.staff_action(
            Stage.ASSESS,
            "manager_review",
            "manager",
            "The customer was abusive to staff. Frontline contact is blocked: review the case "
            "and decide how to close it.",
        )
    if assessment.quality_issue:
        step.staff_action(
            Stage.ASSESS,
            "improvement_item",
            "team",
            f"Quality of service failed ({step.incident.category.value}): "
            f"{step.incident.summary}. Find the cause and fix it, whatever the decision.",
        )
    summary = f"{_words(assessment.decision)}. " + " ".join(assessment.reasons[3:])
    return StageStatus.COMPLETED, summary, assessment.model_dump(mode="json")


def _empower(step: _Step) -> Outcome:
    decision = step.case.decision
    assert decision is not None, "assess runs before empower"
    assessment = Assessment.model_validate(step.outcome(Stage.ASSESS).data)
    offer = choose_offer(assessment, step.incident.severity, step.rt.policy)
    if offer is None:
        return (
            StageStatus.SKIPPED,
            f"No incentive: the decision is to {_words(decision)}.",
            {"offer": None},
        )
    step.session.add(
        models.Offer(
            case_id=step.case.id,
            kind=offer.kind,
            value=offer.value,
            currency=offer.currency,
            trial_days=offer.trial_days,
            capped=offer.capped,
        )
    )
    if offer.capped:
        step.staff_action(
            Stage.EMPOWER,
            "raise_offer",
            "manager",
            f"The offer was capped at the frontline limit ({offer.value:.2f} {offer.currency}); "
            "decide whether to raise it.",
        )
    summary = f"Offer {_words(offer.kind)} worth {offer.value:.2f} {offer.currency}. " + " ".join(
        offer.reasons
    )
    return StageStatus.COMPLETED, summary, {"offer": offer.model_dump(mode="json")}


def _monitor(step: _Step) -> Outcome:
    customer = step.customer
    if not customer.social_handle:
        return (
            StageStatus.COMPLETED,
            "No social account on file: nothing to look for.",
            {"posts": []},
        )
    posts = list(
        step.session.scalars(
            select(models.Mention)
            .where(
                models.Mention.platform == customer.social_platform,
                func.lower(models.Mention.handle) == customer.social_handle.lower(),
                (models.Mention.case_id.is_(None)) | (models.Mention.case_id == step.case.id),
            )
            .order_by(models.Mention.posted_at)
        )
    )
    for post in posts:
        post.case_id = step.case.id
    found = [
        {"url": post.url, "text": post.text, "posted_at": post.posted_at.isoformat()}
        for post in posts
    ]
    where = f"{customer.social_platform} as {customer.social_handle}"
    if not found:
        return StageStatus.COMPLETED, f"No public complaint found on {where}.", {"posts": []}
    return (
        StageStatus.COMPLETED,
        f"{len(found)} public post(s) found on {where}: they get a public reply too.",
        {"posts": found},
    )


def _report(step: _Step) -> Outcome:
    case = step.case
    capped = step.session.scalar(select(models.Offer.capped).where(models.Offer.case_id == case.id))
    owner = "manager" if case.decision is Decision.DO_NOT_PURSUE or capped else "frontline"
    due = case.first_response_due
    summary = (
        f"Case tracked until closed; owner: {owner}; first response due by "
        f"{due.strftime('%Y-%m-%d %H:%M')} UTC."
    )
    return StageStatus.COMPLETED, summary, {"owner": owner, "first_response_due": due.isoformat()}


def _follow_up(step: _Step) -> Outcome:
    case = step.case
    if case.decision is Decision.DO_NOT_PURSUE:
        return (
            StageStatus.SKIPPED,
            "Frontline contact is blocked for an abusive customer; a manager responds.",
            {"messages": []},
        )
    channel = case.reply_channel
    # On a social network the apology is a short public reply that invites a private talk.
    kind = MessageKind.PUBLIC_REPLY if channel is ReplyChannel.SOCIAL else MessageKind.APOLOGY
    queued = [_queue(step, kind, channel)]
    posts = step.outcome(Stage.MONITOR).data.get("posts", [])
    if posts and channel is not ReplyChannel.SOCIAL:
        queued.append(_queue(step, MessageKind.PUBLIC_REPLY, ReplyChannel.SOCIAL))
    described = ", ".join(
        f"{_words(m.kind)} by {m.channel.value} ({_words(m.status)})" for m in queued
    )
    data = {"messages": [{"kind": m.kind.value, "channel": m.channel.value} for m in queued]}
    if channel is ReplyChannel.LETTER:
        described += "; a handwritten note goes further than print"
    return StageStatus.COMPLETED, f"Replied on the complaint's own channel: {described}.", data


def _reengage(step: _Step) -> Outcome:
    case, rt = step.case, step.rt
    if case.decision is not Decision.RECOVER:
        case.state = _state_after_reply(step)
        if case.state is CaseState.CLOSED:
            case.closed_at = models.utcnow()
        reason = {
            Decision.SMOOTH_OVER: "smoothing over: no win-back incentive",
            Decision.LOST: "one-forgiveness rule: no win-back campaign",
            Decision.DO_NOT_PURSUE: "abusive customer: no win-back, ever",
        }[case.decision]
        return StageStatus.SKIPPED, f"Not re-engaged ({reason}).", {"checkins": []}

    offer = step.session.scalar(select(models.Offer).where(models.Offer.case_id == case.id))
    if offer is not None:
        offer.status = "offered"
    customer = step.customer
    customer.forgiven_at = models.utcnow()  # the one forgiveness is now spent (seed 000)
    zone = customer.timezone or rt.settings.business_timezone
    figures = rt.policy.checkins
    times = checkin_times(case.opened_at, figures, zone)
    checkins = []
    for number, starts_at in enumerate(times, start=1):
        checkin = models.CheckIn(
            case_id=case.id,
            number=number,
            starts_at=starts_at,
            duration_minutes=figures.duration_minutes,
            uid=f"case-{case.id}-checkin-{number}@{rt.settings.sender_email.rpartition('@')[2]}",
        )
        step.session.add(checkin)
        checkins.append(checkin)
    step.session.flush()

    if customer.email:
        _queue(step, MessageKind.CHECKIN_INVITATION, ReplyChannel.EMAIL, checkins=checkins)
        how = "invitation by email with the first check-in attached"
    else:
        step.staff_action(
            Stage.REENGAGE,
            "agree_checkins",
            "frontline",
            f"Agree the check-in dates with {customer.name} by {case.reply_channel.value}: "
            + ", ".join(t.strftime("%Y-%m-%d %H:%M") for t in times)
            + f" ({zone}).",
            due_at=times[0],
        )
        how = "staff agree the dates with the customer"
    case.state = CaseState.OPEN
    summary = (
        f"Offer made; {len(checkins)} check-in meetings scheduled from "
        f"{times[0].strftime('%Y-%m-%d %H:%M')} ({zone}); {how}."
    )
    data = {"checkins": [t.isoformat() for t in times]}
    return StageStatus.COMPLETED, summary, data


STAGES = {
    Stage.ASSESS: _assess,
    Stage.EMPOWER: _empower,
    Stage.MONITOR: _monitor,
    Stage.REPORT: _report,
    Stage.FOLLOW_UP: _follow_up,
    Stage.REENGAGE: _reengage,
}


# --- messages ---------------------------------------------------------------------------------


def _state_after_reply(step: _Step) -> CaseState:
    """Closed once every reply is out; open while mail is queued; else waiting for staff."""
    statuses = set(
        step.session.scalars(
            select(models.Message.status).where(models.Message.case_id == step.case.id)
        )
    )
    if statuses & {MessageStatus.QUEUED, MessageStatus.SENDING}:
        return CaseState.OPEN
    open_actions = step.session.scalar(
        select(func.count(models.StaffAction.id)).where(
            models.StaffAction.case_id == step.case.id,
            models.StaffAction.status == "open",
            models.StaffAction.role != "team",  # improvement items outlive the case
        )
    )
    if MessageStatus.AWAITING_STAFF in statuses or open_actions:
        return CaseState.AWAITING_STAFF
    return CaseState.CLOSED


def _queue(
    step: _Step,
    kind: MessageKind,
    channel: ReplyChannel,
    *,
    checkins: list[models.CheckIn] | None = None,
) -> models.Message:
    rt, case, customer, incident = step.rt, step.case, step.customer, step.incident
    settings = rt.settings
    offer = step.session.scalar(select(models.Offer).where(models.Offer.case_id == case.id))
    context = {
        "business": {
            "name": settings.business_name,
            "signature": settings.signature,
            "email": settings.sender_email,
        },
        "customer": {"name": customer.name, "handle": customer.social_handle or ""},
        "incident": {
            "ref": incident.ref,
            "summary": incident.summary,
            "received_at": incident.received_at,
            "category": incident.category.value,
            "channel": incident.channel.value,
        },
        "decision": case.decision.value if case.decision else "",
        "put_right": incident.put_right,
        "what_changed": incident.what_changed,
        "offer": (
            {
                "kind": offer.kind.value,
                "value": offer.value,
                "currency": offer.currency,
                "trial_days": offer.trial_days,
            }
            if offer
            else None
        ),
        "checkins": [c.starts_at for c in checkins or []],
        "timezone": customer.timezone or settings.business_timezone,
        "respond_by": case.first_response_due,
    }
    ext = "html" if channel in HTML_CHANNELS else "txt"
    rendered = rt.templates.render(kind.value, channel.value, ext, customer.locale, context)
    subject = rendered.subject
    in_reply_to = None
    if channel is ReplyChannel.EMAIL and kind is MessageKind.APOLOGY:
        in_reply_to = incident.complaint_message_id
        if incident.complaint_subject:
            subject = "Re: " + incident.complaint_subject.removeprefix("Re: ")
    attachment = None
    if channel is ReplyChannel.LETTER:
        attachment = settings.letters_dir / f"{incident.ref}-{kind.value}.html"
        _write(attachment, rendered.body.encode("utf-8"))
    if checkins:
        first = checkins[0]
        attachment = settings.calendar_dir / f"{incident.ref}-checkin-{first.number}.ics"
        _write(
            attachment,
            invitation(
                uid=first.uid,
                sequence=first.sequence,
                starts_at=first.starts_at,
                duration_minutes=first.duration_minutes,
                summary=rendered.subject,
                description=f"{settings.business_name}: check-in {first.number} of "
                f"{len(checkins)} after incident {incident.ref}",
                organizer=settings.sender_email,
                organizer_name=settings.sender_name,
                attendee=customer.email or "",
                attendee_name=customer.name,
                stamp=models.utcnow(),
            ),
        )
    recipient = {
        ReplyChannel.EMAIL: customer.email,
        ReplyChannel.CHAT: customer.email,
        ReplyChannel.PHONE: customer.phone,
        ReplyChannel.SMS: customer.phone,
        ReplyChannel.LETTER: customer.postal_address,
        ReplyChannel.SOCIAL: f"{customer.social_platform}:{customer.social_handle}",
        ReplyChannel.VISIT: customer.postal_address or customer.phone or customer.email,
    }[channel]
    message = queue_message(
        step.session,
        case,
        stage=Stage.FOLLOW_UP if kind is not MessageKind.CHECKIN_INVITATION else Stage.REENGAGE,
        kind=kind,
        channel=channel,
        recipient=recipient or "",
        subject=subject,
        body=rendered.body,
        sender_email=settings.sender_email,
        automatic=channel in rt.channels,
        attachment=attachment,
        in_reply_to=in_reply_to,
        due_at=case.first_response_due,
    )
    verb = "queued" if message.status is MessageStatus.QUEUED else "waiting for staff"
    step.event(
        message.stage,
        "message",
        f"{_words(kind).capitalize()} by {channel.value} {verb}"
        + (f" ({attachment.name})" if attachment else "")
        + ".",
    )
    return message


def _write(path: Any, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".part")
    partial.write_bytes(content)
    partial.replace(path)
