"""The catalogue of messages: each kind, the channels it is written for, and what it is told.

A template exists for every (kind, channel) in :data:`FORMS` in every locale of
:data:`LOCALES`; ``amends templates check`` holds the templates folder to that.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from amends.domain import Incident, MessageKind, ReplyChannel
from amends.errors import TemplateError
from amends.rendering import Rendered, Templates
from amends.settings import Settings

LOCALES = ("en", "es")

K, C = MessageKind, ReplyChannel
FORMS: dict[MessageKind, tuple[ReplyChannel, ...]] = {
    K.APOLOGY: (C.EMAIL, C.LETTER, C.PHONE, C.SMS, C.CHAT, C.VISIT),
    K.PUBLIC_REPLY: (C.SOCIAL,),
    K.PROGRESS_UPDATE: (C.EMAIL, C.LETTER, C.PHONE, C.SMS),
    K.OFFER: (C.EMAIL, C.LETTER, C.PHONE, C.SMS),
    K.CHECKIN_INVITATION: (C.EMAIL, C.LETTER, C.PHONE),
    K.CHECKIN_REMINDER: (C.EMAIL, C.SMS),
    K.EXIT_QUESTIONS: (C.EMAIL, C.LETTER, C.PHONE),
    K.THANK_YOU: (C.EMAIL, C.LETTER, C.SMS),
    K.WINBACK_OFFER: (C.EMAIL, C.LETTER, C.SMS),
}
del K, C

# Channels whose messages are HTML documents; the others are plain text.
HTML_CHANNELS = frozenset({ReplyChannel.EMAIL, ReplyChannel.LETTER})


# What a progress update can say was done, and what comes next; each template translates them.
PROGRESS_DONE = (
    "complaint_received",
    "apology_sent",
    "fix_in_progress",
    "fix_done",
    "offer_made",
    "checkins_scheduled",
)
PROGRESS_NEXT = ("fix", "first_checkin", "next_checkin", "manager_call", "close_case")


# Channels that cut long messages: a public post must fit whole.
LENGTH_LIMITS = {ReplyChannel.SOCIAL: 280}


def extension(channel: ReplyChannel) -> str:
    """The file format of a channel's messages: ``html`` or ``txt``."""
    return "html" if channel in HTML_CHANNELS else "txt"


def render_message(
    templates: Templates,
    kind: MessageKind,
    channel: ReplyChannel,
    locale: str,
    context: dict[str, Any],
) -> Rendered:
    """Render one message in the customer's locale, in its channel's format and length.

    Raises:
        TemplateError: the template failed, or the message is too long for its channel.
    """
    rendered = templates.render(kind.value, channel.value, extension(channel), locale, context)
    limit = LENGTH_LIMITS.get(channel)
    if limit is not None and len(rendered.body.strip()) > limit:
        raise TemplateError(
            f"{kind.value} on {channel.value} is {len(rendered.body.strip())} characters; "
            f"{channel.value} takes {limit}"
        )
    return rendered


def business_context(settings: Settings) -> dict[str, Any]:
    """How the business presents itself: settings, not template edits."""
    return {
        "name": settings.business_name,
        "signature": settings.signature,
        "email": settings.sender_email,
        "tone": settings.tone,
    }


def case_context(
    *,
    settings: Settings,
    incident: Incident,
    decision: str,
    respond_by: datetime,
    timezone: str,
    offer: dict[str, Any] | None,
    checkins: list[datetime],
    progress: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a template is told about a real case; the same keys as :func:`sample_context`."""
    return {
        "business": business_context(settings),
        "customer": {
            "name": incident.customer.name,
            "handle": incident.customer.social.handle if incident.customer.social else "",
        },
        "incident": {
            "ref": incident.ref,
            "summary": incident.summary,
            "received_at": incident.received_at,
            "category": incident.category.value,
            "channel": incident.channel.value,
        },
        "decision": decision,
        "put_right": incident.put_right,
        "what_changed": incident.what_changed,
        "offer": offer,
        "checkins": checkins,
        "timezone": timezone,
        "respond_by": respond_by,
        "progress": progress,
    }


def sample_context(settings: Settings, *, now: datetime | None = None) -> dict[str, Any]:
    """A full context with sample data, for previews and ``amends templates check``.

    Every optional part is filled, so that a template's every branch has something to say.
    """
    now = now or datetime.now(UTC)
    received = now - timedelta(days=2)
    return {
        "business": business_context(settings),
        "customer": {"name": "Rodolfo Kendhall", "handle": "@rkendhall"},
        "incident": {
            "ref": "INC-1001",
            "summary": "Cleaning crew missed four days in a row",
            "received_at": received,
            "category": "service_failure",
            "channel": "email",
        },
        "decision": "recover",
        "put_right": "A supervisor will deep-clean your offices this week at no charge.",
        "what_changed": "Every crew now has a named stand-in, and a missed visit alerts a "
        "supervisor within the hour.",
        "offer": {"kind": "free_trial", "value": 300.0, "currency": "EUR", "trial_days": 30},
        "checkins": [now + timedelta(days=7), now + timedelta(days=21), now + timedelta(days=49)],
        "timezone": settings.business_timezone,
        "respond_by": received + timedelta(hours=24),
        "progress": {
            "done": ["apology_sent", "offer_made", "checkins_scheduled"],
            "next": "first_checkin",
            "next_contact": now + timedelta(days=7),
        },
    }
