"""The outbox: messages are written with the stage that decided them, then delivered.

Each message has a unique key (case, stage, purpose), so a re-run cannot queue it twice. A sender
claims a message (queued -> sending) in its own transaction before delivering it, so two senders
never deliver the same message: each claim delivers at most once. A message left ``sending`` by
a sender that died is not resent blindly: :func:`release_stale_claims` hands it to staff, who
check whether it went out. A mail server that accepted a message but whose answer was lost
(a timeout after the data) looks like a transient failure: the resend carries the same
Message-ID, so the customer's mail program shows it once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from amends import models
from amends.channels import ChannelAdapter, Outgoing
from amends.db import Database
from amends.domain import (
    MARKETING_KINDS,
    CaseState,
    MessageKind,
    MessageStatus,
    ReplyChannel,
    Stage,
    spoken,
)
from amends.errors import DeliveryError
from amends.staff import add_action, hand_message_to_staff


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
    if not automatic:
        session.flush()  # the action points at the message
        hand_message_to_staff(session, message)
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
            .values(
                status=MessageStatus.SENDING,
                attempts=models.Message.attempts + 1,
                claimed_at=models.utcnow(),
            )
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
            marketing=message.kind in MARKETING_KINDS,
        )
        channel, kind, status = message.channel, message.kind, message.status
        case_id = message.case_id
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
                    case_id=case_id,
                    kind="delivery_retry" if error.transient else "delivery_failed",
                    text=f"{spoken(kind)} by {channel.value} "
                    f"{'will be retried' if error.transient else 'failed'}: {error.reason}",
                )
            )
            if not error.transient:
                _hand_to_staff(
                    session,
                    case_id,
                    message_id,
                    f"The {spoken(kind)} by {channel.value} to {outgoing.recipient} failed: "
                    f"{error.reason}. Reach the customer another way.",
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
                case_id=case_id,
                kind="sent",
                text=f"{spoken(kind).capitalize()} sent by {channel.value}.",
            )
        )
    return DeliveryOutcome(message_id, MessageStatus.SENT, channel, kind)


def _hand_to_staff(session: Session, case_id: int, message_id: int, instructions: str) -> None:
    """Flag the case: a person must now reach the customer, or check what happened."""
    add_action(
        session,
        case_id,
        key=f"case-{case_id}:delivery:message-{message_id}",
        kind="delivery_problem",
        role="frontline",
        instructions=instructions,
    )
    session.execute(
        update(models.Case)
        .where(models.Case.id == case_id, models.Case.state != CaseState.CLOSED)
        .values(state=CaseState.AWAITING_STAFF)
    )


def release_stale_claims(db: Database, case_id: int, *, older_than: timedelta) -> int:
    """Hand to staff the case's messages a sender claimed and never finished: it may have died
    after the server accepted them, so resending blindly could send twice."""
    cutoff = models.utcnow() - older_than
    with db.session() as session:
        stale = list(
            session.scalars(
                select(models.Message).where(
                    models.Message.case_id == case_id,
                    models.Message.status == MessageStatus.SENDING,
                    models.Message.claimed_at < cutoff,
                )
            )
        )
        for message in stale:
            message.status = MessageStatus.AWAITING_STAFF
            message.last_error = "the sender stopped while sending; it may have gone out"
            _hand_to_staff(
                session,
                case_id,
                message.id,
                f"The {spoken(message.kind)} to {message.recipient} may or may not have been "
                f"sent (Message-ID {message.message_id}): check the mail log, then resend or not.",
            )
    return len(stale)
