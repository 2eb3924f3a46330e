"""The business profile, set once with ``amends init``: who signs, who sends, when the business
is open, and the remedies it really offers.

It lives in ``AMENDS_HOME/business.yaml``. Without one, amends runs as the sample business of
the demo (:data:`EXAMPLE_FILE`), and refuses to send through any mail server but a local
catcher with that identity: customers must never hear from "Dana Rivers of Acme Cleaning".
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from amends.domain import Category, Email, OfferKind, Severity, TimeZone, line
from amends.errors import ConfigurationError
from amends.recovery.policy import load_yaml

EXAMPLE_FILE = Path(__file__).parent / "samples" / "business.yaml"

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Annotated[str, Field(pattern=r"^(mon|tue|wed|thu|fri|sat|sun)$")]

# Remedies that bind the business to a relationship: they have nothing to attach to after a
# one-off service (a wedding's catering), so they never fit one.
ONGOING_ONLY = frozenset(
    {OfferKind.GUARANTEE_CONTRACT, OfferKind.FREE_TRIAL_AND_GUARANTEE, OfferKind.FREE_TRIAL}
)
TRIAL_KINDS = frozenset({OfferKind.FREE_TRIAL, OfferKind.FREE_TRIAL_AND_GUARANTEE})


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Signature(_Part):
    """Who signs, in one language: "Marta Gil" and "responsable de atención al cliente"."""

    name: line(1, 80)
    title: line(0, 80) = ""

    def __str__(self) -> str:
        return f"{self.name}, {self.title}" if self.title else self.name


class Remedy(_Part):
    """One remedy the business offers, and the cases it fits (empty lists: every one)."""

    kind: OfferKind
    categories: list[Category] = Field(default_factory=list)
    severities: list[Severity] = Field(default_factory=list)
    max_value: float | None = Field(default=None, ge=0, description="Never more than this.")
    # A trial's length; the policy's empower.trial_days when empty.
    trial_days: int | None = Field(default=None, ge=1, le=365)

    def fits(self, category: Category, severity: Severity, *, one_off: bool) -> bool:
        return (
            (not self.categories or category in self.categories)
            and (not self.severities or severity in self.severities)
            and not (one_off and self.kind in ONGOING_ONLY)
        )


class Business(_Part):
    """A business's profile."""

    name: line(1, 120)
    # Per language; "en" is the fallback for a customer whose language has none.
    signatures: dict[str, Signature]
    sender_email: Email
    sender_name: line(1, 120)
    phone: line(0, 40) = ""
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    timezone: TimeZone
    opening_days: list[Weekday] = Field(min_length=1, max_length=7)
    holidays: list[date] = Field(default_factory=list, max_length=400)
    remedies: list[Remedy] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _english_signature(self) -> Business:
        if "en" not in self.signatures:
            raise ValueError("signatures needs an 'en' entry, for customers of other languages")
        return self

    @property
    def is_example(self) -> bool:
        """The demo's sample identity, which must never reach a real customer."""
        example = example_business()
        return self.sender_email == example.sender_email or self.name == example.name

    def signature(self, locale: str) -> Signature:
        """The signature for a customer's locale (``es_MX`` -> ``es``), else the English one."""
        return self.signatures.get(locale.split("_")[0], self.signatures["en"])

    def remedies_for(
        self, category: Category, severity: Severity, *, one_off: bool = False
    ) -> list[Remedy]:
        """The catalogue's remedies that fit the case, in the catalogue's order (its preference)."""
        return [r for r in self.remedies if r.fits(category, severity, one_off=one_off)]

    def is_open(self, day: date) -> bool:
        return WEEKDAYS[day.weekday()] in self.opening_days and day not in self.holidays

    def next_open_day(self, day: date) -> date:
        """``day`` if the business is open then, else the first open day after it."""
        for _ in range(400):
            if self.is_open(day):
                return day
            day += timedelta(days=1)
        raise ConfigurationError(f"{self.name} is closed every day of the year after {day}")


_C, _S = Category, Severity
# Where each remedy fits when `amends init` adds it; edit business.yaml to change it.
DEFAULT_FIT: dict[OfferKind, dict] = {
    OfferKind.SMALL_GIFT: {"severities": [_S.LOW, _S.MEDIUM], "max_value": 50},
    OfferKind.REDO: {
        "categories": [_C.SERVICE_FAILURE, _C.QUALITY, _C.WRONG_ITEM, _C.LATE_DELIVERY],
        "severities": [_S.LOW, _S.MEDIUM, _S.HIGH],
    },
    OfferKind.REFUND: {},
    OfferKind.SERVICE_CREDIT: {"severities": [_S.MEDIUM, _S.HIGH, _S.CRITICAL]},
    OfferKind.FREE_VISIT: {"severities": [_S.MEDIUM, _S.HIGH, _S.CRITICAL]},
    OfferKind.DISCOUNT: {},
    OfferKind.FREE_TRIAL: {
        "categories": [_C.SERVICE_FAILURE, _C.QUALITY, _C.LATE_DELIVERY],
        "severities": [_S.HIGH, _S.CRITICAL],
    },
    OfferKind.GUARANTEE_CONTRACT: {
        "categories": [_C.SERVICE_FAILURE, _C.QUALITY],
        "severities": [_S.HIGH, _S.CRITICAL],
    },
    OfferKind.FREE_TRIAL_AND_GUARANTEE: {
        "categories": [_C.SERVICE_FAILURE, _C.QUALITY],
        "severities": [_S.CRITICAL],
    },
}


def default_remedy(kind: OfferKind) -> Remedy:
    """A remedy with the fit `amends init` gives it."""
    return Remedy(kind=kind, **DEFAULT_FIT[kind])


def load_business(path: Path) -> Business:
    """Read a business profile.

    Raises:
        ConfigurationError: the file cannot be read or a field is wrong; the message names it.
    """
    try:
        return _load(path.resolve(), path.stat().st_mtime_ns)
    except OSError as error:
        raise ConfigurationError(f"cannot read business profile {path}: {error.strerror}") from None


@lru_cache(maxsize=16)
def _load(path: Path, _mtime: int) -> Business:
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigurationError(f"{path} is not a YAML business profile: {error}") from None
    try:
        return Business.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'profile'}: {problem['msg']}"
            for problem in error.errors()
        )
        raise ConfigurationError(f"{path}: {problems}") from None


def example_business() -> Business:
    """The demo's sample business."""
    return load_business(EXAMPLE_FILE)


def dump_business(business: Business) -> str:
    """A profile as the YAML ``amends init`` writes."""
    return yaml.safe_dump(
        business.model_dump(mode="json", exclude_defaults=False),
        sort_keys=False,
        allow_unicode=True,
    )
