"""The nightly run: keep check-ins and open cases moving, and win lapsed customers back,
without ever nagging anyone.

Each action works in set-based batches: one query picks a batch of candidates (the rules below
are SQL conditions, so the database does the filtering), their messages are rendered and
queued with one insert, and the batch commits on its own. Nothing is sent here: the outbox's
senders deliver the queued messages, each exactly once.

Nobody is written to who is marked do-not-contact, barred from win-backs (abusive or lost,
seed 000), or suppressed (``all`` for any message, ``marketing`` for a win-back offer); and no
customer receives more than the policy's frequency cap of nightly messages in its window,
reminders first. Every message has a key, so running the night twice sends nothing new.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    cast,
    exists,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Session

from amends.delivery import consent
from amends.delivery.optout import answers_link
from amends.delivery.outbox import Draft, DrainReport, queue_drafts, write_attachment
from amends.domain import (
    CaseState,
    CheckinStatus,
    Decision,
    MessageKind,
    MessageStatus,
    ReplyChannel,
    Stage,
    address_for,
)
from amends.messages.catalogue import FORMS, case_context, customer_context, render_message
from amends.nightly.aftercare import WITHDRAWN
from amends.recovery.policy import NightlyFigures
from amends.recovery.staff import add_action
from amends.recovery.stages import PUT_RIGHT_ACTION
from amends.runtime import Runtime
from amends.storage import models

# Candidates per query and per transaction.
BATCH = 1000
# Check-ins staff are asked to record: those of the last two weeks.
ASK_WITHIN = timedelta(days=14)
# How many contacted customers a report names; the counts are always complete.
NAMED = 200
# What the frequency cap counts: everything the nightly run sends.
NIGHTLY_KINDS = (
    MessageKind.CHECKIN_REMINDER,
    MessageKind.PROGRESS_UPDATE,
    MessageKind.THANK_YOU,
    MessageKind.EXIT_QUESTIONS,
    MessageKind.WINBACK_OFFER,
)
# After the exit questions, the win-back offer waits this long: their answers come first.
ANSWERS_BEFORE_WINBACK = timedelta(days=14)
# When nothing else says how to reach a customer: the channels tried, in this order.
USUAL_CHANNELS = (ReplyChannel.EMAIL, ReplyChannel.SMS, ReplyChannel.LETTER)

Progress = Callable[[int, int], None]
"""Called after each batch with (done so far, total)."""


@dataclass
class ActionReport:
    """What one nightly action did."""

    action: str
    title: str
    candidates: int = 0  # found by the rules, before the last checks in Python
    done: int = 0  # messages queued, or staff actions opened
    staff: int = 0  # of which staff actions
    contacted: list[tuple[str, str]] = field(default_factory=list)  # (customer ref, channel)

    def note(self, customer_ref: str, channel: str) -> None:
        self.done += 1
        if channel == "staff":
            self.staff += 1
        if len(self.contacted) < NAMED:
            self.contacted.append((customer_ref, channel))


@dataclass(frozen=True)
class Night:
    """One nightly run's moment and figures."""

    rt: Runtime
    now: datetime

    @property
    def figures(self) -> NightlyFigures:
        return self.rt.policy.nightly

    @property
    def today(self) -> date:
        """The night's date where the business is."""
        return self.now.astimezone(ZoneInfo(self.rt.settings.business_timezone)).date()


# --- the rules, as SQL conditions on a customer -------------------------------------------------


def _may_contact(*, marketing: bool) -> ColumnElement[bool]:
    """Consent (:func:`amends.delivery.consent.may_contact`), and more: the nightly run never
    writes to a customer barred from win-backs (abusive, lost), even about a case (issue 6)."""
    return and_(consent.may_contact(marketing=marketing), models.Customer.winback_barred.is_(None))


def _under_cap(night: Night) -> ColumnElement[bool]:
    """Fewer nightly messages in the cap's window than the cap allows."""
    cap = night.figures.frequency_cap
    recent = (
        select(func.count(models.Message.id))
        .where(
            models.Message.customer_id == models.Customer.id,
            models.Message.kind.in_(NIGHTLY_KINDS),
            models.Message.created_at >= night.now - timedelta(days=cap.days),
        )
        .scalar_subquery()
    )
    return recent < cap.messages


def _unfinished() -> ColumnElement[bool]:
    """A case whose recovery is not done: stages still to run, or a person still to act."""
    return or_(
        models.Case.stage.is_(None),
        models.Case.stage != Stage.REENGAGE,
        models.Case.state == CaseState.AWAITING_STAFF,
    )


def _misses(night: Night) -> Any:
    """How many check-ins the customer missed lately (within the lapse period) and never
    made up for: a check-in held after all is no warning sign."""
    since = night.now - timedelta(days=night.figures.lapsed_after_days)
    return (
        select(func.coalesce(func.sum(models.CheckIn.misses), 0))
        .join(models.Case, models.CheckIn.case_id == models.Case.id)
        .where(
            models.Case.customer_id == models.Customer.id,
            models.CheckIn.status != CheckinStatus.HELD,
            models.CheckIn.starts_at >= since,
        )
        .scalar_subquery()
    )


# --- batches ------------------------------------------------------------------------------------


def _batches(
    night: Night, query: Select[Any], cursor: Any, progress: Progress | None
) -> Iterator[tuple[Session, list[Any]]]:
    """The query's rows in batches ordered by ``cursor``, each in its own transaction."""
    with night.rt.db.session() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    done, last = 0, None
    while True:
        with night.rt.db.session() as session:
            page = query if last is None else query.where(cursor > last)
            rows = session.execute(page.order_by(cursor).limit(BATCH)).all()
            if not rows:
                return
            yield session, rows
            last = rows[-1][0].id
        done += len(rows)
        if progress:
            progress(min(done, total), total)


def _channel(
    kind: MessageKind, customer: models.Customer, *preferred: str | ReplyChannel | None
) -> ReplyChannel | None:
    """The first channel that the customer can be reached on and that ``kind`` is written for:
    the ones named (the complaint's mirror, the customer's preference), then the usual ones."""
    for name in (*preferred, *USUAL_CHANNELS):
        if name is None:
            continue
        channel = ReplyChannel(name)
        if channel in FORMS[kind] and address_for(customer, channel):  # type: ignore[arg-type]
            return channel
    return None


def _case_channel(
    kind: MessageKind, case: models.Case, customer: models.Customer
) -> ReplyChannel | None:
    """About a case: its reply channel (the complaint's mirror), else the customer's own."""
    return _channel(kind, customer, case.reply_channel, customer.preferred_channel)


def _write_about_cases(
    night: Night,
    query: Select[Any],
    stage: Stage,
    kind: MessageKind,
    purpose: str,
    report: ActionReport,
    progress: Progress | None,
) -> None:
    """Write ``kind`` about each case of the (case, customer) rows, in the case's own words
    (its full context: what was done, the offer, the check-ins); keyed by case and purpose."""
    for session, rows in _batches(night, query, models.Case.id, progress):
        report.candidates += len(rows)
        drafting = _Drafting(night, stage, kind)
        for case, customer in rows:
            channel = _case_channel(kind, case, customer)
            if channel is not None:
                context = case_context(session, case, night.rt.settings)
                drafting.add(
                    f"case-{case.id}:{purpose}", customer, channel, context, case_id=case.id
                )
        drafting.queue(session, report)


@dataclass
class _Drafting:
    """Drafts of one batch, one per customer, with any letters they need written."""

    night: Night
    stage: Stage
    kind: MessageKind
    drafts: list[Draft] = field(default_factory=list)
    refs: dict[str, str] = field(default_factory=dict)  # key -> customer ref
    customers: set[int] = field(default_factory=set)

    def add(
        self,
        key: str,
        customer: models.Customer,
        channel: ReplyChannel,
        context: dict[str, Any],
        *,
        case_id: int | None = None,
    ) -> None:
        if customer.id in self.customers:  # one message per customer per action and night
            return
        settings = self.night.rt.settings
        rendered = render_message(
            self.night.rt.templates, self.kind, channel, customer.locale, context
        )
        attachment = None
        if channel is ReplyChannel.LETTER:
            name = key.replace(":", "-") + ".html"
            attachment = write_attachment(settings.letters_dir / name, rendered.body.encode())
        self.customers.add(customer.id)
        self.refs[key] = customer.ref
        self.drafts.append(
            Draft(
                key=key,
                customer_id=customer.id,
                case_id=case_id,
                stage=self.stage,
                kind=self.kind,
                channel=channel,
                recipient=address_for(customer, channel) or "",  # type: ignore[arg-type]
                subject=rendered.subject,
                body=rendered.body,
                attachment=attachment,
            )
        )

    def queue(self, session: Session, report: ActionReport) -> None:
        """Queue the batch's drafts; note those that were new (not queued by an earlier run)."""
        settings, night = self.night.rt.settings, self.night
        try:
            added = queue_drafts(
                session,
                self.drafts,
                sender_email=settings.sender_email,
                automatic=night.rt.channels,
                at=night.now,
            )
        except BaseException:
            for draft in self.drafts:
                if draft.attachment is not None:
                    draft.attachment.unlink(missing_ok=True)
            raise
        for draft in self.drafts:
            if draft.key in added:
                report.note(self.refs[draft.key], draft.channel.value)


# --- the actions --------------------------------------------------------------------------------


def reminder_key(case_id: Any, number: Any, sequence: Any) -> Any:
    """The key of a check-in's reminder, one per version of the check-in. Given strings, a
    string; given SQL string expressions, the same key as a SQL expression."""
    return "case-" + case_id + ":checkin-" + number + ":reminder:" + sequence


def remind_checkins(night: Night, progress: Progress | None = None) -> ActionReport:
    """A reminder before each check-in (seed 004), on the reply channel where it can go."""
    report = ActionReport("remind_checkins", "Check-in reminders")
    horizon = night.now + timedelta(hours=night.figures.reminder_hours_before)
    # The key in SQL, for the check "reminded already": the same function as in Python.
    key = reminder_key(
        cast(models.Case.id, String),
        cast(models.CheckIn.number, String),
        cast(models.CheckIn.sequence, String),
    )
    query = (
        select(models.CheckIn, models.Case, models.Customer, models.Incident)
        .join(models.Case, models.CheckIn.case_id == models.Case.id)
        .join(models.Customer, models.Case.customer_id == models.Customer.id)
        .join(models.Incident, models.Case.incident_id == models.Incident.id)
        .where(
            models.CheckIn.status == CheckinStatus.SCHEDULED,
            models.CheckIn.starts_at > night.now,
            models.CheckIn.starts_at <= horizon,
            models.Case.state != CaseState.CLOSED,
            ~exists().where(models.Message.key == key),
            _may_contact(marketing=False),
            _under_cap(night),
        )
    )
    for session, rows in _batches(night, query, models.CheckIn.id, progress):
        report.candidates += len(rows)
        drafting = _Drafting(night, Stage.REENGAGE, MessageKind.CHECKIN_REMINDER)
        for checkin, case, customer, incident in rows:
            channel = _channel(
                MessageKind.CHECKIN_REMINDER,
                customer,
                case.reply_channel,
                customer.preferred_channel,
            )
            if channel is None:
                continue  # staff agreed the dates in person; they remind the same way
            context = customer_context(
                night.rt.settings,
                customer,
                incident=incident,
                checkins=[checkin.starts_at],
                now=night.now,
            )
            drafting.add(
                reminder_key(str(case.id), str(checkin.number), str(checkin.sequence)),
                customer,
                channel,
                context,
                case_id=case.id,
            )
        drafting.queue(session, report)
    return report


def update_progress(night: Night, progress: Progress | None = None) -> ActionReport:
    """A progress update for every unfinished case not heard from in the policy's interval:
    what was done, what comes next, when they hear again (seed 001)."""
    report = ActionReport("update_progress", "Progress updates")
    since = night.now - timedelta(days=night.figures.progress_every_days)
    query = (
        select(models.Case, models.Customer)
        .join(models.Customer, models.Case.customer_id == models.Customer.id)
        .where(
            models.Case.state != CaseState.CLOSED,
            or_(models.Case.decision.is_(None), models.Case.decision != Decision.DO_NOT_PURSUE),
            _unfinished(),
            models.Case.opened_at <= since,
            ~exists().where(
                models.Message.case_id == models.Case.id, models.Message.created_at > since
            ),
            _may_contact(marketing=False),
            _under_cap(night),
        )
    )
    purpose = f"progress:{night.today}"
    _write_about_cases(
        night, query, Stage.FOLLOW_UP, MessageKind.PROGRESS_UPDATE, purpose, report, progress
    )
    return report


def thank(night: Night, progress: Progress | None = None) -> ActionReport:
    """A thank-you note after a case is resolved and closed (seed 001's follow-up after
    delivery), once, for cases closed within the policy's window."""
    report = ActionReport("thank", "Thank-you notes")
    since = night.now - timedelta(days=night.figures.thank_you_within_days)
    withdrawn = exists().where(
        models.CaseEvent.case_id == models.Case.id, models.CaseEvent.kind == WITHDRAWN
    )
    query = (
        select(models.Case, models.Customer)
        .join(models.Customer, models.Case.customer_id == models.Customer.id)
        .where(
            models.Case.state == CaseState.CLOSED,
            models.Case.closed_at >= since,
            models.Case.decision.in_([Decision.RECOVER, Decision.SMOOTH_OVER]),
            ~withdrawn,  # the customer asked to stop, or left: nothing to thank them for
            # Only when really resolved: the put-right the apology promised is confirmed.
            ~exists().where(
                models.StaffAction.case_id == models.Case.id,
                models.StaffAction.kind == PUT_RIGHT_ACTION,
                models.StaffAction.status == "open",
            ),
            ~exists().where(
                models.Message.case_id == models.Case.id,
                models.Message.kind == MessageKind.THANK_YOU,
            ),
            _may_contact(marketing=False),
            _under_cap(night),
        )
    )
    _write_about_cases(
        night, query, Stage.REENGAGE, MessageKind.THANK_YOU, "thank_you", report, progress
    )
    return report


def _lapsed(night: Night) -> ColumnElement[bool]:
    """Past the policy's period without buying (or, never having bought, without contact)."""
    cutoff = night.today - timedelta(days=night.figures.lapsed_after_days)
    customer = models.Customer
    return or_(
        customer.last_purchase_on < cutoff,
        and_(customer.last_purchase_on.is_(None), customer.last_contact_on < cutoff),
    )


def _in_or_just_after_a_case(night: Night) -> ColumnElement[bool]:
    """A case open, or closed so lately that its thank-you comes first."""
    just_closed = night.now - timedelta(days=night.figures.thank_you_within_days)
    return exists().where(
        models.Case.customer_id == models.Customer.id,
        or_(models.Case.state != CaseState.CLOSED, models.Case.closed_at >= just_closed),
    )


def ask_why_they_left(night: Night, progress: Progress | None = None) -> ActionReport:
    """The exit questions (seeds 002 and 004: why did you leave, where do you buy now, what
    would bring you back, what would keep you), once ever, to a customer who left: lost after
    a second failure, or lapsed past the policy's period. Within consent (as marketing: they
    did not write to us) and the frequency cap; with a signed link to the answer form."""
    report = ActionReport("ask_why_they_left", "Exit questions")
    customer = models.Customer
    query = select(customer).where(
        or_(customer.winback_barred == "lost", _lapsed(night)),
        # The abusive are never written to; the lost are, this once (consent still applies).
        consent.may_contact(marketing=True, asking_why=True),
        ~_in_or_just_after_a_case(night),
        ~exists().where(
            models.Message.customer_id == customer.id,
            models.Message.kind == MessageKind.EXIT_QUESTIONS,
        ),
        _under_cap(night),
    )
    settings = night.rt.settings
    for session, rows in _batches(night, query, customer.id, progress):
        report.candidates += len(rows)
        drafting = _Drafting(night, Stage.REENGAGE, MessageKind.EXIT_QUESTIONS)
        for (row,) in rows:
            channel = _channel(MessageKind.EXIT_QUESTIONS, row, row.preferred_channel)
            if channel is None:
                continue
            context = customer_context(
                settings, row, now=night.now, answer_link=answers_link(settings, row.ref)
            )
            drafting.add(f"customer-{row.id}:exit_questions", row, channel, context)
        drafting.queue(session, report)
    return report


def offer_winbacks(night: Night, progress: Progress | None = None) -> ActionReport:
    """A win-back offer to each lapsed or at-risk customer (seed 002's warning signs: stopped
    buying, stopped answering calls, missed meetings), at most once per policy window, on their
    preferred or last-used channel; never during an open case."""
    report = ActionReport("offer_winbacks", "Win-back offers")
    figures = night.figures
    customer = models.Customer
    misses = _misses(night)
    last_channel = (
        select(models.Message.channel)
        .where(models.Message.customer_id == customer.id)
        .order_by(models.Message.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    query = select(customer, last_channel).where(
        or_(
            _lapsed(night),
            customer.unanswered_calls >= figures.unanswered_calls,
            misses >= night.rt.policy.checkins.misses_before_call,
        ),
        # Not during a recovery, nor right after one: its thank-you comes first.
        ~_in_or_just_after_a_case(night),
        # Nor right after the exit questions: their answers come first.
        ~exists().where(
            models.Message.customer_id == customer.id,
            models.Message.kind == MessageKind.EXIT_QUESTIONS,
            models.Message.created_at >= night.now - ANSWERS_BEFORE_WINBACK,
        ),
        ~exists().where(
            models.Message.customer_id == customer.id,
            models.Message.kind == MessageKind.WINBACK_OFFER,
            models.Message.created_at >= night.now - timedelta(days=figures.winback_every_days),
        ),
        _may_contact(marketing=True),
        _under_cap(night),
    )
    currency = night.rt.policy.currency
    offer_figures = figures.winback_offer
    for session, rows in _batches(night, query, customer.id, progress):
        report.candidates += len(rows)
        drafting = _Drafting(night, Stage.REENGAGE, MessageKind.WINBACK_OFFER)
        for row, last in rows:
            channel = _channel(MessageKind.WINBACK_OFFER, row, row.preferred_channel, last)
            if channel is None:
                continue
            offer = {
                "kind": offer_figures.kind.value,
                "value": offer_figures.value_for(row.annual_value),
                "currency": currency,
                "trial_days": night.rt.policy.empower.trial_days,
            }
            context = customer_context(night.rt.settings, row, offer=offer, now=night.now)
            drafting.add(f"customer-{row.id}:winback:{night.today}", row, channel, context)
        drafting.queue(session, report)
    return report


def escalate_service_levels(night: Night, progress: Progress | None = None) -> ActionReport:
    """A manager action for each open case past a service level: no reply within the first
    response time, or recovery unfinished after the resolution time."""
    report = ActionReport("escalate_service_levels", "Service-level escalations")
    levels = night.rt.policy.service_levels
    answered = exists().where(
        models.Message.case_id == models.Case.id,
        models.Message.status.in_([MessageStatus.SENT, MessageStatus.HANDLED]),
    )
    late_reply = and_(models.Case.first_response_due < night.now, ~answered)
    late_resolution = and_(
        models.Case.opened_at < night.now - timedelta(days=levels.resolution_days), _unfinished()
    )
    query = (
        select(models.Case, models.Customer, models.Incident.ref, late_reply, late_resolution)
        .join(models.Customer, models.Case.customer_id == models.Customer.id)
        .join(models.Incident, models.Case.incident_id == models.Incident.id)
        .where(
            models.Case.state != CaseState.CLOSED,
            # An abusive customer's case is a manager's already; frontline contact is blocked.
            or_(models.Case.decision.is_(None), models.Case.decision != Decision.DO_NOT_PURSUE),
            or_(late_reply, late_resolution),
        )
    )
    for session, rows in _batches(night, query, models.Case.id, progress):
        report.candidates += len(rows)
        for case, customer, ref, reply_late, resolution_late in rows:
            breaches = []
            if reply_late:
                breaches.append(
                    (
                        "first_response",
                        f"No reply has reached {customer.name} about {ref}, due by "
                        f"{case.first_response_due:%Y-%m-%d %H:%M} UTC "
                        f"({levels.first_response_hours:g} h): make sure they hear from us today.",
                    )
                )
            if resolution_late:
                breaches.append(
                    (
                        "resolution",
                        f"The recovery of {ref} ({customer.name}) is unfinished "
                        f"{levels.resolution_days:g} days after it opened: see what holds it "
                        f"up (`amends case {ref}`).",
                    )
                )
            for level, instructions in breaches:
                if add_action(
                    session,
                    customer_id=customer.id,
                    case_id=case.id,
                    key=f"case-{case.id}:sla:{level}",
                    kind=f"sla_{level}",
                    role="manager",
                    instructions=instructions,
                    due_at=night.now,
                ):
                    report.note(customer.ref, "staff")
    return report


def ask_checkin_outcomes(night: Night, progress: Progress | None = None) -> ActionReport:
    """A staff action for each check-in that took place a day ago or more with no outcome
    recorded: held (with the customer's feedback) or missed (and moved)."""
    report = ActionReport("ask_checkin_outcomes", "Check-ins to record")
    query = (
        select(models.CheckIn, models.Case, models.Customer, models.Incident.ref)
        .join(models.Case, models.CheckIn.case_id == models.Case.id)
        .join(models.Customer, models.Case.customer_id == models.Customer.id)
        .join(models.Incident, models.Case.incident_id == models.Incident.id)
        .where(
            models.CheckIn.status == CheckinStatus.SCHEDULED,
            models.CheckIn.starts_at < night.now - timedelta(days=1),
            # Older ones are past remembering; asking about them would bury staff.
            models.CheckIn.starts_at >= night.now - ASK_WITHIN,
            models.Case.state != CaseState.CLOSED,
        )
    )
    for session, rows in _batches(night, query, models.CheckIn.id, progress):
        report.candidates += len(rows)
        for checkin, case, customer, ref in rows:
            if add_action(
                session,
                customer_id=customer.id,
                case_id=case.id,
                key=f"case-{case.id}:checkin-{checkin.number}:record:{checkin.sequence}",
                kind="record_checkin",
                role="frontline",
                instructions=(
                    f"Check-in {checkin.number} with {customer.name} was on "
                    f"{checkin.starts_at:%Y-%m-%d %H:%M} UTC. Record it: `amends checkin {ref} "
                    f"--held --feedback TEXT --by NAME`, or `--missed` to move it."
                ),
                due_at=night.now,
            ):
                report.note(customer.ref, "staff")
    return report


# In this order: staff work first, then messages by importance, so that the frequency cap
# gives way to a check-in reminder before a win-back offer.
ACTIONS: tuple[Callable[[Night, Progress | None], ActionReport], ...] = (
    escalate_service_levels,
    ask_checkin_outcomes,
    remind_checkins,
    update_progress,
    thank,
    ask_why_they_left,
    offer_winbacks,
)


@dataclass
class NightReport:
    """What a night did: each action's report, and what was sent (None: not sent yet)."""

    actions: list[ActionReport]
    sent: DrainReport | None = None
    resumed: int = 0  # runs set aside for an approval, resumed tonight

    @property
    def contacted(self) -> list[tuple[str, str, str]]:
        """(customer ref, action, channel) for the customers named in the reports."""
        return [(ref, r.title, channel) for r in self.actions for ref, channel in r.contacted]

    @property
    def done(self) -> int:
        return sum(r.done for r in self.actions)

    @property
    def staff_actions(self) -> int:
        """Staff actions the night opened (messages handed to staff are in ``sent``)."""
        return sum(r.staff for r in self.actions)


def run_night(
    rt: Runtime,
    now: datetime | None = None,
    progress: Callable[[str], Progress | None] | None = None,
) -> NightReport:
    """Every nightly action in order, without sending: the plain way to run the night (the
    flow runs the same actions as tasks). ``progress(action)`` gives each action's callback."""
    night = Night(rt, now or models.utcnow())
    return NightReport(
        [action(night, progress(action.__name__) if progress else None) for action in ACTIONS]
    )
