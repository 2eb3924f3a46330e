"""Real HTTP servers on loopback for tests: started in a thread, stopped and closed after."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

from amends.delivery.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


@contextmanager
def serving(server: HTTPServer) -> Iterator[str]:
    """Serve until the block ends; yields the server's base URL."""
    # shutdown() waits for the serving loop's next poll: 0.05 s instead of the default 0.5 s.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


SECRET = "webhook-secret-for-tests"


class Receiver(BaseHTTPRequestHandler):
    """A gateway that checks amends' signature, then answers as told."""

    received: ClassVar[list[dict]] = []
    answer = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        genuine = verify(
            SECRET, body, self.headers[SIGNATURE_HEADER], self.headers[TIMESTAMP_HEADER]
        )
        status = self.answer if genuine else 401
        if genuine and status == 200:
            Receiver.received.append(json.loads(body))
        payload = json.dumps({"id": f"gw-{len(Receiver.received)}"}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:  # quiet
        pass
