"""Privacy: what amends shows of a customer, gives back to them, and erases on request.

- :func:`mask` hides email addresses and phone numbers in text bound for places many people
  read (Prefect's logs and artifacts: the UI is often shared); :func:`redact` also hides one
  customer's name, handle and postal address (:func:`personal_details`), with the helpers
  :func:`mask_name`, :func:`mask_handle`, :func:`mask_address`, :func:`mask_email` and
  :func:`mask_phone`.
- :func:`export` gives a customer everything amends holds about them, as JSON-ready data.
- :func:`forget` erases a customer's personal data from every table and every file amends
  wrote for them, and keeps the anonymous figures the reports need (severity, category, costs,
  decisions, offers, dates, statuses). Their suppressions stay: an opt-out must outlive them.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import String, cast, inspect, select, update

from amends import exit_questions
from amends.delivery.consent import add_suppression
from amends.domain import Stage
from amends.errors import NotFound
from amends.listening.mentions import same_handle
from amends.storage import models
from amends.storage.db import Database

ERASED = "(erased)"
FORGOTTEN_NAME = "Forgotten customer"

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+\.)+[A-Za-z]{2,}")
# International numbers (E.164 and as people write them): + and 7 to 15 digits.
_PHONE = re.compile(r"\+\d(?:[ .-]?\d){6,14}")


def mask_email(value: str) -> str:
    """``rk@example.com`` -> ``r***@***``."""
    return f"{value[:1]}***@***"


def mask_phone(value: str) -> str:
    """``+34 612 345 678`` -> ``+34***678``."""
    return f"{value[:3]}***{value[-3:]}"


def mask_name(value: str) -> str:
    """``Rodolfo K.`` -> ``R*** K***``: initials, enough to tell two cases apart."""
    return " ".join(f"{word[:1]}***" for word in value.split()) or "***"


def mask_handle(value: str) -> str:
    """``@rodolfo_k`` -> ``@r***``."""
    at = "@" if value.startswith("@") else ""
    return f"{at}{value.removeprefix('@')[:1]}***"


def mask_address(value: str) -> str:
    """``Calle Mayor 12, 28013 Madrid`` -> ``***, 28013 Madrid``: the town (and country) only."""
    parts = [part.strip() for part in re.split(r"[\n,]", value) if part.strip()]
    return ", ".join(["***", *parts[1:]]) if len(parts) > 1 else "***"


def mask(text: str) -> str:
    """Every email address and phone number in ``text``, masked."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@***", text)
    return _PHONE.sub(lambda m: mask_phone(m.group()), text)


def personal_details(
    name: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    postal_address: str | None = None,
    handle: str | None = None,
) -> list[tuple[str, str]]:
    """One customer's details, each with what shows in its place, longest first."""
    pairs = []
    if name:
        pairs.append((name, mask_name(name)))
    if email:
        pairs.append((email, mask_email(email)))
    if phone:
        pairs.append((phone, mask_phone(phone)))
    if handle:
        pairs += [(handle, mask_handle(handle)), (handle.removeprefix("@"), mask_handle(handle))]
    if postal_address:
        parts = [part.strip() for part in re.split(r"[\n,]", postal_address) if part.strip()]
        # Every line but the town's, as it may show on its own.
        pairs += [(part, "***") for part in parts[:-1]]
    return sorted({p for p in pairs if len(p[0]) > 1}, key=lambda pair: -len(pair[0]))


def redact(text: str, details: list[tuple[str, str]]) -> str:
    """``text`` with the customer's details (:func:`personal_details`) masked, in any case and
    also where markdown escaped them (``Rodolfo K\\.``), and every email and phone number."""
    for value, masked in details:
        # A backslash may precede any character (markdown escaping); spaces may be any run
        # of white space (a line break made one).
        pattern = "".join(r"\s+" if ch.isspace() else r"\\?" + re.escape(ch) for ch in value)
        # Whole words only: a handle "rk" is not the end of "work".
        pattern = rf"(?<!\w){pattern}(?!\w)"
        text = re.sub(pattern, lambda _m, masked=masked: masked, text, flags=re.IGNORECASE)
    return mask(text)


def case_details(db: Database, case_id: int) -> list[tuple[str, str]]:
    """:func:`personal_details` of the customer of a case."""
    with db.session() as session:
        customer = session.scalar(
            select(models.Customer)
            .join(models.Case, models.Case.customer_id == models.Customer.id)
            .where(models.Case.id == case_id)
        )
        if customer is None:
            return []
        return personal_details(
            customer.name,
            customer.email,
            customer.phone,
            customer.postal_address,
            customer.social_handle,
        )


def _row(row: Any) -> dict[str, Any]:
    """A table row as plain data."""
    values = {}
    for column in inspect(row).mapper.column_attrs:
        value = getattr(row, column.key)
        if isinstance(value, datetime | date):
            value = value.isoformat()
        values[column.key] = getattr(value, "value", value)
    return values


def _customer(session: Any, ref: str) -> models.Customer:
    customer = session.scalar(select(models.Customer).where(models.Customer.ref == ref))
    if customer is None:
        raise NotFound(f"no customer {ref!r}")
    return customer


def export(db: Database, ref: str) -> dict[str, Any]:
    """Everything amends holds about one customer (their right of access).

    Raises:
        NotFound: no customer with that reference.
    """
    with db.session() as session:
        customer = _customer(session, ref)
        cases = list(
            session.scalars(select(models.Case).where(models.Case.customer_id == customer.id))
        )
        case_ids = [case.id for case in cases]

        def of_cases(model: Any) -> list[dict[str, Any]]:
            rows = session.scalars(
                select(model).where(model.case_id.in_(case_ids)).order_by(model.id)
            )
            return [_row(row) for row in rows]

        return {
            "customer": _row(customer),
            "incidents": [_row(case.incident) for case in sorted(cases, key=lambda case: case.id)],
            "cases": [_row(case) for case in cases],
            "messages": [
                _row(m)
                for m in session.scalars(
                    select(models.Message)
                    .where(models.Message.customer_id == customer.id)
                    .order_by(models.Message.id)
                )
            ],
            "offers": of_cases(models.Offer),
            "checkins": of_cases(models.CheckIn),
            "timeline": of_cases(models.CaseEvent),
            "exit_answers": [
                _row(answers)
                for answers in session.scalars(
                    select(models.ExitAnswers).where(models.ExitAnswers.customer_id == customer.id)
                )
            ],
            "public_posts": [
                _row(post)
                for post in session.scalars(select(models.Mention).where(_their_posts(customer)))
            ],
        }


def _their_posts(customer: models.Customer) -> Any:
    """Their public posts: linked to one of their cases, or under their handle (in any case,
    as the monitor stage matches it)."""
    cases = select(models.Case.id).where(models.Case.customer_id == customer.id)
    linked = models.Mention.case_id.in_(cases) | (models.Mention.customer_id == customer.id)
    if not customer.social_handle:
        return linked
    return linked | (
        (models.Mention.platform == customer.social_platform)
        & same_handle(models.Mention.handle, customer.social_handle)
    )


def forget(db: Database, ref: str, mail_dir: Path | None = None) -> int:
    """Erase one customer's personal data everywhere (their right to erasure); returns how many
    files were deleted: the letters and invitations written for them, and the mail a local
    mail catcher kept in ``mail_dir``. The customer is left as an anonymous record that is never
    contacted.

    Raises:
        NotFound: no customer with that reference.
    """
    files: list[Path] = []
    with db.session() as session:
        customer = _customer(session, ref)
        messages = list(
            session.scalars(select(models.Message).where(models.Message.customer_id == customer.id))
        )
        if mail_dir is not None and mail_dir.is_dir():
            # Every address they were written to, and every message's own id.
            needles = {m.recipient.lower().encode() for m in messages if "@" in m.recipient}
            needles |= {m.message_id.lower().encode() for m in messages if m.message_id}
            if customer.email:
                needles.add(customer.email.lower().encode())
            for path in mail_dir.glob("*.eml"):
                content = path.read_bytes().lower()
                if any(needle in content for needle in needles):
                    files.append(path)
        # Their addresses stay suppressed: re-imported from your systems, they are still never
        # written to.
        for address in filter(None, (customer.email, customer.phone)):
            add_suppression(session, address.lower(), scope="all", reason="forgotten")
        posts = select(models.Mention.id).where(_their_posts(customer))
        session.execute(
            update(models.Mention)
            .where(models.Mention.id.in_(posts))
            .values(handle=ERASED, text=ERASED, url=cast(models.Mention.id, String))
        )
        cases = select(models.Case.id).where(models.Case.customer_id == customer.id)
        incidents = select(models.Case.incident_id).where(models.Case.customer_id == customer.id)
        session.execute(
            update(models.Incident)
            .where(models.Incident.id.in_(incidents))
            .values(
                summary=ERASED,
                details="",
                complaint_subject=None,
                complaint_message_id=None,
                payload={"erased": True},
            )
        )
        # Stage outcomes keep their figures; their words (which name people) go.
        for outcome in session.scalars(
            select(models.StageOutcome).where(models.StageOutcome.case_id.in_(cases))
        ):
            outcome.summary = ERASED
            if outcome.stage is Stage.ASSESS:
                outcome.data = {k: v for k, v in outcome.data.items() if k != "reasons"}
            else:
                outcome.data = {}
        for message in messages:
            if message.attachment:
                files.append(Path(message.attachment))
            message.recipient, message.subject, message.body = ERASED, "", ""
            message.attachment = message.in_reply_to = message.last_error = None
        session.execute(
            update(models.StaffAction)
            .where(models.StaffAction.customer_id == customer.id)
            .values(instructions=ERASED)
        )
        session.execute(
            update(models.CaseEvent).where(models.CaseEvent.case_id.in_(cases)).values(text=ERASED)
        )
        session.execute(
            update(models.CheckIn).where(models.CheckIn.case_id.in_(cases)).values(feedback=None)
        )
        session.execute(
            update(models.Approval).where(models.Approval.case_id.in_(cases)).values(reason=None)
        )
        session.execute(
            update(models.ExitAnswers)
            .where(models.ExitAnswers.customer_id == customer.id)
            .values(**dict.fromkeys(exit_questions.KEYS))
        )
        customer.ref = f"forgotten-{customer.id}"
        customer.name = FORGOTTEN_NAME
        customer.addressed_as = None
        customer.email = customer.phone = customer.postal_address = None
        customer.social_platform = customer.social_handle = None
        customer.preferred_channel = None
        customer.do_not_contact = True  # nobody left to write to
        # Inside the transaction: if a file cannot be deleted, nothing is erased, and running
        # forget again finds every file still named.
        deleted = 0
        for path in files:
            if path.is_file():
                path.unlink()
                deleted += 1
    return deleted


@dataclass(frozen=True)
class Traces:
    """What names a customer's runs in Prefect: their incidents' refs and their cases' ids
    (the runs are named after the incident, the case artifacts keyed by either)."""

    customer_ref: str
    incident_refs: list[str]
    case_ids: list[int]

    @property
    def artifact_keys(self) -> list[str]:
        # Artifact keys are lower-case: case-<id>, and case-<ref> as the README says.
        return [f"case-{n}" for n in self.case_ids] + [
            f"case-{re.sub(r'[^a-z0-9-]', '-', ref.lower())}" for ref in self.incident_refs
        ]


def traces(db: Database, ref: str) -> Traces:
    """The customer's :class:`Traces`, read before :func:`forget` erases them.

    Raises:
        NotFound: no customer with that reference.
    """
    with db.session() as session:
        customer = _customer(session, ref)
        rows = session.execute(
            select(models.Case.id, models.Incident.ref)
            .join(models.Incident, models.Incident.id == models.Case.incident_id)
            .where(models.Case.customer_id == customer.id)
            .order_by(models.Case.id)
        ).all()
    return Traces(ref, [incident for _, incident in rows], [case for case, _ in rows])


def forget_report_rows(reports_dir: Path, customer_ref: str) -> int:
    """Drop the customer's quotes from every report's ``feedback.csv`` under ``reports_dir``;
    returns how many files were rewritten."""
    from amends.reporting.spreadsheet import write_csv

    changed = 0
    for path in sorted(reports_dir.glob("**/feedback.csv")) if reports_dir.is_dir() else []:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            rows = list(reader)
        # write_csv may have put a quote before a value a spreadsheet would run as a formula.
        kept = [row for row in rows if row.get("customer_ref", "").lstrip("'") != customer_ref]
        if len(kept) == len(rows):
            continue
        with path.open("w", newline="", encoding="utf-8") as handle:
            write_csv(kept, columns, handle)
        changed += 1
    return changed
