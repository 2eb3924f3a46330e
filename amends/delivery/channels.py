"""Delivery channels: email through yagmail; signed webhooks; plugins; a recording adapter for
tests. Each implements the one interface in :mod:`amends.delivery.adapter`.

Channels are plugins: an installed package adds one with an ``amends.channels`` entry point (see
:func:`load_channels`). A channel without an adapter is delivered by staff (a call-back, a
printed letter, a visit): its messages wait in the outbox, with a staff action.
"""

from __future__ import annotations

import contextlib
import email.policy
import hashlib
import hmac
import re
import secrets
import smtplib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import yagmail
from email_validator import EmailNotValidError, validate_email
from yagmail.headers import resolve_addresses
from yagmail.message import prepare_message

from amends.delivery.adapter import ChannelAdapter, Outgoing
from amends.delivery.webhooks import WebhookAdapter
from amends.domain import ReplyChannel
from amends.errors import ConfigurationError, DeliveryError
from amends.messages.rendering import plain_text
from amends.settings import Settings


class EmailAdapter:
    """Email through yagmail, with the gaps of yagmail 0.16 closed in one place.

    yagmail builds the message (:meth:`compose`); amends then mends what 0.16 gets wrong:
    its text/plain part is a copy of the HTML, its calendar part lacks ``method=REQUEST``, and
    it has no List-Unsubscribe, and it writes a UTF-8 address as an encoded word no server
    reads. Sending goes through yagmail's own connection, one SMTP transaction per message
    (:meth:`_transfer`): yagmail's ``send`` would open a new connection per call without
    closing the last, and quietly resend after a disconnect. Alone, a message gets its own
    connection, closed after it; within :meth:`batch`, messages share one, and any error drops
    it for a fresh one. ``tests/core/test_channels.py`` pins each of these, so a yagmail
    upgrade that changes one is noticed.
    """

    def __init__(self, settings: Settings) -> None:
        settings.check_identity()
        self.settings = settings
        self._local = threading.local()  # a batch's open connection, per thread

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Keep one connection open for the messages delivered inside the block."""
        self._local.batch = True
        try:
            yield
        finally:
            self._local.batch = False
            self._drop()

    def _drop(self) -> None:
        client = getattr(self._local, "client", None)
        self._local.client = None
        if client is not None:
            client.close()

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
            # Addresses were validated at intake with email-validator; yagmail's regex is slow.
            soft_email_validation=False,
            timeout=s.smtp_timeout_seconds,
        )

    def compose(
        self, message: Outgoing, client: yagmail.SMTP | None = None
    ) -> tuple[list[str], str]:
        """The recipients and the whole message, as it goes over the wire."""
        client = client or self._client()
        headers = {}
        if message.in_reply_to:
            headers = {"In-Reply-To": message.in_reply_to, "References": message.in_reply_to}
        # yagmail turns every "\n" of a body into "<br>", and treats a body that names an
        # existing file as an attachment: hand it one line of HTML. Only ASCII white space is
        # folded; a no-break space keeps "600,00 €" together.
        html = re.sub(r"[ \t\r\n]+", " ", message.body).strip()
        recipient = ascii_form(message.recipient)
        # yagmail's own two steps of prepare_send, keeping the MIME object to mend it. A bare
        # address: given {address: name}, yagmail writes only the name in To.
        addresses = resolve_addresses(client.user, client.useralias, recipient, None, None)
        mime = prepare_message(
            client.user,
            client.useralias,
            addresses,
            message.subject,
            html,
            [str(message.attachment)] if message.attachment else None,
            headers or None,
            client.encoding,
            prettify_html=False,
            message_id=message.message_id,
        )
        for part in mime.walk():
            if part.is_multipart():
                # Chosen here, the generator does not search the text for a free boundary,
                # which compiles a regular expression per part (half the cost of a message).
                # Every leaf part is base64, which has no "_" or ".": this one cannot occur.
                part.set_boundary(f"=_amends.{secrets.token_hex(12)}")
            elif part.get_content_type() == "text/plain" and part.get_filename() is None:
                del part["Content-Transfer-Encoding"]
                part.set_payload(plain_text(message.body), "utf-8")
            elif part.get_content_type() == "text/calendar":
                # The MIME method must repeat the calendar's own: REQUEST, or CANCEL.
                method = re.search(rb"^METHOD:(\w+)", part.get_payload(decode=True), re.M)
                part.set_param("method", method.group(1).decode() if method else "REQUEST")
        if message.marketing:
            mime["List-Unsubscribe"] = self._unsubscribe(message.recipient)
            if self.settings.unsubscribe_url:
                mime["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        if not recipient.isascii():
            # A mailbox name beyond ASCII (josé@...): the message goes as UTF-8 (RFC 6532),
            # the address as it is, never an encoded word.
            mime.replace_header("To", recipient)
            return addresses["recipients"], mime.as_string(policy=email.policy.SMTPUTF8)
        return addresses["recipients"], mime.as_string(policy=_WRITTEN_AS_GIVEN)

    def _unsubscribe(self, recipient: str) -> str:
        mailto = f"<mailto:{self.settings.sender_email}?subject=unsubscribe>"
        if not self.settings.unsubscribe_url:
            return mailto
        return f"<{unsubscribe_link(self.settings, recipient)}>, {mailto}"

    def deliver(self, message: Outgoing) -> str:
        in_batch = getattr(self._local, "batch", False)
        client = getattr(self._local, "client", None) if in_batch else None
        try:
            if client is None:
                client = self._client()
                if in_batch:
                    self._local.client = client  # closed with the batch, even if login fails
                client.login()
            recipients, raw = self.compose(message, client)
            refused = self._transfer(client.smtp, client.user, recipients, raw)
        except Exception as error:
            if in_batch:
                self._drop()
            raise self._describe(error) from None
        finally:
            if not in_batch and client is not None:
                client.close()
        if refused:
            raise DeliveryError(
                f"recipient refused: {_describe(refused)}", transient=False, bounce=True
            )
        return message.message_id

    def _transfer(
        self, smtp: smtplib.SMTP, sender: str, recipients: list[str], raw: str
    ) -> dict[str, tuple[int, bytes]]:
        """One SMTP transaction: smtplib's ``sendmail`` in its steps, with two differences.
        Addresses beyond ASCII go with SMTPUTF8 (RFC 6531) where the server offers it, and
        fail this one message with the reason where it does not. A connection lost after the
        message itself went out is told apart from one lost before: the server may have it.

        Returns the recipients refused (the others took the message)."""
        where = f"{self.settings.smtp_host}:{self.settings.smtp_port}"
        smtp.ehlo_or_helo_if_needed()
        options = []
        if not all(address.isascii() for address in (sender, *recipients)):
            if not smtp.has_extn("smtputf8"):
                wide = next(a for a in (sender, *recipients) if not a.isascii())
                raise DeliveryError(
                    f"{wide} can only be written to as UTF-8 (SMTPUTF8), which the SMTP server "
                    f"{where} does not offer: reach the customer another way",
                    transient=False,
                )
            options += ["SMTPUTF8", "BODY=8BITMIME"]
        data = re.sub(r"\r\n|\n|\r(?!\n)", "\r\n", raw).encode()  # as sendmail does for str
        if smtp.has_extn("size"):
            options.append(f"size={len(data)}")
        code, reply = smtp.mail(sender, options)
        if code != 250:
            _reset(smtp, code)
            raise smtplib.SMTPSenderRefused(code, reply, sender)
        refused = {}
        for recipient in recipients:
            code, reply = smtp.rcpt(recipient)
            if code not in (250, 251):
                refused[recipient] = (code, reply)
            if code == 421:
                smtp.close()
                raise smtplib.SMTPRecipientsRefused(refused)
        if len(refused) == len(recipients):
            _reset(smtp, code)
            raise smtplib.SMTPRecipientsRefused(refused)
        try:
            code, reply = smtp.data(data)
        except smtplib.SMTPResponseException:
            raise  # an answer: a refusal, not a lost connection
        except OSError as error:  # disconnected, reset, timed out
            raise DeliveryError(
                f"SMTP connection lost after the message was sent, before the server "
                f"confirmed it ({error or type(error).__name__})",
                transient=True,
                maybe_delivered=True,
            ) from None
        if code != 250:
            _reset(smtp, code)
            raise smtplib.SMTPDataError(code, reply)
        return refused

    def _describe(self, error: Exception) -> Exception:
        """An SMTP or network error as a DeliveryError, a sender that cannot work at all as a
        ConfigurationError; anything else as it is (a bug)."""
        where = f"{self.settings.smtp_host}:{self.settings.smtp_port}"
        if isinstance(error, smtplib.SMTPAuthenticationError):
            return ConfigurationError(
                f"the SMTP server {where} refused the login ({error.smtp_code}): check "
                "the profile's sender (amends init) and AMENDS_SMTP_PASSWORD"
            )
        if isinstance(error, smtplib.SMTPSenderRefused):
            return ConfigurationError(
                f"the SMTP server {where} refuses mail from {self.settings.sender_email} "
                f"({error.smtp_code} {_text(error.smtp_error)})"
            )
        if isinstance(error, smtplib.SMTPNotSupportedError):
            return ConfigurationError(f"the SMTP server {where} does not support: {error}")
        if isinstance(error, smtplib.SMTPRecipientsRefused):
            codes = [code for code, _ in error.recipients.values()]
            return DeliveryError(
                f"recipient refused: {_describe(error.recipients)}",
                transient=all(400 <= code < 500 for code in codes),
                bounce=True,
            )
        if isinstance(error, smtplib.SMTPResponseException):
            return DeliveryError(
                f"SMTP {error.smtp_code}: {_text(error.smtp_error)}",
                transient=400 <= error.smtp_code < 500,
            )
        if isinstance(error, smtplib.SMTPServerDisconnected):
            return DeliveryError(f"SMTP connection lost: {error}", transient=True)
        if isinstance(error, smtplib.SMTPException):
            return DeliveryError(f"SMTP error: {error}", transient=True)
        if isinstance(error, OSError):  # refused, reset, timed out, unknown host
            return DeliveryError(f"cannot reach SMTP server {where}: {error}", transient=True)
        return error


class _Compat32AsGiven(email.policy.Compat32):
    """The policy yagmail's messages are written with, writing a header that needs neither
    folding nor encoding as it is: compat32 passes every one through ``email.header.Header``,
    two thirds of the time it takes to write a message, for the same text."""

    def fold(self, name: str, value: str) -> str:
        if (
            isinstance(value, str)
            and value.isascii()
            and "\n" not in value
            and "\r" not in value
            and (not self.max_line_length or len(name) + len(value) + 2 <= self.max_line_length)
        ):
            return f"{name}: {value}{self.linesep}"
        return super().fold(name, value)


_WRITTEN_AS_GIVEN = _Compat32AsGiven()


def _reset(smtp: smtplib.SMTP, code: int) -> None:
    """After a refusal, as smtplib does: 421 closes the connection, anything else resets the
    transaction so the connection serves the next message."""
    if code == 421:
        smtp.close()
        return
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        smtp.rset()


def ascii_form(address: str) -> str:
    """The address as any server takes it: an internationalised domain in its ASCII (IDNA)
    form (rk@exämple.com -> rk@xn--exmple-cua.com). A mailbox name beyond ASCII (josé@...)
    has none and stays as it is: it needs SMTPUTF8."""
    if address.isascii():
        return address
    try:
        return validate_email(address, check_deliverability=False).ascii_email or address
    except EmailNotValidError:
        return address


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

    @contextmanager
    def batch(self) -> Iterator[None]:
        yield


ChannelFactory = Callable[[Settings], "dict[ReplyChannel, ChannelAdapter]"]
ENTRY_POINT_GROUP = "amends.channels"


def email_channel(settings: Settings) -> dict[ReplyChannel, ChannelAdapter]:
    """Email through yagmail: always on (a local catcher by default)."""
    return {ReplyChannel.EMAIL: EmailAdapter(settings)}


def webhook_channels(settings: Settings) -> dict[ReplyChannel, ChannelAdapter]:
    """SMS, chat and social replies through signed webhooks, for each URL that is set."""
    urls = {
        ReplyChannel.SMS: settings.webhook_sms_url,
        ReplyChannel.CHAT: settings.webhook_chat_url,
        ReplyChannel.SOCIAL: settings.webhook_social_url,
    }
    if not any(urls.values()):
        return {}
    if settings.webhook_secret is None:
        raise ConfigurationError("a webhook URL is set but AMENDS_WEBHOOK_SECRET is not")
    return {
        channel: WebhookAdapter(channel, url, settings.webhook_secret)
        for channel, url in urls.items()
        if url
    }


def load_channels(settings: Settings) -> dict[ReplyChannel, ChannelAdapter]:
    """amends' own channels (email, webhooks), then every installed plugin's: the
    ``amends.channels`` entry points, each a factory from settings to adapters. A channel
    without an adapter is delivered by staff.

    Raises:
        ConfigurationError: two channels claim the same reply channel.
    """
    channels = {**email_channel(settings), **webhook_channels(settings)}
    for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        factory: ChannelFactory = entry_point.load()
        for channel, adapter in factory(settings).items():
            if channel in channels:
                raise ConfigurationError(
                    f"the channel plugin {entry_point.name!r} would replace the "
                    f"{channel.value} channel; uninstall one of them"
                )
            channels[channel] = adapter
    return channels


def unsubscribe_token(secret: str, email_address: str) -> str:
    """A token that proves an opt-out link was made for this address, by this business."""
    digest = hmac.new(secret.encode(), email_address.lower().encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def unsubscribe_link(settings: Settings, email_address: str) -> str:
    """The one-click opt-out link for an address: only its own token unsubscribes it."""
    if settings.unsubscribe_url is None or settings.unsubscribe_secret is None:
        raise ConfigurationError("an unsubscribe link needs AMENDS_UNSUBSCRIBE_URL and _SECRET")
    token = unsubscribe_token(settings.unsubscribe_secret.get_secret_value(), email_address)
    parts = urlsplit(settings.unsubscribe_url)
    query = urlencode([*parse_qsl(parts.query), ("email", email_address), ("token", token)])
    return urlunsplit(parts._replace(query=query))
