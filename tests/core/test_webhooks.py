"""Webhook channels: signed JSON to a real HTTP server on loopback, checked on arrival."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from http.server import ThreadingHTTPServer

import pytest
from factories import make_incident
from loopback import SECRET, Receiver, serving
from pydantic import SecretStr

from amends.delivery.adapter import Outgoing
from amends.delivery.channels import load_channels
from amends.delivery.outbox import deliver, queued_messages
from amends.delivery.webhooks import WebhookAdapter, sign, verify
from amends.domain import STAGES, ReplyChannel
from amends.errors import ConfigurationError, DeliveryError
from amends.recovery.intake import open_case
from amends.recovery.stages import run_stage
from amends.reporting.casebook import case_outcome
from amends.runtime import Runtime
from amends.settings import Settings


@pytest.fixture
def gateway() -> Iterator[str]:
    Receiver.received, Receiver.answer = [], 200
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Receiver)) as url:
        yield f"{url}/hook"


def message() -> Outgoing:
    return Outgoing(recipient="+34612345678", subject="", body="We are sorry.", message_id="<m1@x>")


def test_a_signed_message_reaches_the_gateway(gateway: str) -> None:
    adapter = WebhookAdapter(ReplyChannel.SMS, gateway, SecretStr(SECRET))
    assert adapter.deliver(message()) == "gw-1"
    (received,) = Receiver.received
    assert (received["channel"], received["recipient"], received["text"]) == (
        "sms", "+34612345678", "We are sorry.",
    )  # fmt: skip


def test_a_wrong_secret_is_refused_for_good(gateway: str) -> None:
    adapter = WebhookAdapter(ReplyChannel.SMS, gateway, SecretStr("not-the-secret"))
    with pytest.raises(DeliveryError) as caught:
        adapter.deliver(message())
    assert not caught.value.transient and "answered 401" in caught.value.reason
    assert Receiver.received == []


@pytest.mark.parametrize(("status", "transient"), [(503, True), (429, True), (400, False)])
def test_gateway_failures_are_classified(gateway: str, status: int, transient: bool) -> None:
    Receiver.answer = status
    with pytest.raises(DeliveryError) as caught:
        WebhookAdapter(ReplyChannel.SMS, gateway, SecretStr(SECRET)).deliver(message())
    assert caught.value.transient is transient


def test_verify_rejects_tampering_and_replays() -> None:
    body = b'{"text": "We are sorry."}'
    signature = sign(SECRET, "1000", body)
    assert verify(SECRET, body, signature, "1000", now=1100)
    assert not verify(SECRET, body + b" ", signature, "1000", now=1100)  # tampered
    assert not verify("other", body, signature, "1000", now=1100)  # wrong secret
    assert not verify(SECRET, body, signature, "1000", now=5000)  # too old: a replay
    assert not verify(SECRET, body, None, "1000", now=1100)
    assert not verify(SECRET, body, signature, "not-a-time", now=1100)


def test_an_sms_complaint_is_answered_by_sms_through_the_plugin(rt: Runtime, gateway: str) -> None:
    settings = rt.settings.model_copy(
        update={"webhook_sms_url": gateway, "webhook_secret": SecretStr(SECRET)}
    )
    channels = {**rt.channels, **load_channels(settings)}
    with_sms = replace(rt, settings=settings, channels=channels)
    case_id = open_case(with_sms, make_incident(channel="sms", customer={"email": None}))
    for stage in STAGES:
        run_stage(with_sms, case_id, stage)
    for message_id in queued_messages(with_sms.db, case_id):
        deliver(with_sms.db, message_id, with_sms.channels)
    outcome = case_outcome(with_sms.db, case_id)
    assert [(m.kind, m.channel, m.status) for m in outcome.messages] == [("apology", "sms", "sent")]
    assert "call_back" not in [a.kind for a in outcome.staff_actions]
    assert Receiver.received[0]["text"].startswith("Acme Cleaning: Rodolfo, about “")


def test_a_webhook_without_a_secret_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="AMENDS_WEBHOOK_SECRET"):
        load_channels(Settings(webhook_chat_url="http://127.0.0.1:1/hook"))


def test_the_secret_stays_out_of_reprs_and_errors(gateway: str) -> None:
    adapter = WebhookAdapter(ReplyChannel.SMS, "http://127.0.0.1:1/none", SecretStr(SECRET))
    with pytest.raises(DeliveryError) as caught:
        adapter.deliver(message())
    assert SECRET not in str(caught.value) and SECRET not in repr(vars(adapter))
