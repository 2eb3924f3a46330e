"""``amends init``: the business profile, set once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from amends.cli._app import app, fail, friendly, out

PANEL = "Try it"

# The questions, in order: (option name, question, default). A default may name other answers.
QUESTIONS = (
    ("name", "Business name", None),
    ("signer", "Who signs the messages (a person's name)", None),
    ("title_en", "Their title, in English", "customer care manager"),
    ("title_es", "Their title, in Spanish", "responsable de atención al cliente"),
    ("sender_email", "Address the mail is sent from", None),
    ("sender_name", "Name the mail is sent from", "{name}"),
    ("phone", "Phone number printed in letters (empty for none)", ""),
    ("currency", "Currency (ISO code)", "EUR"),
    ("timezone", "Time zone", "Europe/Madrid"),
    ("opening_days", "Opening days", "mon,tue,wed,thu,fri"),
    ("holidays", "Holidays, as YYYY-MM-DD (empty for none)", ""),
    ("remedies", "Remedies you offer", "refund,redo,service_credit,discount,small_gift"),
)


def _listed(value: str) -> list[str]:
    return [part.strip().lower() for part in value.split(",") if part.strip()]


@app.command(rich_help_panel=PANEL)
@friendly
def init(
    name: Annotated[str | None, typer.Option(help="The business's name.")] = None,
    signer: Annotated[str | None, typer.Option(help="Who signs the messages.")] = None,
    title_en: Annotated[str | None, typer.Option(help="The signer's title in English.")] = None,
    title_es: Annotated[str | None, typer.Option(help="The signer's title in Spanish.")] = None,
    sender_email: Annotated[str | None, typer.Option(help="Address mail is sent from.")] = None,
    sender_name: Annotated[str | None, typer.Option(help="Name mail is sent from.")] = None,
    phone: Annotated[str | None, typer.Option(help="Printed in letters.")] = None,
    currency: Annotated[str | None, typer.Option(help="ISO currency code: EUR, GBP, USD.")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA time zone: Europe/Madrid.")] = None,
    opening_days: Annotated[
        str | None, typer.Option(help="Comma-separated: mon,tue,wed,thu,fri.")
    ] = None,
    holidays: Annotated[
        str | None, typer.Option(help="Comma-separated dates: 2026-12-25,2027-01-01.")
    ] = None,
    remedies: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated, in order of preference: refund, redo, service_credit, "
            "discount, free_visit, small_gift, guarantee_contract, free_trial, "
            "free_trial_and_guarantee. Where each fits is written to the file, to edit."
        ),
    ] = None,
    home: Annotated[
        Path | None, typer.Option(help="Data folder (default: AMENDS_HOME, else ./var).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing profile.")] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Ask nothing: the defaults for what is not given.")
    ] = False,
) -> None:
    """Set up your business once: who signs, who sends, when you are open, what you offer.

    Asks each question with a default (Enter keeps it); every answer is also an option, for
    scripts. Writes AMENDS_HOME/business.yaml, which every message and decision then uses.
    """
    from pydantic import ValidationError

    from amends.business import Business, Signature, default_remedy, dump_business
    from amends.domain import OfferKind
    from amends.settings import Settings

    settings = Settings() if home is None else Settings(home=home)
    path = settings.business_file or settings.home / "business.yaml"
    if path.exists() and not force:
        raise fail(f"{path} exists; change it in place, or run again with --force to replace it")
    given = {
        "name": name, "signer": signer, "title_en": title_en, "title_es": title_es,
        "sender_email": sender_email, "sender_name": sender_name, "phone": phone,
        "currency": currency, "timezone": timezone, "opening_days": opening_days,
        "holidays": holidays, "remedies": remedies,
    }  # fmt: skip
    answers: dict[str, str] = {}
    for key, question, default in QUESTIONS:
        value = given[key]
        if value is None:
            fallback = default.format(**answers) if default is not None else None
            if yes and fallback is None:
                raise fail(f"--{key.replace('_', '-')} is needed: it has no default")
            value = fallback if yes else typer.prompt(question, default=fallback)
        answers[key] = value.strip()
    unknown = [k for k in _listed(answers["remedies"]) if k not in set(OfferKind)]
    if unknown:
        kinds = ", ".join(k.value for k in OfferKind)
        raise fail(f"no remedy {', '.join(unknown)}; the remedies: {kinds}")
    try:
        business = Business(
            name=answers["name"],
            signatures={
                "en": Signature(name=answers["signer"], title=answers["title_en"]),
                "es": Signature(name=answers["signer"], title=answers["title_es"]),
            },
            sender_email=answers["sender_email"],
            sender_name=answers["sender_name"],
            phone=answers["phone"],
            currency=answers["currency"].upper(),
            timezone=answers["timezone"],
            opening_days=_listed(answers["opening_days"]),
            holidays=_listed(answers["holidays"]),
            remedies=[default_remedy(OfferKind(k)) for k in _listed(answers["remedies"])],
        )
    except ValidationError as error:
        raise fail(
            "; ".join(
                f"{'.'.join(str(p) for p in problem['loc']) or 'profile'}: {problem['msg']}"
                for problem in error.errors()
            )
        ) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.tmp")
    draft.write_text(dump_business(business), encoding="utf-8")
    draft.replace(path)  # whole or not at all
    out.print(
        f"Wrote {path}: {business.name}, signed {business.signature('en')}. Edit it to say "
        "where each remedy fits (categories, severities, max_value).",
        highlight=False,
    )
