"""Consent: the addresses amends must not write to.

An opt-out from marketing silences win-back offers and nothing else: a customer with an open
case still hears about it. ``all`` silences every message the nightly run would send.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import select

from amends import models
from amends.db import Database
from amends.domain import email_address, phone_number
from amends.errors import InvalidInput

Scope = Literal["marketing", "all"]


def normal_address(address: str) -> str:
    """An email address (lower-cased) or a phone number (E.164), as suppressions store them.

    Raises:
        InvalidInput: it is neither.
    """
    address = address.strip()
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
        if session.scalar(
            select(models.Suppression.id).where(
                models.Suppression.address == address, models.Suppression.scope == scope
            )
        ):
            return False
        session.add(models.Suppression(address=address, scope=scope, reason=reason))
    return True
