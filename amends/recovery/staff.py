"""Staff work: what people must do that amends cannot (call back, print and post, visit,
approve, check), and how they close it.

Every item is a :class:`~amends.storage.models.StaffAction`, keyed so that a re-run never
doubles it; a reply delivered by a person (a call-back script, a letter, a public reply) is a
message in the outbox *and* an action that points at it, and closing the action marks the
message sent.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    bindparam,
    exists,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy import case as sql_case
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from amends.domain import (
    CaseState,
    CheckinStatus,
    Decision,
    MessageKind,
    MessageStatus,
    ReplyChannel,
    Stage,
    spoken,
)
from amends.errors import AmendsError, NotFound
from amends.storage import models
from amends.storage.db import Database

# What a person does to deliver a reply on each channel that has no adapter.
DELIVERY_TASKS: dict[ReplyChannel, tuple[str, str]] = {
    ReplyChannel.EMAIL: ("send_email", "Send this email to {to}."),
    ReplyChannel.PHONE: ("call_back", "Call {to} and follow the script."),
    ReplyChannel.LETTER: (
        "print_letter",
        "Print the letter ({file}), sign it and post it to {to}; a handwritten note goes "
        "further than print.",
    ),
    ReplyChannel.SOCIAL: ("post_public_reply", "Post this reply publicly on {to}."),
    ReplyChannel.SMS: ("send_sms", "Text this to {to}."),
    ReplyChannel.CHAT: ("send_chat", "Send this in the customer's chat ({to})."),
    ReplyChannel.VISIT: ("visit_or_call", "Visit or call ({to}) and follow the script."),
}


def add_action(
    session: Session,
    *,
    customer_id: int,
    case_id: int | None,
    key: str,
    kind: str,
    role: str,
    instructions: str,
    due_at: datetime | None = None,
    message_id: int | None = None,
) -> models.StaffAction | None:
    """Add an action in the caller's transaction, with a line on the case's timeline if it has a
    case; None if this key exists."""
    if session.scalar(select(models.StaffAction.id).where(models.StaffAction.key == key)):
        return None
    action = models.StaffAction(
        customer_id=customer_id,
        case_id=case_id,
        key=key,
        kind=kind,
        role=role,
        instructions=instructions,
        due_at=due_at,
        message_id=message_id,
    )
    session.add(action)
    if case_id is not None:
        session.add(
            models.CaseEvent(
                case_id=case_id, kind="staff_action", text=f"For the {role}: {instructions}"
            )
        )
    return action


# A private message on a social network, beside the public reply.
PRIVATE_MESSAGE_TASK = ("send_private_message", "Send this as a private message to {to}.")


def hand_message_to_staff(session: Session, message: models.Message) -> None:
    """Queue a person to deliver a message on a channel amends has no adapter for."""
    private = (
        message.channel is ReplyChannel.SOCIAL and message.kind is not MessageKind.PUBLIC_REPLY
    )
    kind, template = PRIVATE_MESSAGE_TASK if private else DELIVERY_TASKS[message.channel]
    file = message.attachment or ""
    add_action(
        session,
        customer_id=message.customer_id,
        case_id=message.case_id,
        key=f"{message.key}:deliver",
        kind=kind,
        role="frontline",
        instructions=template.format(to=message.recipient, file=file),
        due_at=message.due_at,
        message_id=message.id,
    )


class ActionLine(BaseModel):
    """One line of ``amends actions``."""

    id: int
    incident_ref: str | None  # None: about the customer, not a case (a win-back offer)
    customer_name: str
    kind: str
    role: str
    instructions: str
    due_at: datetime | None
    status: str
    message_body: str | None
    message_subject: str | None


def open_actions(db: Database) -> list[ActionLine]:
    """Open staff work, soonest due first."""
    with db.session() as session:
        rows = session.execute(
            select(models.StaffAction, models.Customer, models.Incident.ref)
            .join(models.Customer, models.StaffAction.customer_id == models.Customer.id)
            .outerjoin(models.Case, models.StaffAction.case_id == models.Case.id)
            .outerjoin(models.Incident, models.Case.incident_id == models.Incident.id)
            .where(models.StaffAction.status == "open")
            .order_by(
                models.StaffAction.due_at.is_(None),
                models.StaffAction.due_at,
                models.StaffAction.id,
            )
        ).all()
        return [_line(session, action, customer, ref) for action, customer, ref in rows]


def find_action(db: Database, action_id: int) -> ActionLine:
    with db.session() as session:
        action = session.get(models.StaffAction, action_id)
        if action is None:
            raise NotFound(f"no staff action {action_id}; `amends actions` lists the open ones")
        case = session.get(models.Case, action.case_id) if action.case_id else None
        customer = session.get(models.Customer, action.customer_id)
        return _line(session, action, customer, case.incident.ref if case else None)


def _line(
    session: Session,
    action: models.StaffAction,
    customer: models.Customer,
    incident_ref: str | None,
) -> ActionLine:
    message = session.get(models.Message, action.message_id) if action.message_id else None
    return ActionLine(
        id=action.id,
        incident_ref=incident_ref,
        customer_name=customer.name,
        kind=action.kind,
        role=action.role,
        instructions=action.instructions,
        due_at=action.due_at,
        status=action.status,
        message_body=message.body if message else None,
        message_subject=message.subject if message else None,
    )


def complete_action(db: Database, action_id: int, *, note: str, actor: str) -> ActionLine:
    """Record that a person did the action (and so delivered its message), with their note.

    Raises:
        NotFound: no such action.
        AmendsError: the action is already done.
    """
    with db.session() as session:
        action = session.get(models.StaffAction, action_id)
        if action is None:
            raise NotFound(f"no staff action {action_id}; `amends actions` lists the open ones")
        if action.status != "open":
            raise AmendsError(f"staff action {action_id} is already {action.status}")
        action.status = "done"
        action.done_at = models.utcnow()
        text = f"Done: {action.kind.replace('_', ' ')}" + (f". {note}" if note else ".")
        if action.message_id:
            message = session.get(models.Message, action.message_id)
            if message.status is MessageStatus.AWAITING_STAFF:  # the person delivered it
                message.status = MessageStatus.SENT
                message.sent_at = action.done_at
                text += f" The {spoken(message.kind)} by {message.channel.value} was delivered."
            elif message.status is MessageStatus.FAILED:  # the person took over from it
                message.status = MessageStatus.HANDLED
        if action.case_id is not None:
            session.add(
                models.CaseEvent(case_id=action.case_id, kind="staff_done", text=text, actor=actor)
            )
            case = session.get(models.Case, action.case_id)
            if action.kind == "confirm_put_right" and case.put_right_done_at is None:
                # The same as `amends done`: the thank-you may follow.
                case.put_right_done_at, case.put_right_done_by = action.done_at, actor
            if case.state is CaseState.AWAITING_STAFF:
                settle(session, case)
    return find_action(db, action_id)


def settle(session: Session, case: models.Case) -> None:
    """Put the case in the state its messages and actions call for, noting when it closed."""
    session.flush()  # the session's unsaved changes (a new case, a stage, a decision) count
    settled = settle_case(session, case.id)
    if settled is not None:
        # As the database has them now: nothing for the session to write again.
        state, closed_at = settled
        set_committed_value(case, "state", state)
        set_committed_value(case, "closed_at", closed_at)


def settle_case(
    session: Session | Connection, case_id: int, *, finished_only: bool = False
) -> tuple[CaseState, datetime | None] | None:
    """:func:`settle` for a case by its id, without loading it, in a session's transaction or a
    connection's; returns its state and when it closed (changed or not), None if
    ``finished_only`` left it alone.

    Args:
        finished_only: Leave alone a case whose stages are not done (they settle it) or that
            is closed (a late delivery does not reopen it).
    """
    facts = session.execute(
        _SETTLING_FINISHED if finished_only else _SETTLING, {"case_id": case_id}
    ).one_or_none()
    if facts is None:
        return None
    state, closed_at, called_for = facts
    if called_for is state:
        return state, closed_at
    values: dict[str, object] = {"state": called_for}
    if called_for is CaseState.CLOSED and closed_at is None:
        closed_at = values["closed_at"] = models.utcnow()
        session.execute(
            _NOTE,
            {
                "case_id": case_id,
                "at": closed_at,
                "kind": "case_closed",
                "text": "Case closed: nothing is left to do.",
            },
        )
    session.execute(_SET_STATE, {"settled_id": case_id, **values})
    return called_for, closed_at


def state_called_for(
    cases: FromClause = models.Case.__table__, *, settled: ColumnElement[int] | None = None
) -> ColumnElement[CaseState]:
    """The state a case's messages, actions and check-ins call for, as one SQL expression over
    ``cases``: open while mail is queued or a recovery is under way (its stages, then its
    check-ins), waiting for staff while a person must act (a failed reply included), closed
    when nothing is left to do.

    Args:
        settled: A message of the case to count as settled: one whose result is recorded by
            the statement this expression is part of (its row not yet changed when it runs).
    """
    messages = models.Message.__table__.alias("case_messages")
    actions, checkins = models.StaffAction.__table__, models.CheckIn.__table__
    of_case = messages.c.case_id == cases.c.id

    def fact(table: FromClause, *conditions: ColumnElement[bool]) -> ColumnElement[bool]:
        # Of the case (and ``settled``) in the statement around it: only ``table`` is its own.
        return exists().where(*conditions).correlate_except(table)

    unsettled = fact(
        messages,
        of_case,
        messages.c.status.in_((MessageStatus.QUEUED, MessageStatus.SENDING)),
        *([messages.c.id != settled] if settled is not None else []),
    )
    troubled = fact(
        messages,
        of_case,
        messages.c.status.in_((MessageStatus.AWAITING_STAFF, MessageStatus.FAILED)),
    )
    acting = fact(
        actions,
        actions.c.case_id == cases.c.id,
        actions.c.status == "open",
        actions.c.role != "team",  # improvement items outlive the case
    )
    checkins_to_come = fact(
        checkins,
        checkins.c.case_id == cases.c.id,
        checkins.c.status == CheckinStatus.SCHEDULED,
    )
    state = cases.c.state.type
    return sql_case(
        (unsettled, literal(CaseState.OPEN, state)),
        (troubled | acting, literal(CaseState.AWAITING_STAFF, state)),
        (cases.c.decision.is_distinct_from(Decision.RECOVER), literal(CaseState.CLOSED, state)),
        (
            cases.c.stage.is_distinct_from(Stage.REENGAGE) | checkins_to_come,
            literal(CaseState.OPEN, state),
        ),
        else_=literal(CaseState.CLOSED, state),
    )


# Built once, with the case as a parameter: a drain settles each case a delivery changes,
# and building the query each time was most of its cost.
_SETTLING = select(models.Case.state, models.Case.closed_at, state_called_for()).where(
    models.Case.id == bindparam("case_id")
)
_SETTLING_FINISHED = _SETTLING.where(
    models.Case.stage == Stage.REENGAGE, models.Case.state != CaseState.CLOSED
)
_SET_STATE = update(models.Case.__table__).where(models.Case.id == bindparam("settled_id"))
_NOTE = insert(models.CaseEvent.__table__)
