"""The six recovery stages, run against the database one at a time.

:func:`run_stage` makes each stage resumable: a stage's outcome, and everything it decided (the
offer, the messages it queued, the check-ins), is written in one transaction, and a stage that
has an outcome is never run again. Running a case twice therefore repeats nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from amends.delivery.outbox import (
    Draft,
    key_digest,
    message_key,
    queue_message,
    write_attachment,
)
from amends.domain import (
    ApprovalStatus,
    Decision,
    Incident,
    MessageKind,
    ReplyChannel,
    Stage,
    StageStatus,
    address_for,
    spoken,
)
from amends.listening.mentions import same_handle
from amends.messages.catalogue import FORMS, case_context, filed_incident, render_message
from amends.recovery.assess import Assessment, assess
from amends.recovery.checkins import CalendarMethod, Meeting, Party, calendar_message, checkin_times
from amends.recovery.empower import Offer, choose_offer
from amends.recovery.staff import add_action, settle
from amends.runtime import Runtime
from amends.storage import models


@dataclass(frozen=True)
class StageResult:
    """A stage's outcome: ``resumed`` when it had already run and was not repeated."""

    stage: Stage
    status: StageStatus
    summary: str
    data: dict[str, Any] = field(default_factory=dict)
    resumed: bool = False


@dataclass
class Step:
    session: Session
    rt: Runtime
    case: models.Case
    incident: Incident
    # Files this attempt wrote; removed again if the stage fails.
    files: list[Path] = field(default_factory=list)
    # Every outcome the case has, when the caller knows them all (read at once, or none yet in
    # a batch of new cases): no query per look.
    outcomes: dict[Stage, models.StageOutcome] | None = None

    @property
    def customer(self) -> models.Customer:
        return self.case.customer

    def event(self, stage: Stage | None, kind: str, text: str, actor: str = "amends") -> None:
        self.session.add(
            models.CaseEvent(case_id=self.case.id, stage=stage, kind=kind, text=text, actor=actor)
        )

    def outcome(self, stage: Stage) -> models.StageOutcome | None:
        if self.outcomes is not None:
            return self.outcomes.get(stage)
        return self.session.scalar(
            select(models.StageOutcome).where(
                models.StageOutcome.case_id == self.case.id, models.StageOutcome.stage == stage
            )
        )

    def staff_action(
        self, stage: Stage, kind: str, role: str, instructions: str, due_at: datetime | None = None
    ) -> None:
        add_action(
            self.session,
            customer_id=self.case.customer_id,
            case_id=self.case.id,
            key=f"case-{self.case.id}:{stage.value}:{kind}",
            kind=kind,
            role=role,
            instructions=instructions,
            due_at=due_at,
        )

    def write(self, path: Path, content: bytes) -> Path:
        """Write a file whole or not at all, and remember it in case the stage fails."""
        self.files.append(write_attachment(path, content))
        return path


def run_stage(rt: Runtime, case_id: int, stage: Stage) -> StageResult:
    """Run one stage of a case unless it already ran; persist its outcome when it completes.

    Raises:
        LookupError: no case with that id.
        AmendsError: the stage could not complete (nothing of it is kept).
    """
    step: Step | None = None
    try:
        with rt.db.session() as session:
            step = load_step(session, rt, case_id)
            # The case's outcomes in one query, not one each time a stage looks at an earlier one.
            step.outcomes = {
                outcome.stage: outcome
                for outcome in session.scalars(
                    select(models.StageOutcome).where(models.StageOutcome.case_id == case_id)
                )
            }
            return complete(step, stage)
    except IntegrityError:
        # A concurrent run completed this stage first: its outcome (and its files, which have
        # the same names as ours) stand.
        with rt.db.session() as session:
            done = load_step(session, rt, case_id).outcome(stage)
        if done is None:
            raise
        return _result(done, resumed=True)
    except BaseException:
        for path in step.files if step else []:
            path.unlink(missing_ok=True)
        raise


def complete(step: Step, stage: Stage) -> StageResult:
    """Run one stage in the step's transaction unless it already ran (a batch's cases share
    one transaction; :func:`run_stage` gives one case its own)."""
    done = step.outcome(stage)
    if done is not None:
        return _result(done, resumed=True)
    status, summary, data = STAGES[stage](step)
    outcome = models.StageOutcome(
        case_id=step.case.id, stage=stage, status=status, summary=summary, data=data
    )
    step.session.add(outcome)
    if step.outcomes is not None:
        step.outcomes[stage] = outcome
    step.case.stage = stage
    step.event(stage, f"stage_{status.value}", f"{_title(stage)}: {summary}")
    return StageResult(stage, status, summary, data)


def load_step(session: Session, rt: Runtime, case_id: int) -> Step:
    # With its incident and customer, which every stage reads: one query, not three.
    case = session.get(
        models.Case,
        case_id,
        options=[joinedload(models.Case.incident), joinedload(models.Case.customer)],
    )
    if case is None:
        raise LookupError(f"no case {case_id}")
    incident = filed_incident(case)
    return Step(session=session, rt=rt, case=case, incident=incident)


def _result(outcome: models.StageOutcome, *, resumed: bool) -> StageResult:
    return StageResult(outcome.stage, outcome.status, outcome.summary, outcome.data, resumed)


def _plural(number: int, thing: str) -> str:
    return f"{number} {thing}" + ("" if number == 1 else "s")


def _title(stage: Stage) -> str:
    return spoken(stage).capitalize()


# --- the stages ---------------------------------------------------------------------------------

Outcome = tuple[StageStatus, str, dict[str, Any]]


def _assess(step: Step) -> Outcome:
    customer, policy = step.customer, step.rt.policy
    barred = customer.winback_barred
    assessment = assess(
        step.incident, forgiven_before=_forgiven(customer, step), policy=policy, barred=barred
    )
    if assessment.decision is Decision.RECOVER and not _claim_forgiveness(step):
        # Another case of this customer's took the one forgiveness a moment ago.
        assessment = assess(step.incident, forgiven_before=True, policy=policy, barred=barred)
    step.case.decision = assessment.decision
    # Never in a win-back again: the abusive (staff are protected) and the lost (seed 000).
    if assessment.decision is Decision.LOST and customer.winback_barred is None:
        customer.winback_barred = "lost"
    if assessment.decision is Decision.DO_NOT_PURSUE:
        customer.winback_barred = "abusive"
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
    summary = f"{spoken(assessment.decision)}. " + " ".join(assessment.reasons)
    return StageStatus.COMPLETED, summary, assessment.model_dump(mode="json")


def _forgiven(customer: models.Customer, step: Step) -> bool:
    return customer.forgiven_at is not None and customer.forgiven_case_id != step.case.id


def _claim_forgiveness(step: Step) -> bool:
    """Spend the customer's one forgiveness (seed 000) on this case, atomically: of two cases
    decided at the same moment, only one recovers."""
    claimed = step.session.execute(
        update(models.Customer)
        .where(models.Customer.id == step.customer.id, models.Customer.forgiven_at.is_(None))
        .values(forgiven_at=models.utcnow(), forgiven_case_id=step.case.id)
    ).rowcount
    step.session.refresh(step.customer)
    return bool(claimed) or step.customer.forgiven_case_id == step.case.id


NO_INCENTIVE = {
    Decision.SMOOTH_OVER: "the decision is to smooth it over",
    Decision.LOST: "the customer is lost under the one-forgiveness rule",
    Decision.DO_NOT_PURSUE: "the customer is not pursued",
}


# A case that calls for an offer gets none when nothing is left to make good or the business
# offers nothing that fits it.
NOTHING_OWED = "what was already given covers it, or no remedy of the business fits the case"


def _empower(step: Step) -> Outcome:
    decision = step.case.decision
    assert decision is not None, "assess runs before empower"
    assessment = Assessment.model_validate(step.outcome(Stage.ASSESS).data)
    policy = step.rt.policy
    offer = choose_offer(assessment, step.incident, policy, step.rt.settings.business)
    if offer is None:
        return (
            StageStatus.SKIPPED,
            f"No offer: {NO_INCENTIVE.get(decision, NOTHING_OWED)}.",
            {"offer": None},
        )
    step.session.add(
        models.Offer(
            case_id=step.case.id,
            kind=offer.kind,
            value=offer.value,
            currency=offer.currency,
            trial_days=offer.trial_days,
            capped=offer.needs_approval,
        )
    )
    data = {"offer": offer.model_dump(mode="json"), "needs_approval": offer.needs_approval}
    if offer.needs_approval:
        request_approval(
            step.session,
            step.case,
            offer,
            timeout_hours=policy.empower.approval_timeout_hours,
        )
        summary = (
            f"Offer {spoken(offer.kind)}: {offer.wanted:.2f} {offer.currency} {AWAITS_APPROVAL}. "
            + " ".join(offer.reasons)
        )
        return StageStatus.COMPLETED, summary, data
    summary = f"Offer {spoken(offer.kind)} worth {offer.value:.2f} {offer.currency}. " + " ".join(
        offer.reasons
    )
    return StageStatus.COMPLETED, summary, data


def _monitor(step: Step) -> Outcome:
    customer = step.customer
    if not customer.social_handle:
        return (
            StageStatus.COMPLETED,
            "No social account on file: nothing to look for.",
            {"posts": []},
        )
    # Plausibly about this incident: a complaint, not a repost or a repeat, posted from a
    # little before the incident on, and not answered by another case.
    since = step.incident.received_at - timedelta(
        days=step.rt.policy.listening.days_before_incident
    )
    posts = list(
        step.session.scalars(
            select(models.Mention)
            .where(
                models.Mention.platform == customer.social_platform,
                same_handle(models.Mention.handle, customer.social_handle),
                (models.Mention.case_id.is_(None)) | (models.Mention.case_id == step.case.id),
                models.Mention.complaint.is_(True),
                models.Mention.duplicate_of.is_(None),
                models.Mention.repost.is_(False),
                models.Mention.posted_at >= since,
            )
            .order_by(models.Mention.posted_at)
        )
    )
    for post in posts:
        post.case_id = step.case.id
        post.customer_id = customer.id
    found = [
        {
            "url": post.url,
            "text": post.text,
            "posted_at": post.posted_at.isoformat(),
            "external_id": post.external_id,
        }
        for post in posts
    ]
    where = f"{customer.social_platform} as {customer.social_handle}"
    if not found:
        return StageStatus.COMPLETED, f"No public complaint found on {where}.", {"posts": []}
    return (
        StageStatus.COMPLETED,
        f"{_plural(len(found), 'public post')} found on {where}: a public reply answers.",
        {"posts": found},
    )


def _report(step: Step) -> Outcome:
    case = step.case
    capped = step.session.scalar(select(models.Offer.capped).where(models.Offer.case_id == case.id))
    owner = "manager" if case.decision is Decision.DO_NOT_PURSUE or capped else "frontline"
    due = case.first_response_due
    summary = (
        f"Case tracked until closed; owner: {owner}; first response due by "
        f"{due.strftime('%Y-%m-%d %H:%M')} UTC."
    )
    return StageStatus.COMPLETED, summary, {"owner": owner, "first_response_due": due.isoformat()}


def _follow_up(step: Step) -> Outcome:
    case = step.case
    if case.decision is Decision.DO_NOT_PURSUE:
        return (
            StageStatus.SKIPPED,
            "Frontline contact is blocked for an abusive customer; a manager responds.",
            {"messages": []},
        )
    channel = case.reply_channel
    posts = step.outcome(Stage.MONITOR).data.get("posts", [])
    # The apology promises what the re-engage stage will really do (issue 18).
    next_step = planned_next_step(step)
    queued = []
    if channel is not ReplyChannel.SOCIAL:
        queued.append(
            queue_for_case(step, Stage.FOLLOW_UP, MessageKind.APOLOGY, channel, next_step=next_step)
        )
    # A public complaint gets a short public reply that invites a private talk (seed 003)...
    if channel is ReplyChannel.SOCIAL or posts:
        # In the thread of the latest post found, where the network has one.
        thread = next((p["url"] for p in reversed(posts) if len(p["url"]) <= 255), None)
        queued.append(
            queue_for_case(
                step,
                Stage.FOLLOW_UP,
                MessageKind.PUBLIC_REPLY,
                ReplyChannel.SOCIAL,
                in_reply_to=thread,
            )
        )
    # ...and on a network that allows it, the apology itself follows in private.
    if (
        channel is ReplyChannel.SOCIAL
        and step.customer.social_platform in step.rt.policy.private_messages_on
    ):
        queued.append(
            queue_for_case(
                step,
                Stage.FOLLOW_UP,
                MessageKind.APOLOGY,
                ReplyChannel.SOCIAL,
                next_step=next_step,
            )
        )
    if step.incident.put_right:
        # The thank-you and the close wait until a person confirms the promise was kept.
        step.staff_action(
            Stage.FOLLOW_UP,
            PUT_RIGHT_ACTION,
            "frontline",
            f"The apology promised: “{step.incident.put_right}”. When it is done, confirm it: "
            f"`amends done {step.incident.ref} --by NAME`.",
        )
    described = ", ".join(
        f"{spoken(m.kind)} by {m.channel.value} ({spoken(m.status)})" for m in queued
    )
    data = {
        "messages": [{"kind": m.kind.value, "channel": m.channel.value} for m in queued],
        "next_step": next_step,
    }
    if channel is ReplyChannel.LETTER:
        described += "; a handwritten note goes further than print"
    return StageStatus.COMPLETED, f"Replied on the complaint's own channel: {described}.", data


def _reengage(step: Step) -> Outcome:
    case, rt = step.case, step.rt
    if case.decision is not Decision.RECOVER:
        settle(step.session, case)
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
    zone = customer.timezone or rt.settings.business_timezone
    figures = rt.policy.checkins
    times = planned_checkins(step)
    if not times:
        settle(step.session, case)
        return (
            StageStatus.COMPLETED,
            f"Offer made; no check-ins for a {step.incident.severity.value}-severity failure "
            "(the policy's checkins.count_by_severity).",
            {"checkins": []},
        )
    domain = rt.settings.sender_email.rpartition("@")[2]
    checkins = [
        models.CheckIn(
            case_id=case.id,
            number=number,
            starts_at=starts_at,
            duration_minutes=figures.duration_minutes,
            uid=f"case-{case.id}-checkin-{number}@{domain}",
        )
        for number, starts_at in enumerate(times, start=1)
    ]
    step.session.add_all(checkins)
    step.session.flush()
    step.event(
        Stage.REENGAGE,
        "checkins_scheduled",
        f"{len(checkins)} check-ins scheduled: "
        + ", ".join(t.strftime("%Y-%m-%d %H:%M") for t in times)
        + f" ({zone}).",
    )

    # The invitation follows the apology, never precedes it: by email only when the apology
    # went by email; otherwise the person who calls, writes or visits agrees the dates.
    if invites_by_email(step):
        queue_for_case(
            step,
            Stage.REENGAGE,
            MessageKind.CHECKIN_INVITATION,
            ReplyChannel.EMAIL,
            about=checkins,
            calendar=("REQUEST", checkins),
        )
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
    step.session.flush()
    settle(step.session, case)
    summary = (
        f"Offer made; {len(checkins)} check-in meetings scheduled from "
        f"{times[0].strftime('%Y-%m-%d %H:%M')} ({zone}); {how}."
    )
    return StageStatus.COMPLETED, summary, {"checkins": [t.isoformat() for t in times]}


STAGES = {
    Stage.ASSESS: _assess,
    Stage.EMPOWER: _empower,
    Stage.MONITOR: _monitor,
    Stage.REPORT: _report,
    Stage.FOLLOW_UP: _follow_up,
    Stage.REENGAGE: _reengage,
}


# --- what follows the apology ------------------------------------------------------------------

PUT_RIGHT_ACTION = "confirm_put_right"  # staff confirm the put-right the apology promised


def planned_checkins(step: Step) -> list[datetime]:
    """The check-ins a recovered case gets: asked before the apology (to say what follows it)
    and by the re-engage stage (to schedule them), so both say the same."""
    if step.case.decision is not Decision.RECOVER:
        return []
    rt, incident = step.rt, step.incident
    zone = step.customer.timezone or rt.settings.business_timezone
    figures = rt.policy.checkins
    count = figures.count_for(
        incident.severity, rt.policy.empower.tier_of(incident.customer.annual_value)
    )
    return checkin_times(
        step.case.opened_at, figures, zone, count=count, business=rt.settings.business
    )


def invites_by_email(step: Step) -> bool:
    """The check-in invitation follows the apology by email only when the apology went by
    email; otherwise the person who calls, writes or visits agrees the dates."""
    return step.case.reply_channel is ReplyChannel.EMAIL and bool(step.customer.email)


def planned_next_step(step: Step) -> str:
    """What the apology says comes next (catalogue.NEXT_STEPS): the step really queued."""
    if not planned_checkins(step):
        return "reply"
    return "invitation" if invites_by_email(step) else "agree_checkins"


# --- messages ---------------------------------------------------------------------------------


def queue_for_case(
    step: Step,
    stage: Stage,
    kind: MessageKind,
    channel: ReplyChannel,
    *,
    key: str | None = None,
    about: list[models.CheckIn] | None = None,
    calendar: tuple[CalendarMethod, list[models.CheckIn]] | None = None,
    in_reply_to: str | None = None,
    next_step: str = "reply",
) -> models.Message:
    """Render a message for the case's customer and queue it, in the step's transaction.

    Args:
        key: What makes it unique; by default one per case, stage, kind and channel.
        about: The check-ins the message speaks of.
        calendar: An iCalendar REQUEST or CANCEL of these check-ins, attached.
        in_reply_to: What the message answers: a public post's URL, for a public reply.
        next_step: What an apology says follows it (:func:`planned_next_step`).
    """
    rt, case, customer, incident = step.rt, step.case, step.customer, step.incident
    settings = rt.settings
    context = case_context(
        step.session,
        case,
        settings,
        checkins=[c.starts_at for c in about or []],
        next_step=next_step,
    )
    rendered = render_message(rt.templates, kind, channel, customer.locale, context)
    subject = rendered.subject
    if channel is ReplyChannel.EMAIL and kind is MessageKind.APOLOGY:
        in_reply_to = incident.complaint_message_id
        if incident.complaint_subject:
            subject = reply_subject(incident.complaint_subject)
    # Files are named by case number: refs that differ only in case never share a file; a
    # key of its own (a check-in moved twice) adds the key's digest.
    name = f"case-{case.id}-{incident.ref}-{kind.value}"
    if key:
        name += f"-{key_digest(key)[:8]}"
    key = key or message_key(case.id, stage, kind, channel)
    attachment = None
    if channel is ReplyChannel.LETTER:
        attachment = step.write(settings.letters_dir / f"{name}.html", rendered.body.encode())
    if calendar:
        method, checkins = calendar
        content = calendar_message(
            method,
            [meeting(c, rendered.subject, settings.business_name, incident.ref) for c in checkins],
            organizer=Party(settings.sender_email, settings.sender_name),
            attendee=Party(customer.email or "", customer.name),
            stamp=models.utcnow(),
        )
        attachment = step.write(settings.calendar_dir / f"{name}.ics", content)
    draft = Draft(
        key=key,
        customer_id=case.customer_id,
        case_id=case.id,
        stage=stage,
        kind=kind,
        channel=channel,
        recipient=address_for(incident.customer, channel) or "",
        subject=subject,
        body=rendered.body,
        attachment=attachment,
        in_reply_to=in_reply_to,
        due_at=case.first_response_due,
    )
    return queue_message(
        step.session, draft, sender_email=settings.sender_email, automatic=rt.channels
    )


def meeting(checkin: models.CheckIn, summary: str, business: str, incident_ref: str) -> Meeting:
    return Meeting(
        uid=checkin.uid,
        sequence=checkin.sequence,
        starts_at=checkin.starts_at,
        duration_minutes=checkin.duration_minutes,
        summary=summary,
        description=f"{business}: check-in {checkin.number} after incident {incident_ref}",
    )


# The empower stage's words while a manager has not answered; the answer replaces them.
AWAITS_APPROVAL = "waits for a manager's approval"


def request_approval(
    session: Session, case: models.Case, offer: Offer, *, timeout_hours: float
) -> models.Approval:
    """Ask a manager about an offer above the frontline limit, in the caller's transaction."""
    due = models.utcnow() + timedelta(hours=timeout_hours)
    approval = models.Approval(
        case_id=case.id,
        wanted=offer.wanted,
        frontline_limit=offer.frontline_limit,
        manager_limit=offer.manager_limit,
        currency=offer.currency,
        status=ApprovalStatus.PENDING,
        due_at=due,
    )
    session.add(approval)
    add_action(
        session,
        customer_id=case.customer_id,
        case_id=case.id,
        key=f"case-{case.id}:empower:approve_offer",
        kind="approve_offer",
        role="manager",
        instructions=(
            f"Approve, adjust or decline an offer of {offer.wanted:.2f} {offer.currency} "
            f"(frontline limit {offer.frontline_limit:.2f}): the paused run's Resume form in "
            f"the Prefect UI, or `amends approve {case.incident.ref} --by NAME` "
            "(`--amount N` to adjust, `--decline`)."
        ),
        due_at=due,
    )
    session.add(
        models.CaseEvent(
            case_id=case.id,
            stage=Stage.EMPOWER,
            kind="approval_asked",
            text=f"A manager is asked to approve {offer.wanted:.2f} {offer.currency} (frontline "
            f"limit {offer.frontline_limit:.2f}) by {due:%Y-%m-%d %H:%M} UTC.",
        )
    )
    return approval


def queue_revised_offer(rt: Runtime, session: Session, case_id: int) -> None:
    """Tell the customer about an offer a manager raised after the apology went out, on the
    reply channel (or through staff where no offer form exists for it), in the caller's
    transaction."""
    step = load_step(session, rt, case_id)
    channel = step.case.reply_channel
    if channel in FORMS[MessageKind.OFFER]:
        queue_for_case(step, Stage.EMPOWER, MessageKind.OFFER, channel)
        return
    offer = session.scalar(select(models.Offer).where(models.Offer.case_id == case_id))
    step.staff_action(
        Stage.EMPOWER,
        "tell_revised_offer",
        "frontline",
        f"A manager raised the offer to {offer.value:.2f} {offer.currency}: tell "
        f"{step.customer.name} by {channel.value}.",
    )


def reply_subject(subject: str) -> str:
    """``Re:`` and the complaint's own subject, without piling up ``Re: Re:``."""
    while subject[:3].lower() == "re:":
        subject = subject[3:].lstrip()
    return f"Re: {subject}"
