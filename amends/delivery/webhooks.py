"""A channel for anything that takes a signed HTTP POST: an SMS gateway, a helpdesk, a social
network's bridge. amends sends the message as JSON; the receiver checks the signature.

The signature is HMAC-SHA256 over ``<timestamp>.<body>`` with a shared secret, sent as
``X-Amends-Signature: sha256=<hex>`` beside ``X-Amends-Timestamp``; :func:`verify` is the
receiver's side, with a constant-time comparison and a limit on the timestamp's age.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from pydantic import SecretStr

from amends.delivery.adapter import Outgoing
from amends.domain import ReplyChannel
from amends.errors import DeliveryError

SIGNATURE_HEADER = "X-Amends-Signature"
TIMESTAMP_HEADER = "X-Amends-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for a body sent at ``timestamp`` (Unix seconds)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(
    secret: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    tolerance_seconds: float = 300,
    now: float | None = None,
) -> bool:
    """Whether a webhook call is genuine and recent: for receivers of amends' webhooks."""
    if not signature or not timestamp:
        return False
    try:
        age = abs((now if now is not None else time.time()) - float(timestamp))
    except ValueError:
        return False
    expected = sign(secret, timestamp, body)
    return hmac.compare_digest(expected, signature) and age <= tolerance_seconds


class WebhookAdapter:
    """Delivers a channel's messages as signed JSON POSTs to one URL.

    A 2xx answer is delivery (its JSON ``id``, if any, is the provider's id); 429, 5xx and
    network errors are transient; any other 4xx is permanent.
    """

    def __init__(
        self, channel: ReplyChannel, url: str, secret: SecretStr, *, timeout: float = 10.0
    ) -> None:
        self.channel = channel
        self.url = url
        self._secret = secret
        self._timeout = timeout

    def deliver(self, message: Outgoing) -> str:
        body = json.dumps(
            {
                "channel": self.channel.value,
                "message_id": message.message_id,
                "recipient": message.recipient,
                "subject": message.subject,
                "text": message.body,
                "in_reply_to": message.in_reply_to,
                "public": message.public,
            },
            ensure_ascii=False,
        ).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret.get_secret_value(), timestamp, body),
            # Lets a receiver drop a resend of a message it already has.
            "Idempotency-Key": message.message_id,
        }
        try:
            response = httpx.post(self.url, content=body, headers=headers, timeout=self._timeout)
        except httpx.HTTPError as error:
            raise DeliveryError(
                f"cannot reach the {self.channel.value} webhook: {type(error).__name__}",
                transient=True,
            ) from None
        if response.is_success:
            try:
                return str(response.json().get("id") or message.message_id)
            except (ValueError, AttributeError):
                return message.message_id
        transient = response.status_code in {408, 429} or response.status_code >= 500
        raise DeliveryError(
            f"the {self.channel.value} webhook answered {response.status_code}: "
            f"{response.text[:200]}",
            transient=transient,
        )

    @contextmanager
    def batch(self) -> Iterator[None]:
        yield
