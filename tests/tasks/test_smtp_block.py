"""SMTP settings from a Prefect EmailServerCredentials block, the ecosystem's schema."""

from __future__ import annotations

import uuid
from email import message_from_bytes

import pytest
from factories import make_incident
from prefect_email import EmailServerCredentials
from pydantic import SecretStr

from amends.delivery.channels import RecordingAdapter
from amends.delivery.mailcatcher import MailCatcher
from amends.flows.incident import recover_incident
from amends.runtime import Runtime, use_runtime
from amends.settings import Settings
from amends.tasks import (
    assess,
    deliver_messages,
    empower,
    follow_up,
    monitor,
    open_case,
    reengage,
    report,
    send_queued,
)
from amends.tasks._runtime import smtp_settings, task_runtime

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.mark.parametrize(
    ("smtp_type", "port", "ssl", "starttls"),
    [("SSL", 465, True, False), ("STARTTLS", 587, False, True), ("INSECURE", 25, False, False)],
)
def test_a_block_sets_the_smtp_settings(
    smtp_type: str, port: int, ssl: bool, starttls: bool
) -> None:
    block = EmailServerCredentials(
        username="care@shop.example", password=SecretStr("s3cret"), smtp_server="smtp.shop.example",
        smtp_type=smtp_type,
    )  # fmt: skip
    settings = smtp_settings(Settings(smtp_block="shop"), block)
    assert (settings.smtp_host, settings.smtp_port) == ("smtp.shop.example", port)
    assert (settings.smtp_ssl, settings.smtp_starttls) == (ssl, starttls)
    assert settings.sender_email == "care@shop.example"
    assert settings.smtp_password is not None and settings.smtp_block is None
    assert "s3cret" not in repr(settings)


def test_the_flow_sends_through_the_block(rt: Runtime, mail_catcher: MailCatcher) -> None:
    name = f"amends-test-{uuid.uuid4().hex[:8]}"
    EmailServerCredentials(
        smtp_server="127.0.0.1", smtp_type="INSECURE", smtp_port=mail_catcher.port
    ).save(name)
    # AMENDS_SMTP_* point nowhere; the block points at the catcher.
    settings = rt.settings.model_copy(update={"smtp_block": name, "smtp_port": 1})
    use_runtime(Runtime.from_settings(settings))
    assert task_runtime().settings.smtp_port == mail_catcher.port
    outcome = recover_incident(make_incident(ref="INC-BLOCK"))
    assert [m.status for m in outcome.messages] == ["sent", "sent"]
    assert len(mail_catcher.messages()) == 2


def _catcher_credentials(catcher: MailCatcher) -> EmailServerCredentials:
    # No password: the loopback catcher takes mail without a login.
    return EmailServerCredentials(
        username="care@shop.example", smtp_server="127.0.0.1", smtp_type="INSECURE",
        smtp_port=catcher.port,
    )  # fmt: skip


def test_a_task_given_the_credentials_sends_through_them(
    rt: Runtime, recorder: RecordingAdapter, mail_catcher: MailCatcher
) -> None:
    # As amends.tasks' example composes them, in a flow of one's own.
    case_id = open_case(make_incident(ref="INC-TASK-BLOCK"))
    for stage in (assess, empower, monitor, report, follow_up, reengage):
        stage(case_id)
    drained = deliver_messages(case_id, email_server_credentials=_catcher_credentials(mail_catcher))
    assert drained.sent == 2 and recorder.delivered == []  # not the runtime's own adapter
    caught = [message_from_bytes(path.read_bytes()) for path in mail_catcher.messages()]
    assert [m["From"] for m in caught] == ["Acme Cleaning customer care <care@shop.example>"] * 2
    assert task_runtime() is rt  # the credentials were for that task run only


def test_a_flow_given_the_credentials_sends_through_them(
    rt: Runtime, recorder: RecordingAdapter, mail_catcher: MailCatcher
) -> None:
    outcome = recover_incident(
        make_incident(ref="INC-FLOW-BLOCK"),
        email_server_credentials=_catcher_credentials(mail_catcher),
    )
    assert [m.status for m in outcome.messages] == ["sent", "sent"]
    assert len(mail_catcher.messages()) == 2 and recorder.delivered == []


def test_the_nightly_send_given_the_credentials_sends_through_them(
    rt: Runtime, recorder: RecordingAdapter, mail_catcher: MailCatcher
) -> None:
    case_id = open_case(make_incident(ref="INC-NIGHT-BLOCK"))
    for stage in (assess, empower, monitor, report, follow_up):
        stage(case_id)
    drained = send_queued(email_server_credentials=_catcher_credentials(mail_catcher))
    assert drained.sent == 1 and recorder.delivered == []
    assert len(mail_catcher.messages()) == 1
