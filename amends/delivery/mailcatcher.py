"""A local mail catcher: a real SMTP server on loopback that saves each message as an .eml file.

Used by ``amends demo`` and the tests, so that mail really travels over SMTP without reaching
anyone.
"""

from __future__ import annotations

import itertools
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class _SaveToFolder:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            number = next(self._numbers)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        path = self.folder / f"{stamp}-{number:04d}.eml"
        data = envelope.original_content or b""
        path.with_suffix(".part").write_bytes(data)
        path.with_suffix(".part").rename(path)  # readers never see half a message
        return "250 Message accepted for delivery"


class MailCatcher:
    """Run an SMTP server on ``host:port`` that writes each message to ``folder``.

    Example:
        >>> with MailCatcher(Path("var/mail")) as catcher:
        ...     send_mail(port=catcher.port)
        >>> sorted(Path("var/mail").glob("*.eml"))
    """

    def __init__(self, folder: Path, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.folder = folder
        self.host = host
        self.port = port or free_port(host)
        folder.mkdir(parents=True, exist_ok=True)
        # SMTPUTF8 (aiosmtpd's Controller's default, said aloud): josé@example.com is caught too.
        self._controller = Controller(
            _SaveToFolder(folder), hostname=host, port=self.port, enable_SMTPUTF8=True
        )

    def messages(self) -> list[Path]:
        """The saved messages, oldest first."""
        return sorted(self.folder.glob("*.eml"))

    def __enter__(self) -> MailCatcher:
        self._controller.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._controller.stop()
