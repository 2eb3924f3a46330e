"""The opt-out endpoint: the link in every win-back email, answered by ``amends serve``.

``GET /unsubscribe?email=...&token=...`` shows a page with one button; ``POST`` to the same
address with the body ``List-Unsubscribe=One-Click`` (the button, or a mail program's one-click
unsubscribe, RFC 8058) records the opt-out from marketing. A GET never unsubscribes: mail
scanners follow links; nor does a POST without that body. Only a link made for an address, with
the business's secret, unsubscribes it; tokens are compared in constant time.

A client has :data:`DEADLINE_SECONDS` for its whole request, however slowly it trickles it in,
and at most :data:`MAX_CONNECTIONS` are served at once; more are answered 503 at once.
"""

from __future__ import annotations

import contextlib
import email
import hmac
import socket
import threading
from html import escape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from amends.delivery.channels import unsubscribe_token
from amends.delivery.consent import suppress
from amends.errors import ConfigurationError, InvalidInput
from amends.settings import Settings
from amends.storage.db import Database

PATH = "/unsubscribe"
MAX_BODY = 1024  # a one-click POST is 26 bytes
ONE_CLICK = ("List-Unsubscribe", "One-Click")  # RFC 8058's POST body, as a form field
DEADLINE_SECONDS = 15  # for a whole request: a per-read timeout lets a trickle last forever
MAX_CONNECTIONS = 16


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
            if length > MAX_BODY:
                self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "<p>Too large.</p>")
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

        def _answer(self, status: HTTPStatus, html: str) -> None:
            body = f"<!doctype html><meta charset=utf-8><title>Opt out</title>{html}".encode()
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
