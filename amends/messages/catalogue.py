"""The catalogue of messages: each kind, the channels it is written for, and what it is told.

A template exists for every (kind, channel) in :data:`FORMS` in every locale of
:data:`LOCALES`; ``amends templates check`` holds the templates folder to that.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from amends.delivery.channels import unsubscribe_link
from amends.domain import Incident, MessageKind, ReplyChannel, Stage
from amends.errors import AmendsError, TemplateError
from amends.messages.rendering import Rendered, Templates
from amends.settings import Settings
from amends.storage import models

LOCALES = ("en", "es")

K, C = MessageKind, ReplyChannel
FORMS: dict[MessageKind, tuple[ReplyChannel, ...]] = {
    K.APOLOGY: (C.EMAIL, C.LETTER, C.PHONE, C.SMS, C.CHAT, C.VISIT, C.SOCIAL),
    K.PUBLIC_REPLY: (C.SOCIAL,),
    K.PROGRESS_UPDATE: (C.EMAIL, C.LETTER, C.PHONE, C.SMS),
    K.OFFER: (C.EMAIL, C.LETTER, C.PHONE, C.SMS),
    K.CHECKIN_INVITATION: (C.EMAIL, C.LETTER, C.PHONE),
    K.CHECKIN_REMINDER: (C.EMAIL, C.SMS),
    K.CHECKIN_MOVED: (C.EMAIL,),
    K.CHECKIN_CANCELLED: (C.EMAIL,),
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


# Messages a channel would cut: a public post must fit whole.
LENGTH_LIMITS = {(MessageKind.PUBLIC_REPLY, ReplyChannel.SOCIAL): 280}


def needed_templates(reply: ReplyChannel) -> list[tuple[MessageKind, ReplyChannel]]:
    """The forms a case answered on ``reply`` may send: every kind written for that channel, and
    the public reply, since a public post about the case may turn up."""
    forms = [(kind, reply) for kind, channels in FORMS.items() if reply in channels]
    public = (MessageKind.PUBLIC_REPLY, ReplyChannel.SOCIAL)
    return forms if public in forms else [*forms, public]


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
    limit = LENGTH_LIMITS.get((kind, channel))
    if limit is not None and len(rendered.body.strip()) > limit:
        raise TemplateError(
            f"{kind.value} on {channel.value} is {len(rendered.body.strip())} characters; "
            f"{channel.value} takes {limit}"
        )
    return rendered


def business_context(settings: Settings, locale: str = "en") -> dict[str, Any]:
    """How the business presents itself: its profile (`amends init`), not template edits. The
    signature is the one for the customer's language: "signature" whole, or its two parts."""
    business = settings.business
    signature = business.signature(locale)
    return {
        "name": business.name,
        "signature": str(signature),
        "signer": signature.name,
        "title": signature.title,
        "email": settings.sender_email,
        "phone": business.phone,
        "tone": settings.tone,
    }


def incident_context(incident: Incident | models.Incident) -> dict[str, Any]:
    """What a template is told of the incident, filed or stored: the same keys either way."""
    return {
        "ref": incident.ref,
        "summary": incident.summary,
        "received_at": incident.received_at,
        "category": incident.category.value,
        "channel": incident.channel.value,
        "fault": incident.fault.value,
    }


def case_context(
    session: Session,
    case: models.Case,
    settings: Settings,
    *,
    checkins: list[datetime] | None = None,
    next_step: str | None = None,
) -> dict[str, Any]:
    """What a template is told about a real case; the same keys as :func:`sample_context`.

    ``checkins`` are the meetings a message is about; the case's scheduled ones by default.
    ``next_step`` (one of :data:`NEXT_STEPS`) is what the apology says follows it: the step
    the stages will really take; by default the one the follow-up stage recorded (a preview
    shows the apology as it went).
    """
    incident = filed_incident(case)
    if next_step is None:
        followed = session.scalar(
            select(models.StageOutcome.data).where(
                models.StageOutcome.case_id == case.id,
                models.StageOutcome.stage == Stage.FOLLOW_UP,
            )
        )
        next_step = (followed or {}).get("next_step", "reply")
    offer = session.scalar(select(models.Offer).where(models.Offer.case_id == case.id))
    if checkins is None:
        checkins = list(
            session.scalars(
                select(models.CheckIn.starts_at)
                .where(models.CheckIn.case_id == case.id)
                .order_by(models.CheckIn.number)
            )
        )
    return {
        "business": business_context(settings, incident.customer.locale),
        "customer": customer_names(
            incident.customer.name,
            case.customer.addressed_as or incident.customer.addressed_as,
            settings,
        )
        | {
            "handle": incident.customer.social.handle if incident.customer.social else "",
            "address": incident.customer.postal_address or "",
        },
        "incident": incident_context(incident),
        "decision": case.decision.value if case.decision else "",
        "put_right": incident.put_right,
        "what_changed": incident.what_changed,
        "offer": (
            {
                "kind": offer.kind.value,
                "value": offer.value,
                "currency": offer.currency,
                "trial_days": offer.trial_days,
            }
            if offer
            else None
        ),
        "checkins": checkins,
        "timezone": case.customer.timezone or settings.business_timezone,
        "respond_by": case.first_response_due,
        "progress": progress_of(session, case, checkins),
        "today": datetime.now(UTC),
        "unsubscribe": optout_link(settings, case.customer.email),
        "next_step": next_step,
        "answer_link": "",
    }


NEXT_STEPS = (
    "invitation",  # a check-in invitation follows by email, with its dates
    "agree_checkins",  # staff get in touch to agree the check-in dates
    "reply",  # nothing is scheduled: the customer replies if anything is still not right
)


def addressed_as(name: str, given: str | None, tone: str) -> str:
    """The name a greeting uses: the one recorded for the customer, else the first name in a
    warm tone ("Hello Arthur,") and the full name in a formal one ("Dear Arthur Penhaligon,"),
    which every language's greeting then frames ("Buenos días, Arthur Penhaligon:")."""
    if given and given.strip():
        return given.strip()
    return name.split()[0] if tone == "warm" and name.split() else name


def customer_names(name: str, given: str | None, settings: Settings) -> dict[str, str]:
    return {"name": name, "addressed_as": addressed_as(name, given, settings.tone)}


def optout_link(settings: Settings, email: str | None) -> str:
    """The customer's own opt-out link for marketing mail; empty when none is configured."""
    if not (email and settings.unsubscribe_url and settings.unsubscribe_secret):
        return ""
    return unsubscribe_link(settings, email)


def customer_context(
    settings: Settings,
    customer: models.Customer,
    *,
    incident: models.Incident | None = None,
    checkins: list[datetime] | None = None,
    offer: dict[str, Any] | None = None,
    now: datetime | None = None,
    answer_link: str = "",
) -> dict[str, Any]:
    """What a template is told in a message outside the stages (a check-in reminder, a win-back
    offer), from rows already loaded: no queries, so the nightly run renders thousands fast."""
    return {
        "business": business_context(settings, customer.locale),
        "customer": customer_names(customer.name, customer.addressed_as, settings)
        | {
            "handle": customer.social_handle or "",
            "address": customer.postal_address or "",
        },
        "incident": incident_context(incident) if incident else None,
        "decision": "",
        "put_right": "",
        "what_changed": "",
        "offer": offer,
        "checkins": checkins or [],
        "timezone": customer.timezone or settings.business_timezone,
        "respond_by": None,
        "progress": None,
        "today": now or datetime.now(UTC),
        "unsubscribe": optout_link(settings, customer.email),
        "next_step": "reply",
        "answer_link": answer_link,
    }


def filed_incident(case: models.Case) -> Incident:
    """The case's incident as it was filed.

    Raises:
        AmendsError: the customer was forgotten (``amends forget``): nothing is left to use.
    """
    if case.incident.payload.get("erased"):
        raise AmendsError(
            f"case {case.incident.ref}: its customer's data was erased; it can only be reported"
        )
    # A past complaint imported as history may name no way to reach its customer.
    return Incident.model_validate(case.incident.payload, context={"history": case.history})


def progress_of(session: Session, case: models.Case, checkins: list[datetime]) -> dict[str, Any]:
    """What a progress update says about a case: what was done, what comes next, and when the
    customer hears from us again (seed 001)."""
    sent_kinds = set(
        session.scalars(
            select(models.Message.kind).where(
                models.Message.case_id == case.id, models.Message.status == "sent"
            )
        )
    )
    done = ["complaint_received"]
    if sent_kinds & {MessageKind.APOLOGY, MessageKind.PUBLIC_REPLY}:
        done.append("apology_sent")
    # The put-right the apology promised: under way until staff confirm it (amends done).
    fixing = bool(case.incident.payload.get("put_right")) and case.put_right_done_at is None
    if case.incident.payload.get("put_right"):
        done.append("fix_in_progress" if fixing else "fix_done")
    if session.scalar(select(models.Offer.id).where(models.Offer.case_id == case.id)):
        done.append("offer_made")
    upcoming = [moment for moment in checkins if moment > datetime.now(UTC)]
    if upcoming:
        done.append("checkins_scheduled")
    return {
        "done": done,
        "next": "fix" if fixing else "first_checkin" if upcoming else "close_case",
        "next_contact": upcoming[0] if upcoming else datetime.now(UTC) + timedelta(days=7),
    }


# Sample wording an operator would write for a customer in each language.
SAMPLE_TEXT = {
    "en": (
        "Cleaning crew missed four days in a row",
        "A supervisor will deep-clean your offices this week at no charge.",
        "Every crew now has a named stand-in, and a missed visit alerts a supervisor within "
        "the hour.",
    ),
    "es": (
        "El equipo de limpieza no vino cuatro días seguidos",
        "Esta semana una supervisora hará una limpieza a fondo de sus oficinas sin coste.",
        "Cada equipo tiene ahora un suplente asignado, y una visita no realizada avisa a una "
        "supervisora en menos de una hora.",
    ),
}


def sample_context(
    settings: Settings, *, locale: str = "en", now: datetime | None = None
) -> dict[str, Any]:
    """A full context with sample data, for previews and ``amends templates check``.

    Every optional part is filled, so that a template's every branch has something to say.
    """
    now = now or datetime.now(UTC)
    summary, put_right, what_changed = SAMPLE_TEXT.get(locale.split("_")[0], SAMPLE_TEXT["en"])
    received = now - timedelta(days=2)
    return {
        "business": business_context(settings, locale),
        "customer": {
            "name": "Rodolfo Kendhall",
            "addressed_as": addressed_as("Rodolfo Kendhall", None, settings.tone),
            "handle": "@rkendhall",
            "address": "Calle Mayor 12\n28013 Madrid",
        },
        "incident": {
            "ref": "INC-1001",
            "summary": summary,
            "received_at": received,
            "category": "service_failure",
            "channel": "email",
            "fault": "ours",
        },
        "decision": "recover",
        "put_right": put_right,
        "what_changed": what_changed,
        "offer": {"kind": "free_trial", "value": 300.0, "currency": "EUR", "trial_days": 30},
        "checkins": [now + timedelta(days=7), now + timedelta(days=21), now + timedelta(days=49)],
        "timezone": settings.business_timezone,
        "respond_by": received + timedelta(hours=24),
        "progress": {
            "done": ["apology_sent", "offer_made", "checkins_scheduled"],
            "next": "first_checkin",
            "next_contact": now + timedelta(days=7),
        },
        "today": now,
        "unsubscribe": "https://acme.example/unsubscribe?email=rk%40example.com&token=0",
        "next_step": "agree_checkins",
        "answer_link": "https://acme.example/exit-answers?customer=C-42&token=0",
    }


def check_templates(templates: Templates, settings: Settings) -> list[str]:
    """Render every kind, channel and locale with sample data; return the problems found
    (a missing translation counts: it would reach the customer in English)."""
    problems = []
    for kind, channels in FORMS.items():
        for channel in channels:
            for locale in LOCALES:
                context = sample_context(settings, locale=locale)
                name = templates.template_name(
                    kind.value, channel.value, extension(channel), locale
                )
                if not (templates.root / name).is_file():
                    problems.append(f"{name}: missing")
                    continue
                try:
                    render_message(templates, kind, channel, locale, context)
                except TemplateError as error:
                    problems.append(str(error))
    return problems
