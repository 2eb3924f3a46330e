"""Email through yagmail to a real SMTP server on loopback."""

from __future__ import annotations

import email
from email import policy as email_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from amends.channels import EmailAdapter, Outgoing
from amends.errors import DeliveryError
from amends.mailcatcher import MailCatcher, free_port
from amends.settings import Settings


def outgoing(tmp_path: Path, **changes: object) -> Outgoing:
    ics = tmp_path / "checkin.ics"
    ics.write_bytes(b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n")
    values = {
        "recipient": "rk@example.com",
        "subject": "Re: Four days without cleaning",
        "body": "<p>Dear Rodolfo,</p>\n<p>We are sorry.</p>",
        "message_id": "<abc.amends@acme.example>",
        "in_reply_to": "<complaint-1@customer.example>",
        "attachment": ics,
    }
    values.update(changes)
    return Outgoing(**values)  # type: ignore[arg-type]


def test_a_message_arrives_threaded_with_its_attachment(
    tmp_path: Path, mail_catcher: MailCatcher
) -> None:
    adapter = EmailAdapter(Settings(smtp_port=mail_catcher.port))
    assert adapter.deliver(outgoing(tmp_path)) == "<abc.amends@acme.example>"
    (saved,) = mail_catcher.messages()
    message = email.message_from_bytes(saved.read_bytes(), policy=email_policy.default)
    assert message["Subject"] == "Re: Four days without cleaning"
    assert message["In-Reply-To"] == message["References"] == "<complaint-1@customer.example>"
    assert message.get_all("Message-ID") == ["<abc.amends@acme.example>"]
    assert message["To"].addresses[0].addr_spec == "rk@example.com"
    assert message["From"].addresses[0].addr_spec == "care@acme-cleaning.example"
    html = next(part for part in message.walk() if part.get_content_type() == "text/html")
    assert "We are sorry." in html.get_content()
    calendar = next(part for part in message.walk() if part.get_content_type() == "text/calendar")
    assert b"METHOD:REQUEST" in calendar.get_payload(decode=True)


def test_no_server_is_a_transient_failure(tmp_path: Path) -> None:
    adapter = EmailAdapter(Settings(smtp_port=free_port()))
    with pytest.raises(DeliveryError) as caught:
        adapter.deliver(outgoing(tmp_path))
    assert caught.value.transient
    assert "cannot reach SMTP server 127.0.0.1" in caught.value.reason


class Refusing:
    def __init__(self, reply: str) -> None:
        self.reply = reply

    async def handle_RCPT(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
        return self.reply


@pytest.mark.parametrize(
    ("reply", "transient"),
    [("550 5.1.1 no such user", False), ("451 4.7.1 greylisted, try later", True)],
)
def test_a_refused_recipient_is_classified(tmp_path: Path, reply: str, transient: bool) -> None:
    port = free_port()
    controller = Controller(Refusing(reply), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with pytest.raises(DeliveryError) as caught:
            EmailAdapter(Settings(smtp_port=port)).deliver(outgoing(tmp_path))
    finally:
        controller.stop()
    assert caught.value.transient is transient
    assert reply.split()[0] in caught.value.reason


def test_the_password_never_reaches_an_error(tmp_path: Path) -> None:
    adapter = EmailAdapter(Settings(smtp_port=free_port(), smtp_password="hunter2-secret"))
    with pytest.raises(DeliveryError) as caught:
        adapter.deliver(outgoing(tmp_path))
    assert "hunter2" not in str(caught.value) and "hunter2" not in repr(adapter.settings)
