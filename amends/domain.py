"""The recovery domain: what an incident is, and the words a case is told in.

`Incident` is both what an operator files (CLI, JSON, the Prefect UI's Custom run form) and the
`recover-incident` flow's parameter, so every field carries a description and every closed set of
values is an enum (a drop-down in the UI). Validation errors name the field.
"""

from __future__ import annotations

import re
import unicodedata
import zoneinfo
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Self

import phonenumbers
from babel import Locale, UnknownLocaleError
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from amends.errors import InvalidInput


class Channel(StrEnum):
    """How the customer voiced the complaint."""

    EMAIL = "email"
    PHONE = "phone"
    VOICEMAIL = "voicemail"
    LETTER = "letter"
    FAX = "fax"
    SOCIAL = "social"
    WEB_FORM = "web_form"
    CHAT = "chat"
    SMS = "sms"
    IN_PERSON = "in_person"


class ReplyChannel(StrEnum):
    """How the business answers; chosen by mirroring the complaint's channel."""

    EMAIL = "email"
    PHONE = "phone"
    LETTER = "letter"
    SOCIAL = "social"
    CHAT = "chat"
    SMS = "sms"
    VISIT = "visit"


class Category(StrEnum):
    """What kind of let-down the incident was."""

    SERVICE_FAILURE = "service_failure"
    WRONG_ITEM = "wrong_item"
    LATE_DELIVERY = "late_delivery"
    QUALITY = "quality"
    BILLING = "billing"
    STAFF_CONDUCT = "staff_conduct"
    OTHER = "other"


class Severity(StrEnum):
    """How badly the customer was let down."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class SocialCost(StrEnum):
    """The customer's standing cost: who else saw or suffered the failure."""

    NONE = "none"
    OTHERS_AFFECTED = "others_affected"
    PUBLIC = "public"


class EmotionalCost(StrEnum):
    """The customer's anger and frustration, as the operator rates it."""

    CALM = "calm"
    UPSET = "upset"
    ANGRY = "angry"
    FURIOUS = "furious"


class SocialPlatform(StrEnum):
    """Social networks a customer may complain on."""

    TWITTER = "twitter"
    MASTODON = "mastodon"
    FACEBOOK = "facebook"
    INSTAGRAM = "instagram"
    OTHER = "other"


class Fault(StrEnum):
    """Whose fault the incident was (seed 003: "was it your fault or is the customer being
    unreasonable?")."""

    OURS = "ours"
    SHARED = "shared"  # partly ours, partly the customer's
    CUSTOMER = "customer"  # the customer is being unreasonable
    EXTERNAL = "external"  # out of our control; still our promise to keep (seed 001)


class Decision(StrEnum):
    """What the business does about the customer."""

    RECOVER = "recover"
    SMOOTH_OVER = "smooth_over"
    DO_NOT_PURSUE = "do_not_pursue"
    LOST = "lost"


class Stage(StrEnum):
    """The recovery stages, in the order a case goes through them."""

    ASSESS = "assess"
    EMPOWER = "empower"
    MONITOR = "monitor"
    REPORT = "report"
    FOLLOW_UP = "follow_up"
    REENGAGE = "reengage"


STAGES: tuple[Stage, ...] = tuple(Stage)


class StageStatus(StrEnum):
    COMPLETED = "completed"
    SKIPPED = "skipped"
    PENDING = "pending"


class CaseState(StrEnum):
    OPEN = "open"
    AWAITING_STAFF = "awaiting_staff"
    CLOSED = "closed"


class ApprovalStatus(StrEnum):
    """A manager's answer to an offer above the frontline limit, or its absence."""

    PENDING = "pending"
    TIMED_OUT = "timed_out"  # the run went on with the frontline offer; an answer still counts
    APPROVED = "approved"
    ADJUSTED = "adjusted"
    DECLINED = "declined"


class CheckinStatus(StrEnum):
    """Where a check-in is: scheduled (and perhaps moved after a miss), held, or cancelled."""

    SCHEDULED = "scheduled"
    HELD = "held"
    CANCELLED = "cancelled"


class MessageStatus(StrEnum):
    """Where an outbound message is: the outbox's states."""

    QUEUED = "queued"  # waiting for its channel's sender
    SENDING = "sending"  # claimed by a sender; not confirmed yet
    SENT = "sent"
    FAILED = "failed"  # permanently: the reason is on the message
    AWAITING_STAFF = "awaiting_staff"  # a person delivers it: a call, a letter, a visit
    HANDLED = "handled_by_staff"  # it failed, and a person reached the customer another way
    SUPPRESSED = "suppressed"  # not sent: the customer or the address may not be written to


class MessageKind(StrEnum):
    """What a message is for; each kind has a template per channel and locale."""

    APOLOGY = "apology"  # what went wrong, how it is put right, what changed, the offer
    PUBLIC_REPLY = "public_reply"  # short, public, no personal data: invites a private talk
    PROGRESS_UPDATE = "progress_update"  # what was done, what comes next, when they hear again
    OFFER = "offer"  # the terms, and how to accept in one step
    CHECKIN_INVITATION = "checkin_invitation"
    CHECKIN_REMINDER = "checkin_reminder"
    CHECKIN_MOVED = "checkin_moved"  # after a miss: the new time, as an iCalendar update
    CHECKIN_CANCELLED = "checkin_cancelled"  # the case closed: an iCalendar CANCEL
    EXIT_QUESTIONS = "exit_questions"  # for a customer who left: why, and what would help
    THANK_YOU = "thank_you"  # after the case is resolved
    WINBACK_OFFER = "winback_offer"  # the nightly run's offer to a lapsed customer


# Re-engagement rather than service: an opt-out from marketing silences these, and their
# email carries List-Unsubscribe.
MARKETING_KINDS = frozenset({MessageKind.WINBACK_OFFER, MessageKind.EXIT_QUESTIONS})


class OfferKind(StrEnum):
    """Ways to make a second chance easy (seeds 000 and 004)."""

    DISCOUNT = "discount"
    SERVICE_CREDIT = "service_credit"
    REFUND = "refund"
    FREE_TRIAL = "free_trial"
    GUARANTEE_CONTRACT = "guarantee_contract"
    FREE_TRIAL_AND_GUARANTEE = "free_trial_and_guarantee"
    SMALL_GIFT = "small_gift"
    REDO = "redo"  # the service done again, free
    FREE_VISIT = "free_visit"  # a visit (a meal, a call-out) on the house


# --- field types -------------------------------------------------------------------------------

# C0 and C1 controls, and Unicode's own line and paragraph separators (U+0085 is NEL).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_NEWLINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Embeddings, overrides and isolates reorder what a reader sees ("Trojan Source").
_BIDI_CONTROL = re.compile(r"[\u202a-\u202e\u2066-\u2069]")


def _visible(value: str) -> bool:
    """True if ``value`` shows anything: not only spaces and invisible format characters."""
    return any(not ch.isspace() and unicodedata.category(ch) != "Cf" for ch in value)


def single_line(value: str) -> str:
    """``value``, refused if it holds a line break, another control character, a bidirectional
    override, or nothing visible (but may be empty)."""
    # Names and subjects end up in mail headers: CR/LF would let a customer inject headers, and
    # a text part shows U+2028 as a line break too.
    if _CONTROL.search(value):
        raise ValueError("must be a single line without control characters")
    if _BIDI_CONTROL.search(value):
        raise ValueError("must not contain right-to-left or left-to-right overrides")
    if value and not _visible(value):
        raise ValueError("must contain a visible character")
    return value


def staff_line(value: str, field: str, limit: int) -> str:
    """A one-line entry from staff (a name, a reason), stripped.

    Raises:
        InvalidInput: it is longer than ``limit`` or not a single line; the message names it.
    """
    value = value.strip()
    if len(value) > limit:
        raise InvalidInput(f"{field} is longer than {limit} characters")
    try:
        return single_line(value)
    except ValueError as error:
        raise InvalidInput(f"{field} {error}") from None


def _text(value: str) -> str:
    if _CONTROL_BUT_NEWLINES.search(value):
        raise ValueError("must not contain control characters")
    if _BIDI_CONTROL.search(value):
        raise ValueError("must not contain right-to-left or left-to-right overrides")
    return value


def email_address(value: str) -> str:
    """An email address, normalised (its domain lower-cased)."""
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise ValueError(f"is not a valid email address ({error})") from None


def phone_number(value: str) -> str:
    """A phone number in international form, as E.164."""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError(
            "is not a phone number in international form (start with + and the country code)"
        ) from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError("is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _locale(value: str) -> str:
    try:
        return str(Locale.parse(value.replace("-", "_")))
    except (ValueError, UnknownLocaleError):
        raise ValueError(f"is not a known locale: {value!r}") from None


@cache
def _zone_names() -> frozenset[str]:
    # "localtime" is a file on some machines (the machine's own zone), not a zone's name: a
    # customer's time zone must mean the same wherever amends runs.
    return frozenset(zoneinfo.available_timezones() - {"localtime", "posixrules", "Factory"})


def _timezone(value: str) -> str:
    if value not in _zone_names():
        raise ValueError(f"is not a known time zone: {value!r}")
    return value


_US_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|"
    "NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR"
)
# A state's abbreviation and a number ending a line: a US ZIP code has 5 digits, or 5 and 4.
_STATE_AND_ZIP = re.compile(rf"\b(?:{_US_STATES})\s+(\d+(?:-\d+)?)$")
_US = re.compile(r"^(?:usa|us|u\.s\.a?\.?|united states(?: of america)?)$", re.IGNORECASE)
# What an export or a form leaves when it hides part of a code: 334XX, 28***, ?
_MASKED = re.compile(r"[*?]|\b(?=\w*\d)\w*[Xx]{2,}\w*\b")


def _postal_address(value: str) -> str:
    """An address a postman can use: a street and a town, no masked code, and a whole US ZIP."""
    value = _text(value)
    parts = [part.strip() for part in re.split(r"[\n,]", value) if part.strip()]
    if len(parts) < 2:
        raise ValueError(
            "must give the street and the town, on separate lines or separated by commas"
        )
    if masked := _MASKED.search(value):
        raise ValueError(f"has a masked or partial postal code ({masked.group()!r})")
    for at, part in enumerate(parts):
        zip_code = _STATE_AND_ZIP.search(part)
        in_the_us = all(_US.match(rest) for rest in parts[at + 1 :])
        if zip_code and in_the_us and not re.fullmatch(r"\d{5}(?:-\d{4})?", zip_code[1]):
            raise ValueError(
                f"has a US ZIP code {zip_code[1]!r}, which should have 5 digits (or 5 and 4); "
                "outside the US, end the address with the country"
            )
    return value


Ref = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"),
]


def line(min_length: int = 0, max_length: int = 200) -> Any:
    """A single line of text: names and subjects, which may end up in mail headers."""
    return Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length),
        AfterValidator(single_line),
    ]


def text(max_length: int) -> Any:
    """Free text: newlines allowed, other control characters not."""
    return Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=max_length), AfterValidator(_text)
    ]


Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(email_address)]
Phone = Annotated[str, StringConstraints(max_length=40), AfterValidator(phone_number)]
LocaleTag = Annotated[str, StringConstraints(max_length=35), AfterValidator(_locale)]
TimeZone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_timezone)]


class _Model(BaseModel):
    # Unknown keys are typos more often than not: reject them rather than drop them silently.
    # Numbers are finite, and strict: `true` is not 1 and "yes" is not true (an import reads
    # its text cells laxly: see amends.storage.imports).
    model_config = ConfigDict(
        extra="forbid", frozen=True, str_max_length=10_000, allow_inf_nan=False
    )


class SocialAccount(_Model):
    """The customer's account on a social network."""

    platform: SocialPlatform = Field(description="The social network.")
    handle: line(2, 100) = Field(description="The customer's handle there, such as @rk.")


class Customer(_Model):
    """The customer who was let down, and how to reach them."""

    ref: Ref = Field(description="The business's own reference for the customer, such as C-42.")
    name: line(1, 120) = Field(description="The customer's full name.")
    addressed_as: line(1, 120) | None = Field(
        default=None,
        description="The name a greeting uses, such as Arthur or Mr Penhaligon; by default the "
        "first name (warm tone) or the full name (formal), by language.",
    )
    email: Email | None = Field(default=None, description="Email address.")
    phone: Phone | None = Field(
        default=None, description="Phone number with country code, such as +1 202 555 0143."
    )
    postal_address: (
        Annotated[str, StringConstraints(max_length=500), AfterValidator(_postal_address)] | None
    ) = Field(
        default=None,
        description="Postal address, for letters: the street and the town, on separate lines "
        "or separated by commas, with the postal code.",
    )
    social: SocialAccount | None = Field(default=None, description="Social network account.")
    locale: LocaleTag = Field(
        default="en", description="The customer's language, such as en or es."
    )
    timezone: TimeZone | None = Field(
        default=None, description="The customer's IANA time zone; the business's when empty."
    )
    annual_value: float = Field(
        default=0.0,
        strict=True,
        ge=0,
        le=1e9,
        description="What the customer spends with the business a year.",
    )
    tenure_years: float = Field(
        default=0.0,
        strict=True,
        ge=0,
        le=200,
        description="Years as a customer.",
    )
    referrals: int = Field(
        default=0,
        strict=True,
        ge=0,
        le=100_000,
        description="Customers this customer has sent the business.",
    )
    identified: bool = Field(
        default=True,
        description="False for someone the business knows only by a public post's handle: "
        "they get a public reply and an invitation to talk, never money, until identified.",
    )


class Costs(_Model):
    """The four costs the failure put on the customer (seed 000)."""

    economic: float = Field(
        default=0.0,
        strict=True,
        ge=0,
        le=1e9,
        description="Money the customer lost or had to spend.",
    )
    time_hours: float = Field(
        default=0.0,
        strict=True,
        ge=0,
        le=10_000,
        description="Hours the customer spent dealing with it.",
    )
    social: SocialCost = Field(
        default=SocialCost.NONE, description="Who else saw or suffered the failure."
    )
    emotional: EmotionalCost = Field(
        default=EmotionalCost.UPSET, description="The customer's anger and frustration."
    )


class GivenKind(StrEnum):
    """What the business already gave to put the failure right."""

    REFUND = "refund"
    REDO = "redo"
    REPLACEMENT = "replacement"
    CREDIT = "credit"
    OTHER = "other"


class Given(_Model):
    """What putting it right already gave the customer: compensation nets it out, so that a
    refunded order is never paid for twice."""

    kind: GivenKind = Field(description="Refund, redo, replacement, credit or other.")
    value: float = Field(
        ge=0, le=1e9, description="What it was worth to the customer, in the business's currency."
    )


# Which contact detail reaches a customer on each complaint channel; a complaint on a channel
# the customer cannot be reached on is refused at intake rather than answered elsewhere.
CONTACT_FOR_CHANNEL: dict[Channel, tuple[str, ...]] = {
    Channel.EMAIL: ("email",),
    Channel.PHONE: ("phone",),
    Channel.VOICEMAIL: ("phone",),
    Channel.SMS: ("phone",),
    Channel.LETTER: ("postal_address",),
    Channel.FAX: ("postal_address",),
    Channel.SOCIAL: ("social",),
    Channel.WEB_FORM: ("email",),
    Channel.CHAT: ("email",),
    Channel.IN_PERSON: ("phone", "postal_address", "email"),
}

# Where a reply on each channel is addressed.
CONTACT_FOR_REPLY: dict[ReplyChannel, tuple[str, ...]] = {
    ReplyChannel.EMAIL: ("email",),
    ReplyChannel.PHONE: ("phone",),
    ReplyChannel.SMS: ("phone",),
    ReplyChannel.LETTER: ("postal_address",),
    ReplyChannel.SOCIAL: ("social",),
    ReplyChannel.CHAT: ("email",),
    ReplyChannel.VISIT: ("postal_address", "phone", "email"),
}


def address_for(customer: Customer, channel: ReplyChannel) -> str | None:
    """Where a reply on ``channel`` reaches the customer, or None when it cannot."""
    for field in CONTACT_FOR_REPLY[channel]:
        value = getattr(customer, field)
        if isinstance(value, SocialAccount):
            return f"{value.platform.value}:{value.handle}"
        if value:
            return value
    return None


def spoken(value: StrEnum | str | None) -> str:
    """An enum value as words for people: ``follow_up`` -> ``follow up``."""
    if value is None:
        return "-"
    return (value.value if isinstance(value, StrEnum) else value).replace("_", " ")


EARLIEST_RECEIVED = datetime(1970, 1, 1, tzinfo=UTC)


def _plausible(value: datetime) -> datetime:
    # Before 1970 is a typo or a placeholder (0001-01-01), and far enough out to break date
    # sums later (year 1 with an offset does not even fit in UTC); an hour's grace for clocks
    # that disagree.
    if value < EARLIEST_RECEIVED:
        raise ValueError(f"is before {EARLIEST_RECEIVED.year}, too early to be real")
    if value > datetime.now(UTC) + timedelta(hours=1):
        raise ValueError("is in the future")
    return value


#: A time with its UTC offset, after 1970 and not in the future: a complaint's, a post's.
PlausibleTime = Annotated[AwareDatetime, AfterValidator(_plausible)]


def _in_business_time(value: datetime, info: ValidationInfo) -> datetime:
    # A time typed without its offset is the business's wall-clock time (the zone validation is
    # given as context, as intake does); without that context an offset is required.
    if value.tzinfo is None:
        zone = (info.context or {}).get("timezone")
        if zone is None:
            raise ValueError("needs its UTC offset, such as 2026-03-01T09:15:00+01:00")
        value = value.replace(tzinfo=zoneinfo.ZoneInfo(zone))
    return _plausible(value)


#: When a complaint arrived: with its offset, or without one in the business's time zone. A
#: plain text field in the Prefect UI's form: its date picker with a time zone chosen stores
#: another instant than the one shown (09:15 Europe/Madrid came in as 11:15+01:00).
ReceivedAt = Annotated[
    datetime,
    AfterValidator(_in_business_time),
    WithJsonSchema(
        {
            "type": "string",
            "title": "Received At",
            "description": "When the complaint arrived, such as 2026-03-01 09:15 (the business's "
            "time zone) or 2026-03-01T09:15+01:00; now when empty.",
        }
    ),
]


def _now() -> datetime:
    return datetime.now(UTC)


def contact_rules_schema() -> list[dict[str, Any]]:
    """:data:`CONTACT_FOR_CHANNEL` as JSON Schema if/then rules, so a Prefect server refuses a
    form without the contact detail its channel needs before any run exists."""
    rules = []
    for channel, fields in CONTACT_FOR_CHANNEL.items():
        given = [
            {"required": [field], "properties": {field: {"not": {"type": "null"}}}}
            for field in fields
        ]
        rules.append(
            {
                "if": {
                    "properties": {"channel": {"const": channel.value}},
                    "required": ["channel"],
                },
                "then": {
                    "required": ["customer"],
                    "properties": {"customer": given[0] if len(given) == 1 else {"anyOf": given}},
                },
            }
        )
    return rules


class Incident(_Model):
    """A customer let down by the business: what happened and what it cost them.

    File one per incident; amends opens a case for it and runs the recovery stages.
    """

    model_config = ConfigDict(
        json_schema_extra=lambda schema: schema.update(allOf=contact_rules_schema())
    )

    ref: Ref = Field(description="A unique reference for the incident, such as INC-1001.")
    channel: Channel = Field(description="How the customer voiced the complaint.")
    received_at: ReceivedAt = Field(
        default_factory=_now,
        description="When the complaint arrived; without a UTC offset, the business's time; now "
        "when not given.",
    )
    summary: line(3, 200) = Field(description="One line: what went wrong.")
    details: text(10_000) = Field(default="", description="The complaint in full, or staff notes.")
    category: Category = Field(description="What kind of let-down it was.")
    severity: Severity = Field(description="How badly the customer was let down.")
    fault: Fault = Field(
        description="Whose fault it was: ours, shared, the customer's (being unreasonable), or "
        "external (a supplier, the weather; the customer still holds us to our promise)."
    )
    abusive: bool = Field(
        default=False,
        strict=True,
        description="The customer was abusive to staff: no incentive, a manager takes over.",
    )
    costs: Costs = Field(default_factory=Costs, description="The four costs the customer bore.")
    customer: Customer = Field(description="The customer, and how to reach them.")
    put_right: text(1_000) = Field(
        default="", description="How the business will put it right; the apology says so."
    )
    what_changed: text(1_000) = Field(
        default="", description="What has changed so it will not happen again."
    )
    given: Given | None = Field(
        default=None, description="What was already refunded, redone or replaced, and its value."
    )
    one_off: bool = Field(
        default=False,
        strict=True,
        description="A one-off service (a wedding's catering): no guarantee or trial to offer.",
    )
    complaint_message_id: (
        # Printable ASCII only: it goes back out in In-Reply-To and References.
        Annotated[str, StringConstraints(pattern=r"^<[\x21-\x3b\x3d\x3f-\x7e]{3,250}>$")] | None
    ) = Field(
        default=None, description="Message-ID of the complaint email, to reply in its thread."
    )
    complaint_subject: line(0, 200) | None = Field(
        default=None, description="Subject of the complaint email."
    )

    @model_validator(mode="after")
    def _reachable_on_complaint_channel(self, info: ValidationInfo) -> Self:
        # A past complaint imported as history is never answered: it needs no contact detail.
        if info.context and info.context.get("history"):
            return self
        needed = CONTACT_FOR_CHANNEL[self.channel]
        if not any(getattr(self.customer, field) for field in needed):
            either = " or ".join(f"customer.{field}" for field in needed)
            raise ValueError(
                f"a complaint by {self.channel.value} needs {either} to answer on the same channel"
            )
        return self


def business_time(moment: datetime, zone: str) -> str:
    """A moment as the business reads it, in its time zone: ``2026-12-01 10:00 CET``."""
    if moment.tzinfo is None:  # stored naive: UTC
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(zoneinfo.ZoneInfo(zone))
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"
