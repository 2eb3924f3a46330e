"""The nightly run against a real database: who is written to, on which channel, how often,
and who never is."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from factories import make_incident, recover
from sqlalchemy import select

from amends.delivery.channels import RecordingAdapter
from amends.delivery.outbox import drain
from amends.domain import STAGES, MessageKind, MessageStatus, ReplyChannel, Stage
from amends.nightly.aftercare import close_case, record_checkin
from amends.nightly.reengagement import ActionReport, run_night
from amends.recovery.intake import open_case
from amends.recovery.policy import FrequencyCap
from amends.recovery.stages import run_stage
from amends.reporting.casebook import case_outcome
from amends.runtime import Runtime
from amends.storage import models

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
LONG_AGO = date(2026, 1, 10)  # beyond the policy's 90 days of silence
RECENTLY = date(2026, 11, 20)


def night(rt: Runtime, now: datetime = NOW) -> dict[str, ActionReport]:
    """One night as the flow runs it: every action, then the outbox drained."""
    reports = run_night(rt, now).actions
    drain(rt.db, rt.channels, claim_timeout=timedelta(minutes=10))
    return {report.action: report for report in reports}


def add_customer(rt: Runtime, ref: str, *, asked_why: bool = True, **fields: Any) -> int:
    """A customer; by default one asked the exit questions a month ago, so that a win-back is
    due (it waits for their answers)."""
    values: dict[str, Any] = {
        "name": f"Customer {ref}",
        "email": f"{ref.lower()}@example.com",
        "locale": "en",
        "annual_value": 2000.0,
        "last_purchase_on": LONG_AGO,
        "last_contact_on": LONG_AGO,
    }
    values.update(fields)
    with rt.db.session() as session:
        customer = models.Customer(ref=ref, **values)
        session.add(customer)
        session.flush()
        if asked_why:
            session.add(
                models.Message(
                    customer_id=customer.id,
                    key=f"customer-{customer.id}:exit_questions",
                    stage=Stage.REENGAGE,
                    kind=MessageKind.EXIT_QUESTIONS,
                    channel=ReplyChannel.EMAIL,
                    recipient=values["email"] or "",
                    body="(asked before)",
                    status=MessageStatus.SENT,
                    created_at=NOW - timedelta(days=30),
                    sent_at=NOW - timedelta(days=30),
                )
            )
        return customer.id


def sent_to(recorder: RecordingAdapter, address: str) -> list[str]:
    return [m.subject for m in recorder.delivered if m.recipient == address]


def messages(rt: Runtime, **where: Any) -> list[models.Message]:
    with rt.db.session() as session:
        query = select(models.Message).filter_by(**where).order_by(models.Message.id)
        return list(session.scalars(query))


def checkins(rt: Runtime, case_id: int) -> list[models.CheckIn]:
    with rt.db.session() as session:
        query = select(models.CheckIn).filter_by(case_id=case_id).order_by(models.CheckIn.number)
        return list(session.scalars(query))


def with_policy(rt: Runtime, section: str, **figures: Any) -> Runtime:
    part = getattr(rt.policy, section).model_copy(update=figures)
    return replace(rt, policy=rt.policy.model_copy(update={section: part}))


# --- win-back offers ----------------------------------------------------------------------------


def test_a_lapsed_customer_gets_one_winback_offer_and_a_second_run_sends_nothing(
    rt: Runtime, recorder: RecordingAdapter
) -> None:
    add_customer(rt, "C-1", annual_value=2000.0)
    add_customer(rt, "C-2", last_purchase_on=RECENTLY, last_contact_on=RECENTLY)

    first = night(rt)
    assert first["offer_winbacks"].done == 1
    assert first["offer_winbacks"].contacted == [("C-1", "email")]
    (offer,) = recorder.delivered
    assert offer.recipient == "c-1@example.com"
    assert offer.marketing  # so it carries List-Unsubscribe
    assert "a service credit of €100.00" in offer.body  # 5 % of 2,000 a year

    recorder.delivered.clear()
    second = night(rt)
    assert recorder.delivered == []
    assert all(report.done == 0 for report in second.values())


def test_a_winback_offer_goes_once_per_policy_window(
    rt: Runtime, recorder: RecordingAdapter
) -> None:
    add_customer(rt, "C-1")
    night(rt)
    night(rt, NOW + timedelta(days=30))
    assert len(sent_to(recorder, "c-1@example.com")) == 1
    night(rt, NOW + timedelta(days=181))
    assert len(sent_to(recorder, "c-1@example.com")) == 2


@pytest.mark.parametrize(
    "fields",
    [
        {"last_purchase_on": RECENTLY, "unanswered_calls": 3},  # stopped answering calls
        {"last_purchase_on": None, "last_contact_on": LONG_AGO},  # silent, no purchase on file
        {"last_purchase_on": LONG_AGO, "last_contact_on": RECENTLY},  # stopped buying
    ],
    ids=["unanswered-calls", "no-contact", "stopped-buying"],
)
def test_each_warning_sign_brings_a_winback_offer(
    rt: Runtime, recorder: RecordingAdapter, fields: dict[str, Any]
) -> None:
    add_customer(rt, "C-1", **fields)
    night(rt)
    assert len(sent_to(recorder, "c-1@example.com")) == 1


def test_missed_checkins_are_a_warning_sign_once_the_case_has_been_closed_a_while(
    rt: Runtime, recorder: RecordingAdapter
) -> None:
    case_id = recover(rt)
    with rt.db.session() as session:
        session.execute(
            models.Customer.__table__.update().values(
                last_purchase_on=RECENTLY, last_contact_on=RECENTLY
            )
        )
        for checkin in session.scalars(select(models.CheckIn).filter_by(case_id=case_id)):
            checkin.misses = 1
    close_case(rt, "INC-1001", reason="stopped coming", actor="Ana", resolved=False)
    recorder.delivered.clear()
    right_after = night(rt, datetime.now(UTC))
    # Withdrawn: no thank-you; and no offer straight after a recovery.
    assert (right_after["thank"].done, right_after["offer_winbacks"].done) == (0, 0)
    later = night(rt, datetime.now(UTC) + timedelta(days=15))
    assert later["offer_winbacks"].contacted == [("C-42", "email")]


def test_check_ins_held_in_the_end_are_no_warning_sign(rt: Runtime) -> None:
    case_id = recover(rt)
    with rt.db.session() as session:
        for checkin in session.scalars(select(models.CheckIn).filter_by(case_id=case_id)):
            checkin.misses, checkin.status = 1, "held"
        session.get(models.Case, case_id).state = "closed"
        session.get(models.Case, case_id).closed_at = datetime.now(UTC) - timedelta(days=20)
    assert night(rt, datetime.now(UTC))["offer_winbacks"].done == 0


def test_an_active_customer_or_one_with_an_open_case_gets_no_offer(
    rt: Runtime, recorder: RecordingAdapter
) -> None:
    add_customer(rt, "C-1", last_purchase_on=RECENTLY)
    recover(rt, customer={"ref": "C-2", "email": "c2@example.com"})
    with rt.db.session() as session:  # lapsed, but in the middle of a recovery
        session.execute(
            models.Customer.__table__.update()
            .where(models.Customer.ref == "C-2")
            .values(last_purchase_on=LONG_AGO)
        )
    recorder.delivered.clear()
    reports = night(rt, datetime.now(UTC))
    assert reports["offer_winbacks"].done == 0


SUPPRESSION_RULES = {
    "do-not-contact": {"do_not_contact": True},
    "abusive": {"winback_barred": "abusive"},
    "lost": {"winback_barred": "lost"},
}


@pytest.mark.parametrize("rule", [*SUPPRESSION_RULES, "opted-out", "suppressed-phone"])
def test_each_suppression_rule_keeps_a_lapsed_customer_out(
    rt: Runtime, recorder: RecordingAdapter, rule: str
) -> None:
    add_customer(rt, "C-1", phone="+34612345678", **SUPPRESSION_RULES.get(rule, {}))
    with rt.db.session() as session:
        if rule == "opted-out":  # addresses are matched without regard to case
            session.add(
                models.Suppression(address="c-1@example.com", scope="marketing", reason="opt_out")
            )
        if rule == "suppressed-phone":
            session.add(models.Suppression(address="+34612345678", scope="all", reason="complaint"))
    add_customer(rt, "C-2")  # the control: lapsed and reachable
    night(rt)
    assert sent_to(recorder, "c-1@example.com") == []
    assert len(sent_to(recorder, "c-2@example.com")) == 1


def test_a_winback_goes_by_the_preferred_channel_and_to_staff_without_an_adapter(
    rt: Runtime, recorder: RecordingAdapter
) -> None:
    add_customer(rt, "C-1", preferred_channel="letter", postal_address="Calle Mayor 12\nMadrid")
    reports = night(rt)
    assert reports["offer_winbacks"].contacted == [("C-1", "letter")]
    (letter,) = messages(rt, kind="winback_offer")
    assert letter.status == "awaiting_staff" and letter.case_id is None
    assert letter.attachment and letter.attachment.endswith(".html")
    with rt.db.session() as session:
        action = session.scalars(select(models.StaffAction)).one()
    assert action.kind == "print_letter" and action.customer_id == letter.customer_id


# --- check-ins ----------------------------------------------------------------------------------


def test_a_checkin_reminder_goes_before_each_checkin_once(
    rt: Runtime, recorder: RecordingAdapter
) -> None:
    case_id = recover(rt)
    first = checkins(rt, case_id)[0]
    recorder.delivered.clear()
    eve = first.starts_at - timedelta(hours=20)

    assert night(rt, eve)["remind_checkins"].done == 1
    (reminder,) = recorder.delivered
    assert reminder.subject.startswith("Reminder: our check-in on")
    assert not reminder.marketing
    # The night's message is on the case's timeline, at the night's moment.
    queued = [e for e in case_outcome(rt.db, case_id).timeline if e.kind == "message"]
    assert (queued[-1].text, queued[-1].at) == ("Checkin reminder by email queued.", eve)
    again = night(rt, eve + timedelta(hours=1))["remind_checkins"]
    assert (again.candidates, again.done) == (0, 0)  # the key in SQL finds it reminded
    # Two days before is the policy's horizon: the second check-in is not due yet.
    assert len(recorder.delivered) == 1


def test_a_missed_checkin_moves_with_a_new_sequence_and_its_reminder_goes_again(
    rt: Runtime, recorder: RecordingAdapter
) -> None:
    case_id = recover(rt)
    first = checkins(rt, case_id)[0]
    with rt.db.session() as session:  # it was yesterday
        session.get(models.CheckIn, first.id).starts_at = datetime.now(UTC) - timedelta(days=1)
    recorder.delivered.clear()

    record = record_checkin(rt, "INC-1001", held=False, actor="Ana")
    assert record.number == 1 and not record.call_asked
    moved = checkins(rt, case_id)[0]
    assert moved.sequence == 1 and moved.misses == 1 and moved.status == "scheduled"
    assert moved.starts_at > datetime.now(UTC) and moved.starts_at.weekday() < 5
    drain(rt.db, rt.channels, claim_timeout=timedelta(minutes=10))
    (notice,) = recorder.delivered
    assert notice.subject.startswith("Our check-in has moved to")
    calendar = notice.attachment.read_text()
    assert "METHOD:REQUEST" in calendar and "SEQUENCE:1" in calendar
    assert f"UID:{first.uid}" in calendar

    recorder.delivered.clear()
    night(rt, moved.starts_at - timedelta(hours=20))
    assert [m.subject[:9] for m in recorder.delivered] == ["Reminder:"]


def test_two_missed_checkins_bring_a_person_in(rt: Runtime) -> None:
    case_id = recover(rt)
    for _ in range(2):
        with rt.db.session() as session:
            checkin = session.scalars(
                select(models.CheckIn).filter_by(case_id=case_id, number=1)
            ).one()
            checkin.starts_at = datetime.now(UTC) - timedelta(hours=2)
        record = record_checkin(rt, "INC-1001", held=False, number=1, actor="Ana")
    assert record.misses == 2 and record.call_asked
    with rt.db.session() as session:
        kinds = set(session.scalars(select(models.StaffAction.kind)))
    assert "checkins_missed" in kinds


def test_held_checkins_keep_feedback_and_the_last_one_closes_the_case_then_thanks(
    rt: Runtime, recorder: RecordingAdapter
) -> None:
    case_id = recover(rt)
    # A night after the first check-in asks staff to record it...
    first = checkins(rt, case_id)[0]
    assert night(rt, first.starts_at + timedelta(days=2))["ask_checkin_outcomes"].done == 1
    for number in range(1, len(checkins(rt, case_id)) + 1):
        record = record_checkin(
            rt, "INC-1001", held=True, actor="Ana", feedback=f"all good, week {number}"
        )
    # ...and recording it answers that request, so the case can close.
    with rt.db.session() as session:
        asks = session.scalars(select(models.StaffAction).filter_by(kind="record_checkin"))
        assert [a.status for a in asks] == ["done"]
    assert record.case_closed
    assert checkins(rt, case_id)[0].feedback == "all good, week 1"
    recorder.delivered.clear()
    reports = night(rt, datetime.now(UTC))
    assert reports["thank"].done == 1
    assert [m.subject for m in recorder.delivered] == ["Thank you, Rodolfo"]
    assert night(rt, datetime.now(UTC))["thank"].done == 0


def test_closing_a_case_cancels_its_remaining_checkins_in_the_calendar(
    rt: Runtime, recorder: RecordingAdapter
) -> None:
    case_id = recover(rt)
    before = checkins(rt, case_id)
    recorder.delivered.clear()
    assert close_case(rt, "INC-1001", reason="customer is happy", actor="Ana") == len(before)
    after = checkins(rt, case_id)
    assert {c.status for c in after} == {"cancelled"}
    assert [c.sequence for c in after] == [c.sequence + 1 for c in before]
    drain(rt.db, rt.channels, claim_timeout=timedelta(minutes=10))
    (notice,) = recorder.delivered
    calendar = notice.attachment.read_text()
    assert "METHOD:CANCEL" in calendar
    assert calendar.count("BEGIN:VEVENT") == len(before)
    assert calendar.count("STATUS:CANCELLED") == len(before)


# --- cases --------------------------------------------------------------------------------------


def test_an_abusive_customer_s_case_is_not_escalated_as_unanswered(rt: Runtime) -> None:
    recover(rt, abusive=True)
    later = datetime.now(UTC) + timedelta(days=2)
    assert night(rt, later)["escalate_service_levels"].done == 0


def test_a_case_past_its_first_response_time_goes_to_a_manager_once(rt: Runtime) -> None:
    # A phone complaint: the call-back waits for staff, so no reply has reached the customer.
    case_id = recover(rt, channel="phone")
    later = datetime.now(UTC) + timedelta(days=2)
    assert night(rt, later)["escalate_service_levels"].done == 1
    assert night(rt, later)["escalate_service_levels"].done == 0
    with rt.db.session() as session:
        action = session.scalars(
            select(models.StaffAction).filter_by(case_id=case_id, kind="sla_first_response")
        ).one()
    assert action.role == "manager" and "INC-1001" in action.instructions


def test_an_unfinished_case_hears_from_us_every_week(
    rt: Runtime, recorder: RecordingAdapter
) -> None:
    case_id = open_case(rt, make_incident())
    for stage in STAGES[:3]:  # stuck after monitor
        run_stage(rt, case_id, stage)
    week = datetime.now(UTC) + timedelta(days=8)
    reports = night(rt, week)
    assert reports["update_progress"].done == 1
    assert reports["escalate_service_levels"].done == 1  # no reply within 24 hours either
    assert [m.kind for m in messages(rt, case_id=case_id)] == ["progress_update"]
    assert night(rt, week + timedelta(days=1))["update_progress"].done == 0
    assert night(rt, week + timedelta(days=8))["update_progress"].done == 1


def test_the_frequency_cap_puts_a_checkin_reminder_before_a_thank_you_note(
    rt: Runtime, recorder: RecordingAdapter
) -> None:
    case_id = recover(rt)
    first = checkins(rt, case_id)[0]
    # Another case of the same customer, closed yesterday: a thank-you is due too.
    other = recover(rt, ref="INC-1002", severity="low", fault="customer", complaint_message_id=None)
    with rt.db.session() as session:
        session.get(models.Case, other).closed_at = first.starts_at - timedelta(days=2)
    capped = with_policy(rt, "nightly", frequency_cap=FrequencyCap(messages=1, days=7))
    recorder.delivered.clear()
    reports = night(capped, first.starts_at - timedelta(hours=20))
    assert reports["remind_checkins"].done == 1
    assert reports["thank"].done == 0  # held back by the cap, not lost: it goes later
    reports = night(rt, first.starts_at + timedelta(days=7, hours=1))
    assert reports["thank"].done == 1
