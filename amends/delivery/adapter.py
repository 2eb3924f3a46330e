"""The one adapter interface every channel implements, and the message it delivers.

Email (:mod:`amends.delivery.channels`), webhooks (:mod:`amends.delivery.webhooks`) and every
channel plugin implement :class:`ChannelAdapter`; the outbox knows nothing else of them.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


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
    public: bool = False  # a public post rather than a private message


class ChannelAdapter(Protocol):
    """Delivers messages on one channel.

    ``deliver`` returns the provider's id for the message, and raises :class:`DeliveryError`
    with ``transient`` set when a later attempt may succeed. Within ``batch()``, an adapter may
    keep its connection open from one message to the next.
    """

    def deliver(self, message: Outgoing) -> str: ...

    def batch(self) -> AbstractContextManager[None]: ...
