"""Every message read as the customer reads it (issue 18): each kind x channel x language, in
every variation a case can give it, held to the rules on the rendered text.

- The apology admits the fault whenever it is ours, shared or external (our promise), whatever
  the worth decision; only a customer who was being unreasonable hears "sorry this
  disappointed you".
- No sentence is said twice in a message.
- A Spanish message is Spanish throughout: none of the English words below outside the data
  (names, the complaint's own words, links).
- What the apology says comes next is the step really queued (next_step): an invitation by
  email, staff in touch to agree the dates, or nothing but an open door.
"""

from __future__ import annotations

import re
from collections import Counter
from itertools import product
from typing import Any

import pytest

from amends.domain import Decision, Fault, MessageKind, OfferKind, ReplyChannel
from amends.messages.catalogue import (
    FORMS,
    LOCALES,
    NEXT_STEPS,
    extension,
    render_message,
    sample_context,
)
from amends.messages.rendering import Templates, plain_text
from amends.settings import SHIPPED_TEMPLATES, Settings

SETTINGS = Settings()
# What the business profile gives each language (issue 18, item 1): a Spanish signature.
SIGNATURE = {
    "en": "Dana Rivers, customer care manager",
    "es": "Dana Rivers, responsable de atención al cliente",
}

ADMITS = {"en": ("we let you down",), "es": ("le hemos fallado", "haberle fallado")}
DISAPPOINTED = {"en": "sorry this disappointed you", "es": "que esto le haya decepcionado"}
# The apology's next step, in each language: each must appear only when it is the step queued.
PROMISES = {
    "invitation": {"en": "invitation to a short first check-in", "es": "le llegará una invitación"},
    "agree_checkins": {
        "en": ("will be in touch to agree", "agree a short check-in"),
        "es": ("nos pondremos en contacto para acordar", "acuerde una breve reunión"),
    },
    "reply": {
        "en": ("if anything is still not right", "ask whether anything is still not right"),
        "es": ("si algo sigue sin estar bien", "pregunte si algo sigue sin estar bien"),
    },
}
# English words no Spanish sentence uses; a Spanish message with any of them slipped.
ENGLISH = frozenset(
    [
        "the",
        "and",
        "you",
        "your",
        "we",
        "our",
        "with",
        "for",
        "of",
        "to",
        "is",
        "are",
        "will",
        "be",
        "this",
        "that",
        "please",
        "thank",
        "thanks",
        "reply",
        "replies",
        "manager",
        "customer",
        "care",
        "hello",
        "dear",
        "sorry",
        "free",
        "days",
        "next",
        "step",
        "check",
        "check-in",
        "offer",
        "team",
        "regards",
        "best",
        "wishes",
        "yours",
        "sincerely",
        "call",
        "back",
        "script",
        "incident",
        "respond",
        "by",
        "what",
        "when",
        "where",
        "why",
        "how",
        "would",
        "could",
        "should",
        "agree",
        "meeting",
        "visit",
    ]
)


@pytest.fixture(scope="module")
def templates() -> Templates:
    return Templates(SHIPPED_TEMPLATES, timezone=SETTINGS.business_timezone)


def channels_next_steps(channel: ReplyChannel) -> tuple[str, ...]:
    """The steps an apology on this channel can promise: the invitation goes by email only."""
    if channel is ReplyChannel.EMAIL:
        return NEXT_STEPS
    return tuple(step for step in NEXT_STEPS if step != "invitation")


def variations(kind: MessageKind, channel: ReplyChannel, locale: str) -> list[dict[str, Any]]:
    """Every context that changes what this message says."""
    base = sample_context(SETTINGS, locale=locale)
    base["business"] = {**base["business"], "signature": SIGNATURE[locale]}
    contexts = []
    faults = (
        list(Fault) if kind in (MessageKind.APOLOGY, MessageKind.PUBLIC_REPLY) else [Fault.OURS]
    )
    offers = [None, *OfferKind] if kind is MessageKind.APOLOGY else list(OfferKind)
    steps = channels_next_steps(channel) if kind is MessageKind.APOLOGY else ("reply",)
    for fault, offer, step, words, tone in product(
        faults, offers, steps, (True, False), ("warm", "formal")
    ):
        context = {
            **base,
            "incident": {**base["incident"], "fault": fault.value},
            "decision": Decision.RECOVER if step != "reply" else Decision.SMOOTH_OVER,
            "offer": offer and {**base["offer"], "kind": offer.value},
            "next_step": step,
            "business": {**base["business"], "tone": tone},
        }
        if not words:  # no operator's words: the templates' own fallbacks speak
            context.update(put_right="", what_changed="")
        contexts.append(context)
    return contexts


FORMS_READ = [
    (kind, channel, locale)
    for kind, channels in FORMS.items()
    for channel in channels
    for locale in LOCALES
]


def read(templates: Templates, kind: MessageKind, channel: ReplyChannel, locale: str,
         context: dict[str, Any]) -> str:  # fmt: skip
    """The message as the customer reads it: plain text, the subject first."""
    rendered = render_message(templates, kind, channel, locale, context)
    body = plain_text(rendered.body) if extension(channel) == "html" else rendered.body
    return f"{rendered.subject}\n\n{body}" if rendered.subject else body


def sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?:;])\s+|\n+", text)
    return [" ".join(p.split()).strip(" -").lower() for p in parts if len(p.split()) >= 3]


def without_data(text: str, context: dict[str, Any]) -> str:
    """The message's own words: the data (names, the customer's words, links, the time zone)
    is the customer's or the business's, in whatever language it came."""
    for value in (
        context["business"]["name"],
        context["business"]["email"],
        context["customer"]["name"],
        context["customer"]["handle"],
        context["incident"]["summary"],
        context["incident"]["ref"],
        "Dana Rivers",
    ):
        text = text.replace(value, " ")
    return re.sub(r"https?://\S+", " ", text)


@pytest.mark.parametrize(("kind", "channel", "locale"), FORMS_READ)
def test_every_message_reads_right(
    templates: Templates, kind: MessageKind, channel: ReplyChannel, locale: str
) -> None:
    for context in variations(kind, channel, locale):
        text = read(templates, kind, channel, locale, context)
        said = Counter(sentences(text))
        repeated = [sentence for sentence, times in said.items() if times > 1]
        assert not repeated, f"{kind}.{channel}.{locale} says twice: {repeated}\n{text}"
        if locale == "es":
            words = set(re.findall(r"[a-z][a-z-]*", without_data(text, context).lower()))
            english = sorted(words & ENGLISH)
            assert not english, f"English in {kind}.{channel}.es: {english}\n{text}"


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("channel", FORMS[MessageKind.APOLOGY])
def test_the_apology_admits_our_fault_whatever_the_worth_decision(
    templates: Templates, channel: ReplyChannel, locale: str
) -> None:
    for context in variations(MessageKind.APOLOGY, channel, locale):
        text = read(templates, MessageKind.APOLOGY, channel, locale, context).lower()
        if context["incident"]["fault"] == Fault.CUSTOMER:
            assert not any(a in text for a in ADMITS[locale]), text
            assert DISAPPOINTED[locale] in text
        else:  # ours, shared, or external but our promise: smoothing over included
            assert any(a in text for a in ADMITS[locale]), (context["decision"], text)
            assert DISAPPOINTED[locale] not in text


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("channel", FORMS[MessageKind.APOLOGY])
def test_the_apology_promises_only_the_step_queued(
    templates: Templates, channel: ReplyChannel, locale: str
) -> None:
    for context in variations(MessageKind.APOLOGY, channel, locale):
        text = " ".join(read(templates, MessageKind.APOLOGY, channel, locale, context).split())
        text = text.lower()
        for step, phrases in PROMISES.items():
            wording = phrases[locale]
            said = any(p in text for p in ((wording,) if isinstance(wording, str) else wording))
            assert said == (step == context["next_step"]), (step, context["next_step"], text)


@pytest.mark.parametrize("tone", ["warm", "formal"])
def test_greetings_use_the_name_the_customer_is_addressed_by(
    templates: Templates, tone: str
) -> None:
    settings = SETTINGS.model_copy(update={"tone": tone})
    for locale, given, expected in [
        ("en", None, {"warm": "Hello Rodolfo,", "formal": "Dear Rodolfo Kendhall,"}),
        ("es", None, {"warm": "Hola, Rodolfo:", "formal": "Buenos días, Rodolfo Kendhall:"}),
        ("en", "Mr Kendhall", {"warm": "Hello Mr Kendhall,", "formal": "Dear Mr Kendhall,"}),
        (
            "es",
            "don Rodolfo",
            {"warm": "Hola, don Rodolfo:", "formal": "Buenos días, don Rodolfo:"},
        ),
    ]:
        context = sample_context(settings, locale=locale)
        if given:
            context["customer"] = {**context["customer"], "addressed_as": given}
        for kind, channel in [(MessageKind.APOLOGY, ReplyChannel.EMAIL),
                              (MessageKind.THANK_YOU, ReplyChannel.LETTER)]:  # fmt: skip
            text = read(templates, kind, channel, locale, context)
            assert expected[tone] in text.splitlines(), text
