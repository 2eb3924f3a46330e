"""The outbox: messages are written with the stage that decided them, then delivered.

Each message has a unique key (case, stage, purpose), so a re-run cannot queue it twice. A sender
claims a message (queued -> sending) in its own transaction before delivering it, so two live
senders never deliver the same message, and records the result as soon as the server answers
(a drain on a thread of its own, while it sends the next message: the database's time hidden
behind the mail server's). A case's messages go out in the order they were decided: a later
one waits for an earlier one.

Delivery is at least once, never silently lost: a sender that dies between the server's
acceptance and that record (or whose record the database refuses: the drain stops) leaves the
message ``sending``, and at most the next one sent meanwhile; once its claim is older than the
claim timeout it is queued again and resent with the same Message-ID, which mail programs show
once. A drain's commits do not wait for the disk (SQLite's ``synchronous=NORMAL``, and
``synchronous_commit`` off on PostgreSQL): they survive the sender dying, and a crash of the
database server itself, which may lose the last ones, leaves those messages to go again the
same way. A live sender never works on a claim that old (it gives back what it cannot send in
half the timeout), and records a result only under its own claim token: keep the senders'
clocks in step (NTP). A transient failure stays queued with its reason and is tried again
after a growing pause; after :data:`MAX_ATTEMPTS` it fails and goes to staff, like a permanent
failure. A connection lost after the message went out (the server may have it) allows one
resend; a second such loss goes to staff too.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Insert,
    bindparam,
    exists,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from amends.delivery import consent
from amends.delivery.adapter import ChannelAdapter, Outgoing
from amends.domain import (
    MARKETING_KINDS,
    CaseState,
    MessageKind,
    MessageStatus,
    ReplyChannel,
    Stage,
    spoken,
)
from amends.errors import ConfigurationError, DeliveryError
from amends.recovery.staff import (
    add_action,
    hand_message_to_staff,
    settle_case,
    state_called_for,
)
from amends.storage import models
from amends.storage.db import Database

log = logging.getLogger(__name__)

# Transactions: a database's sessions, or a drain's on its own connection (_DrainConnection).
Sessions = Callable[[], AbstractContextManager[Session]]


def message_key(case_id: int, stage: Stage, kind: MessageKind, channel: ReplyChannel) -> str:
    """The idempotency key of a message: one per case, stage, purpose and channel."""
    return f"case-{case_id}:{stage.value}:{kind.value}:{channel.value}"


def key_digest(key: str) -> str:
    """A short, stable digest of a message's key (for ids and file names)."""
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def message_id_for(key: str, sender_email: str, *, installation: str) -> str:
    """A stable RFC 5322 Message-ID, so a resend is recognisably the same message. The key is
    only unique within one database: the installation's identifier makes the id unique across
    databases (staging and production, a rebuilt one)."""
    domain = sender_email.rpartition("@")[2] or "amends.invalid"
    return f"<{key_digest(key)}.{installation}@{domain}>"


def installation_identifier(session: Session) -> str:
    """This database's identifier, made the first time it is asked for (migration 0007 makes
    it; a database built otherwise gets it here). Two processes asking at once agree."""
    identifier = session.scalar(select(models.Installation.identifier))
    if identifier is None:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        session.execute(
            dialect.insert(models.Installation)
            .values(id=1, identifier=secrets.token_hex(8))
            .on_conflict_do_nothing(index_elements=["id"])
        )
        identifier = session.scalar(select(models.Installation.identifier))
    return identifier


@dataclass(frozen=True)
class Draft:
    """A message ready for the outbox: whom it is for, why, and what it says. ``key`` makes it
    unique: the same purpose is never queued twice."""

    key: str
    customer_id: int
    case_id: int | None
    stage: Stage
    kind: MessageKind
    channel: ReplyChannel
    recipient: str
    body: str
    subject: str = ""
    attachment: Path | None = None
    in_reply_to: str | None = None
    due_at: datetime | None = None


def queue_drafts(
    session: Session,
    drafts: Sequence[Draft],
    *,
    sender_email: str,
    automatic: Collection[ReplyChannel],
    at: datetime | None = None,
) -> set[str]:
    """Add messages to the outbox in one statement, in the caller's transaction, leaving out any
    whose key is there already (a re-run, or another run at the same moment); those on a channel
    without an adapter go to staff. Returns the keys of the messages added.

    Args:
        at: When they count as queued (the nightly run's moment, which its windows and its
            frequency cap measure from); now by default.
    """
    if not drafts:
        return set()
    at = at or models.utcnow()
    installation = installation_identifier(session)
    rows = [
        {
            "customer_id": d.customer_id,
            "case_id": d.case_id,
            "key": d.key,
            "stage": d.stage,
            "kind": d.kind,
            "channel": d.channel,
            "recipient": d.recipient,
            "subject": d.subject,
            "body": d.body,
            "attachment": str(d.attachment) if d.attachment else None,
            "message_id": message_id_for(d.key, sender_email, installation=installation),
            "in_reply_to": d.in_reply_to,
            "status": (
                MessageStatus.QUEUED if d.channel in automatic else MessageStatus.AWAITING_STAFF
            ),
            "due_at": d.due_at,
            "attempts": 0,
            "created_at": at,
        }
        for d in drafts
    ]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    added = session.execute(
        dialect.insert(models.Message)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(models.Message.id, models.Message.key, models.Message.status),
        rows,
    ).all()
    for_staff = [id_ for id_, _, status in added if status is MessageStatus.AWAITING_STAFF]
    withheld: dict[int, str] = {}
    if for_staff:
        rows = session.execute(
            select(models.Message, models.Customer)
            .join(models.Customer, models.Message.customer_id == models.Customer.id)
            .where(models.Message.id.in_(for_staff))
        ).all()
        # Consent holds for what a person delivers too: a call, a letter, a visit.
        withheld = consent.withheld(session, [tuple(row) for row in rows])
        for message, _ in rows:
            if message.id not in withheld:
                hand_message_to_staff(session, message)
                continue
            message.status = MessageStatus.SUPPRESSED
            _refer_withheld(session, message, withheld[message.id])
    _note_queued(session, drafts, added, withheld, at)
    return {key for _, key, _ in added}


def _note_queued(
    session: Session,
    drafts: Sequence[Draft],
    added: Sequence[Any],
    withheld: dict[int, str],
    at: datetime,
) -> None:
    """One line on each case's timeline for each message added to it, whoever queued it (a
    stage, the nightly run, a late approval)."""
    by_key = {d.key: d for d in drafts}
    events = []
    for id_, key, status in added:
        draft = by_key[key]
        if draft.case_id is None:
            continue
        verb = (
            "withheld"
            if id_ in withheld
            else "queued"
            if status is MessageStatus.QUEUED
            else "waiting for staff"
        )
        events.append(
            {
                "case_id": draft.case_id,
                "at": at,
                "stage": draft.stage,
                "kind": "message",
                "text": f"{spoken(draft.kind).capitalize()} by {draft.channel.value} {verb}"
                + (f" ({draft.attachment.name})" if draft.attachment else "")
                + ".",
                "actor": "amends",
            }
        )
    if events:
        session.execute(insert(models.CaseEvent), events)


def queue_message(
    session: Session,
    draft: Draft,
    *,
    sender_email: str,
    automatic: Collection[ReplyChannel],
) -> models.Message:
    """Add one message to the outbox in the caller's transaction; the one already there if its
    key was queued before."""
    queue_drafts(session, [draft], sender_email=sender_email, automatic=automatic)
    return session.scalar(select(models.Message).where(models.Message.key == draft.key))


def write_attachment(path: Path, content: bytes) -> Path:
    """Write a message's file (a letter to print, an invitation) whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "wb") as out:
        out.write(content)
    os.replace(partial, path)
    return path


MAX_ATTEMPTS = 8
# A drain records a result while it sends the next message: of its claim, at most these two
# may have gone out unrecorded when it stops.
ON_THE_WIRE = 2
# How many messages a sender claims at once: a sender that dies leaves at most this many
# claimed and unsent, which go out again after the claim timeout.
CLAIM_BATCH = 20


def retry_delay(attempts: int) -> timedelta:
    """The pause before the next attempt: 30 s, 2 min, 8 min, ... at most 6 hours."""
    return min(timedelta(seconds=30 * 4 ** (attempts - 1)), timedelta(hours=6))


# Messages a sender still has to try: a later message of the same case waits for these.
_UNSETTLED = (MessageStatus.QUEUED, MessageStatus.SENDING)


def queued_messages(
    db: Database,
    case_id: int | None = None,
    *,
    due_by: datetime | None = None,
    in_order: bool = False,
) -> list[int]:
    """Ids of messages waiting for an automatic sender, oldest first: one case's, or all; with
    ``due_by``, only those whose pause after a failure is over by then; with ``in_order``, only
    those a sender may take now.

    A case's messages go out in the order they were decided: one waits while an earlier message
    of its case is queued (even pausing after a failure) or being sent, so the invitation never
    overtakes the apology. A message that failed, went to staff or was withheld holds nothing up.
    """
    query = select(models.Message.id).where(models.Message.status == MessageStatus.QUEUED)
    if in_order:
        earlier = aliased(models.Message)
        query = query.where(
            ~exists().where(
                earlier.case_id == models.Message.case_id,
                earlier.id < models.Message.id,
                earlier.status.in_(_UNSETTLED),
            )
        )
    if case_id is not None:
        query = query.where(models.Message.case_id == case_id)
    if due_by is not None:
        query = query.where(
            (models.Message.next_attempt_at.is_(None)) | (models.Message.next_attempt_at <= due_by)
        )
    with db.session() as session:
        return list(session.scalars(query.order_by(models.Message.id)))


@dataclass(frozen=True)
class DeliveryOutcome:
    """What happened to one message in one attempt."""

    message_id: int
    status: MessageStatus
    channel: ReplyChannel
    kind: MessageKind
    error: str | None = None
    transient: bool = False
    claimed: bool = True  # False: another sender had it, or it was no longer queued


@dataclass(frozen=True)
class _Claimed:
    """A message a sender has claimed, with what it needs to send it and record the result."""

    id: int
    customer_id: int
    case_id: int | None  # None: a win-back offer, outside any case
    channel: ReplyChannel
    kind: MessageKind
    attempts: int
    unconfirmed: int  # earlier attempts the server may have taken without confirming
    token: str  # the claim's own mark: only its holder records the result
    # Whether a delivery can change the case's state: only once its stages are done (before,
    # the stages set it); and whether, as the claim found the case, it leaves it as it is.
    settles_on_success: bool
    leaves_case_as_is: bool
    outgoing: Outgoing
    withheld: str | None = None  # why it may not go: consent, checked at the last moment


# A claim, and what its messages need, built once: a drain claims every few messages.
_CLAIM = (
    update(models.Message.__table__)
    .where(
        models.Message.id.in_(bindparam("claim_ids", expanding=True)),
        models.Message.status == MessageStatus.QUEUED,
    )
    .values(
        status=MessageStatus.SENDING,
        attempts=models.Message.attempts + 1,
        claimed_at=bindparam("at", type_=models.UTCDateTime()),
        claim_token=bindparam("token"),
    )
    .returning(models.Message.id)
)
_CLAIMED = (
    select(
        models.Message,
        models.Case.stage,
        models.Case.state
        == state_called_for(models.Case.__table__, settled=models.Message.__table__.c.id),
        models.Customer,
    )
    .outerjoin(models.Case, models.Message.case_id == models.Case.id)
    .join(models.Customer, models.Message.customer_id == models.Customer.id)
    .where(models.Message.id.in_(bindparam("claimed_ids", expanding=True)))
    .order_by(models.Message.id)
)


def _claim(
    db: Database, message_ids: list[int], sessions: Sessions | None = None
) -> list[_Claimed]:
    """Claim those of the messages that are still queued, in one transaction; another sender's
    claim, committed first, wins."""
    token = secrets.token_hex(8)
    with (sessions or db.session)() as session:
        claimed = list(
            session.scalars(
                _CLAIM,
                {"claim_ids": message_ids, "token": token, "at": models.utcnow()},
            )
        )
        rows = session.execute(_CLAIMED, {"claimed_ids": claimed}).all()
        withheld = consent.withheld(session, [(m, customer) for m, _, _, customer in rows])
        return [
            _Claimed(
                id=m.id,
                customer_id=m.customer_id,
                case_id=m.case_id,
                channel=m.channel,
                kind=m.kind,
                attempts=m.attempts,
                unconfirmed=m.unconfirmed,
                token=token,
                settles_on_success=stage is Stage.REENGAGE,
                leaves_case_as_is=bool(as_is),
                outgoing=Outgoing(
                    recipient=m.recipient,
                    subject=m.subject,
                    body=m.body,
                    message_id=m.message_id or "",
                    in_reply_to=m.in_reply_to,
                    attachment=Path(m.attachment) if m.attachment else None,
                    marketing=m.kind in MARKETING_KINDS,
                    public=m.kind is MessageKind.PUBLIC_REPLY,
                ),
                withheld=withheld.get(m.id),
            )
            for m, stage, as_is, _ in rows
        ]


def _release(db: Database, claimed: list[_Claimed]) -> None:
    """Give back claimed messages this sender will not send now: queued again, as they were."""
    if not claimed:
        return
    with db.session() as session:
        for message in claimed:
            session.execute(
                update(models.Message)
                .where(
                    models.Message.id == message.id,
                    models.Message.claim_token == message.token,
                    models.Message.status == MessageStatus.SENDING,
                )
                .values(
                    status=MessageStatus.QUEUED,
                    attempts=models.Message.attempts - 1,
                    claim_token=None,
                )
            )


def deliver(
    db: Database, message_id: int, adapters: dict[ReplyChannel, ChannelAdapter]
) -> DeliveryOutcome:
    """Deliver one queued message now, whatever pause a failure set; :func:`drain` is the usual
    way, this one is for a single message (and tests).

    Returns the message's status afterwards; a message another sender has claimed, or that is no
    longer queued, is left alone (``claimed`` is False).
    """
    claimed = _claim(db, [message_id])
    if claimed:
        return _send(db, claimed[0], adapters)
    with db.session() as session:
        message = session.get(models.Message, message_id)
        if message is None:
            raise LookupError(f"no message {message_id}")
        return DeliveryOutcome(
            message_id, message.status, message.channel, message.kind, claimed=False
        )


# A result, only under its own claim; the columns set are those of the parameters.
_RECORD = update(models.Message.__table__).where(
    models.Message.id == bindparam("record_id"),
    models.Message.claim_token == bindparam("record_token"),
    models.Message.status == MessageStatus.SENDING,
)
# A sent message's result, only if it leaves its case in the state the case is in (a recovered
# case stays open for its check-ins, say): then there is nothing to settle.
_RECORD_LEAVING_CASE_AS_IS = _RECORD.where(
    exists().where(
        models.Case.id == models.Message.case_id,
        models.Case.state
        == state_called_for(models.Case.__table__, settled=models.Message.__table__.c.id),
    )
)
_NOTE = insert(models.CaseEvent.__table__)


def _record(
    connection: Connection,
    claimed: _Claimed,
    event_kind: str,
    text: str,
    *,
    may_leave_case_as_is: bool = True,
    **values: object,
) -> bool:
    """Record a result if the claim is still this sender's; then settle the case's state, if
    the result can change it.

    Args:
        may_leave_case_as_is: Try a sent message as one that leaves its case as it is first
            (False: that was tried already, and it does not).
    """
    sent = values.get("status") is MessageStatus.SENT
    settles = not sent or claimed.settles_on_success
    recorded = False
    if sent and settles and claimed.leaves_case_as_is and may_leave_case_as_is:
        recorded = _record_noted(connection, claimed, event_kind, text, values, as_is=True)
        settles = not recorded
    if not recorded:
        recorded = _record_noted(connection, claimed, event_kind, text, values, as_is=False)
    if recorded and settles and claimed.case_id is not None:
        # A finished case's state follows its messages: a reply that went out can close it.
        settle_case(connection, claimed.case_id, finished_only=True)
    return recorded


def _record_noted(
    connection: Connection,
    claimed: _Claimed,
    event_kind: str,
    text: str,
    values: dict[str, object],
    *,
    as_is: bool,
) -> bool:
    """A result under its own claim (with ``as_is``, only if it leaves the case as it is) and
    its note in the case's timeline: on PostgreSQL one statement, elsewhere two. Core
    statements, built once: no ORM bookkeeping on the path every message takes."""
    if claimed.case_id is not None and connection.dialect.name == "postgresql":
        return bool(
            connection.execute(
                _record_and_note(frozenset(values), as_is),
                {
                    "record_id": claimed.id,
                    "record_token": claimed.token,
                    "note_kind": event_kind,
                    "note_text": text,
                    "note_at": models.utcnow(),
                    **{f"set_{name}": value for name, value in values.items()},
                },
            ).all()
        )
    recorded = connection.execute(
        _RECORD_LEAVING_CASE_AS_IS if as_is else _RECORD,
        {"record_id": claimed.id, "record_token": claimed.token, "claim_token": None, **values},
    ).rowcount
    if recorded and claimed.case_id is not None:
        connection.execute(_NOTE, {"case_id": claimed.case_id, "kind": event_kind, "text": text})
    return bool(recorded)


@lru_cache
def _record_and_note(columns: frozenset[str], as_is: bool) -> Insert:
    """PostgreSQL: a result under its own claim and its note in the case's timeline, as one
    statement (the update, in a WITH, feeds the insert: no claim, no note). With ``as_is``,
    only if it leaves the case as it is."""
    messages, events = models.Message.__table__, models.CaseEvent.__table__
    update_ = _RECORD_LEAVING_CASE_AS_IS if as_is else _RECORD
    recorded = (
        update_.values({name: bindparam(f"set_{name}") for name in columns} | {"claim_token": None})
        .returning(messages.c.case_id)
        .cte("recorded")
    )
    # Every column given: a column's default is not evaluated for an insert from a select.
    # Returning the note: the driver gives no row count for this statement.
    return (
        insert(events)
        .from_select(
            ["case_id", "kind", "text", "at", "actor"],
            select(
                recorded.c.case_id,
                bindparam("note_kind"),
                bindparam("note_text"),
                bindparam("note_at", type_=models.UTCDateTime()),
                literal(events.c.actor.default.arg),
            ),
            include_defaults=False,
        )
        .returning(events.c.id)
    )


class _DrainConnection:
    """A drain's claims and results, each in its own transaction, on one connection kept for
    the drain: a session from the pool each time would check a connection out and ping it. On
    PostgreSQL, a sent message that leaves its case as it is is instead one statement on a
    second connection (:meth:`record_alone`). A sent message's result is recorded on the
    drain's recording thread while the next message is sent (:meth:`record_sent`); every other
    use waits for it first, so the connections are never used by two threads at once.

    On PostgreSQL these commits do not wait for the disk (``synchronous_commit`` off, on this
    connection only), like SQLite's with ``synchronous=NORMAL``: a claim or a result is
    there for every other connection at once (two senders still never share a message) and
    survives the sender dying; only a crash of the database server itself may lose the last
    few, whose messages are then ``queued`` or ``sending`` again and go out again with the
    same Message-ID, as after a sender that died before recording. Waiting for the disk took
    longer than sending the message.
    """

    def __init__(self, db: Database) -> None:
        self._connection = db.engine.connect()
        self._postgres = self._connection.dialect.name == "postgresql"
        # PostgreSQL: a sent message that leaves its case as it is recorded in one statement,
        # committed as it runs, on a second connection opened for the first such result: one
        # round trip, not four (BEGIN, UPDATE, INSERT, COMMIT).
        self._db = db
        self._alone: Connection | None = None
        self._recorder: ThreadPoolExecutor | None = None
        self._recording: Future[None] | None = None
        if self._postgres:
            try:
                self._connection.exec_driver_sql("SET synchronous_commit TO OFF")
                self._connection.commit()
            except BaseException:
                self.close()
                raise

    def __call__(self) -> AbstractContextManager[Session]:
        """A transaction on the drain's connection, once the result being recorded is."""
        self.wait()
        return self._transaction()

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        # As the database's own sessions: what was read stays readable after the commit.
        with Session(self._connection, expire_on_commit=False) as session, session.begin():
            yield session

    def record_sent(
        self, claimed: _Claimed, event_kind: str, text: str, values: dict[str, Any]
    ) -> None:
        """Record a sent message on the drain's recording thread while the next one is sent;
        the result before it is recorded first (its error, if any, raised here)."""
        self.wait()
        if self._recorder is None:
            self._recorder = ThreadPoolExecutor(1, thread_name_prefix="amends-outbox-results")
        self._recording = self._recorder.submit(
            self._record_sent, claimed, event_kind, text, values
        )

    def _record_sent(
        self, claimed: _Claimed, event_kind: str, text: str, values: dict[str, Any]
    ) -> None:
        alone = self.record_alone(claimed, event_kind, text, values)
        if not alone:
            with self._connection.begin():
                # Its conditions tried already (False): not again.
                _record(
                    self._connection,
                    claimed,
                    event_kind,
                    text,
                    may_leave_case_as_is=alone is None,
                    **values,
                )

    def wait(self) -> None:
        """Wait for the result being recorded; raise its error, if it failed."""
        recording, self._recording = self._recording, None
        if recording is not None:
            recording.result()

    def record_alone(
        self, claimed: _Claimed, event_kind: str, text: str, values: dict[str, Any]
    ) -> bool | None:
        """On PostgreSQL, record a sent message that leaves its case's state as it is, in one
        statement: one sent before the case's stages are done, or one after which the case
        stays as it is (another of its messages still to go, its check-ins to come).

        Returns:
            True when that is done (or the claim was lost); False when the case may change, so
            the result takes a transaction (:func:`_record`); None when this drain does not
            record that way (not PostgreSQL, or a message outside any case).
        """
        if not self._postgres or claimed.case_id is None:
            return None
        as_is = claimed.settles_on_success
        if as_is and not claimed.leaves_case_as_is:
            return False  # as the claim found the case, this changes it
        if self._alone is None:
            self._alone = self._db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._alone.exec_driver_sql("SET synchronous_commit TO OFF")
        recorded = _record_noted(self._alone, claimed, event_kind, text, values, as_is=as_is)
        # Nothing recorded under the condition: the claim was lost (the transaction will find
        # that too) or the case may change; a result that settles nothing is done either way.
        return recorded or not as_is

    def close(self) -> None:
        try:
            if self._recorder is not None:
                # The last result recorded before the connections go back.
                self._recorder.shutdown(wait=True)
        finally:
            recording, self._recording = self._recording, None
            # Interrupted while it waited: the recording thread may still use the connections.
            busy = recording is not None and not recording.done()
            if recording is not None and not busy and recording.exception() is not None:
                # Nobody waited for it (the drain stopped for another reason): not lost.
                log.error(
                    "recording a sent message's result failed: it goes again after the claim "
                    "timeout, with the same Message-ID",
                    exc_info=recording.exception(),
                )
            # Each connection in its own try: an interruption while one is reset never leaves
            # the other out of the pool's reach with its commits not waiting for the disk.
            try:
                self._reset(self._connection, busy)
            finally:
                if self._alone is not None:
                    self._reset(self._alone, busy)

    def _reset(self, connection: Connection, busy: bool) -> None:
        try:
            if busy:
                # Never reset under the recording thread: discarded.
                connection.invalidate()
            elif self._postgres:
                # Back in the pool, the connection commits as every other one does.
                connection.rollback()
                connection.exec_driver_sql("RESET synchronous_commit")
                connection.commit()
        except Exception:
            # Broken (the drain's error says why): discarded, never back in the pool as it is.
            connection.invalidate()
        finally:
            connection.close()


def _send(
    db: Database,
    claimed: _Claimed,
    adapters: dict[ReplyChannel, ChannelAdapter],
    records: Sessions | None = None,
) -> DeliveryOutcome:
    """Send a claimed message and record the result at once (in a drain, while the next one is
    sent): the shorter the time between the server's acceptance and this record, the rarer a
    resend after a crash.

    Args:
        records: The transactions results are recorded in (one per result); by default the
            database's sessions, in a drain its :class:`_DrainConnection`.
    """
    records = records or db.session
    message_id, channel, kind = claimed.id, claimed.channel, claimed.kind
    if claimed.withheld:
        return _withhold(records, claimed)
    adapter = adapters.get(channel)
    if adapter is None:
        # The channel's plugin is not installed or configured here: a person delivers it.
        with records() as session:
            if _record(
                session.connection(),
                claimed,
                "staff_action",
                f"No {channel.value} channel here: the {spoken(kind)} goes to staff.",
                status=MessageStatus.AWAITING_STAFF,
            ):
                hand_message_to_staff(session, session.get(models.Message, message_id))
        return DeliveryOutcome(message_id, MessageStatus.AWAITING_STAFF, channel, kind)
    try:
        provider_id = adapter.deliver(claimed.outgoing)
    except DeliveryError as error:
        # The message went out and the server never answered: one resend (same Message-ID);
        # a second such loss means the server keeps taking it, so a person checks instead.
        taken_twice = error.maybe_delivered and claimed.unconfirmed >= 1
        retry = error.transient and claimed.attempts < MAX_ATTEMPTS and not taken_twice
        new_status = MessageStatus.QUEUED if retry else MessageStatus.FAILED
        reason = (
            f"the server lost the connection after taking the message, twice: it has probably "
            f"arrived (Message-ID {claimed.outgoing.message_id}); {error.reason}"
            if taken_twice
            else error.reason
            if retry or not error.transient
            else f"gave up after {claimed.attempts} attempts: {error.reason}"
        )
        with records() as session:
            recorded = _record(
                session.connection(),
                claimed,
                "delivery_retry" if retry else "delivery_failed",
                f"{spoken(kind)} by {channel.value} "
                f"{'will be retried' if retry else 'failed'}: {reason}",
                status=new_status,
                last_error=reason,
                next_attempt_at=models.utcnow() + retry_delay(claimed.attempts) if retry else None,
                unconfirmed=claimed.unconfirmed + int(error.maybe_delivered),
            )
            if recorded and error.bounce:
                # A hard bounce: that address is not written to again.
                consent.add_suppression(
                    session, claimed.outgoing.recipient.lower(), scope="all", reason="bounce"
                )
            if recorded and not retry:
                _hand_to_staff(
                    session,
                    claimed,
                    f"The {spoken(kind)} by {channel.value} to {claimed.outgoing.recipient} "
                    f"failed: {reason}. Reach the customer another way.",
                )
        return DeliveryOutcome(message_id, new_status, channel, kind, reason, retry)
    except ConfigurationError:
        # Nothing wrong with the message: the sender is misconfigured. Keep it queued.
        _release(db, [claimed])
        raise
    except Exception as error:
        # A bug, not a refusal: park the message as failed, visibly, for staff.
        with records() as session:
            if _record(
                session.connection(),
                claimed,
                "delivery_failed",
                f"{spoken(kind)} by {channel.value} failed: unexpected error {error!r}",
                status=MessageStatus.FAILED,
                last_error=f"unexpected error: {error!r}",
            ):
                _hand_to_staff(
                    session,
                    claimed,
                    f"The {spoken(kind)} by {channel.value} could not be sent ({error!r}). "
                    "Reach the customer another way, and report the error.",
                )
        raise

    text = f"{spoken(kind).capitalize()} sent by {channel.value}."
    result: dict[str, Any] = {
        "status": MessageStatus.SENT,
        "provider_id": provider_id,
        "last_error": None,
        "next_attempt_at": None,
        "sent_at": models.utcnow(),
    }
    if isinstance(records, _DrainConnection):
        records.record_sent(claimed, "sent", text, result)
    else:
        with records() as session:
            _record(session.connection(), claimed, "sent", text, **result)
    return DeliveryOutcome(message_id, MessageStatus.SENT, channel, kind)


def _withhold(records: Sessions, claimed: _Claimed) -> DeliveryOutcome:
    """Keep a message from an address that may not be written to."""
    reason = claimed.withheld or ""
    with records() as session:
        text = _withheld_text(claimed, reason)
        if _record(
            session.connection(), claimed, "suppressed", text, status=MessageStatus.SUPPRESSED
        ):
            _refer_withheld(session, claimed, reason)
    return DeliveryOutcome(
        claimed.id, MessageStatus.SUPPRESSED, claimed.channel, claimed.kind, reason
    )


def _withheld_text(message: _Claimed | models.Message, reason: str) -> str:
    return f"{spoken(message.kind).capitalize()} by {message.channel.value} not sent: {reason}."


def _refer_withheld(session: Session, message: _Claimed | models.Message, reason: str) -> None:
    """Marketing kept back just stops; a service message about a case goes to staff, who decide
    whether and how to reach the customer."""
    if message.kind not in MARKETING_KINDS:
        _hand_to_staff(
            session,
            message,
            f"{_withheld_text(message, reason)} Decide whether the customer must still hear "
            "about their case, and how.",
        )


def _hand_to_staff(session: Session, message: _Claimed | models.Message, instructions: str) -> None:
    """Flag the message's case, if it has one: a person must now reach the customer, or check
    what happened."""
    add_action(
        session,
        customer_id=message.customer_id,
        case_id=message.case_id,
        key=f"message-{message.id}:delivery_problem",
        kind="delivery_problem",
        role="frontline",
        instructions=instructions,
        message_id=message.id,
    )
    if message.case_id is not None:
        session.execute(
            update(models.Case)
            .where(models.Case.id == message.case_id, models.Case.state != CaseState.CLOSED)
            .values(state=CaseState.AWAITING_STAFF)
        )


def requeue_stale_claims(db: Database, *, older_than: timedelta) -> int:
    """Queue again the messages whose sender claimed them and never recorded a result: it died,
    perhaps after the server accepted the message, so the resend carries the same Message-ID.
    A message that has used up its attempts this way goes to staff instead.

    A sender works through its claim in id order, recording each result while it sends the
    next, so of one dead claim only the first :data:`ON_THE_WIRE` messages still unrecorded may
    have been on the wire, and only the first is charged the attempt; the others were never
    tried, and their attempt is given back (otherwise a sender that keeps dying would use up
    messages it never sent).
    """
    cutoff = models.utcnow() - older_than
    requeued = 0
    with db.session() as session:
        stale = list(
            session.scalars(
                select(models.Message)
                .where(
                    models.Message.status == MessageStatus.SENDING,
                    models.Message.claimed_at < cutoff,
                )
                .order_by(models.Message.id)
            )
        )
        in_flight: dict[str | None, list[int]] = {}
        for message in stale:
            claim = in_flight.setdefault(message.claim_token, [])
            if len(claim) < ON_THE_WIRE:
                claim.append(message.id)
        for message in stale:
            tried = message.id in in_flight[message.claim_token]
            # Only the first is charged: a message that stops its sender every time is that
            # one (a result is recorded in far less time than the next message takes), and its
            # neighbour must not use up its attempts over it.
            charged = in_flight[message.claim_token][0] == message.id
            attempts = message.attempts if charged else message.attempts - 1
            exhausted = attempts >= MAX_ATTEMPTS
            # Only if still stale: a live sender may have finished it since.
            changed = session.execute(
                update(models.Message)
                .where(
                    models.Message.id == message.id,
                    models.Message.status == MessageStatus.SENDING,
                    models.Message.claimed_at < cutoff,
                )
                .values(
                    status=MessageStatus.FAILED if exhausted else MessageStatus.QUEUED,
                    attempts=attempts,
                    claim_token=None,
                    next_attempt_at=None,
                    last_error=(
                        "its sender stopped before recording the result"
                        + (f", {attempts} times" if exhausted else "")
                    )
                    if tried
                    else message.last_error,
                )
            ).rowcount
            if not changed:
                continue
            if exhausted:
                _hand_to_staff(
                    session,
                    message,
                    f"Sending the {spoken(message.kind)} to {message.recipient} stopped the sender "
                    f"{attempts} times: check whether it arrived (Message-ID "
                    f"{message.message_id}), and report the problem.",
                )
                continue
            if not tried:
                continue  # never on the wire: simply queued again
            requeued += 1
            if message.case_id is None:
                continue
            session.add(
                models.CaseEvent(
                    case_id=message.case_id,
                    kind="delivery_retry",
                    text=f"{spoken(message.kind).capitalize()} by {message.channel.value}: "
                    "its sender stopped before recording the result; sending again with "
                    f"the same Message-ID {message.message_id}.",
                )
            )
    return requeued


@dataclass
class DrainReport:
    """What one pass over the outbox did."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    requeued: int = 0
    to_staff: int = 0
    withheld: int = 0  # not sent: no consent
    queued: int = 0  # still in the queue afterwards: the retrying ones and those not due yet

    @property
    def waiting(self) -> int:
        """Queued messages this pass did not try: pausing after a failure, or behind an
        earlier message of their case."""
        return max(self.queued - self.retrying, 0)


def drain(
    db: Database,
    adapters: dict[ReplyChannel, ChannelAdapter],
    *,
    claim_timeout: timedelta,
    case_id: int | None = None,
    due_only: bool = True,
    on_each: Callable[[DeliveryOutcome], None] | None = None,
    before_send: Callable[[ReplyChannel], None] | None = None,
) -> DrainReport:
    """Deliver every queued message that is due (one case's, or all), once each.

    Args:
        before_send: Called with the channel before each message goes to its adapter, and
            may wait: a provider's rate limit (the tasks pass a Prefect one for email).

    Raises:
        ConfigurationError: the sender cannot work at all (bad login, refused sender); the
            messages stay queued.
    """
    report = DrainReport(requeued=requeue_stale_claims(db, older_than=claim_timeout))
    due_by = models.utcnow() if due_only else None
    with ExitStack() as connections:
        for adapter in {id(a): a for a in adapters.values()}.values():
            connections.enter_context(adapter.batch())
        connection = _DrainConnection(db)
        connections.callback(connection.close)
        # In rounds: a message held back behind an earlier one of its case is due in the next
        # round once that one is settled; each message is tried at most once per drain.
        tried: set[int] = set()
        while pending := [
            m for m in queued_messages(db, case_id, due_by=due_by, in_order=True) if m not in tried
        ]:
            tried.update(pending)
            _drain_round(
                db, adapters, connection, pending, claim_timeout, report, on_each, before_send
            )
            connection.wait()  # the round's results recorded before the next is chosen
    report.queued = len(queued_messages(db, case_id))
    return report


def _drain_round(
    db: Database,
    adapters: dict[ReplyChannel, ChannelAdapter],
    sessions: Sessions,
    pending: list[int],
    claim_timeout: timedelta,
    report: DrainReport,
    on_each: Callable[[DeliveryOutcome], None] | None,
    before_send: Callable[[ReplyChannel], None] | None,
) -> None:
    """Claim and send the given messages, in batches."""
    # Claims go in small batches (one commit for several messages); each result is still
    # recorded the moment its server answers. A batch is sent only while its claim is
    # young: past half the claim timeout, the rest is given back and claimed afresh, so
    # that no other sender can take over a claim this one still works on.
    young = claim_timeout.total_seconds() / 2
    while pending:
        batch = _claim(db, pending[:CLAIM_BATCH], sessions)
        pending = pending[CLAIM_BATCH:]
        claimed_at = time.monotonic()
        for position, claimed in enumerate(batch):
            if before_send is not None and not claimed.withheld and claimed.channel in adapters:
                # Waited for before the claim's age is checked, so a long wait gives the
                # rest back rather than send on an old claim.
                try:
                    before_send(claimed.channel)
                except BaseException:
                    _release(db, batch[position:])
                    raise
            # The first message too, after a rate limit's wait: its claim may be old by now.
            if (position or before_send) and time.monotonic() - claimed_at > young:
                _release(db, batch[position:])
                pending = [m.id for m in batch[position:]] + pending
                break
            try:
                _count(report, _send(db, claimed, adapters, sessions), on_each)
            except BaseException:
                _release(db, batch[position + 1 :])
                raise


def _count(
    report: DrainReport,
    outcome: DeliveryOutcome,
    on_each: Callable[[DeliveryOutcome], None] | None,
) -> None:
    if outcome.status is MessageStatus.SENT:
        report.sent += 1
    elif outcome.transient:
        report.retrying += 1
    elif outcome.status is MessageStatus.FAILED:
        report.failed += 1
    elif outcome.status is MessageStatus.AWAITING_STAFF:
        report.to_staff += 1
    elif outcome.status is MessageStatus.SUPPRESSED:
        report.withheld += 1
    if on_each is not None:
        on_each(outcome)
