"""Templates: every message renders in every locale with what the seeds ask for, safely."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from amends.errors import TemplateError
from amends.rendering import Templates
from amends.settings import PROJECT_ROOT

TEMPLATES = PROJECT_ROOT / "templates"
LOCALES = ["en", "es"]
# kind, channel, ext: every message amends sends.
MESSAGES = [
    ("apology", "email", "html"),
    ("apology", "letter", "html"),
    ("apology", "phone", "txt"),
    ("apology", "sms", "txt"),
    ("apology", "chat", "txt"),
    ("apology", "visit", "txt"),
    ("public_reply", "social", "txt"),
    ("checkin_invitation", "email", "html"),
]
# What each locale's apology must say (seed 004: the apology, what has changed, the offer),
# each as alternatives in that language's own words.
PHRASES = {
    "en": [("sorry",), ("has changed", "changed the way"), ("free for 30 days",)],
    "es": [("lo sentimos", "lo siento", "sentimos"), ("cambiado",), ("gratis durante 30 días",)],
}


def context(**changes: Any) -> dict[str, Any]:
    data = {
        "business": {
            "name": "Acme Cleaning",
            "signature": "Dana Rivers",
            "email": "care@acme.example",
        },
        "customer": {"name": "Rodolfo K.", "handle": "@rk"},
        "incident": {
            "ref": "INC-1",
            "summary": "Cleaning crew missed four days",
            "received_at": datetime(2026, 11, 20, 8, 30, tzinfo=UTC),
            "category": "service_failure",
            "channel": "email",
        },
        "decision": "recover",
        "put_right": "",
        "what_changed": "",
        "offer": {"kind": "free_trial", "value": 300.0, "currency": "EUR", "trial_days": 30},
        "checkins": [
            datetime(2026, 11, 30, 9, tzinfo=UTC),
            datetime(2026, 12, 14, 9, tzinfo=UTC),
        ],
        "timezone": "Europe/Madrid",
        "respond_by": datetime(2026, 11, 21, 8, 30, tzinfo=UTC),
    }
    data.update(changes)
    return data


@pytest.fixture(scope="module")
def templates() -> Templates:
    return Templates(TEMPLATES, timezone="Europe/Madrid")


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize(("kind", "channel", "ext"), MESSAGES)
def test_every_message_renders_in_every_locale(
    templates: Templates, kind: str, channel: str, ext: str, locale: str
) -> None:
    rendered = templates.render(kind, channel, ext, locale, context())
    assert rendered.locale == locale
    assert "Rodolfo K." in rendered.body or "@rk" in rendered.body
    if kind == "apology":
        body = rendered.body.lower()
        for phrases in PHRASES[locale]:
            assert any(p in body for p in phrases), f"{phrases} missing: {kind}.{channel}.{locale}"
    if channel == "email":
        assert rendered.subject


@pytest.mark.parametrize("locale", LOCALES)
def test_the_public_reply_stays_short_and_private(templates: Templates, locale: str) -> None:
    long_name = context(
        customer={"name": "Maximiliana " * 10, "handle": "@" + "x" * 30},
        business={
            "name": "The Very Long Business Name Cleaning Services",
            "signature": "D",
            "email": "care@acme.example",
        },
    )
    reply = templates.render("public_reply", "social", "txt", locale, long_name).body
    assert len(reply.strip()) <= 280
    assert "Maximiliana" not in reply  # no personal data in public
    assert "300" not in reply  # no amounts in public


def test_money_and_dates_follow_the_locale(templates: Templates) -> None:
    es = templates.render("apology", "email", "html", "es", context()).body
    en = templates.render("apology", "email", "html", "en", context()).body
    assert "300,00\xa0€" in es and "20 de noviembre de 2026" in es
    assert "€300.00" in en and "November 20, 2026" in en


def test_a_missing_translation_falls_back_to_english_and_is_logged(
    templates: Templates, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        rendered = templates.render("apology", "email", "html", "fr", context())
    assert rendered.locale == "en"
    assert "No fr translation of apology.email.html" in caplog.text


def test_a_regional_locale_uses_its_language(templates: Templates) -> None:
    assert templates.render("apology", "email", "html", "es_MX", context()).locale == "es"


def test_a_missing_variable_is_an_error_not_a_blank(templates: Templates) -> None:
    incomplete = context()
    del incomplete["business"]
    with pytest.raises(TemplateError, match="'business' is undefined"):
        templates.render("apology", "email", "html", "en", incomplete)


def test_customer_text_is_escaped_in_html(templates: Templates) -> None:
    hostile = context(customer={"name": "<script>alert(1)</script>", "handle": ""})
    body = templates.render("apology", "email", "html", "en", hostile).body
    assert "<script>" not in body and "&lt;script&gt;" in body


def test_customer_text_is_never_template_syntax(templates: Templates) -> None:
    hostile = context(
        customer={"name": "{{ business.__class__ }}{% for x in range(9) %}", "handle": ""}
    )
    body = templates.render("apology", "email", "html", "en", hostile).body
    assert "{{ business.__class__ }}" in body


def test_a_subject_never_carries_a_line_break(templates: Templates) -> None:
    hostile = context(incident={**context()["incident"], "summary": "Late\r\nBcc: all@x.example"})
    subject = templates.render("apology", "email", "html", "en", hostile).subject
    assert "\r" not in subject and "\n" not in subject


def test_the_sandbox_refuses_unsafe_templates(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "evil.email.txt.j2").write_text("{{ ''.__class__.__mro__ }}")
    with pytest.raises(TemplateError, match="unsafe"):
        Templates(tmp_path, timezone="UTC").render("evil", "email", "txt", "en", {})


def test_an_unknown_template_is_named(templates: Templates) -> None:
    with pytest.raises(TemplateError, match="no template for nothing on email"):
        templates.render("nothing", "email", "html", "en", context())
