"""Imports from the business's own systems: its customers, and their latest activity.

The nightly run finds lapsed customers from these (seed 002's warning signs: they stopped
buying, stopped answering). Each file is read whole first: a bad row is reported with its line
number and left out, the good rows are written in one transaction, and importing the same file
again changes nothing.

``customers.csv`` columns (a header row; only ``ref`` and ``name`` are required):
    ref, name, email, phone, postal_address, social_platform, social_handle, locale, timezone,
    annual_value, preferred_channel, do_not_contact

``activity.csv`` columns (``customer_ref`` and at least one other):
    customer_ref, last_purchase, last_contact, unanswered_calls
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from amends.domain import Customer, ReplyChannel
from amends.errors import ImportFileError
from amends.recovery.intake import describe, refs_on_file_in_other_case
from amends.storage import models
from amends.storage.db import Database

MAX_IMPORT_BYTES = 200 * 1024 * 1024
BATCH = 1000  # rows looked up per query


@dataclass
class ImportReport:
    """What an import did: counts, and each refused row with its line number."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)

    @property
    def read(self) -> int:
        return self.added + self.updated + self.unchanged + len(self.refused)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_YES = {"yes", "y", "true", "1", "x"}
_NO = {"no", "n", "false", "0", ""}


class CustomerRow(Customer):
    """A row of customers.csv: the customer as an incident names them, plus how to reach them
    for a win-back and whether they may be contacted at all."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=1000)

    preferred_channel: ReplyChannel | None = None
    do_not_contact: bool = False

    @field_validator("do_not_contact", mode="before")
    @classmethod
    def _yes_or_no(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.strip().lower() in _YES:
                return True
            if value.strip().lower() in _NO:
                return False
            raise ValueError("must be yes or no")
        return value


def _not_in_the_future(value: date) -> date:
    # Dates only move forward, so a future one could never be corrected. A day's grace: the
    # exporting system's day may already have begun.
    if value > datetime.now(UTC).date() + timedelta(days=1):
        raise ValueError("is in the future")
    return value


PastOrToday = Annotated[date, AfterValidator(_not_in_the_future)]


class ActivityRow(BaseModel):
    """A row of activity.csv: when the customer last bought and last answered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_ref: str = Field(min_length=1, max_length=64)
    last_purchase: PastOrToday | None = None
    last_contact: PastOrToday | None = None
    unanswered_calls: int | None = Field(default=None, ge=0, le=10_000)


CUSTOMER_COLUMNS = (
    "ref", "name", "email", "phone", "postal_address", "social_platform", "social_handle",
    "locale", "timezone", "annual_value", "preferred_channel", "do_not_contact",
)  # fmt: skip
ACTIVITY_COLUMNS = ("customer_ref", "last_purchase", "last_contact", "unanswered_calls")


def import_customers(
    db: Database, path: Path, on_progress: Callable[[int], None] | None = None
) -> ImportReport:
    """Add or update customers from a CSV file, by ``ref``.

    Raises:
        ImportFileError: the file cannot be read, is not UTF-8, or has unknown or missing columns.
    """
    report = ImportReport()
    rows = _valid_rows(path, CUSTOMER_COLUMNS, ("ref", "name"), _customer_row, report)
    with db.session() as session:
        for batch in _batches(rows, on_progress):
            refs = [row.ref for _, row in batch]
            known = _customers_by_ref(session, refs)
            clashes = refs_on_file_in_other_case(session, refs)
            for line, row in batch:
                if row.ref in clashes:
                    report.refused.append(
                        (line, f"ref {row.ref!r} differs only in case from {clashes[row.ref]!r}")
                    )
                    continue
                values = _customer_values(row)
                customer = known.get(row.ref)
                if customer is None:
                    customer = models.Customer(ref=row.ref, **{"locale": row.locale, **values})
                    session.add(customer)
                    known[row.ref] = customer
                    report.added += 1
                elif _apply(customer, values):
                    report.updated += 1
                else:
                    report.unchanged += 1
    report.refused.sort()
    return report


def import_activity(
    db: Database, path: Path, on_progress: Callable[[int], None] | None = None
) -> ImportReport:
    """Record customers' latest purchases, contacts and unanswered calls from a CSV file.

    Dates only move forward: an older export never rewinds what a newer one said.

    Raises:
        ImportFileError: the file cannot be read, is not UTF-8, or has unknown or missing columns.
    """
    report = ImportReport()
    rows = _valid_rows(path, ACTIVITY_COLUMNS, ("customer_ref",), _activity_row, report)
    with db.session() as session:
        for batch in _batches(rows, on_progress):
            refs = [row.customer_ref for _, row in batch]
            known = _customers_by_ref(session, refs)
            clashes = refs_on_file_in_other_case(session, refs)
            for line, row in batch:
                customer = known.get(row.customer_ref)
                if customer is None:
                    hint = (
                        f" (customer {clashes[row.customer_ref]!r} differs only in case)"
                        if row.customer_ref in clashes
                        else "; import it first"
                    )
                    report.refused.append(
                        (line, f"customer_ref: no customer {row.customer_ref!r}{hint}")
                    )
                    continue
                values = {
                    "last_purchase_on": _later(customer.last_purchase_on, row.last_purchase),
                    "last_contact_on": _later(customer.last_contact_on, row.last_contact),
                }
                if row.unanswered_calls is not None:
                    values["unanswered_calls"] = row.unanswered_calls
                if _apply(customer, values):
                    report.updated += 1
                else:
                    report.unchanged += 1
    report.refused.sort()
    return report


# --- reading ------------------------------------------------------------------------------------


def _valid_rows(
    path: Path,
    columns: tuple[str, ...],
    required: tuple[str, ...],
    parse: Callable[[dict[str, str]], BaseModel],
    report: ImportReport,
) -> list[tuple[int, Any]]:
    """Every row that validates, with its line number; the others go to ``report.refused``.

    A row repeating an earlier row's key, or differing from it only in case, is refused: two
    refs that differ only in case are one customer typed twice more often than two customers.
    """
    # Lines as the csv module splits them (CR, LF, CRLF), each keeping its line break.
    lines = io.StringIO(read_text(path), newline="").readlines()
    reader = csv.reader(lines)
    header = [name.strip() for name in next(reader, [])]
    if not any(header):
        raise ImportFileError(f"{path} is empty: the first line must name the columns")
    unknown = [name for name in header if name not in columns]
    if unknown:
        raise ImportFileError(
            f"{path}: unknown column(s) {', '.join(unknown)}; the columns are {', '.join(columns)}"
        )
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise ImportFileError(f"{path}: the header names {', '.join(twice)} twice")
    missing = [name for name in required if name not in header]
    if missing or len(header) < 2:
        raise ImportFileError(f"{path}: the header needs {', '.join(missing or columns[1:])}")
    rows, seen = [], {}
    for line, cells, problem in _records(path, lines, reader.line_num):
        record = dict(zip(header, cells, strict=False))
        if problem is None and len(cells) > len(header):
            problem = "more cells than the header has columns"
        if problem is None:
            problem, row = _parse_row(record, parse)
        key = (record.get(required[0]) or "").strip()
        if problem is None and key.lower() in seen:
            first, first_line = seen[key.lower()]
            problem = f"{required[0]} {key!r} repeats line {first_line}" + (
                f" ({first!r}, differing only in case)" if first != key else ""
            )
        if problem is None:
            seen[key.lower()] = (key, line)
            rows.append((line, row))
        else:
            report.refused.append((line, problem))
    return rows


def _records(
    path: Path, lines: list[str], start: int
) -> Iterator[tuple[int, list[str], str | None]]:
    """Each row after the header as ``(line, cells, problem)``, named by the line it starts on
    (a quoted cell may span lines). A quote that never closes would swallow every row after
    it: its row is refused, and the rows after it are read again from the next line."""
    # A cell may be as large as the file; the validation that follows refuses a long one with
    # its line, rather than the csv module refusing the whole file.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_IMPORT_BYTES))
    while start < len(lines):
        reader = csv.reader(lines[start:])
        line = start + 1
        try:
            for cells in reader:
                read_to = start + reader.line_num
                if read_to == len(lines) and _unclosed_quote(lines[line - 1 :]):
                    yield line, [], "a quote opened on this line is never closed"
                    start = line
                    break
                if cells:  # a blank line is no row
                    yield line, cells, None
                line = read_to + 1
            else:
                return
        except csv.Error as error:
            raise ImportFileError(f"{path}: line {start + reader.line_num}: {error}") from None


def _unclosed_quote(lines: list[str]) -> bool:
    """True if the last row in ``lines`` ends inside a quoted cell."""
    try:
        for _ in csv.reader(lines, strict=True):
            pass
    except csv.Error:
        return True
    return False


def _parse_row(
    record: dict[str, str], parse: Callable[[dict[str, str]], BaseModel]
) -> tuple[str | None, BaseModel | None]:
    cells = {key: value.strip() for key, value in record.items() if key}
    # No database stores a NUL, and no column needs a control character but a line break.
    for key, value in cells.items():
        if _CONTROL.search(value):
            return f"{key}: must not contain control characters", None
    try:
        return None, parse(cells)
    except ValidationError as error:
        return describe(error), None


def read_text(path: Path) -> str:
    """A UTF-8 file (a byte-order mark allowed) of at most :data:`MAX_IMPORT_BYTES`.

    Raises:
        ImportFileError: too large, unreadable, or not UTF-8 (naming the line).
    """
    try:
        if path.stat().st_size > MAX_IMPORT_BYTES:
            raise ImportFileError(f"{path} is larger than {MAX_IMPORT_BYTES // 2**20} MiB")
        raw = path.read_bytes()
    except OSError as error:
        raise ImportFileError(f"cannot read {path}: {error.strerror}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ImportFileError(
            f"{path}: line {line} is not UTF-8 text; export the file as UTF-8 CSV"
        ) from None


def _customer_row(cells: dict[str, str]) -> CustomerRow:
    data: dict[str, Any] = {k: v for k, v in cells.items() if v != ""}
    platform, handle = data.pop("social_platform", None), data.pop("social_handle", None)
    if platform or handle:
        data["social"] = {"platform": platform, "handle": handle}
    if "do_not_contact" in cells:
        data["do_not_contact"] = cells["do_not_contact"]
    # Cells are text: "1200" is a number here, though an incident's JSON must give 1200.
    return CustomerRow.model_validate(data, strict=False)


def _activity_row(cells: dict[str, str]) -> ActivityRow:
    return ActivityRow.model_validate({k: v for k, v in cells.items() if v != ""})


def _customer_values(row: CustomerRow) -> dict[str, Any]:
    """The columns the row gives: an empty cell leaves what amends knows (an incident may have
    brought a newer email than the export)."""
    given = row.model_fields_set
    values: dict[str, Any] = {"name": row.name}
    for name in ("email", "phone", "postal_address", "locale", "timezone", "annual_value"):
        if name in given:
            values[name] = getattr(row, name)
    if row.social:
        values["social_platform"] = row.social.platform.value
        values["social_handle"] = row.social.handle
    if row.preferred_channel:
        values["preferred_channel"] = row.preferred_channel.value
    if "do_not_contact" in given:
        values["do_not_contact"] = row.do_not_contact
    return values


def _customers_by_ref(session: Session, refs: list[str]) -> dict[str, models.Customer]:
    """The customers among ``refs`` that amends already has, in one query."""
    found = session.scalars(select(models.Customer).where(models.Customer.ref.in_(refs)))
    return {customer.ref: customer for customer in found}


def _apply(customer: models.Customer, values: dict[str, Any]) -> bool:
    """Set what differs; True if anything did."""
    changed = False
    for name, value in values.items():
        if getattr(customer, name) != value:
            setattr(customer, name, value)
            changed = True
    return changed


def _later(stored: date | None, given: date | None) -> date | None:
    if given is None or (stored is not None and stored >= given):
        return stored
    return given


def _batches(
    rows: list[tuple[int, Any]], on_progress: Callable[[int], None] | None
) -> Iterator[list[tuple[int, Any]]]:
    for start in range(0, len(rows), BATCH):
        yield rows[start : start + BATCH]
        if on_progress:
            on_progress(min(start + BATCH, len(rows)))
