"""Imports from the business's own systems: its customers, and their latest activity.

The nightly run finds lapsed customers from these (seed 002's warning signs: they stopped
buying, stopped answering). A file is streamed: read a line at a time, validated, and written a
batch at a time in one transaction, so memory stays flat however long the file is and a file
found unreadable half-way writes nothing. A bad row is reported with its line number and left
out, and importing the same file again changes nothing.

``customers.csv`` columns (a header row; only ``ref`` and ``name`` are required):
    ref, name, email, phone, postal_address, social_platform, social_handle, locale, timezone,
    annual_value, preferred_channel, do_not_contact

``activity.csv`` columns (``customer_ref`` and at least one other):
    customer_ref, last_purchase, last_contact, unanswered_calls
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
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
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from sqlalchemy.orm import Session

from amends.domain import Customer, ReplyChannel
from amends.errors import ImportFileError
from amends.recovery.intake import describe, refs_on_file_in_other_case
from amends.storage import models
from amends.storage.db import Database, analyze

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
    with db.session() as session, _first_of_each_key(session, "ref", report) as first_only:
        for batch in _batches(rows, on_progress):
            batch = first_only(batch, [row.ref for _, row in batch])
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
                    session.add(models.Customer(ref=row.ref, **{"locale": row.locale, **values}))
                    report.added += 1
                elif _apply(customer, values):
                    report.updated += 1
                else:
                    report.unchanged += 1
            _let_go(session)
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
    with db.session() as session, _first_of_each_key(session, "customer_ref", report) as first:
        for batch in _batches(rows, on_progress):
            batch = first(batch, [row.customer_ref for _, row in batch])
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
            _let_go(session)
    report.refused.sort()
    return report


def _let_go(session: Session) -> None:
    """Write the batch and forget its objects: the transaction holds the rows, so memory stays
    flat however long the file is."""
    session.flush()
    session.expunge_all()


# --- reading ------------------------------------------------------------------------------------
# A file is streamed, never held whole: its lines are read one by one, validated, and written a
# batch at a time in one transaction, so a file that turns out unreadable half-way writes nothing.


def read_header(path: Path) -> tuple[list[str], int]:
    """A CSV file's column names, and how many lines they took (a quoted name may hold a line
    break).

    Raises:
        ImportFileError: unreadable, not UTF-8, or empty.
    """
    reader = _csv_reader(_lines(path))
    header = [name.strip() for name in next(reader, [])]
    if not any(header):
        raise ImportFileError(f"{path} is empty: the first line must name the columns")
    return header, reader.line_num


def _csv_reader(lines: Iterable[str]) -> Any:
    """The csv module's reader over the lines, taking a cell as large as the file: the
    validation that follows refuses a long one with its line, rather than the csv module
    refusing the whole file (its limit is the process's: set before any reading)."""
    csv.field_size_limit(max(csv.field_size_limit(), MAX_IMPORT_BYTES))
    return csv.reader(lines)


def _valid_rows(
    path: Path,
    columns: tuple[str, ...],
    required: tuple[str, ...],
    parse: Callable[[dict[str, str]], BaseModel],
    report: ImportReport,
) -> Iterator[tuple[int, Any]]:
    """Every row that validates, with its line number; the others go to ``report.refused``.
    The header is checked before anything is read or written."""
    header, skip = read_header(path)
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
    return _parsed(path, header, skip, parse, report)


def _parsed(
    path: Path,
    header: list[str],
    skip: int,
    parse: Callable[[dict[str, str]], BaseModel],
    report: ImportReport,
) -> Iterator[tuple[int, Any]]:
    for line, cells, problem in _records(path, skip):
        if problem is None and len(cells) > len(header):
            problem = "more cells than the header has columns"
        if problem is None:
            problem, row = _parse_row(dict(zip(header, cells, strict=False)), parse)
        if problem is None:
            yield line, row
        else:
            report.refused.append((line, problem))


# The keys already read from the file being imported: a temporary table, so that a key repeated
# a million rows later is still found without holding every key in memory.
_SEEN_KEYS = Table(
    "amends_import_keys",
    MetaData(),
    Column("folded", String, primary_key=True),
    Column("key", String, nullable=False),
    Column("line", Integer, nullable=False),
    prefixes=["TEMPORARY"],
)


@contextmanager
def _first_of_each_key(
    session: Session, name: str, report: ImportReport
) -> Iterator[Callable[[list[tuple[int, Any]], list[str]], list[tuple[int, Any]]]]:
    """A filter that keeps a batch's rows whose key no earlier row of the file had, refusing the
    others. Keys differing only in case count as one: two refs that differ only in case are one
    customer typed twice more often than two customers."""
    # Every query of an import looks rows up by key, a batch at a time. On PostgreSQL the
    # tables grow inside this one transaction, where autovacuum never analyses them: without
    # statistics (and lower(ref) has none until analysed) the planner reads the whole of a
    # table for each batch, and the import slows as it goes. So: no sequential scans, and the
    # customers analysed once the first batch is written, within the transaction.
    connection = session.connection()
    postgresql = connection.dialect.name == "postgresql"
    if postgresql:
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    # PostgreSQL drops the table with a failed transaction; SQLite may keep it on the connection.
    _SEEN_KEYS.drop(connection, checkfirst=True)
    _SEEN_KEYS.create(connection)
    batches = itertools.count()

    def first_only(batch: list[tuple[int, Any]], keys: list[str]) -> list[tuple[int, Any]]:
        if next(batches) == 1:
            analyze(connection, [models.Customer.__tablename__])
        folded = [key.lower() for key in keys]
        seen = {
            row.folded: (row.key, row.line)
            for row in session.execute(
                select(_SEEN_KEYS).where(_SEEN_KEYS.c.folded.in_(set(folded)))
            )
        }
        kept, new = [], []
        for (line, row), key, fold in zip(batch, keys, folded, strict=True):
            if fold in seen:
                first, first_line = seen[fold]
                report.refused.append(
                    (
                        line,
                        f"{name} {key!r} repeats line {first_line}"
                        + (f" ({first!r}, differing only in case)" if first != key else ""),
                    )
                )
                continue
            seen[fold] = (key, line)
            new.append({"folded": fold, "key": key, "line": line})
            kept.append((line, row))
        if new:
            session.execute(insert(_SEEN_KEYS), new)
        return kept

    yield first_only
    _SEEN_KEYS.drop(session.connection())


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_BREAK = re.compile(r"\r\n?|\n")


def _records(path: Path, skip: int) -> Iterator[tuple[int, list[str], str | None]]:
    """Each row after the first ``skip`` lines as ``(line, cells, problem)``, named by the line
    it starts on (a quoted cell may span lines). A quote that never closes would swallow every
    row after it: its row is refused, and the rows after it are read again from the next line."""
    while True:
        taken: list[str] = []  # the lines of the row being read
        reader = _csv_reader(_noting(itertools.islice(_lines(path), skip, None), taken))
        line, held = skip + 1, None
        try:
            for cells in reader:
                if held is not None:  # the held row did not run to the end: a real row
                    yield held
                    held = None
                row = (line, cells, None)
                # Only a row over several lines, or the file's last, can hide an open quote.
                suspect = len(taken) > 1 or not taken[-1].endswith(("\n", "\r"))
                if suspect and _unclosed_quote(taken):
                    held = row
                elif cells:  # a blank line is no row
                    yield row
                line = skip + reader.line_num + 1
                taken.clear()
        except csv.Error as error:
            raise ImportFileError(f"{path}: line {skip + reader.line_num}: {error}") from None
        if held is None:
            return
        yield held[0], [], "a quote opened on this line is never closed"
        skip = held[0]


def _noting(lines: Iterator[str], taken: list[str]) -> Iterator[str]:
    for text in lines:
        taken.append(text)
        yield text


def _lines(path: Path) -> Iterator[str]:
    """The file's lines as the csv module splits them (CR, LF, CRLF), each keeping its line
    break; read one at a time, UTF-8 (a byte-order mark allowed).

    Raises:
        ImportFileError: too large, unreadable, or not UTF-8 (naming the line).
    """
    try:
        if path.stat().st_size > MAX_IMPORT_BYTES:
            raise ImportFileError(f"{path} is larger than {MAX_IMPORT_BYTES // 2**20} MiB")
        handle = path.open("rb")
    except OSError as error:
        raise ImportFileError(f"cannot read {path}: {error.strerror}") from None
    number = 0
    with handle:
        for raw in handle:  # split at LF only: a CR-only file is one raw line, split below
            try:
                text = raw.decode("utf-8-sig" if number == 0 else "utf-8")
            except UnicodeDecodeError as error:
                before = raw[: error.start].decode("utf-8", errors="replace")
                line = number + len(_BREAK.findall(before)) + 1
                raise ImportFileError(
                    f"{path}: line {line} is not UTF-8 text; export the file as UTF-8 CSV"
                ) from None
            number += 1
            # A lone CR ends a line too; most files have none but the one before LF. (The last
            # line may end in neither, and a CR just before its last character is a break too.)
            if "\r" not in text.removesuffix("\n").removesuffix("\r"):
                yield text  # (counted as one line above)
            else:
                pieces = _LINE.findall(text)
                number += len(pieces) - 1
                yield from pieces


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
    # A break inside a quoted cell is a line break, whichever the exporting system wrote.
    cells = {key: _BREAK.sub("\n", value.strip()) for key, value in record.items() if key}
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
    return "".join(_lines(path))


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
    rows: Iterator[tuple[int, Any]], on_progress: Callable[[int], None] | None
) -> Iterator[list[tuple[int, Any]]]:
    done = 0
    while batch := list(itertools.islice(rows, BATCH)):
        yield batch
        done += len(batch)
        if on_progress:
            on_progress(done)
