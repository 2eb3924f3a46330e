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
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

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
    case.state = _state_for(session, case)
    if case.state is CaseState.CLOSED and case.closed_at is None:
        case.closed_at = models.utcnow()
        session.add(
            models.CaseEvent(
                case_id=case.id,
                at=case.closed_at,
                kind="case_closed",
                text="Case closed: nothing is left to do.",
            )
        )


# What decides a case's state, in one query built once: a drain settles a case with every
# message it finishes, and building the query each time was most of its cost.
_CASE_ID = bindparam("case_id")
_MESSAGES = select(models.Message.id).where(models.Message.case_id == _CASE_ID)
_CASE_FACTS = select(
    _MESSAGES.where(
        models.Message.status.in_((MessageStatus.QUEUED, MessageStatus.SENDING))
    ).exists(),
    _MESSAGES.where(
        models.Message.status.in_((MessageStatus.AWAITING_STAFF, MessageStatus.FAILED))
    ).exists(),
    select(models.StaffAction.id)
    .where(
        models.StaffAction.case_id == _CASE_ID,
        models.StaffAction.status == "open",
        models.StaffAction.role != "team",  # improvement items outlive the case
    )
    .exists(),
    select(models.CheckIn.id)
    .where(models.CheckIn.case_id == _CASE_ID, models.CheckIn.status == CheckinStatus.SCHEDULED)
    .exists(),
)


def _state_for(session: Session, case: models.Case) -> CaseState:
    """Open while mail is queued or a recovery is under way (its stages, then its check-ins),
    waiting for staff while a person must act (a failed reply included), closed when nothing is
    left to do."""
    unsettled, troubled, acting, checkins_to_come = session.execute(
        _CASE_FACTS, {"case_id": case.id}
    ).one()
    if unsettled:
        return CaseState.OPEN
    if troubled or acting:
        return CaseState.AWAITING_STAFF
    if case.decision is not Decision.RECOVER:
        return CaseState.CLOSED
    return (
        CaseState.OPEN if case.stage is not Stage.REENGAGE or checkins_to_come else CaseState.CLOSED
    )
