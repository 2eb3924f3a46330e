"""The opt-out endpoint: the link in every win-back email, answered by ``amends serve``.

``GET /unsubscribe?email=...&token=...`` shows a page with one button; ``POST`` to the same
address (the button, or a mail program's one-click unsubscribe, RFC 8058) records the opt-out
from marketing. A GET never unsubscribes: mail scanners follow links. Only a link made for an
address, with the business's secret, unsubscribes it; tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
from html import escape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from amends.delivery.channels import unsubscribe_token
from amends.delivery.consent import suppress
from amends.errors import ConfigurationError, InvalidInput
from amends.settings import Settings
from amends.storage.db import Database

PATH = "/unsubscribe"
MAX_BODY = 1024  # a one-click POST is 26 bytes


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
        timeout = 10  # seconds a slow client may hold a connection

        def do_GET(self) -> None:
            address = self._address()
            if address is None:
                return
            # The form posts to this link's own query, on our own path: never elsewhere.
            link = escape(f"{PATH}?{urlsplit(self.path).query}", quote=True)
            self._answer(
                HTTPStatus.OK,
                f"<p>Stop offers from {escape(settings.business_name)} to {escape(address)}?</p>"
                f'<form method="post" action="{link}"><button>Stop offers</button></form>'
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
            self.rfile.read(length)
            address = self._address()
            if address is None:
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

    return ThreadingHTTPServer(
        ("127.0.0.1", settings.optout_port if port is None else port), Handler
    )
