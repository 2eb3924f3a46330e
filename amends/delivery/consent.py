"""Consent: the addresses amends must not write to.

An opt-out from marketing silences win-back offers and nothing else: a customer with an open
case still hears about it. ``all`` silences every message the nightly run would send.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from amends.domain import MARKETING_KINDS, MessageKind, email_address, phone_number
from amends.errors import InvalidInput
from amends.storage import models
from amends.storage.db import Database

Scope = Literal["marketing", "all"]
# A lost customer (seed 000: forgiven once, failed again) gets no win-back, but is asked once
# why they left (seeds 002 and 004): learning from them is not trying to win them back.
ASKED_OF_THE_LOST = frozenset({MessageKind.EXIT_QUESTIONS})


def normal_address(address: str) -> str:
    """An email address (lower-cased) or a phone number (E.164), as suppressions store them.

    Raises:
        InvalidInput: it is neither.
    """
    address = address.strip()
    if "@" not in address and not address.startswith("+"):
        raise InvalidInput(
            f"{address!r} is neither an email address nor a phone number (+ and the country code)"
        )
    try:
        if "@" in address:
            return email_address(address).lower()
        return phone_number(address)
    except ValueError as error:
        raise InvalidInput(f"{address!r} {error}") from None


def suppress(db: Database, address: str, *, scope: Scope, reason: str) -> bool:
    """Record that ``address`` is not to be written to (``scope``); False if it was already."""
    address = normal_address(address)
    with db.session() as session:
        return add_suppression(session, address, scope=scope, reason=reason)


def add_suppression(session: Session, address: str, *, scope: Scope, reason: str) -> bool:
    """:func:`suppress`, in the caller's transaction, for an address already normal."""
    known = session.scalar(
        select(models.Suppression.id).where(
            models.Suppression.address == address, models.Suppression.scope == scope
        )
    )
    if known:
        return False
    session.add(models.Suppression(address=address, scope=scope, reason=reason))
    return True


def may_contact(*, marketing: bool, asking_why: bool = False) -> ColumnElement[bool]:
    """:func:`withheld`'s rule as a SQL condition on a customer, for set-based queries: not
    do-not-contact, not suppressed (for all mail; for marketing too, when ``marketing``), and,
    for marketing, not barred from win-backs (``asking_why``: the exit questions, which a lost
    customer is asked, see :data:`ASKED_OF_THE_LOST`)."""
    customer = models.Customer
    suppressed = exists().where(
        models.Suppression.scope.in_(["all", "marketing"] if marketing else ["all"]),
        or_(
            models.Suppression.address == func.lower(customer.email),
            models.Suppression.address == customer.phone,
        ),
    )
    condition = and_(customer.do_not_contact.is_(False), ~suppressed)
    if not marketing:
        return condition
    barred = customer.winback_barred.is_(None)
    if asking_why:
        barred = or_(barred, customer.winback_barred == "lost")
    return and_(condition, barred)


def withheld(
    session: Session, messages: list[tuple[models.Message, models.Customer]]
) -> dict[int, str]:
    """Of these messages, those that may not go, with why (no address in the reason: it ends
    up in logs). Checked just before sending, on every channel, so an opt-out recorded after a
    message was queued still counts.

    Nothing goes to a customer marked do-not-contact, or to an address suppressed for all
    mail (a bounce, a complaint); marketing does not go to an address that opted out of it,
    nor to a customer barred from win-backs (abusive, lost).
    """
    addresses = {message.recipient.lower() for message, _ in messages}
    scopes: dict[str, dict[str, str]] = {}
    for address, scope, reason in session.execute(
        select(
            models.Suppression.address, models.Suppression.scope, models.Suppression.reason
        ).where(models.Suppression.address.in_(addresses))
    ):
        scopes.setdefault(address, {})[scope] = reason
    reasons = {}
    for message, customer in messages:
        marketing = message.kind in MARKETING_KINDS
        suppressed = scopes.get(message.recipient.lower(), {})
        if customer.do_not_contact:
            reasons[message.id] = "the customer is marked do-not-contact"
        elif "all" in suppressed:
            reasons[message.id] = f"the address is suppressed ({suppressed['all']})"
        elif (
            marketing
            and customer.winback_barred
            and not (customer.winback_barred == "lost" and message.kind in ASKED_OF_THE_LOST)
        ):
            reasons[message.id] = f"the customer is never in a win-back ({customer.winback_barred})"
        elif marketing and "marketing" in suppressed:
            reasons[message.id] = "the address opted out of offers"
    return reasons
