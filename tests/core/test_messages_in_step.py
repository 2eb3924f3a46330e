"""Messages in order and in step (issue 18), through the stages and the nightly run on a real
database: the apology promises what is queued after it, the case closes with one closing
message and only once its put-right is done, and the exit questions go once to a customer
who left."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from factories import recover
from sqlalchemy import select

from amends.delivery.channels import RecordingAdapter
from amends.delivery.outbox import drain
from amends.domain import MessageKind, ReplyChannel
from amends.errors import AmendsError
from amends.messages.catalogue import case_context, render_message
from amends.messages.rendering import plain_text
from amends.nightly.aftercare import close_case, confirm_put_right, record_checkin
from amends.nightly.reengagement import ActionReport, run_night
from amends.recovery.staff import complete_action
from amends.runtime import Runtime
from amends.storage import models

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def night(rt: Runtime, now: datetime) -> dict[str, ActionReport]:
    reports = run_night(rt, now).actions
    drain(rt.db, rt.channels, claim_timeout=timedelta(minutes=10))
    return {report.action: report for report in reports}


def messages(rt: Runtime, case_id: int) -> list[tuple[str, str, str]]:
    """(kind, channel, plain text) of the case's messages, in the order they were queued."""
    with rt.db.session() as session:
        rows = session.scalars(
            select(models.Message).where(models.Message.case_id == case_id).order_by("id")
        )
        return [(m.kind.value, m.channel.value, plain_text(m.body)) for m in rows]


def actions(rt: Runtime, case_id: int, status: str = "open") -> dict[str, int]:
    with rt.db.session() as session:
        rows = session.execute(
            select(models.StaffAction.kind, models.StaffAction.id).where(
                models.StaffAction.case_id == case_id, models.StaffAction.status == status
            )
        )
        return dict(rows.all())


def state(rt: Runtime, case_id: int) -> str:
    with rt.db.session() as session:
        return session.get(models.Case, case_id).state.value


def one_line(text: str) -> str:
    return " ".join(text.split())


# --- the apology promises the step queued after it -----------------------------------------------


def test_an_email_apology_announces_the_invitation_that_follows_it(rt: Runtime) -> None:
    case_id = recover(rt)
    sent = messages(rt, case_id)
    assert [(kind, channel) for kind, channel, _ in sent] == [
        ("apology", "email"),
        ("checkin_invitation", "email"),
    ]
    apology = one_line(sent[0][2])
    assert "An invitation to a short first check-in follows this email" in apology
    assert "We will be in touch" not in apology
    assert "agree_checkins" not in actions(rt, case_id)


def test_a_preview_of_a_case_s_apology_shows_the_step_it_promised(rt: Runtime) -> None:
    case_id = recover(rt)
    with rt.db.session() as session:
        case = session.get(models.Case, case_id)
        templates_context = case_context(session, case, rt.settings)
    assert templates_context["next_step"] == "invitation"
    text = render_message(rt.templates, MessageKind.APOLOGY, ReplyChannel.EMAIL, "en",
                          templates_context).body  # fmt: skip
    assert "An invitation to a short first check-in follows" in one_line(plain_text(text))


@pytest.mark.parametrize("channel", ["sms", "letter"])
def test_off_email_the_apology_says_we_will_be_in_touch_as_staff_are_asked_to(
    rt: Runtime, channel: str
) -> None:
    case_id = recover(rt, channel=channel)
    (apology,) = [text for kind, _, text in messages(rt, case_id) if kind == "apology"]
    assert "We will be in touch to agree a short check-in" in one_line(apology)
    assert "invitation" not in apology
    assert "agree_checkins" in actions(rt, case_id)
    assert all(kind != "checkin_invitation" for kind, _, _ in messages(rt, case_id))


def test_smoothing_over_our_own_fault_admits_it_and_promises_no_check_in(rt: Runtime) -> None:
    # The dry cleaner's lost suit: our fault, a customer worth little (issue 18).
    case_id = recover(rt, customer={"annual_value": 40})
    with rt.db.session() as session:
        assert session.get(models.Case, case_id).decision.value == "smooth_over"
        checkin = select(models.CheckIn.id).where(models.CheckIn.case_id == case_id)
        assert session.scalar(checkin) is None
    (apology,) = [one_line(text) for kind, _, text in messages(rt, case_id) if kind == "apology"]
    assert "We let you down, and we are sorry." in apology
    assert "disappointed you" not in apology
    assert "If anything is still not right, reply to this email" in apology
    assert "check-in" not in apology


# --- one closing message, when the case is really resolved ---------------------------------------

SUIT = {
    "put_right": "We are replacing your wedding suit with a new one of your choice.",
    "customer": {"annual_value": 40},
}


def test_the_thank_you_waits_until_the_put_right_is_done(
    rt: Runtime, recorder: RecordingAdapter
) -> None:
    case_id = recover(rt, **SUIT)
    assert "confirm_put_right" in actions(rt, case_id)
    assert state(rt, case_id) == "awaiting_staff"  # not closed while the suit is missing
    later = datetime.now(UTC) + timedelta(minutes=2)
    assert night(rt, later)["thank"].done == 0
    with pytest.raises(AmendsError, match="not recorded as done; `amends done INC-1001"):
        close_case(rt, "INC-1001", reason="resolved", actor="Ana")

    assert confirm_put_right(rt, "INC-1001", actor="Ana") is True  # nothing else was left
    assert "confirm_put_right" in actions(rt, case_id, status="done")
    with pytest.raises(AmendsError, match="recorded as done by Ana"):
        confirm_put_right(rt, "INC-1001", actor="Ana")
    recorder.delivered.clear()
    assert night(rt, later + timedelta(minutes=1))["thank"].done == 1
    assert night(rt, later + timedelta(days=1))["thank"].done == 0
    assert [m.subject for m in recorder.delivered] == ["Thank you, Rodolfo"]


def test_a_progress_update_says_the_put_right_is_still_under_way(
    rt: Runtime, recorder: RecordingAdapter
) -> None:
    recover(rt, **SUIT)
    recorder.delivered.clear()
    assert night(rt, datetime.now(UTC) + timedelta(days=8))["update_progress"].done == 1
    (update,) = recorder.delivered
    text = one_line(plain_text(update.body))
    assert "we started putting it right" in text
    assert "What comes next: we finish putting it right." in text


def test_staff_marking_the_put_right_action_done_counts_as_done(rt: Runtime) -> None:
    case_id = recover(rt, **SUIT)
    complete_action(rt.db, actions(rt, case_id)["confirm_put_right"], note="", actor="Ana")
    with rt.db.session() as session:
        case = session.get(models.Case, case_id)
        assert (case.put_right_done_by, case.state.value) == ("Ana", "closed")


def test_a_withdrawn_case_closes_with_its_put_right_open_and_gets_no_thanks(
    rt: Runtime, recorder: RecordingAdapter
) -> None:
    recover(rt, **SUIT)
    close_case(rt, "INC-1001", reason="the customer left", actor="Ana", resolved=False)
    recorder.delivered.clear()
    assert night(rt, datetime.now(UTC) + timedelta(minutes=2))["thank"].done == 0
    assert recorder.delivered == []


def test_closing_sends_one_closing_message_and_the_night_adds_no_second(
    rt: Runtime, recorder: RecordingAdapter
) -> None:
    case_id = recover(rt)
    recorder.delivered.clear()
    cancelled = close_case(rt, "INC-1001", reason="the customer is happy", actor="Ana")
    drain(rt.db, rt.channels, claim_timeout=timedelta(minutes=10))
    (closing,) = recorder.delivered
    assert closing.subject == "Thank you, Rodolfo"
    assert "METHOD:CANCEL" in closing.attachment.read_text()
    assert "cancelled the check-ins still in your calendar" in one_line(plain_text(closing.body))
    assert cancelled > 0
    for days in (0, 1, 2):
        assert night(rt, datetime.now(UTC) + timedelta(days=days, minutes=5))["thank"].done == 0
    assert len(recorder.delivered) == 1
    kinds = [kind for kind, _, _ in messages(rt, case_id)]
    assert kinds.count("thank_you") == 1 and "checkin_cancelled" not in kinds


def test_the_last_check_in_held_closes_the_case_and_thanks_once(
    rt: Runtime, recorder: RecordingAdapter
) -> None:
    case_id = recover(rt)
    with rt.db.session() as session:
        numbers = list(
            session.scalars(select(models.CheckIn.number).where(models.CheckIn.case_id == case_id))
        )
    for number in numbers:
        record_checkin(rt, "INC-1001", held=True, actor="Ana", number=number)
    recorder.delivered.clear()
    soon = datetime.now(UTC) + timedelta(minutes=5)
    assert [night(rt, soon + timedelta(days=d))["thank"].done for d in (0, 1)] == [1, 0]


# --- the exit questions, once, to a customer who left --------------------------------------------


def add_customer(rt: Runtime, ref: str, **fields: Any) -> None:
    values: dict[str, Any] = {
        "name": f"Ann {ref}",
        "email": f"{ref.lower()}@example.com",
        "last_purchase_on": date(2026, 1, 10),  # beyond the policy's 90 days
    }
    values.update(fields)
    with rt.db.session() as session:
        session.add(models.Customer(ref=ref, **values))


def kinds_sent(rt: Runtime, ref: str) -> list[str]:
    with rt.db.session() as session:
        return [
            kind.value
            for kind in session.scalars(
                select(models.Message.kind)
                .join(models.Customer, models.Message.customer_id == models.Customer.id)
                .where(models.Customer.ref == ref)
                .order_by(models.Message.id)
            )
        ]


def test_the_exit_questions_go_once_then_the_winback_waits_for_the_answers(rt: Runtime) -> None:
    add_customer(rt, "C-1")  # lapsed
    add_customer(rt, "C-2", last_purchase_on=date(2026, 11, 20))  # active
    first = night(rt, NOW)
    assert first["ask_why_they_left"].contacted == [("C-1", "email")]
    assert first["offer_winbacks"].done == 0
    assert night(rt, NOW + timedelta(days=7))["offer_winbacks"].done == 0
    later = night(rt, NOW + timedelta(days=15))
    assert later["offer_winbacks"].contacted == [("C-1", "email")]
    assert kinds_sent(rt, "C-2") == []
    night(rt, NOW + timedelta(days=200))
    assert kinds_sent(rt, "C-1").count("exit_questions") == 1


def test_a_lost_customer_is_asked_why_but_never_offered_a_winback(rt: Runtime) -> None:
    add_customer(rt, "C-1", winback_barred="lost", last_purchase_on=date(2026, 11, 20))
    add_customer(rt, "C-2", winback_barred="abusive")
    add_customer(rt, "C-3", do_not_contact=True)
    for days in (0, 15, 60):
        night(rt, NOW + timedelta(days=days))
    assert kinds_sent(rt, "C-1") == ["exit_questions"]
    assert kinds_sent(rt, "C-2") == [] and kinds_sent(rt, "C-3") == []


def test_the_exit_questions_keep_to_the_frequency_cap(rt: Runtime) -> None:
    add_customer(rt, "C-1")
    capped = rt.policy.nightly.frequency_cap.messages
    with rt.db.session() as session:
        customer = session.scalar(select(models.Customer).where(models.Customer.ref == "C-1"))
        for number in range(capped):
            session.add(
                models.Message(
                    customer_id=customer.id,
                    key=f"earlier-{number}",
                    stage="reengage",
                    kind=MessageKind.WINBACK_OFFER,
                    channel="email",
                    recipient="c-1@example.com",
                    body="earlier",
                    status="sent",
                    created_at=NOW - timedelta(hours=1),
                )
            )
    assert night(rt, NOW)["ask_why_they_left"].done == 0
