"""Storage: the tables amends keeps, as SQLAlchemy 2.0 typed models.

Every time is stored in UTC. Alembic migrations in ``amends/storage/migrations`` create these
tables; ``amends db upgrade`` applies them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from amends.domain import (
    CaseState,
    Category,
    Channel,
    Decision,
    Fault,
    MessageKind,
    MessageStatus,
    OfferKind,
    ReplyChannel,
    Severity,
    Stage,
    StageStatus,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _enum(enum: type[StrEnum]) -> Enum:
    # Stored as short strings (the enum's values), not native database enums: adding a member
    # then needs no migration.
    return Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda members: [member.value for member in members],
    )


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: ClassVar = {datetime: UTCDateTime()}


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    # The name a greeting uses ("Hello Arthur,"); empty: the language's default from ``name``.
    addressed_as: Mapped[str | None] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    postal_address: Mapped[str | None] = mapped_column(String(500))
    social_platform: Mapped[str | None] = mapped_column(String(32))
    social_handle: Mapped[str | None] = mapped_column(String(100))
    locale: Mapped[str] = mapped_column(String(35), default="en")
    timezone: Mapped[str | None] = mapped_column(String(64))
    annual_value: Mapped[float] = mapped_column(Float, default=0.0)
    # The one forgiveness (seed 000): claimed by the case that decides to recover the customer;
    # a later failure is final.
    forgiven_at: Mapped[datetime | None]
    forgiven_case_id: Mapped[int | None] = mapped_column(Integer)
    # Why this customer is never in a win-back again: abusive to staff, or lost (seed 000).
    winback_barred: Mapped[str | None] = mapped_column(String(20))
    # From the business's own systems (``amends import``): how to reach them for a win-back,
    # whether they may be contacted at all, and the warning signs of seed 002.
    preferred_channel: Mapped[str | None] = mapped_column(String(32))
    do_not_contact: Mapped[bool] = mapped_column(Boolean, default=False)
    last_purchase_on: Mapped[date | None] = mapped_column(Date)
    last_contact_on: Mapped[date | None] = mapped_column(Date)
    unanswered_calls: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# Refs differing only in case are looked up by lower(ref) (``refs_on_file_in_other_case``), a
# batch at a time by an import: without this index each lookup reads every customer.
Index("ix_customers_lower_ref", func.lower(Customer.ref))


class Incident(Base):
    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    # Indexed: a report's period, and the views every incident run makes, select by it.
    received_at: Mapped[datetime] = mapped_column(index=True)
    summary: Mapped[str] = mapped_column(String(200))
    details: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[Category] = mapped_column(_enum(Category))
    severity: Mapped[Severity] = mapped_column(_enum(Severity))
    fault: Mapped[Fault] = mapped_column(_enum(Fault))
    abusive: Mapped[bool] = mapped_column(Boolean, default=False)
    costs: Mapped[dict[str, Any]] = mapped_column(JSON)
    complaint_message_id: Mapped[str | None] = mapped_column(String(255), index=True)
    complaint_subject: Mapped[str | None] = mapped_column(String(200))
    # The incident as filed, to resume a run and to tell a re-filing from a conflicting one.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    customer: Mapped[Customer] = relationship()


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    state: Mapped[CaseState] = mapped_column(_enum(CaseState), default=CaseState.OPEN)
    stage: Mapped[Stage | None] = mapped_column(_enum(Stage))  # the last stage completed
    decision: Mapped[Decision | None] = mapped_column(_enum(Decision))
    reply_channel: Mapped[ReplyChannel] = mapped_column(_enum(ReplyChannel))
    first_response_due: Mapped[datetime]
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None]
    # Staff confirmed that the put-right the apology promised was done (``amends done``).
    put_right_done_at: Mapped[datetime | None]
    put_right_done_by: Mapped[str | None] = mapped_column(String(120))
    # A past complaint imported as history: it sends nothing and breaches no service level;
    # first_response_at is when the business first answered it, outside amends.
    history: Mapped[bool] = mapped_column(Boolean, default=False)
    first_response_at: Mapped[datetime | None]

    incident: Mapped[Incident] = relationship()
    customer: Mapped[Customer] = relationship()


class StageOutcome(Base):
    """A stage's persisted result: present means done, and a re-run skips it."""

    __tablename__ = "stage_outcomes"
    __table_args__ = (UniqueConstraint("case_id", "stage"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    stage: Mapped[Stage] = mapped_column(_enum(Stage))
    status: Mapped[StageStatus] = mapped_column(_enum(StageStatus))
    summary: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    completed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(Base):
    """The outbox: every communication to the customer, whoever delivers it.

    ``key`` (case, stage, purpose) is unique, so a re-run can never queue the same message twice.
    A message belongs to a customer and, unless it is a win-back offer, to one of their cases.
    """

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_kind_created_at", "kind", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    stage: Mapped[Stage] = mapped_column(_enum(Stage))
    kind: Mapped[MessageKind] = mapped_column(_enum(MessageKind))
    channel: Mapped[ReplyChannel] = mapped_column(_enum(ReplyChannel))
    recipient: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[str] = mapped_column(Text)
    attachment: Mapped[str | None] = mapped_column(String(500))  # a file path (.ics, letter)
    message_id: Mapped[str | None] = mapped_column(String(255))  # RFC 5322 id, stable on resend
    in_reply_to: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[MessageStatus] = mapped_column(_enum(MessageStatus), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Connections lost after the message itself went out: the server may have it already.
    unconfirmed: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None]  # when a sender took it; a stale claim is resent
    claim_token: Mapped[str | None] = mapped_column(String(32))  # whose claim it is
    next_attempt_at: Mapped[datetime | None]  # after a transient failure: not before then
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_id: Mapped[str | None] = mapped_column(String(255))
    due_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class StaffAction(Base):
    """Work for a person: approve, review, arrange. Keyed like messages so it is never doubled."""

    __tablename__ = "staff_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    role: Mapped[str] = mapped_column(String(20))  # frontline, manager, team
    instructions: Mapped[str] = mapped_column(Text)
    due_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(20), default="open")
    # The message a person delivers by doing this (a call-back, a letter), if any.
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None]


class Offer(Base):
    __tablename__ = "offers"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), unique=True)
    kind: Mapped[OfferKind] = mapped_column(_enum(OfferKind))
    value: Mapped[float] = mapped_column(Float)
    currency: Mapped[str] = mapped_column(String(3))
    trial_days: Mapped[int | None]
    capped: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="proposed")  # proposed, offered
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Approval(Base):
    """A manager's decision on an offer above the frontline limit: asked, then answered once."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), unique=True)
    wanted: Mapped[float] = mapped_column(Float)  # what absorbs the customer's costs
    frontline_limit: Mapped[float] = mapped_column(Float)
    manager_limit: Mapped[float] = mapped_column(Float)
    currency: Mapped[str] = mapped_column(String(3))
    # pending, approved, adjusted, declined; timed_out until a late answer replaces it.
    status: Mapped[str] = mapped_column(String(20), default="pending")
    amount: Mapped[float | None] = mapped_column(Float)  # granted
    approver: Mapped[str | None] = mapped_column(String(120))
    reason: Mapped[str | None] = mapped_column(Text)
    # The Prefect flow run that waits for the answer, so the CLI can resume it.
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    due_at: Mapped[datetime]
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]


class CheckIn(Base):
    """A catch-up meeting after a recovery, kept faithfully (seed 004)."""

    __tablename__ = "checkins"
    __table_args__ = (
        UniqueConstraint("case_id", "number"),
        Index("ix_checkins_status_starts_at", "status", "starts_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[datetime]
    duration_minutes: Mapped[int] = mapped_column(Integer)
    uid: Mapped[str] = mapped_column(String(200), unique=True)  # iCalendar UID
    sequence: Mapped[int] = mapped_column(Integer, default=0)  # iCalendar SEQUENCE
    status: Mapped[str] = mapped_column(String(20), default="scheduled")  # held, cancelled
    misses: Mapped[int] = mapped_column(Integer, default=0)  # each miss moves it on
    feedback: Mapped[str | None] = mapped_column(Text)  # the customer's, in staff's words
    recorded_by: Mapped[str | None] = mapped_column(String(120))
    outcome_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CaseEvent(Base):
    """One line of a case's timeline."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    stage: Mapped[Stage | None] = mapped_column(_enum(Stage))
    kind: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(60), default="amends")


class ExitAnswers(Base):
    """What a customer who left said to the exit questions (seeds 002 and 004), in staff's
    words: for the marketing team's themes, never for artifacts."""

    __tablename__ = "exit_answers"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))  # their latest, if any
    why: Mapped[str | None] = mapped_column(Text)  # why they left
    went_to: Mapped[str | None] = mapped_column(Text)  # where they went instead
    second_chance: Mapped[str | None] = mapped_column(Text)  # what would win them back
    stay: Mapped[str | None] = mapped_column(Text)  # what would have made them stay
    recorded_by: Mapped[str] = mapped_column(String(120))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Mention(Base):
    """A public post about the business, as a listening source recorded it.

    Every post is kept, complaint or not, for the reports; only a complaint that is no
    duplicate opens an incident (``case_id`` is then the case that answers it).
    """

    __tablename__ = "mentions"
    __table_args__ = (
        UniqueConstraint("platform", "url"),
        UniqueConstraint("platform", "external_id"),
        Index("ix_mentions_complaint_case_id", "complaint", "case_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    handle: Mapped[str] = mapped_column(String(100), index=True)
    url: Mapped[str] = mapped_column(String(500))
    text: Mapped[str] = mapped_column(Text)
    posted_at: Mapped[datetime]
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    # Where it was read, and its id there (a tweet id, a status id, a feed entry's id).
    source: Mapped[str | None] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(200))
    in_reply_to: Mapped[str | None] = mapped_column(String(200))
    # Written to the business (a mention of its handle, a reply to it), or only about it.
    addressed: Mapped[bool] = mapped_column(Boolean, default=False)
    complaint: Mapped[bool] = mapped_column(Boolean, default=False)
    sentiment: Mapped[float] = mapped_column(Float, default=0.0)  # VADER compound, -1..+1
    # A repost, or the same words by the same author again: kept, never answered twice.
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("mentions.id"))
    repost: Mapped[bool] = mapped_column(Boolean, default=False)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    recorded_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    # Runs that could not open an incident for it: such a complaint waits behind the others, so
    # it never takes the per-run cap from newer ones.
    answer_attempts: Mapped[int] = mapped_column(Integer, default=0)


class Suppression(Base):
    """An address amends must not write to: ``marketing`` (an opt-out from win-back offers) or
    ``all`` (nothing at all)."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("address", "scope"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(254))  # lower-cased email, or E.164 phone
    scope: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Installation(Base):
    """This database's own identifier, made once: it is in every Message-ID, so two
    installations (staging and production, a rebuilt database) never send the same one."""

    __tablename__ = "installation"

    id: Mapped[int] = mapped_column(primary_key=True)  # always 1: one row
    identifier: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
