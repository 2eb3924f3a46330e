"""Delivery channels: one adapter interface, email through yagmail, a recording adapter for tests.

A channel without an adapter is delivered by staff (a call-back, a printed letter, a visit):
its messages wait in the outbox as ``awaiting_staff``.
"""

from __future__ import annotations

import email
import re
import smtplib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlencode

import yagmail

from amends.errors import DeliveryError
from amends.rendering import plain_text
from amends.settings import Settings


@dataclass(frozen=True)
class Outgoing:
    """A message ready for its channel."""

    recipient: str
    subject: str
    body: str
    message_id: str
    in_reply_to: str | None = None
    attachment: Path | None = None
    marketing: bool = False  # re-engagement, not service: carries List-Unsubscribe


class ChannelAdapter(Protocol):
    """Delivers messages on one channel.

    ``deliver`` returns the provider's id for the message, and raises :class:`DeliveryError`
    with ``transient`` set when a later attempt may succeed.
    """

    def deliver(self, message: Outgoing) -> str: ...


class EmailAdapter:
    """Email through yagmail, with the gaps of yagmail 0.16 closed in one place.

    yagmail builds the message (:meth:`compose`); amends then mends what 0.16 gets wrong:
    its text/plain part is a copy of the HTML, its calendar part lacks ``method=REQUEST``, and
    it has no List-Unsubscribe. Sending goes through yagmail's own connection, one per message
    and closed after it, with ``sendmail`` called once: yagmail's ``send`` would open a new
    connection per call without closing the last, and quietly resend after a disconnect.
    ``tests/core/test_channels.py`` pins each of these, so a yagmail upgrade that changes one
    is noticed.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _client(self) -> yagmail.SMTP:
        s = self.settings
        password = s.smtp_password.get_secret_value() if s.smtp_password else None
        return yagmail.SMTP(
            user={s.sender_email: s.sender_name},
            password=password,
            host=s.smtp_host,
            port=s.smtp_port,
            smtp_ssl=s.smtp_ssl,
            smtp_starttls=s.smtp_starttls,
            smtp_skip_login=password is None,
            timeout=s.smtp_timeout_seconds,
        )

    def compose(self, message: Outgoing) -> tuple[list[str], str]:
        """The recipients and the whole message, as it goes over the wire."""
        headers = {}
        if message.in_reply_to:
            headers = {"In-Reply-To": message.in_reply_to, "References": message.in_reply_to}
        # yagmail turns every "\n" of a body into "<br>", and treats a body that names an
        # existing file as an attachment: hand it one line of HTML. Only ASCII white space is
        # folded; a no-break space keeps "600,00 €" together.
        html = re.sub(r"[ \t\r\n]+", " ", message.body).strip()
        # A bare address: given {address: name}, yagmail writes only the name in To.
        recipients, raw = self._client().prepare_send(
            to=message.recipient,
            subject=message.subject,
            contents=html,
            attachments=[str(message.attachment)] if message.attachment else None,
            headers=headers or None,
            prettify_html=False,
            message_id=message.message_id,
        )
        mime = email.message_from_string(raw)
        for part in mime.walk():
            if part.get_content_type() == "text/plain" and part.get_filename() is None:
                del part["Content-Transfer-Encoding"]
                part.set_payload(plain_text(message.body), "utf-8")
            elif part.get_content_type() == "text/calendar":
                part.set_param("method", "REQUEST")
        if message.marketing:
            mime["List-Unsubscribe"] = self._unsubscribe(message.recipient)
            if self.settings.unsubscribe_url:
                mime["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        return recipients, mime.as_string()

    def _unsubscribe(self, recipient: str) -> str:
        mailto = f"<mailto:{self.settings.sender_email}?subject=unsubscribe>"
        if not self.settings.unsubscribe_url:
            return mailto
        url = f"{self.settings.unsubscribe_url}?{urlencode({'email': recipient})}"
        return f"<{url}>, {mailto}"

    def deliver(self, message: Outgoing) -> str:
        recipients, raw = self.compose(message)
        try:
            with self._client() as client:
                client.login()
                refused = client.smtp.sendmail(client.user, recipients, raw)
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            raise DeliveryError(
                f"recipient refused: {_describe(error.recipients)}",
                transient=all(400 <= code < 500 for code in codes),
            ) from None
        except smtplib.SMTPResponseException as error:
            raise DeliveryError(
                f"SMTP {error.smtp_code}: {_text(error.smtp_error)}",
                transient=400 <= error.smtp_code < 500,
            ) from None
        except smtplib.SMTPServerDisconnected as error:
            raise DeliveryError(f"SMTP connection lost: {error}", transient=True) from None
        except OSError as error:  # refused, reset, timed out, unknown host
            where = f"{self.settings.smtp_host}:{self.settings.smtp_port}"
            raise DeliveryError(
                f"cannot reach SMTP server {where}: {error}", transient=True
            ) from None
        if refused:
            raise DeliveryError(f"recipient refused: {_describe(refused)}", transient=False)
        return message.message_id


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _describe(refused: dict) -> str:
    return "; ".join(f"{code} {_text(text)}" for code, text in refused.values())


@dataclass
class RecordingAdapter:
    """Keeps what it is given, for tests that need no server; can fail on demand."""

    delivered: list[Outgoing] = field(default_factory=list)
    fail_with: DeliveryError | None = None

    def deliver(self, message: Outgoing) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        self.delivered.append(message)
        return message.message_id
