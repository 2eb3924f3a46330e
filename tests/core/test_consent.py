"""Consent, checked by the outbox just before anything is sent, on every channel."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from factories import make_incident
from sqlalchemy import select

from amends.delivery.channels import RecordingAdapter
from amends.delivery.consent import normal_address, suppress
from amends.delivery.outbox import MAX_ATTEMPTS, drain
from amends.domain import STAGES, MessageStatus
from amends.errors import DeliveryError, InvalidInput
from amends.nightly.reengagement import run_night
from amends.recovery.intake import open_case
from amends.recovery.stages import run_stage
from amends.runtime import Runtime
from amends.storage import models


def send(rt: Runtime):  # type: ignore[no-untyped-def]
    return drain(rt.db, rt.channels, claim_timeout=timedelta(minutes=10))


def queue_case(rt: Runtime, **changes: object) -> int:
    case_id = open_case(rt, make_incident(**changes))
    for stage in STAGES:
        run_stage(rt, case_id, stage)
    return case_id


def statuses(rt: Runtime) -> dict[str, str]:
    with rt.db.session() as session:
        return {m.kind.value: m.status.value for m in session.scalars(select(models.Message))}


def test_an_opt_out_after_marketing_mail_was_queued_still_stops_it(
    rt: Runtime, recorder: RecordingAdapter
) -> None:
    with rt.db.session() as session:
        session.add(
            models.Customer(
                ref="C-1", name="Ann", email="Ann@Example.com", last_purchase_on=date(2025, 1, 1)
            )
        )
    assert run_night(rt).done == 1  # queued, not sent yet
    assert suppress(rt.db, "ann@example.com", scope="marketing", reason="opt_out")
    report = send(rt)
    assert (report.sent, report.withheld) == (0, 1)
    assert recorder.delivered == []
    # A lapsed customer's first marketing mail: the exit questions (the win-back waits).
    assert statuses(rt) == {"exit_questions": "suppressed"}
    with rt.db.session() as session:  # marketing just stops: nobody has work to do
        assert session.scalars(select(models.StaffAction)).all() == []


def test_a_marketing_opt_out_does_not_silence_a_case(
    rt: Runtime, recorder: RecordingAdapter
) -> None:
    suppress(rt.db, "rk@example.com", scope="marketing", reason="opt_out")
    queue_case(rt)
    assert send(rt).sent == 2
    assert statuses(rt) == {"apology": "sent", "checkin_invitation": "sent"}


@pytest.mark.parametrize("how", ["suppressed for all mail", "do-not-contact"])
def test_nothing_goes_to_an_address_suppressed_for_all_mail_and_staff_decide(
    rt: Runtime, recorder: RecordingAdapter, how: str
) -> None:
    case_id = queue_case(rt)
    if how == "do-not-contact":
        with rt.db.session() as session:
            session.scalars(select(models.Customer)).one().do_not_contact = True
    else:
        suppress(rt.db, "rk@example.com", scope="all", reason="complaint")
    report = send(rt)
    assert (report.sent, report.withheld) == (0, 2)
    assert recorder.delivered == []
    with rt.db.session() as session:
        case = session.get(models.Case, case_id)
        actions = session.scalars(select(models.StaffAction).filter_by(kind="delivery_problem"))
        instructions = [action.instructions for action in actions]
    assert case.state == "awaiting_staff"
    assert len(instructions) == 2 and all("rk@example.com" not in i for i in instructions)


def test_a_hard_bounce_suppresses_the_address(rt: Runtime, recorder: RecordingAdapter) -> None:
    queue_case(rt)
    recorder.fail_with = DeliveryError("550 no such user", transient=False, bounce=True)
    send(rt)
    with rt.db.session() as session:
        row = session.scalars(select(models.Suppression)).one()
        assert (row.address, row.scope, row.reason) == ("rk@example.com", "all", "bounce")
    recorder.fail_with = None
    queue_case(rt, ref="INC-1002", complaint_message_id=None)
    assert send(rt).withheld == 1  # the second case's apology: that address bounced
    assert recorder.delivered == []
    assert MessageStatus.SUPPRESSED in {m for m in _message_statuses(rt)}


def test_a_server_that_stays_down_suppresses_nobody(
    rt: Runtime, recorder: RecordingAdapter
) -> None:
    queue_case(rt)
    recorder.fail_with = DeliveryError("cannot reach SMTP server", transient=True)
    for _ in range(MAX_ATTEMPTS):
        drain(rt.db, rt.channels, claim_timeout=timedelta(minutes=10), due_only=False)
    assert "failed" in statuses(rt).values()  # given up after the attempts...
    with rt.db.session() as session:  # ...but the address did nothing wrong
        assert session.scalars(select(models.Suppression)).all() == []


def test_a_do_not_contact_customer_is_not_called_either(rt: Runtime) -> None:
    with rt.db.session() as session:
        session.add(models.Customer(ref="C-42", name="Rodolfo K.", do_not_contact=True))
    queue_case(rt, channel="phone")  # a call-back: a person would deliver it
    with rt.db.session() as session:
        apology = session.scalars(select(models.Message).filter_by(kind="apology")).one()
        actions = list(session.scalars(select(models.StaffAction)))
    assert apology.status == "suppressed"
    assert "call_back" not in {a.kind for a in actions}
    assert any("do-not-contact" in a.instructions for a in actions)


def _message_statuses(rt: Runtime) -> list[MessageStatus]:
    with rt.db.session() as session:
        return list(session.scalars(select(models.Message.status)))


@pytest.mark.parametrize(
    ("given", "normal"),
    [(" Ann@Example.COM ", "ann@example.com"), ("+34 612 345 678", "+34612345678")],
)
def test_addresses_are_kept_in_one_form(given: str, normal: str) -> None:
    assert normal_address(given) == normal


@pytest.mark.parametrize("given", ["ann", "ann@", "612", "+1 2", "a@b@c"])
def test_an_address_that_is_neither_email_nor_phone_is_refused(given: str) -> None:
    with pytest.raises(InvalidInput):
        normal_address(given)
