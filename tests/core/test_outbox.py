"""The outbox: each message is delivered once, and failures are kept with their reason."""

from __future__ import annotations

import email
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from factories import make_incident
from sqlalchemy import event, func, select

from amends.delivery.adapter import Outgoing
from amends.delivery.channels import EmailAdapter, RecordingAdapter
from amends.delivery.mailcatcher import MailCatcher, free_port
from amends.delivery.outbox import (
    CLAIM_BATCH,
    MAX_ATTEMPTS,
    _claim,
    _DrainConnection,
    _send,
    deliver,
    drain,
    installation_identifier,
    queued_messages,
    requeue_stale_claims,
)
from amends.domain import STAGES, MessageStatus, ReplyChannel, Stage
from amends.errors import ConfigurationError, DeliveryError
from amends.recovery.intake import open_case
from amends.recovery.staff import settle
from amends.recovery.stages import run_stage
from amends.reporting.casebook import case_outcome
from amends.runtime import Runtime
from amends.storage import models
from amends.storage.db import Database


def queued_apology(rt: Runtime) -> tuple[int, int]:
    case_id = open_case(rt, make_incident())
    for stage in (Stage.ASSESS, Stage.EMPOWER, Stage.MONITOR, Stage.REPORT, Stage.FOLLOW_UP):
        run_stage(rt, case_id, stage)
    (message_id,) = queued_messages(rt.db, case_id)
    return case_id, message_id


class SlowAdapter(RecordingAdapter):
    def deliver(self, message: Outgoing) -> str:
        time.sleep(0.2)  # long enough for a second sender to try the same message
        return super().deliver(message)


def test_two_senders_never_deliver_the_same_message(rt: Runtime) -> None:
    _, message_id = queued_apology(rt)
    adapter = SlowAdapter()
    adapters = {ReplyChannel.EMAIL: adapter}
    results: list[MessageStatus] = []
    senders = [
        threading.Thread(target=lambda: results.append(deliver(rt.db, message_id, adapters).status))
        for _ in range(4)
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    assert len(adapter.delivered) == 1
    assert results.count(MessageStatus.SENT) == 1


def test_a_transient_failure_stays_queued_with_its_reason(rt: Runtime) -> None:
    case_id, message_id = queued_apology(rt)
    failing = RecordingAdapter(fail_with=DeliveryError("SMTP 451: try later", transient=True))
    outcome = deliver(rt.db, message_id, {ReplyChannel.EMAIL: failing})
    assert (outcome.status, outcome.transient) == (MessageStatus.QUEUED, True)
    (message,) = case_outcome(rt.db, case_id).messages
    assert (message.status, message.attempts, message.last_error) == (
        "queued",
        1,
        "SMTP 451: try later",
    )
    # The next attempt succeeds, with the same Message-ID.
    recorder = RecordingAdapter()
    assert deliver(rt.db, message_id, {ReplyChannel.EMAIL: recorder}).status is MessageStatus.SENT
    (message,) = case_outcome(rt.db, case_id).messages
    assert (message.attempts, message.last_error) == (2, None)
    assert recorder.delivered[0].message_id == message.message_id


def test_a_permanent_failure_is_marked_failed_and_shown(rt: Runtime) -> None:
    case_id, message_id = queued_apology(rt)
    failing = RecordingAdapter(fail_with=DeliveryError("recipient refused: 550", transient=False))
    assert deliver(rt.db, message_id, {ReplyChannel.EMAIL: failing}).status is MessageStatus.FAILED
    outcome = case_outcome(rt.db, case_id)
    assert outcome.messages[0].status == "failed"
    assert "apology by email failed: recipient refused: 550" in [e.text for e in outcome.timeline]
    # A failed message is never picked up again.
    assert queued_messages(rt.db, case_id) == []


def test_an_unexpected_error_parks_the_message_as_failed(rt: Runtime) -> None:
    case_id, message_id = queued_apology(rt)

    class Broken(RecordingAdapter):
        def deliver(self, message: Outgoing) -> str:
            raise KeyError("bug")

    with pytest.raises(KeyError):
        deliver(rt.db, message_id, {ReplyChannel.EMAIL: Broken()})
    (message,) = case_outcome(rt.db, case_id).messages
    assert message.status == "failed" and "unexpected error" in (message.last_error or "")


def test_mail_waits_for_a_server_that_is_down_and_goes_out_once_when_it_returns(
    rt: Runtime, tmp_path: Path
) -> None:
    port = free_port()
    settings = rt.settings.model_copy(update={"smtp_port": port})
    adapters = {ReplyChannel.EMAIL: EmailAdapter(settings)}
    case_id, _ = queued_apology(rt)
    down = drain(rt.db, adapters, claim_timeout=timedelta(minutes=10), due_only=False)
    assert (down.sent, down.retrying) == (0, 1)
    (message,) = case_outcome(rt.db, case_id).messages
    assert message.status == "queued" and "cannot reach SMTP server" in (message.last_error or "")
    with MailCatcher(tmp_path / "mail", port=port) as catcher:
        up = drain(rt.db, adapters, claim_timeout=timedelta(minutes=10), due_only=False)
        again = drain(rt.db, adapters, claim_timeout=timedelta(minutes=10), due_only=False)
        assert (up.sent, again.sent) == (1, 0)
        assert len(catcher.messages()) == 1


def test_a_recipient_the_server_rejects_fails_with_the_reason_and_flags_the_case(
    rt: Runtime,
) -> None:
    class Rejecting:
        async def handle_RCPT(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
            return "550 5.1.1 <rk@example.com>: no such mailbox"

    port = free_port()
    controller = Controller(Rejecting(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        case_id, message_id = queued_apology(rt)
        adapter = EmailAdapter(rt.settings.model_copy(update={"smtp_port": port}))
        outcome = deliver(rt.db, message_id, {ReplyChannel.EMAIL: adapter})
    finally:
        controller.stop()
    assert outcome.status is MessageStatus.FAILED
    case = case_outcome(rt.db, case_id)
    assert "no such mailbox" in (case.messages[0].last_error or "")
    assert case.state == "awaiting_staff"
    assert [a.kind for a in case.staff_actions][-1] == "delivery_problem"


def test_a_bad_login_keeps_the_mail_queued(rt: Runtime) -> None:
    case_id, _ = queued_apology(rt)

    class Misconfigured(RecordingAdapter):
        def deliver(self, message: Outgoing) -> str:
            raise ConfigurationError("the SMTP server refused the login")

    with pytest.raises(ConfigurationError):
        drain(rt.db, {ReplyChannel.EMAIL: Misconfigured()}, claim_timeout=timedelta(minutes=10))
    (message,) = case_outcome(rt.db, case_id).messages
    assert (message.status, message.attempts) == ("queued", 0)
    assert case_outcome(rt.db, case_id).staff_actions == [] or all(
        a.kind != "delivery_problem" for a in case_outcome(rt.db, case_id).staff_actions
    )


def test_before_send_is_called_once_per_message_sent_and_can_stop_the_drain(
    rt: Runtime, recorder: RecordingAdapter
) -> None:
    case_id, _ = queued_apology(rt)
    adapters = {ReplyChannel.EMAIL: recorder}

    def full(channel: ReplyChannel) -> None:
        raise TimeoutError("no slot of the rate limit")

    with pytest.raises(TimeoutError):
        drain(rt.db, adapters, claim_timeout=timedelta(minutes=10), before_send=full)
    (message,) = case_outcome(rt.db, case_id).messages
    assert (message.status, message.attempts) == ("queued", 0)  # given back, not half-sent
    paced: list[ReplyChannel] = []
    report = drain(rt.db, adapters, claim_timeout=timedelta(minutes=10), before_send=paced.append)
    assert report.sent == len(recorder.delivered) == 1
    assert paced == [ReplyChannel.EMAIL]


def test_a_drain_leaves_the_database_connections_as_it_found_them(
    rt: Runtime, recorder: RecordingAdapter
) -> None:
    """On PostgreSQL a drain records results without waiting for the disk, on its own
    connection only: back in the pool, that connection waits again, even after an error."""
    queued_apology(rt)
    adapters = {ReplyChannel.EMAIL: recorder}

    def full(channel: ReplyChannel) -> None:
        raise TimeoutError("no slot of the rate limit")

    with pytest.raises(TimeoutError):
        drain(rt.db, adapters, claim_timeout=timedelta(minutes=10), before_send=full)
    assert drain(rt.db, adapters, claim_timeout=timedelta(minutes=10)).sent == 1
    engine = rt.db.engine
    postgres = engine.dialect.name == "postgresql"
    question = "SHOW synchronous_commit" if postgres else "PRAGMA synchronous"
    connections = [engine.connect() for _ in range(engine.pool.checkedin())]
    try:
        assert len(connections) >= 2  # the drain's own, and the one its queries took
        answers = {c.exec_driver_sql(question).scalar() for c in connections}
        # On PostgreSQL the drain's second connection commits each statement alone; back in
        # the pool, none does.
        autocommits = {c.connection.dbapi_connection.autocommit for c in connections if postgres}
    finally:
        for connection in connections:
            connection.close()
    assert answers == ({"on"} if postgres else {1})  # SQLite: NORMAL, as amends opens it
    assert autocommits == ({False} if postgres else set())


def test_a_message_for_a_channel_not_installed_here_goes_to_staff(rt: Runtime) -> None:
    case_id, _ = queued_apology(rt)
    report = drain(rt.db, {}, claim_timeout=timedelta(minutes=10))
    assert report.to_staff == 1
    (message,) = case_outcome(rt.db, case_id).messages
    assert message.status == "awaiting_staff"
    assert "send_email" in [a.kind for a in case_outcome(rt.db, case_id).staff_actions]


def test_a_claim_that_keeps_killing_its_sender_goes_to_staff(rt: Runtime) -> None:
    case_id, message_id = queued_apology(rt)
    with rt.db.session() as session:
        message = session.get(models.Message, message_id)
        message.status, message.attempts = MessageStatus.SENDING, MAX_ATTEMPTS
        message.claimed_at = models.utcnow() - timedelta(hours=1)
    assert requeue_stale_claims(rt.db, older_than=timedelta(minutes=10)) == 0
    outcome = case_outcome(rt.db, case_id)
    assert outcome.messages[0].status == "failed"
    assert outcome.staff_actions[-1].kind == "delivery_problem"


def test_a_dead_claim_charges_an_attempt_only_to_the_message_that_stopped_it(
    rt: Runtime,
) -> None:
    """A drain records a result while it sends the next message: of a dead claim, the first
    two unrecorded messages may have gone out (both go again), the third never did; only the
    first is charged, so a message that keeps killing its sender never uses up the next."""
    cases = queued_cases(rt, "ann@example.com", "bob@example.com", "cy@example.com")
    ids = [queued_messages(rt.db, case_id)[0] for case_id in cases]  # the three apologies
    _claim(rt.db, ids)  # a sender claims them, sends two, and dies
    with rt.db.session() as session:
        for message_id in ids:
            session.get(models.Message, message_id).claimed_at = models.utcnow() - timedelta(
                hours=1
            )
    assert requeue_stale_claims(rt.db, older_than=timedelta(minutes=10)) == 2
    with rt.db.session() as session:
        messages = [session.get(models.Message, message_id) for message_id in ids]
        assert [(m.status, m.attempts) for m in messages] == [
            (MessageStatus.QUEUED, 1),
            (MessageStatus.QUEUED, 0),
            (MessageStatus.QUEUED, 0),
        ]
        # The two that may have gone out say so; the third never left.
        assert [m.last_error is not None for m in messages] == [True, True, False]


class WatchingRecords(RecordingAdapter):
    """Delivers, noting each time how many messages it delivered before are not yet recorded
    as sent."""

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db
        self.unrecorded: list[int] = []

    def deliver(self, message: Outgoing) -> str:
        earlier = [m.message_id for m in self.delivered]
        with self.db.session() as session:
            self.unrecorded.append(
                session.scalar(
                    select(func.count(models.Message.id)).where(
                        models.Message.message_id.in_(earlier),
                        models.Message.status != MessageStatus.SENT,
                    )
                )
            )
        return super().deliver(message)


def test_a_drain_sends_the_next_message_while_it_records_a_result_and_never_further_ahead(
    rt: Runtime,
) -> None:
    cases = queued_cases(rt, *(f"c{n}@example.com" for n in range(6)))
    adapter = WatchingRecords(rt.db)
    report = drain(rt.db, {ReplyChannel.EMAIL: adapter}, claim_timeout=timedelta(minutes=10))
    assert report.sent == 12
    assert len(adapter.unrecorded) == 12 and max(adapter.unrecorded) <= 1
    # All recorded when the drain returns.
    for case_id in cases:
        assert {m.status for m in case_outcome(rt.db, case_id).messages} == {"sent"}


def test_a_result_the_database_refuses_stops_the_drain_and_is_sent_again_later(
    rt: Runtime,
) -> None:
    cases = queued_cases(rt, "ann@example.com", "bob@example.com", "cy@example.com", "di@x.org")
    apologies = [queued_messages(rt.db, case_id)[0] for case_id in cases]
    with rt.db.session() as session:
        second = session.get(models.Message, apologies[1]).message_id
    recorder = RecordingAdapter()

    def refuse_the_second_result(conn, cursor, statement, parameters, *_):  # type: ignore[no-untyped-def]
        values = parameters.values() if isinstance(parameters, dict) else parameters
        recording = statement.lstrip().upper().startswith(("UPDATE MESSAGES", "WITH"))
        sent = second in (m.message_id for m in recorder.delivered)
        if recording and sent and apologies[1] in values:
            raise RuntimeError("the database refused the result")

    event.listen(rt.db.engine, "before_cursor_execute", refuse_the_second_result)
    try:
        with pytest.raises(RuntimeError, match="refused the result"):
            drain(rt.db, {ReplyChannel.EMAIL: recorder}, claim_timeout=timedelta(minutes=10))
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", refuse_the_second_result)
    # The first recorded; the second and the third went out unrecorded; the fourth never did.
    assert len(recorder.delivered) == 3
    with rt.db.session() as session:
        statuses = [session.get(models.Message, m).status for m in apologies]
        assert statuses == [MessageStatus.SENT, MessageStatus.SENDING, MessageStatus.SENDING,
                            MessageStatus.QUEUED]  # fmt: skip
        for message_id in apologies[1:3]:
            session.get(models.Message, message_id).claimed_at -= timedelta(hours=1)
    # Once the claim is old, both go again, with the same Message-ID.
    assert requeue_stale_claims(rt.db, older_than=timedelta(minutes=10)) == 2
    recorder.delivered.clear()
    drain(rt.db, {ReplyChannel.EMAIL: recorder}, claim_timeout=timedelta(minutes=10))
    with rt.db.session() as session:
        sent = {session.get(models.Message, m).message_id for m in apologies[1:3]}
    assert sent <= {m.message_id for m in recorder.delivered}


@pytest.mark.parametrize("records", ["sessions", "drain"])
def test_a_result_is_recorded_only_under_its_own_claim(rt: Runtime, records: str) -> None:
    """Whether in a transaction of its own or, in a drain on PostgreSQL, as one statement."""
    _, message_id = queued_apology(rt)
    (claimed,) = _claim(rt.db, [message_id])
    # Another sender took it over (its claim looked dead), and sent it.
    with rt.db.session() as session:
        session.get(models.Message, message_id).claim_token = "someone-else"
        notes_before = session.scalar(select(func.count(models.CaseEvent.id)))
    recorder = RecordingAdapter()
    drain_connection = _DrainConnection(rt.db) if records == "drain" else None
    try:
        _send(rt.db, claimed, {ReplyChannel.EMAIL: recorder}, drain_connection)
        if drain_connection is not None:
            drain_connection.wait()  # recorded (or not) without an error
    finally:
        if drain_connection is not None:
            drain_connection.close()
    assert len(recorder.delivered) == 1
    with rt.db.session() as session:
        assert session.get(models.Message, message_id).status is MessageStatus.SENDING
        # No note in the case's timeline either: nothing was recorded.
        assert session.scalar(select(func.count(models.CaseEvent.id))) == notes_before


def test_a_drained_message_s_result_and_note_are_recorded_together(rt: Runtime) -> None:
    case_id, message_id = queued_apology(rt)
    report = drain(
        rt.db, {ReplyChannel.EMAIL: RecordingAdapter()}, claim_timeout=timedelta(hours=1)
    )
    assert report.sent == 1
    with rt.db.session() as session:
        message = session.get(models.Message, message_id)
        note = session.scalars(
            select(models.CaseEvent)
            .where(models.CaseEvent.case_id == case_id)
            .order_by(models.CaseEvent.id.desc())
        ).first()
    assert (message.status, message.claim_token) == (MessageStatus.SENT, None)
    assert message.sent_at is not None and message.provider_id
    assert (note.kind, note.text, note.actor) == ("sent", "Apology sent by email.", "amends")
    assert abs(note.at - message.sent_at) < timedelta(seconds=5)


def test_staff_taking_over_a_failed_reply_lets_the_case_close(rt: Runtime) -> None:
    from amends.recovery.staff import complete_action, open_actions

    case_id = open_case(rt, make_incident(fault="customer"))
    for stage in STAGES:
        run_stage(rt, case_id, stage)
    (message_id,) = queued_messages(rt.db, case_id)
    failing = RecordingAdapter(fail_with=DeliveryError("550 no such user", transient=False))
    deliver(rt.db, message_id, {ReplyChannel.EMAIL: failing})
    assert case_outcome(rt.db, case_id).state == "awaiting_staff"
    (problem,) = [a for a in open_actions(rt.db) if a.kind == "delivery_problem"]
    complete_action(rt.db, problem.id, note="Phoned instead; apology accepted.", actor="dana")
    outcome = case_outcome(rt.db, case_id)
    assert outcome.messages[0].status == "handled_by_staff"
    assert outcome.state == "closed"


def test_a_late_success_closes_a_smoothed_over_case(rt: Runtime) -> None:
    case_id = open_case(rt, make_incident(fault="customer"))
    for stage in STAGES:
        run_stage(rt, case_id, stage)
    assert case_outcome(rt.db, case_id).state == "open"  # the apology is still queued
    drain(rt.db, rt.channels, claim_timeout=timedelta(minutes=10))
    assert case_outcome(rt.db, case_id).state == "closed"


def test_a_drain_records_both_messages_of_a_recovered_case_and_settles_it(rt: Runtime) -> None:
    """The apology goes while the invitation waits (the case stays open: on PostgreSQL one
    statement records it), then the invitation, the case's last message, settles the case."""
    case_id = open_case(rt, make_incident())
    for stage in STAGES:
        run_stage(rt, case_id, stage)
    report = drain(rt.db, rt.channels, claim_timeout=timedelta(minutes=10))
    assert report.sent == 2
    outcome = case_outcome(rt.db, case_id)
    assert sorted((m.kind, m.status) for m in outcome.messages) == [
        ("apology", "sent"),
        ("checkin_invitation", "sent"),
    ]
    assert outcome.state == "open"  # its check-ins are still to come
    with rt.db.session() as session:
        notes = session.scalars(
            select(models.CaseEvent.text).where(
                models.CaseEvent.case_id == case_id, models.CaseEvent.kind == "sent"
            )
        ).all()
    assert sorted(notes) == ["Apology sent by email.", "Checkin invitation sent by email."]


def test_a_result_that_fails_to_record_while_the_drain_stops_otherwise_is_logged(
    rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    (case_id,) = queued_cases(rt, "ann@example.com")
    (apology, _) = queued_messages(rt.db, case_id)

    def refuse(conn, cursor, statement, parameters, *_):  # type: ignore[no-untyped-def]
        values = parameters.values() if isinstance(parameters, dict) else parameters
        if statement.lstrip().upper().startswith(("UPDATE MESSAGES", "WITH")) and (
            "sent" in values and apology in values
        ):
            raise RuntimeError("the database refused the result")

    def stop(outcome: object) -> None:
        raise KeyboardInterrupt  # the operator's Ctrl-C, while the result is being recorded

    event.listen(rt.db.engine, "before_cursor_execute", refuse)
    try:
        with pytest.raises(KeyboardInterrupt):
            drain(rt.db, rt.channels, claim_timeout=timedelta(minutes=10), on_each=stop)
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", refuse)
    assert "recording a sent message's result failed" in caplog.text
    assert "the database refused the result" in caplog.text
    with rt.db.session() as session:
        assert session.get(models.Message, apology).status is MessageStatus.SENDING


@pytest.mark.parametrize(
    ("changes", "state"),
    [
        ({}, "open"),  # recovered: open for its check-ins
        ({"fault": "customer"}, "closed"),  # smoothed over: nothing left once it is sent
        ({"severity": "low"}, "awaiting_staff"),  # a manager still has an offer to approve
    ],
)
def test_a_delivery_leaves_a_case_in_the_state_settling_it_afresh_gives(
    rt: Runtime, changes: dict[str, str], state: str
) -> None:
    """A sent message is recorded without settling its case only when the case stays as it
    is; whichever way it was recorded, the case ends as settling it from scratch puts it."""
    case_id = open_case(rt, make_incident(**changes))
    for stage in STAGES:
        run_stage(rt, case_id, stage)
    drain(rt.db, rt.channels, claim_timeout=timedelta(minutes=10))
    assert case_outcome(rt.db, case_id).state == state
    with rt.db.session() as session:
        case = session.get(models.Case, case_id)
        settle(session, case)
        assert case.state.value == state


def test_a_slow_sender_never_has_its_claims_taken_over(rt: Runtime) -> None:
    """A batch that takes longer than the claim timeout is given back in time, so a second
    sender that takes over dead claims never takes a live one (and nothing goes twice)."""
    for n in range(12):
        case_id = open_case(
            rt,
            make_incident(
                ref=f"INC-{n}",
                complaint_message_id=f"<c{n}@customer.example>",
                customer={"ref": f"C-{n}"},
            ),
        )
        for stage in STAGES:
            run_stage(rt, case_id, stage)

    class Slow(RecordingAdapter):
        def deliver(self, message: Outgoing) -> str:
            time.sleep(0.05)
            return super().deliver(message)

    adapter = Slow()
    queued = len(queued_messages(rt.db))
    timeout = timedelta(seconds=0.4)  # a batch of 20 takes a second
    senders = [
        threading.Thread(
            target=drain,
            args=(rt.db, {ReplyChannel.EMAIL: adapter}),
            kwargs={"claim_timeout": timeout},
        )
        for _ in range(2)
    ]
    for sender in senders:
        sender.start()
        time.sleep(0.5)  # the second starts when the first's claims would look dead
    for sender in senders:
        sender.join()
    ids = [m.message_id for m in adapter.delivered]
    assert len(ids) == len(set(ids)) == queued > CLAIM_BATCH


def queued_cases(rt: Runtime, *emails: str) -> list[int]:
    """A case for each address, its apology and check-in invitation queued, nothing sent."""
    cases = []
    for n, address in enumerate(emails):
        incident = make_incident(
            ref=f"INC-{n}",
            complaint_message_id=f"<c{n}@customer.example>",
            customer={"ref": f"C-{n}", "email": address},
        )
        case_id = open_case(rt, incident)
        for stage in STAGES:
            run_stage(rt, case_id, stage)
        cases.append(case_id)
    return cases


class FailingFor(RecordingAdapter):
    """Delivers, except to the addresses it is told to fail for."""

    def __init__(self, failures: dict[str, DeliveryError]) -> None:
        super().__init__()
        self.failures = failures

    def deliver(self, message: Outgoing) -> str:
        if message.recipient in self.failures:
            raise self.failures[message.recipient]
        return super().deliver(message)


def test_a_case_s_messages_go_out_in_the_order_they_were_decided(rt: Runtime) -> None:
    (case_id,) = queued_cases(rt, "ann@example.com")
    timeout = timedelta(minutes=10)
    down = RecordingAdapter(fail_with=DeliveryError("SMTP 421: try later", transient=True))
    report = drain(rt.db, {ReplyChannel.EMAIL: down}, claim_timeout=timeout, due_only=False)
    apology, invitation = case_outcome(rt.db, case_id).messages
    assert (apology.kind, invitation.kind) == ("apology", "checkin_invitation")
    # Only the apology was tried: the invitation waits behind it, never tried on its own.
    assert report.retrying == 1
    assert (apology.attempts, invitation.attempts) == (1, 0)
    # While the apology pauses after its failure, a sender (cron's `amends send`) sends nothing:
    # the invitation, due, still waits for the apology.
    up = RecordingAdapter()
    assert drain(rt.db, {ReplyChannel.EMAIL: up}, claim_timeout=timeout).sent == 0
    # Once the apology may go again: the apology, then the invitation, in the same pass.
    assert drain(rt.db, {ReplyChannel.EMAIL: up}, claim_timeout=timeout, due_only=False).sent == 2
    assert [m.message_id for m in up.delivered] == [apology.message_id, invitation.message_id]


def test_one_message_s_failure_never_blocks_the_others(rt: Runtime) -> None:
    refused, pausing, fine = queued_cases(
        rt, "gone@example.com", "busy@example.com", "ann@example.com"
    )
    adapter = FailingFor(
        {
            "gone@example.com": DeliveryError("SMTP 550: no such mailbox", transient=False),
            "busy@example.com": DeliveryError("SMTP 452: mailbox full", transient=True),
        }
    )
    drain(rt.db, {ReplyChannel.EMAIL: adapter}, claim_timeout=timedelta(minutes=10))
    statuses = {
        case_id: [(m.status, m.attempts) for m in case_outcome(rt.db, case_id).messages]
        for case_id in (refused, pausing, fine)
    }
    assert statuses[fine] == [("sent", 1), ("sent", 1)]
    # A failed apology holds nothing up (staff reach the customer; the address bounced).
    assert statuses[refused][0] == ("failed", 1) and statuses[refused][1][0] != "queued"
    # One that will be retried holds up only its own case's later messages.
    assert statuses[pausing] == [("queued", 1), ("queued", 0)]


class TakesItAndHangsUp:
    """An SMTP server that receives the whole message, then drops the connection instead of
    answering: the sender cannot know whether it was taken."""

    def __init__(self) -> None:
        self.message_ids: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.message_ids.append(email.message_from_bytes(envelope.original_content)["Message-ID"])
        server.transport.close()
        return "250 OK"  # never reaches the sender


def test_a_server_that_takes_the_message_and_hangs_up_gets_it_at_most_twice(
    rt: Runtime,
) -> None:
    handler, port = TakesItAndHangsUp(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        case_id, _ = queued_apology(rt)
        adapters = {
            ReplyChannel.EMAIL: EmailAdapter(rt.settings.model_copy(update={"smtp_port": port}))
        }
        # Every sender there is, as often as it likes: a flow's steps, cron, the nightly run.
        for _ in range(MAX_ATTEMPTS + 2):
            drain(rt.db, adapters, claim_timeout=timedelta(minutes=10), due_only=False)
    finally:
        controller.stop()
    case = case_outcome(rt.db, case_id)
    (message,) = case.messages
    # Sent, and once more with the same Message-ID after the first lost answer; then a person
    # checks, rather than the customer getting it eight times.
    assert handler.message_ids == [message.message_id] * 2
    assert message.status == "failed" and "probably arrived" in (message.last_error or "")
    assert case.staff_actions[-1].kind == "delivery_problem"


def test_two_installations_never_give_a_message_the_same_id(rt: Runtime, tmp_path: Path) -> None:
    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    Database(other_url).upgrade()
    other = Runtime.from_settings(
        rt.settings.model_copy(update={"database_url": other_url}),
        channels={ReplyChannel.EMAIL: RecordingAdapter()},
    )
    ids = []
    for runtime in (rt, other):
        case_id = open_case(runtime, make_incident())
        for stage in (Stage.ASSESS, Stage.EMPOWER, Stage.MONITOR, Stage.REPORT, Stage.FOLLOW_UP):
            run_stage(runtime, case_id, stage)
        (message,) = case_outcome(runtime.db, case_id).messages
        ids.append(message.message_id)
    # The same case, stage and purpose (the same key) in two databases: two ids.
    assert ids[0] != ids[1]
    assert ids[0].split(".")[0] == ids[1].split(".")[0]  # the key's digest, the same
    with rt.db.session() as session, other.db.session() as session_other:
        assert installation_identifier(session) in ids[0]
        assert installation_identifier(session_other) in ids[1]


def test_an_address_the_server_cannot_take_fails_alone_and_the_rest_go_out(rt: Runtime) -> None:
    received: list[str] = []

    class AsciiOnly:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            received.extend(envelope.rcpt_tos)
            return "250 OK"

    port = free_port()
    controller = Controller(AsciiOnly(), hostname="127.0.0.1", port=port, enable_SMTPUTF8=False)
    controller.start()
    try:
        _, wide, _ = queued_cases(rt, "ann@example.com", "josé@example.com", "rk@exämple.com")
        adapter = EmailAdapter(rt.settings.model_copy(update={"smtp_port": port}))
        report = drain(rt.db, {ReplyChannel.EMAIL: adapter}, claim_timeout=timedelta(minutes=10))
    finally:
        controller.stop()
    assert (report.sent, report.failed) == (4, 2)
    assert received.count("ann@example.com") == received.count("rk@xn--exmple-cua.com") == 2
    case = case_outcome(rt.db, wide)
    assert [m.status for m in case.messages] == ["failed", "failed"]
    assert "can only be written to as UTF-8 (SMTPUTF8)" in (case.messages[0].last_error or "")
    assert case.staff_actions[-1].kind == "delivery_problem"  # reach them another way
