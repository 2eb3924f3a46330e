"""The opt-out endpoint: the link in every win-back email, answered by ``amends serve``.

``GET /unsubscribe?email=...&token=...`` shows a page with one button; ``POST`` to the same
address with the body ``List-Unsubscribe=One-Click`` (the button, or a mail program's one-click
unsubscribe, RFC 8058) records the opt-out from marketing. A GET never unsubscribes: mail
scanners follow links; nor does a POST without that body. Only a link made for an address, with
the business's secret, unsubscribes it; tokens are compared in constant time.

The same server answers the exit questions' form (issue 18): ``GET /exit-answers?customer=...
&token=...`` shows the questions of :mod:`amends.exit_questions` in the customer's language,
and a ``POST`` of the form records the answers once, for the report's themes. Only a link made
for that customer, with the business's secret, opens or records their form.

A client has :data:`DEADLINE_SECONDS` for its whole request, however slowly it trickles it in,
and at most :data:`MAX_CONNECTIONS` are served at once; more are answered 503 at once.
"""

from __future__ import annotations

import contextlib
import email
import hashlib
import hmac
import socket
import threading
from html import escape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from sqlalchemy import select

from amends import exit_questions
from amends.delivery.channels import unsubscribe_token
from amends.delivery.consent import suppress
from amends.errors import ConfigurationError, InvalidInput
from amends.settings import Settings
from amends.storage import models
from amends.storage.db import Database

PATH = "/unsubscribe"
ANSWERS_PATH = "/exit-answers"
MAX_BODY = 1024  # a one-click POST is 26 bytes
# Four answers of ANSWER_LIMIT characters, each up to 9 bytes once percent-encoded.
MAX_ANSWERS_BODY = 4 * exit_questions.ANSWER_LIMIT * 9 + 1024
FORM_ACTOR = "the customer (answer form)"
ONE_CLICK = ("List-Unsubscribe", "One-Click")  # RFC 8058's POST body, as a form field
DEADLINE_SECONDS = 15  # for a whole request: a per-read timeout lets a trickle last forever
MAX_CONNECTIONS = 16


def answers_token(secret: str, customer_ref: str) -> str:
    """A token that proves an answer link was made for this customer, by this business; never
    the same as an opt-out token (another purpose is signed)."""
    digest = hmac.new(secret.encode(), f"exit-answers:{customer_ref}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def answers_link(settings: Settings, customer_ref: str) -> str:
    """The customer's link to the exit questions' form, beside the opt-out address (the same
    server behind the same proxy); empty when opt-out links are not configured."""
    if settings.unsubscribe_url is None or settings.unsubscribe_secret is None:
        return ""
    token = answers_token(settings.unsubscribe_secret.get_secret_value(), customer_ref)
    parts = urlsplit(settings.unsubscribe_url)
    folder = parts.path.rpartition("/")[0]
    query = urlencode([("customer", customer_ref), ("token", token)])
    return urlunsplit(parts._replace(path=folder + ANSWERS_PATH, query=query))


# The form's own words, per language (the questions come from amends.exit_questions).
FORM_TEXT = {
    "en": {
        "title": "A few questions",
        "intro": "{business} would like to understand why you left. Answer what you like; "
        "every answer is read.",
        "send": "Send my answers",
        "thanks": "Thank you: your answers are with {business}.",
        "already": "Thank you: your answers are already with {business}.",
        "empty": "Write at least one answer, then send.",
        "too_long": "An answer is too long: keep each to {limit} characters.",
    },
    "es": {
        "title": "Unas preguntas",
        "intro": "En {business} queremos entender por qué se fue. Responda lo que quiera; "
        "leemos cada respuesta.",
        "send": "Enviar mis respuestas",
        "thanks": "Gracias: sus respuestas ya están en {business}.",
        "already": "Gracias: ya teníamos sus respuestas en {business}.",
        "empty": "Escriba al menos una respuesta y envíela.",
        "too_long": "Una respuesta es demasiado larga: como mucho {limit} caracteres cada una.",
    },
}


def is_one_click(content_type: str, body: bytes) -> bool:
    """True if ``body`` is RFC 8058's one-click POST: ``List-Unsubscribe=One-Click``, sent as
    application/x-www-form-urlencoded or (as the RFC prefers) multipart/form-data."""
    name, value = ONE_CLICK
    if content_type.lower().startswith("multipart/form-data"):
        form = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        return any(
            part.get_param("name", header="content-disposition") == name
            and (part.get_payload(decode=True) or b"").strip() == value.encode()
            for part in form.walk()
            if not part.is_multipart()
        )
    return parse_qs(body.decode("utf-8", "replace")).get(name) == [value]


class _Server(ThreadingHTTPServer):
    """A threading server that serves at most ``max_connections`` clients at once."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any, max_connections: int) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            # Busy: say so at once rather than queue a thread per waiting client.
            try:
                request.settimeout(1)
                request.sendall(
                    b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 5\r\n"
                    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def optout_server(settings: Settings, db: Database, port: int | None = None) -> ThreadingHTTPServer:
    """A server for opt-out links on 127.0.0.1 (``settings.optout_port``, or ``port``: 0 picks a
    free one); run it with ``serve_forever()``, stop it with ``shutdown()``.

    Raises:
        ConfigurationError: no ``AMENDS_UNSUBSCRIBE_SECRET``, so no link can be checked.
    """
    if settings.unsubscribe_secret is None:
        raise ConfigurationError("the opt-out endpoint needs AMENDS_UNSUBSCRIBE_SECRET")
    secret = settings.unsubscribe_secret.get_secret_value()

    class Handler(BaseHTTPRequestHandler):
        server_version = "amends-optout"
        timeout = 10  # seconds a slow client may take over one read

        def setup(self) -> None:
            super().setup()
            # The whole request's deadline: hanging up ends any read still waiting.
            self._deadline = threading.Timer(DEADLINE_SECONDS, self._hang_up)
            self._deadline.daemon = True
            self._deadline.start()

        def finish(self) -> None:
            self._deadline.cancel()
            super().finish()

        def _hang_up(self) -> None:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        def do_GET(self) -> None:
            if urlsplit(self.path).path == ANSWERS_PATH:
                self._answers_form()
                return
            address = self._address()
            if address is None:
                return
            # The form posts to this link's own query, on our own path: never elsewhere.
            link = escape(f"{PATH}?{urlsplit(self.path).query}", quote=True)
            self._answer(
                HTTPStatus.OK,
                f"<p>Stop offers from {escape(settings.business_name)} to {escape(address)}?</p>"
                f'<form method="post" action="{link}">'
                f'<input type="hidden" name="{ONE_CLICK[0]}" value="{ONE_CLICK[1]}">'
                "<button>Stop offers</button></form>"
                "<p>Messages about a case you opened still reach you.</p>",
            )

        def do_POST(self) -> None:
            declared = self.headers.get("Content-Length") or "0"
            length = int(declared) if declared.isdigit() else -1
            if length < 0:
                self._answer(HTTPStatus.BAD_REQUEST, "<p>Bad request.</p>")
                return
            if length > MAX_BODY and urlsplit(self.path).path != ANSWERS_PATH:
                self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "<p>Too large.</p>")
                return
            if urlsplit(self.path).path == ANSWERS_PATH:
                if length > MAX_ANSWERS_BODY:
                    self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "<p>Too large.</p>")
                    return
                self._record_answers(self.rfile.read(length))
                return
            body = self.rfile.read(length)
            address = self._address()
            if address is None:
                return
            if not is_one_click(self.headers.get("Content-Type", ""), body):
                self._answer(
                    HTTPStatus.BAD_REQUEST,
                    "<p>Use the button on this link's page to stop offers.</p>",
                )
                return
            try:
                suppress(db, address, scope="marketing", reason="opt_out")
            except InvalidInput:
                self._answer(HTTPStatus.BAD_REQUEST, "<p>That is not an email address.</p>")
                return
            self._answer(
                HTTPStatus.OK,
                f"<p>Done: {escape(settings.business_name)} sends no more offers to "
                f"{escape(address)}.</p>",
            )

        def _customer(self) -> tuple[str, str] | None:
            """The answer link's customer ref and language if its token is right; otherwise
            answer, and None."""
            query = parse_qs(urlsplit(self.path).query)
            ref, token = query.get("customer", [""])[0], query.get("token", [""])[0]
            expected = answers_token(secret, ref)
            if not ref or not hmac.compare_digest(expected.encode(), token.encode()):
                self._answer(HTTPStatus.FORBIDDEN, "<p>This link is not valid.</p>")
                return None
            found = _customer_locale(db, ref)
            if found is None:  # forgotten since (amends forget): nothing to answer for
                self._answer(HTTPStatus.NOT_FOUND, "<p>Not found.</p>")
                return None
            return ref, found

        def _open_form(self) -> tuple[str, str, dict[str, str], str] | None:
            """The link's customer, language, the form's words and the business's name, while
            the form is still to be answered; otherwise answer, and None."""
            found = self._customer()
            if found is None:
                return None
            ref, locale = found
            words = FORM_TEXT.get(locale, FORM_TEXT["en"])
            business = escape(settings.business_name)
            if _answered(db, ref):
                self._answer(
                    HTTPStatus.OK,
                    f"<p>{words['already'].format(business=business)}</p>",
                    title=words["title"],
                    lang=locale,
                )
                return None
            return ref, locale, words, business

        def _answers_form(self, problem: str = "") -> None:
            opened = self._open_form()
            if opened is None:
                return
            _, locale, words, business = opened
            # The form posts to this link's own query, on our own path: never elsewhere.
            link = escape(f"{ANSWERS_PATH}?{urlsplit(self.path).query}", quote=True)
            fields = "".join(
                f'<p><label for="{q.key}">{escape(q.asked_in(locale))}</label><br>'
                f'<textarea id="{q.key}" name="{q.key}" rows="3" cols="60" '
                f'maxlength="{exit_questions.ANSWER_LIMIT}"></textarea></p>'
                for q in exit_questions.QUESTIONS
            )
            self._answer(
                HTTPStatus.BAD_REQUEST if problem else HTTPStatus.OK,
                (f"<p><strong>{escape(problem)}</strong></p>" if problem else "")
                + f"<p>{words['intro'].format(business=business)}</p>"
                + f'<form method="post" action="{link}">{fields}'
                + f"<button>{escape(words['send'])}</button></form>",
                title=words["title"],
                lang=locale,
            )

        def _record_answers(self, body: bytes) -> None:
            opened = self._open_form()
            if opened is None:
                return
            ref, locale, words, business = opened
            form = parse_qs(body.decode("utf-8", "replace"))
            # Only the questions' own fields; a textarea's lines become one line.
            answers = {key: " ".join(form.get(key, [""])[0].split()) for key in exit_questions.KEYS}
            if not any(answers.values()):
                self._answers_form(words["empty"])
                return
            if any(len(a) > exit_questions.ANSWER_LIMIT for a in answers.values()):
                self._answers_form(words["too_long"].format(limit=exit_questions.ANSWER_LIMIT))
                return
            from amends.nightly.aftercare import save_exit_answers

            try:
                save_exit_answers(db, ref, answers, actor=FORM_ACTOR)
            except InvalidInput:
                self._answers_form(words["empty"])
                return
            self._answer(
                HTTPStatus.OK,
                f"<p>{words['thanks'].format(business=business)}</p>",
                title=words["title"],
                lang=locale,
            )

        def _address(self) -> str | None:
            """The link's address if its token is right; otherwise answer, and None."""
            url = urlsplit(self.path)
            if url.path != PATH:
                self._answer(HTTPStatus.NOT_FOUND, "<p>Not found.</p>")
                return None
            query = parse_qs(url.query)
            address, token = query.get("email", [""])[0], query.get("token", [""])[0]
            expected = unsubscribe_token(secret, address)
            if not address or not hmac.compare_digest(expected.encode(), token.encode()):
                self._answer(HTTPStatus.FORBIDDEN, "<p>This link is not valid.</p>")
                return None
            return address

        def _answer(
            self, status: HTTPStatus, html: str, *, title: str = "Opt out", lang: str = "en"
        ) -> None:
            body = (
                f'<!doctype html><html lang="{escape(lang, quote=True)}"><meta charset=utf-8>'
                f"<title>{escape(title)}</title>{html}"
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the request line holds the address and its token."""

    return _Server(
        ("127.0.0.1", settings.optout_port if port is None else port), Handler, MAX_CONNECTIONS
    )


def _customer_locale(db: Database, ref: str) -> str | None:
    """The customer's language, or None when no such customer is kept."""
    with db.session() as session:
        locale = session.scalar(select(models.Customer.locale).where(models.Customer.ref == ref))
    return None if locale is None else locale.split("_")[0]


def _answered(db: Database, ref: str) -> bool:
    """Whether the customer already sent the form: it records their answers once."""
    with db.session() as session:
        return (
            session.scalar(
                select(models.ExitAnswers.id)
                .join(models.Customer, models.ExitAnswers.customer_id == models.Customer.id)
                .where(models.Customer.ref == ref, models.ExitAnswers.recorded_by == FORM_ACTOR)
                .limit(1)
            )
            is not None
        )
