"""The outbox: messages are written with the stage that decided them, then delivered.

Each message has a unique key (case, stage, purpose), so a re-run cannot queue it twice. A sender
claims a message (queued -> sending) in its own transaction before delivering it, so two senders
never deliver the same message; a message left ``sending`` by a crash is not resent blindly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from amends import models
from amends.channels import ChannelAdapter, Outgoing
from amends.db import Database
from amends.domain import MessageKind, MessageStatus, ReplyChannel, Stage
from amends.errors import DeliveryError


def message_key(case_id: int, stage: Stage, kind: MessageKind, channel: ReplyChannel) -> str:
    """The idempotency key of a message: one per case, stage, purpose and channel."""
    return f"case-{case_id}:{stage.value}:{kind.value}:{channel.value}"


def message_id_for(key: str, sender_email: str) -> str:
    """A stable RFC 5322 Message-ID, so a resend is recognisably the same message."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    domain = sender_email.rpartition("@")[2] or "amends.invalid"
    return f"<{digest}.amends@{domain}>"


def queue_message(
    session: Session,
    case: models.Case,
    *,
    stage: Stage,
    kind: MessageKind,
    channel: ReplyChannel,
    recipient: str,
    body: str,
    sender_email: str,
    automatic: bool,
    subject: str = "",
    attachment: Path | None = None,
    in_reply_to: str | None = None,
    due_at: datetime | None = None,
) -> models.Message:
    """Add a message to the outbox in the caller's transaction; return the one already there if
    this key was queued before."""
    key = message_key(case.id, stage, kind, channel)
    existing = session.scalar(select(models.Message).where(models.Message.key == key))
    if existing is not None:
        return existing
    message = models.Message(
        case_id=case.id,
        key=key,
        stage=stage,
        kind=kind,
        channel=channel,
        recipient=recipient,
        subject=subject,
        body=body,
        attachment=str(attachment) if attachment else None,
        message_id=message_id_for(key, sender_email),
        in_reply_to=in_reply_to,
        status=MessageStatus.QUEUED if automatic else MessageStatus.AWAITING_STAFF,
        due_at=due_at,
    )
    session.add(message)
    return message


def queued_messages(db: Database, case_id: int) -> list[int]:
    """Ids of the case's messages waiting for an automatic sender, oldest first."""
    with db.session() as session:
        return list(
            session.scalars(
                select(models.Message.id)
                .where(
                    models.Message.case_id == case_id,
                    models.Message.status == MessageStatus.QUEUED,
                )
                .order_by(models.Message.id)
            )
        )


@dataclass(frozen=True)
class DeliveryOutcome:
    """What happened to one message in one attempt."""

    message_id: int
    status: MessageStatus
    channel: ReplyChannel
    kind: MessageKind
    error: str | None = None
    transient: bool = False


def deliver(
    db: Database, message_id: int, adapters: dict[ReplyChannel, ChannelAdapter]
) -> DeliveryOutcome:
    """Deliver one queued message through its channel's adapter, exactly once.

    Returns the message's status afterwards; a message another sender has claimed, or that is no
    longer queued, is left alone.
    """
    with db.session() as session:
        claimed = session.execute(
            update(models.Message)
            .where(models.Message.id == message_id, models.Message.status == MessageStatus.QUEUED)
            .values(status=MessageStatus.SENDING, attempts=models.Message.attempts + 1)
        ).rowcount
        message = session.get(models.Message, message_id)
        if message is None:
            raise LookupError(f"no message {message_id}")
        outgoing = Outgoing(
            recipient=message.recipient,
            subject=message.subject,
            body=message.body,
            message_id=message.message_id or "",
            in_reply_to=message.in_reply_to,
            attachment=Path(message.attachment) if message.attachment else None,
        )
        channel, kind, status = message.channel, message.kind, message.status
        outgoing_case = message.case_id
    if not claimed:
        return DeliveryOutcome(message_id, status, channel, kind)

    adapter = adapters.get(channel)
    try:
        if adapter is None:
            raise DeliveryError(f"no adapter for {channel.value}", transient=False)
        provider_id = adapter.deliver(outgoing)
    except DeliveryError as error:
        new_status = MessageStatus.QUEUED if error.transient else MessageStatus.FAILED
        with db.session() as session:
            session.execute(
                update(models.Message)
                .where(models.Message.id == message_id)
                .values(status=new_status, last_error=error.reason)
            )
            session.add(
                models.CaseEvent(
                    case_id=outgoing_case,
                    kind="delivery_retry" if error.transient else "delivery_failed",
                    text=f"{kind.value} by {channel.value} "
                    f"{'will be retried' if error.transient else 'failed'}: {error.reason}",
                )
            )
        return DeliveryOutcome(message_id, new_status, channel, kind, error.reason, error.transient)
    except Exception as error:
        # A bug, not a refusal: park the message as failed, visibly, rather than leave it claimed.
        with db.session() as session:
            session.execute(
                update(models.Message)
                .where(models.Message.id == message_id)
                .values(status=MessageStatus.FAILED, last_error=f"unexpected error: {error!r}")
            )
        raise

    with db.session() as session:
        session.execute(
            update(models.Message)
            .where(models.Message.id == message_id)
            .values(
                status=MessageStatus.SENT,
                provider_id=provider_id,
                last_error=None,
                sent_at=models.utcnow(),
            )
        )
        session.add(
            models.CaseEvent(
                case_id=outgoing_case,
                kind="sent",
                text=f"{kind.value.replace('_', ' ').capitalize()} sent by {channel.value}.",
            )
        )
    return DeliveryOutcome(message_id, MessageStatus.SENT, channel, kind)
