"""Email through yagmail to a real SMTP server on loopback, with yagmail 0.16's gaps closed.

The ``test_yagmail_*`` tests pin what yagmail itself does, so that an upgrade that changes it
is noticed here, next to the code in amends/delivery/channels.py that works around it.
"""

from __future__ import annotations

import email
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import yagmail
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from icalendar import Calendar
from pydantic import SecretStr

from amends.delivery.adapter import Outgoing
from amends.delivery.channels import EmailAdapter, _Compat32AsGiven, unsubscribe_token
from amends.delivery.mailcatcher import MailCatcher, free_port
from amends.errors import ConfigurationError, DeliveryError
from amends.settings import Settings

HTML = "<p>Dear Rodolfo,</p>\n<p>We are <strong>sorry</strong>.</p>\n<ol>\n<li>First</li>\n</ol>"


def outgoing(tmp_path: Path, **changes: object) -> Outgoing:
    ics = tmp_path / "checkin.ics"
    ics.write_bytes(
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nMETHOD:REQUEST\r\n"
        b"BEGIN:VEVENT\r\nUID:1@x\r\nDTSTAMP:20261122T000000Z\r\nDTSTART:20261130T090000Z\r\n"
        b"END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    values = {
        "recipient": "rk@example.com",
        "subject": "Re: Four days without cleaning",
        "body": HTML,
        "message_id": "<abc.amends@acme.example>",
        "in_reply_to": "<complaint-1@customer.example>",
        "attachment": ics,
    }
    values.update(changes)
    return Outgoing(**values)  # type: ignore[arg-type]


def parse(raw: bytes | str) -> EmailMessage:
    data = raw.encode() if isinstance(raw, str) else raw
    return email.message_from_bytes(data, policy=email_policy.default)  # type: ignore[return-value]


def test_a_message_arrives_threaded_with_its_attachment(
    tmp_path: Path, mail_catcher: MailCatcher
) -> None:
    adapter = EmailAdapter(Settings(smtp_port=mail_catcher.port))
    assert adapter.deliver(outgoing(tmp_path)) == "<abc.amends@acme.example>"
    (saved,) = mail_catcher.messages()
    message = parse(saved.read_bytes())
    assert message["Subject"] == "Re: Four days without cleaning"
    assert message["In-Reply-To"] == message["References"] == "<complaint-1@customer.example>"
    assert message.get_all("Message-ID") == ["<abc.amends@acme.example>"]
    assert message["To"].addresses[0].addr_spec == "rk@example.com"
    sender = message["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == (
        "Acme Cleaning customer care",
        "care@acme-cleaning.example",
    )
    assert message["List-Unsubscribe"] is None  # a service message, not marketing


def test_the_text_part_is_real_text_and_the_html_is_untouched(tmp_path: Path) -> None:
    _, raw = EmailAdapter(Settings()).compose(outgoing(tmp_path))
    message = parse(raw)
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "<" not in text and "Dear Rodolfo,\n\nWe are sorry.\n\n1. First" in text
    assert "<br>" not in html and "<strong>sorry</strong>" in html


def test_the_invitation_is_an_invitation(tmp_path: Path) -> None:
    _, raw = EmailAdapter(Settings()).compose(outgoing(tmp_path))
    (part,) = [p for p in parse(raw).walk() if p.get_content_type() == "text/calendar"]
    assert part.get_param("method") == "REQUEST"
    assert Calendar.from_ical(part.get_payload(decode=True))["method"] == "REQUEST"


def test_a_cancellation_says_cancel_in_its_mime_type_too(tmp_path: Path) -> None:
    message = outgoing(tmp_path)
    message.attachment.write_text(
        message.attachment.read_text().replace("METHOD:REQUEST", "METHOD:CANCEL")
    )
    _, raw = EmailAdapter(Settings()).compose(message)
    (part,) = [p for p in parse(raw).walk() if p.get_content_type() == "text/calendar"]
    assert part.get_param("method") == "CANCEL"


def test_marketing_mail_can_be_unsubscribed_in_one_click(tmp_path: Path) -> None:
    settings = Settings(
        unsubscribe_url="https://acme.example/unsubscribe?list=winback",
        unsubscribe_secret=SecretStr("opt-out-secret"),
    )
    _, raw = EmailAdapter(settings).compose(outgoing(tmp_path, marketing=True))
    message = parse(raw)
    token = unsubscribe_token("opt-out-secret", "rk@example.com")
    assert message["List-Unsubscribe"] == (
        f"<https://acme.example/unsubscribe?list=winback&email=rk%40example.com&token={token}>, "
        "<mailto:care@acme-cleaning.example?subject=unsubscribe>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # Another address's token does not match: nobody can unsubscribe someone else.
    assert unsubscribe_token("opt-out-secret", "eve@example.com") != token


@pytest.mark.parametrize("max_line_length", [0, 78])
def test_headers_are_written_as_the_email_package_writes_them(max_line_length: int) -> None:
    """compose writes a header that needs no folding or encoding itself, for speed: the same
    text compat32 writes, for those and for the rest."""
    ours = _Compat32AsGiven(max_line_length=max_line_length)
    theirs = email_policy.compat32.clone(max_line_length=max_line_length)
    values = [
        "Re: Four days without cleaning", "a  b", " lead", "trail ", "a\tb", "", "x;y,z  w",
        "=?utf-8?q?caf=C3=A9?=", "<a@example.com>, <b@example.com>", "a " * 60, "b" * 200,
        "Réclamation : quatre jours sans ménage", "two\nlines", "Acme <care@acme.example>",
    ]  # fmt: skip
    for name in ("Subject", "List-Unsubscribe", "X-A-Rather-Long-Header-Name"):
        for value in values:
            assert ours.fold(name, value) == theirs.fold(name, value), (name, value)


def test_a_long_subject_beyond_ascii_arrives_whole(tmp_path: Path) -> None:
    subject = "Réclamation : quatre jours sans ménage, et toujours pas de réponse " * 2
    _, raw = EmailAdapter(Settings()).compose(outgoing(tmp_path, subject=subject))
    assert parse(raw)["Subject"] == subject


def test_a_wrong_password_stops_sending_with_one_clear_error(tmp_path: Path) -> None:
    class Refuse:
        def authenticate(self, *args):  # type: ignore[no-untyped-def]
            return AuthResult(success=False, handled=False)

    port = free_port()
    handler = Refuse()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, authenticator=handler.authenticate,
        auth_require_tls=False, auth_exclude_mechanism=["LOGIN"],
    )  # fmt: skip
    controller.start()
    try:
        adapter = EmailAdapter(Settings(smtp_port=port, smtp_password=SecretStr("wrong")))
        with pytest.raises(ConfigurationError, match="refused the login .* AMENDS_SMTP_PASSWORD"):
            adapter.deliver(outgoing(tmp_path))
    finally:
        controller.stop()


def test_yagmail_still_sends_html_as_the_text_part() -> None:
    """The gap amends mends: if this fails, yagmail fixed it, and compose() may be simpler."""
    client = yagmail.SMTP(user="a@example.com", smtp_skip_login=True, smtp_ssl=False)
    _, raw = client.prepare_send(to="b@example.com", contents="<p>Hi</p>", prettify_html=False)
    assert "<p>Hi</p>" in parse(raw).get_body(("plain",)).get_content()


def test_yagmail_still_omits_the_calendar_method(tmp_path: Path) -> None:
    ics = outgoing(tmp_path).attachment
    client = yagmail.SMTP(user="a@example.com", smtp_skip_login=True, smtp_ssl=False)
    _, raw = client.prepare_send(to="b@example.com", contents="<p>x</p>", attachments=[str(ics)])
    (part,) = [p for p in parse(raw).walk() if p.get_content_type() == "text/calendar"]
    assert part.get_param("method") is None


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


class Envelopes:
    """Keeps each message's envelope recipients and the message as it arrived."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        # Read as text: the bytes parser would not decode UTF-8 headers (RFC 6532).
        message = email.message_from_string(
            envelope.original_content.decode(), policy=email_policy.default
        )
        self.received.append((list(envelope.rcpt_tos), message))
        return "250 OK"


@pytest.fixture(params=[True, False], ids=["smtputf8", "ascii-only"])
def envelopes(request: pytest.FixtureRequest) -> object:
    handler, port = Envelopes(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=request.param)
    controller.start()
    yield handler, port, request.param
    controller.stop()


def test_internationalised_addresses_go_out_where_the_server_can_take_them(
    tmp_path: Path, envelopes: tuple[Envelopes, int, bool]
) -> None:
    handler, port, smtputf8 = envelopes
    adapter = EmailAdapter(Settings(smtp_port=port))
    # A domain beyond ASCII has an ASCII form (IDNA) that every server takes.
    adapter.deliver(outgoing(tmp_path, recipient="rk@exämple.com"))
    (recipients, message), *_ = handler.received
    assert recipients == ["rk@xn--exmple-cua.com"]
    assert message["To"].addresses[0].addr_spec == "rk@xn--exmple-cua.com"
    # A mailbox name beyond ASCII has none: UTF-8 (SMTPUTF8) where the server offers it.
    if smtputf8:
        adapter.deliver(outgoing(tmp_path, recipient="josé@example.com"))
        recipients, message = handler.received[1]
        assert recipients == ["josé@example.com"]
        assert message["To"].addresses[0].addr_spec == "josé@example.com"
        assert message["Subject"] == "Re: Four days without cleaning"
        return
    with pytest.raises(
        DeliveryError, match=r"josé@example.com can only be written to as UTF-8 \(SMTPUTF8\)"
    ) as refused:
        adapter.deliver(outgoing(tmp_path, recipient="josé@example.com"))
    assert not refused.value.transient and not refused.value.bounce  # the address is fine
    assert len(handler.received) == 1
