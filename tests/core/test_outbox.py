"""The outbox: each message is delivered once, and failures are kept with their reason."""

from __future__ import annotations

import threading
import time

import pytest
from factories import make_incident

from amends.casebook import case_outcome
from amends.channels import Outgoing, RecordingAdapter
from amends.domain import MessageStatus, ReplyChannel, Stage
from amends.errors import DeliveryError
from amends.intake import open_case
from amends.outbox import deliver, queued_messages
from amends.recovery import run_stage
from amends.runtime import Runtime


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
