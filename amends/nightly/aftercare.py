"""After the stages: check-ins held or missed, as staff record them, and closing a case.

"Be faithful at sticking to them" (seed 004): a missed check-in is moved, not dropped, and the
customer's calendar follows (an iCalendar REQUEST with SEQUENCE+1); repeated misses bring a
person in. Closing a case cancels what is left of its check-ins (an iCalendar CANCEL).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from amends import exit_questions
from amends.domain import CaseState, CheckinStatus, MessageKind, ReplyChannel, Stage, staff_line
from amends.errors import AmendsError, InvalidInput, NotFound
from amends.recovery.checkins import moved_time
from amends.recovery.staff import settle
from amends.recovery.stages import (
    PUT_RIGHT_ACTION,
    Step,
    invites_by_email,
    load_step,
    queue_for_case,
)
from amends.reporting.casebook import find_case
from amends.runtime import Runtime
from amends.storage import models
from amends.storage.db import Database

FEEDBACK_LIMIT = 4000


@dataclass(frozen=True)
class CheckinRecord:
    """What recording a check-in did."""

    incident_ref: str
    number: int
    held: bool
    moved_to: datetime | None  # a missed check-in's new time
    misses: int  # in the whole case
    call_asked: bool  # the misses reached the policy's limit: a person calls
    case_closed: bool  # it was the last check-in


def record_checkin(
    rt: Runtime,
    ref: str,
    *,
    held: bool,
    actor: str,
    number: int | None = None,
    feedback: str = "",
) -> CheckinRecord:
    """Record a check-in as held (with the customer's feedback) or missed (and move it).

    Args:
        ref: The incident's reference.
        number: Which check-in; by default the next one still scheduled.
        feedback: What the customer said, in staff's words; kept for the reports.

    Raises:
        NotFound: no such case or check-in.
        AmendsError: the check-in is not scheduled any more, or a missed one is in the future.
    """
    actor = staff_line(actor, "who recorded it", 120)
    if not actor:
        raise InvalidInput("name who recorded the check-in (--by NAME)")
    if len(feedback) > FEEDBACK_LIMIT:
        raise InvalidInput(f"feedback is {len(feedback)} characters; keep it to {FEEDBACK_LIMIT}")
    now = models.utcnow()
    with rt.db.session() as session:
        case = find_case(session, ref)
        checkin = _checkin(session, case, number)
        if checkin.status != CheckinStatus.SCHEDULED:
            raise AmendsError(
                f"check-in {checkin.number} of {case.incident.ref} is already {checkin.status}"
            )
        step = load_step(session, rt, case.id)
        if held:
            checkin.status = CheckinStatus.HELD
            checkin.feedback = feedback.strip() or None
            checkin.recorded_by = actor
            checkin.outcome_at = now
            step.event(
                Stage.REENGAGE,
                "checkin_held",
                # The feedback is the customer's words: on the check-in, not in the timeline
                # that the case's artifact shows.
                f"Check-in {checkin.number} held"
                + ("; feedback recorded." if checkin.feedback else "."),
                actor=actor,
            )
            moved_to = None
        else:
            if checkin.starts_at > now:
                raise AmendsError(
                    f"check-in {checkin.number} of {case.incident.ref} is on "
                    f"{checkin.starts_at:%Y-%m-%d %H:%M} UTC: it cannot be missed yet"
                )
            moved_to = _move(step, checkin, actor)
        _close_record_asks(session, case.id, [checkin.number])
        session.flush()
        misses = session.scalar(
            select(func.coalesce(func.sum(models.CheckIn.misses), 0)).where(
                models.CheckIn.case_id == case.id
            )
        )
        limit = rt.policy.checkins.misses_before_call
        call_asked = not held and misses >= limit
        if call_asked:
            step.staff_action(
                Stage.REENGAGE,
                "checkins_missed",
                "frontline",
                f"{case.customer.name} has missed {misses} check-ins. Call them personally: ask "
                "for their honest feedback, and whether the meetings still help them.",
                due_at=now,
            )
        settle(session, case)
        return CheckinRecord(
            incident_ref=case.incident.ref,
            number=checkin.number,
            held=held,
            moved_to=moved_to,
            misses=misses,
            call_asked=call_asked,
            case_closed=case.state is CaseState.CLOSED,
        )


def _close_record_asks(session: Session, case_id: int, numbers: list[int]) -> None:
    """The nightly run's requests to record these check-ins are answered: close them."""
    for number in numbers:
        session.execute(
            update(models.StaffAction)
            .where(
                models.StaffAction.key.startswith(
                    f"case-{case_id}:checkin-{number}:record:", autoescape=True
                ),
                models.StaffAction.status == "open",
            )
            .values(status="done", done_at=models.utcnow())
        )


def _checkin(session: Session, case: models.Case, number: int | None) -> models.CheckIn:
    query = select(models.CheckIn).where(models.CheckIn.case_id == case.id)
    if number is None:
        query = query.where(models.CheckIn.status == CheckinStatus.SCHEDULED).order_by(
            models.CheckIn.starts_at
        )
    else:
        query = query.where(models.CheckIn.number == number)
    checkin = session.scalars(query.limit(1)).first()
    if checkin is None:
        which = f"check-in {number}" if number else "scheduled check-in"
        raise NotFound(f"case {case.incident.ref} has no {which}")
    return checkin


def _move(step: Step, checkin: models.CheckIn, actor: str) -> datetime:
    zone = step.customer.timezone or step.rt.settings.business_timezone
    missed_at = checkin.starts_at
    checkin.misses += 1
    checkin.sequence += 1
    checkin.starts_at = moved_time(
        missed_at,
        step.rt.policy.checkins,
        zone,
        recorded=models.utcnow(),
        business=step.rt.settings.business,
    )
    when = checkin.starts_at.strftime("%Y-%m-%d %H:%M %Z")
    step.event(
        Stage.REENGAGE,
        "checkin_missed",
        f"Check-in {checkin.number} missed; moved to {when}.",
        actor=actor,
    )
    key = f"case-{step.case.id}:checkin-{checkin.number}:moved:{checkin.sequence}"
    if invites_by_email(step):
        queue_for_case(
            step,
            Stage.REENGAGE,
            MessageKind.CHECKIN_MOVED,
            ReplyChannel.EMAIL,
            key=key,
            about=[checkin],
            calendar=("REQUEST", [checkin]),
        )
    else:
        step.staff_action(
            Stage.REENGAGE,
            f"checkin_{checkin.number}_moved_{checkin.sequence}",
            "frontline",
            f"Check-in {checkin.number} was missed and moved to {when} "
            f"({zone}): tell {step.customer.name} by {step.case.reply_channel.value}.",
            due_at=models.utcnow(),
        )
    return checkin.starts_at


WITHDRAWN = "case_withdrawn"  # the timeline's mark of a case closed without a resolution


def close_case(rt: Runtime, ref: str, *, reason: str, actor: str, resolved: bool = True) -> int:
    """Close a case now; its check-ins still to come are cancelled, in the customer's calendar
    too. Returns how many check-ins were cancelled.

    One closing message: a resolved case whose invitations went by email gets its thank-you
    now, with the cancellation attached (the nightly run then has nothing to add); otherwise
    the nightly run sends the thank-you. A withdrawn case gets only the cancellation.

    Args:
        resolved: False when the customer withdrew (asked to stop, left): no thank-you note.

    Raises:
        NotFound: no such case.
        AmendsError: the case is closed already, or its stages have not all run, or (resolved)
            the put-right the apology promised is not recorded as done.
    """
    actor, reason = staff_line(actor, "who closed it", 120), staff_line(reason, "reason", 500)
    if not actor or not reason:
        raise InvalidInput("name who closes the case (--by NAME) and why (--reason TEXT)")
    with rt.db.session() as session:
        case = find_case(session, ref)
        if case.state is CaseState.CLOSED:
            raise AmendsError(f"case {case.incident.ref} is already closed")
        if case.stage is not Stage.REENGAGE:
            raise AmendsError(
                f"case {case.incident.ref} is still in its stages (last done: "
                f"{case.stage.value if case.stage else 'none'}); run it to the end first"
            )
        if resolved and put_right_open(case):
            raise AmendsError(
                f"case {case.incident.ref}: the put-right the apology promised is not recorded "
                f"as done; `amends done {case.incident.ref} --by NAME` once it is, or close it "
                "with --withdrawn if the customer withdrew"
            )
        step = load_step(session, rt, case.id)
        remaining = list(
            session.scalars(
                select(models.CheckIn)
                .where(
                    models.CheckIn.case_id == case.id,
                    models.CheckIn.status == CheckinStatus.SCHEDULED,
                )
                .order_by(models.CheckIn.starts_at)
            )
        )
        for checkin in remaining:
            checkin.status = CheckinStatus.CANCELLED
            checkin.sequence += 1
        _close_record_asks(session, case.id, [c.number for c in remaining])
        if remaining:
            step.event(
                Stage.REENGAGE,
                "checkins_cancelled",
                "Check-ins cancelled: " + ", ".join(str(c.number) for c in remaining) + ".",
                actor=actor,
            )
        if remaining and invites_by_email(step):
            queue_for_case(
                step,
                Stage.REENGAGE,
                MessageKind.THANK_YOU if resolved else MessageKind.CHECKIN_CANCELLED,
                ReplyChannel.EMAIL,
                key=f"case-{case.id}:checkins:cancelled",
                about=remaining,
                calendar=("CANCEL", remaining),
            )
        elif remaining:
            step.staff_action(
                Stage.REENGAGE,
                "checkins_cancelled",
                "frontline",
                f"The case is closed: tell {case.customer.name} by "
                f"{case.reply_channel.value} that the {len(remaining)} remaining check-ins are "
                "cancelled.",
            )
        if resolved:
            step.event(None, "case_closed", f"Case closed: {reason}", actor=actor)
        else:
            step.event(None, WITHDRAWN, f"Case closed, withdrawn: {reason}", actor=actor)
        case.state = CaseState.CLOSED
        case.closed_at = models.utcnow()
        return len(remaining)


def put_right_open(case: models.Case) -> bool:
    """Whether the case's apology promised a put-right that no one has confirmed as done."""
    return bool(case.incident.payload.get("put_right")) and case.put_right_done_at is None


def confirm_put_right(rt: Runtime, ref: str, *, actor: str) -> bool:
    """Record that the put-right the apology promised was done; the thank-you may follow.
    Returns whether the case closed with it (nothing else was left to do).

    Raises:
        NotFound: no such case.
        InvalidInput: no name.
        AmendsError: the case promised no put-right, or it is recorded as done already.
    """
    actor = staff_line(actor, "who confirms it", 120)
    if not actor:
        raise InvalidInput("name who confirms the put-right (--by NAME)")
    with rt.db.session() as session:
        case = find_case(session, ref)
        if not case.incident.payload.get("put_right"):
            raise AmendsError(f"case {case.incident.ref} promised no put-right")
        if case.put_right_done_at is not None:
            raise AmendsError(
                f"the put-right of {case.incident.ref} was recorded as done by "
                f"{case.put_right_done_by} on {case.put_right_done_at:%Y-%m-%d %H:%M} UTC"
            )
        mark_put_right_done(session, case, actor)
        if case.state is not CaseState.CLOSED:
            settle(session, case)
        return case.state is CaseState.CLOSED


def mark_put_right_done(session: Session, case: models.Case, actor: str) -> None:
    """The put-right is done: on the case, its staff action and its timeline."""
    now = models.utcnow()
    case.put_right_done_at, case.put_right_done_by = now, actor
    session.execute(
        update(models.StaffAction)
        .where(
            models.StaffAction.case_id == case.id,
            models.StaffAction.kind == PUT_RIGHT_ACTION,
            models.StaffAction.status == "open",
        )
        .values(status="done", done_at=now)
    )
    session.add(
        models.CaseEvent(
            case_id=case.id,
            stage=Stage.FOLLOW_UP,
            kind="put_right_done",
            text="The put-right the apology promised is done.",
            actor=actor,
        )
    )
    session.flush()


NOTE_LIMIT = 1000


def add_note(rt: Runtime, ref: str, text: str, *, actor: str) -> int:
    """Add a staff note to a case's timeline, open or closed. Returns the case's number.

    Raises:
        NotFound: no such case.
        InvalidInput: no name or no text; the text is longer than ``NOTE_LIMIT`` characters or
            not a single line of plain text.
    """
    actor, text = staff_line(actor, "who wrote it", 60), staff_line(text, "note", NOTE_LIMIT)
    if not actor or not text:
        raise InvalidInput('name who writes the note (--by NAME) and give its text ("...")')
    with rt.db.session() as session:
        case = find_case(session, ref)
        session.add(models.CaseEvent(case_id=case.id, kind="note", text=text, actor=actor))
        return case.id


@dataclass(frozen=True)
class ExitAnswersRecord:
    """What recording a leaving customer's answers did."""

    customer_ref: str
    incident_ref: str | None  # the latest case, whose timeline notes it


def record_exit_answers(
    rt: Runtime, customer_ref: str, answers: dict[str, str], *, actor: str
) -> ExitAnswersRecord:
    """Keep a leaving customer's answers to the exit questions (:mod:`amends.exit_questions`,
    keyed as there), as staff heard them, for the report's themes.

    Raises:
        NotFound: no such customer.
        InvalidInput: no name or no answer at all; an unknown question; an answer longer than
            ``ANSWER_LIMIT`` characters or not a single line of plain text.
    """
    return save_exit_answers(rt.db, customer_ref, answers, actor=actor)


def save_exit_answers(
    db: Database, customer_ref: str, answers: dict[str, str], *, actor: str
) -> ExitAnswersRecord:
    """:func:`record_exit_answers` on a database: what the answer form of ``amends serve``
    calls, with the customer as ``actor``."""
    actor = staff_line(actor, "who recorded it", 120)
    unknown = set(answers) - set(exit_questions.KEYS)
    if unknown:
        raise InvalidInput(f"no exit question {sorted(unknown)[0]!r}")
    kept = {
        question.key: staff_line(
            answers.get(question.key, ""), question.option, exit_questions.ANSWER_LIMIT
        )
        or None
        for question in exit_questions.QUESTIONS
    }
    if not actor:
        raise InvalidInput("name who recorded the answers (--by NAME)")
    if not any(kept.values()):
        raise InvalidInput(
            "give at least one answer: "
            + ", ".join(f"--{q.option}" for q in exit_questions.QUESTIONS)
        )
    with db.session() as session:
        customer = session.scalar(
            select(models.Customer).where(models.Customer.ref == customer_ref)
        )
        if customer is None:
            raise NotFound(f"no customer {customer_ref!r}")
        case = session.scalar(
            select(models.Case)
            .where(models.Case.customer_id == customer.id)
            .order_by(models.Case.id.desc())
            .limit(1)
        )
        session.add(
            models.ExitAnswers(
                customer_id=customer.id,
                case_id=case.id if case else None,
                recorded_by=actor,
                **kept,
            )
        )
        if case is not None:
            # The words stay with the answers: the timeline reaches the case's artifact.
            session.add(
                models.CaseEvent(
                    case_id=case.id,
                    kind="exit_answers",
                    text="The customer's answers to the exit questions were recorded.",
                    actor=actor,
                )
            )
        return ExitAnswersRecord(customer.ref, case.incident.ref if case else None)
