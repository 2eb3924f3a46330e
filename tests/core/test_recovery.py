"""The six stages against a real database: what each records, and that nothing repeats."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from factories import make_incident
from sqlalchemy import func, select

from amends.delivery.channels import RecordingAdapter
from amends.delivery.outbox import (
    MAX_ATTEMPTS,
    deliver,
    drain,
    queued_messages,
    requeue_stale_claims,
    retry_delay,
)
from amends.domain import STAGES, Decision, Incident, MessageStatus, ReplyChannel, Stage
from amends.errors import DeliveryError
from amends.listening.mentions import PublicPost, record_posts
from amends.recovery import stages as recovery
from amends.recovery.intake import open_case
from amends.recovery.stages import run_stage
from amends.reporting.casebook import case_outcome
from amends.runtime import Runtime
from amends.storage import models


def recover(rt: Runtime, incident: Incident) -> int:
    """What the flow does, without Prefect: open the case, run the stages, drain the outbox."""
    case_id = open_case(rt, incident)
    for stage in STAGES:
        run_stage(rt, case_id, stage)
        for message in queued_messages(rt.db, case_id):
            deliver(rt.db, message, rt.channels)
    return case_id


def count(rt: Runtime, model: type) -> int:
    with rt.db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_an_email_complaint_is_recovered_end_to_end(rt: Runtime, recorder) -> None:  # type: ignore[no-untyped-def]
    outcome = case_outcome(rt.db, recover(rt, make_incident()))
    assert outcome.decision == "recover"
    assert [(s.name, s.status) for s in outcome.stages] == [
        (stage.value, "completed") for stage in STAGES
    ]
    assert [(m.kind, m.channel, m.status) for m in outcome.messages] == [
        ("apology", "email", "sent"),
        ("checkin_invitation", "email", "sent"),
    ]
    apology, invitation = recorder.delivered
    assert apology.subject == "Re: Four days without cleaning"
    assert apology.in_reply_to == "<complaint-1@customer.example>"
    assert "How we are putting it right" in apology.body
    assert invitation.attachment is not None and invitation.attachment.suffix == ".ics"
    assert outcome.offer is not None and outcome.offer.status == "offered"
    assert len(outcome.checkins) == 5  # high severity: 4, and one more for a valued customer
    # Within the frontline limit for this customer: nothing waits for a manager.
    assert outcome.offer.value == 815 and outcome.approval is None
    assert outcome.state == "open"
    assert [a.kind for a in outcome.staff_actions if a.role == "manager"] == []
    # The timeline tells the story in order.
    kinds = [event.kind for event in outcome.timeline]
    assert kinds[0] == "opened" and kinds.count("sent") == 2


def test_running_again_repeats_nothing(rt: Runtime, recorder) -> None:  # type: ignore[no-untyped-def]
    incident = make_incident()
    case_id = recover(rt, incident)
    tables = [models.StageOutcome, models.Message, models.Offer, models.CheckIn, models.CaseEvent]
    before = {model: count(rt, model) for model in tables}
    assert recover(rt, incident) == case_id
    assert {model: count(rt, model) for model in tables} == before
    assert len(recorder.delivered) == 2
    assert all(run_stage(rt, case_id, stage).resumed for stage in STAGES)


def test_a_stage_that_fails_keeps_nothing_and_runs_again(rt: Runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    case_id = open_case(rt, make_incident())
    for stage in (Stage.ASSESS, Stage.EMPOWER, Stage.MONITOR, Stage.REPORT):
        run_stage(rt, case_id, stage)

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(rt.templates, "render", broken)
    with pytest.raises(RuntimeError):
        run_stage(rt, case_id, Stage.FOLLOW_UP)
    assert count(rt, models.Message) == 0
    monkeypatch.undo()
    result = run_stage(rt, case_id, Stage.FOLLOW_UP)
    assert not result.resumed and count(rt, models.Message) == 1


def test_one_forgiveness_across_incidents(rt: Runtime) -> None:
    first = case_outcome(rt.db, recover(rt, make_incident(ref="INC-1")))
    second = case_outcome(
        rt.db,
        recover(rt, make_incident(ref="INC-2", complaint_message_id="<again@customer.example>")),
    )
    assert first.decision == "recover"
    assert second.decision == "lost"
    assert second.offer is None and second.checkins == []
    assert [m.kind for m in second.messages] == ["apology"]
    assert second.stages[-1].status == "skipped"
    assert second.state == "closed"


def test_an_abusive_customer_goes_to_a_manager_and_gets_nothing(rt: Runtime, recorder) -> None:  # type: ignore[no-untyped-def]
    outcome = case_outcome(rt.db, recover(rt, make_incident(abusive=True, fault="customer")))
    assert outcome.decision == Decision.DO_NOT_PURSUE
    assert outcome.messages == [] and recorder.delivered == []
    assert outcome.offer is None
    assert [(a.role, a.kind) for a in outcome.staff_actions] == [
        ("manager", "manager_review"),
        ("team", "improvement_item"),
    ]
    assert outcome.state == "awaiting_staff"


@pytest.mark.parametrize(
    ("channel", "customer", "reply", "file_suffix"),
    [
        ("voicemail", {}, "phone", None),
        ("letter", {"email": None}, "letter", ".html"),
        ("sms", {}, "sms", None),
        ("in_person", {}, "visit", None),
        ("social", {}, "social", None),
    ],
)
def test_staff_deliver_on_channels_without_an_adapter(  # type: ignore[no-untyped-def]
    rt: Runtime, recorder, channel: str, customer: dict, reply: str, file_suffix: str | None
) -> None:
    outcome = case_outcome(rt.db, recover(rt, make_incident(channel=channel, customer=customer)))
    first = outcome.messages[0]
    assert outcome.reply_channel == reply
    assert (first.channel, first.status) == (reply, "awaiting_staff")
    assert first.kind == ("public_reply" if channel == "social" else "apology")
    assert first.due_at is not None
    if file_suffix:
        assert first.attachment and first.attachment.endswith(file_suffix)
    # Nothing went by email: the invitation never goes out before the apology, so the person
    # who calls, writes or visits agrees the check-in dates.
    assert recorder.delivered == []
    assert [m.kind for m in outcome.messages if m.channel == "email"] == []
    assert "agree_checkins" in [a.kind for a in outcome.staff_actions]


def test_a_public_post_found_by_the_monitor_gets_a_public_reply(rt: Runtime) -> None:
    record_posts(
        rt.db,
        [
            PublicPost(
                platform="twitter",
                handle="@RK",
                url="https://twitter.example/rk/1",
                text="Four days without cleaners. Never again.",
                posted_at=datetime(2026, 11, 20, 10, tzinfo=UTC),
            )
        ],
        rt.policy.listening,
    )
    outcome = case_outcome(rt.db, recover(rt, make_incident()))
    assert outcome.stages[2].summary.startswith("1 public post found")
    assert [(m.kind, m.channel) for m in outcome.messages][:2] == [
        ("apology", "email"),
        ("public_reply", "social"),
    ]


def test_a_customer_without_email_agrees_checkins_with_staff(rt: Runtime) -> None:
    outcome = case_outcome(
        rt.db, recover(rt, make_incident(channel="voicemail", customer={"email": None}))
    )
    assert len(outcome.checkins) == 5  # high severity: 4, and one more for a valued customer
    assert "agree_checkins" in [a.kind for a in outcome.staff_actions]
    assert [m.kind for m in outcome.messages] == ["apology"]


@pytest.mark.parametrize("locale", ["en", "es"])
def test_the_apology_promises_what_follows_it(rt: Runtime, recorder, locale: str) -> None:  # type: ignore[no-untyped-def]
    """An email apology that says an invitation follows is followed by one; one that says
    nothing of a check-in is followed by none."""
    follows = {
        "en": "An invitation to a short first check-in follows this email",
        "es": "le llegará una invitación a una breve primera reunión de seguimiento",
    }[locale]
    recover(rt, make_incident(customer={"locale": locale}))
    # Not worth an incentive: an apology without an offer, and no check-ins to invite to.
    recover(
        rt,
        make_incident(
            ref="INC-2001",
            complaint_message_id="<complaint-2@customer.example>",
            customer={"ref": "C-7", "email": "ann@example.com", "annual_value": 0},
        ),
    )
    sent = [(m.recipient, m.subject, m.body) for m in recorder.delivered]
    (_, _, apology), (_, invitation_subject, _), (_, _, second_apology) = sent
    assert follows in apology and invitation_subject
    assert [r for r, _, _ in sent].count("ann@example.com") == 1
    assert follows not in second_apology


def test_two_cases_decided_at_once_spend_one_forgiveness(rt: Runtime) -> None:
    first = open_case(rt, make_incident(ref="INC-A", complaint_message_id="<a@c.example>"))
    second = open_case(rt, make_incident(ref="INC-B", complaint_message_id="<b@c.example>"))
    threads = [
        threading.Thread(target=run_stage, args=(rt, case_id, Stage.ASSESS))
        for case_id in (first, second)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    decisions = sorted(case_outcome(rt.db, c).decision for c in (first, second))
    assert decisions == ["lost", "recover"]


def test_a_failed_stage_leaves_no_file_behind(rt: Runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    case_id = open_case(rt, make_incident(channel="letter"))
    for stage in (Stage.ASSESS, Stage.EMPOWER, Stage.MONITOR, Stage.REPORT):
        run_stage(rt, case_id, stage)

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("database went away")

    monkeypatch.setattr(recovery, "queue_message", refuse)
    with pytest.raises(RuntimeError):
        run_stage(rt, case_id, Stage.FOLLOW_UP)
    assert list(rt.settings.letters_dir.glob("*")) == []
    monkeypatch.undo()
    run_stage(rt, case_id, Stage.FOLLOW_UP)
    assert [p.name for p in rt.settings.letters_dir.glob("*")] == [
        f"case-{case_id}-INC-1001-apology.html"
    ]


def test_a_refused_apology_flags_the_case_for_staff(rt: Runtime) -> None:
    rt.channels[ReplyChannel.EMAIL].fail_with = DeliveryError("550 no such user", transient=False)
    outcome = case_outcome(rt.db, recover(rt, make_incident(fault="customer")))
    assert outcome.decision == "smooth_over"
    assert outcome.messages[0].status == "failed"
    assert outcome.state == "awaiting_staff"
    problem = [a for a in outcome.staff_actions if a.kind == "delivery_problem"]
    assert problem and "550 no such user" in problem[0].instructions


def test_a_message_whose_sender_died_goes_out_again_with_the_same_id(rt: Runtime, recorder) -> None:  # type: ignore[no-untyped-def]
    case_id = open_case(rt, make_incident())
    for stage in (Stage.ASSESS, Stage.EMPOWER, Stage.MONITOR, Stage.REPORT, Stage.FOLLOW_UP):
        run_stage(rt, case_id, stage)
    (message_id,) = queued_messages(rt.db, case_id)
    with rt.db.session() as session:  # claimed an hour ago, never recorded
        message = session.get(models.Message, message_id)
        message.status = MessageStatus.SENDING
        message.claimed_at = models.utcnow() - timedelta(hours=1)
        expected_id = message.message_id
    # A live sender's claim is left alone...
    assert requeue_stale_claims(rt.db, older_than=timedelta(hours=2)) == 0
    # ...a dead one's is queued again, and the resend carries the same Message-ID.
    report = drain(rt.db, rt.channels, claim_timeout=timedelta(minutes=10))
    assert (report.requeued, report.sent) == (1, 1)
    assert [m.message_id for m in recorder.delivered] == [expected_id]
    assert "same Message-ID" in case_outcome(rt.db, case_id).timeline[-2].text


def test_transient_failures_back_off_and_finally_go_to_staff(rt: Runtime) -> None:
    case_id = open_case(rt, make_incident())
    for stage in (Stage.ASSESS, Stage.EMPOWER, Stage.MONITOR, Stage.REPORT, Stage.FOLLOW_UP):
        run_stage(rt, case_id, stage)
    failing = {
        ReplyChannel.EMAIL: RecordingAdapter(fail_with=DeliveryError("421 busy", transient=True))
    }
    (message_id,) = queued_messages(rt.db, case_id)
    deliver(rt.db, message_id, failing)
    # Not due again before its pause is over; due after it.
    assert queued_messages(rt.db, due_by=models.utcnow()) == []
    assert queued_messages(rt.db, due_by=models.utcnow() + retry_delay(1)) == [message_id]
    for _ in range(MAX_ATTEMPTS - 1):
        deliver(rt.db, message_id, failing)
    outcome = case_outcome(rt.db, case_id)
    assert outcome.messages[0].status == "failed"
    assert outcome.messages[0].last_error == f"gave up after {MAX_ATTEMPTS} attempts: 421 busy"
    assert outcome.state == "awaiting_staff"


def test_retry_delays_grow_and_are_capped() -> None:
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3)] == [30, 120, 480]
    assert retry_delay(20) == timedelta(hours=6)


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ("twitter", [("public_reply", "social"), ("apology", "social")]),
        ("other", [("public_reply", "social")]),
    ],
)
def test_a_social_complaint_gets_a_public_reply_then_a_private_apology(
    rt: Runtime, platform: str, expected: list[tuple[str, str]]
) -> None:
    incident = make_incident(
        channel="social", customer={"social": {"platform": platform, "handle": "@rk"}}
    )
    outcome = case_outcome(rt.db, recover(rt, incident))
    assert [(m.kind, m.channel) for m in outcome.messages] == expected
    kinds = [a.kind for a in outcome.staff_actions]
    assert "post_public_reply" in kinds
    assert ("send_private_message" in kinds) is (len(expected) == 2)


def test_an_abusive_customer_is_never_in_a_win_back_again(rt: Runtime) -> None:
    first = case_outcome(rt.db, recover(rt, make_incident(abusive=True)))
    assert first.decision == "do_not_pursue" and first.offer is None
    assert [m.kind for m in first.messages] == []  # frontline contact is blocked
    # A later failure of ours, without abuse this time, still earns no incentive.
    later = case_outcome(
        rt.db,
        recover(
            rt, make_incident(ref="INC-1002", complaint_message_id="<complaint-2@customer.example>")
        ),
    )
    assert later.decision == "do_not_pursue" and later.offer is None
    assert any("earlier case" in reason for reason in later.reasons)
    with rt.db.session() as session:
        customer = session.scalar(select(models.Customer))
    assert customer.winback_barred == "abusive"


def test_a_second_failure_after_a_recovery_is_lost(rt: Runtime) -> None:
    first = case_outcome(rt.db, recover(rt, make_incident()))
    second = case_outcome(
        rt.db,
        recover(
            rt, make_incident(ref="INC-1002", complaint_message_id="<complaint-2@customer.example>")
        ),
    )
    assert (first.decision, second.decision) == ("recover", "lost")
    assert second.offer is None and second.checkins == []
    with rt.db.session() as session:
        assert session.scalar(select(models.Customer.winback_barred)) == "lost"


def test_the_monitor_answers_only_complaints_around_or_after_the_incident(rt: Runtime) -> None:
    def by_rk(n: int, text: str, posted_at: datetime) -> PublicPost:
        url = f"https://twitter.example/rk/{n}"
        return PublicPost(platform="twitter", handle="@rk", url=url, text=text, posted_at=posted_at)

    record_posts(
        rt.db,
        [
            by_rk(1, "Cleaners never came, again. Useless.", datetime(2026, 10, 1, tzinfo=UTC)),
            by_rk(2, "Lovely sunny day at the beach", datetime(2026, 11, 20, 11, tzinfo=UTC)),
            by_rk(3, "Still no cleaners. Worst service.", datetime(2026, 11, 20, 12, tzinfo=UTC)),
        ],
        rt.policy.listening,
    )
    outcome = case_outcome(rt.db, recover(rt, make_incident()))
    assert outcome.stages[2].summary.startswith("1 public post found")
    assert [m.kind for m in outcome.messages].count("public_reply") == 1
    with rt.db.session() as session:
        answered = session.scalars(
            select(models.Mention.url).where(models.Mention.case_id.is_not(None))
        )
        assert list(answered) == ["https://twitter.example/rk/3"]  # in the reply's thread
        reply = session.scalar(
            select(models.Message.in_reply_to).where(models.Message.kind == "public_reply")
        )
    assert reply == "https://twitter.example/rk/3"
