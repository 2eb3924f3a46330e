"""CSV imports of customers and activity: bad rows named by line, good rows kept, idempotent."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from amends.errors import ImportFileError
from amends.runtime import Runtime
from amends.storage import models
from amends.storage.imports import BATCH, import_activity, import_customers

CUSTOMERS = """\
ref,name,email,phone,timezone,annual_value,preferred_channel,do_not_contact
C-1,Ann Lee,ann@example.com,+44 20 7946 0018,Europe/London,1200,email,no
C-2,Bo Chen,not-an-email,,,,,
C-3,Cy Diaz,cy@example.com,,Mars/Olympus,,,
C-4,Di Eve,di@example.com,,,300,sms,yes
C-1,Ann Again,ann2@example.com,,,,,
"""


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def customers(rt: Runtime) -> dict[str, models.Customer]:
    with rt.db.session() as session:
        return {c.ref: c for c in session.scalars(select(models.Customer))}


def test_good_rows_are_kept_and_bad_ones_named_by_line(rt: Runtime, tmp_path: Path) -> None:
    report = import_customers(rt.db, write(tmp_path, "customers.csv", CUSTOMERS))
    assert (report.added, report.updated, report.unchanged) == (2, 0, 0)
    assert [line for line, _ in report.refused] == [3, 4, 6]
    problems = dict(report.refused)
    assert problems[3].startswith("email: is not a valid email address")
    assert problems[4] == "timezone: is not a known time zone: 'Mars/Olympus'"
    assert problems[6] == "ref 'C-1' repeats line 2"
    stored = customers(rt)
    assert set(stored) == {"C-1", "C-4"}
    assert stored["C-1"].phone == "+442079460018"  # normalised like an incident's
    assert (stored["C-4"].preferred_channel, stored["C-4"].do_not_contact) == ("sms", True)


def test_importing_the_same_file_twice_changes_nothing(rt: Runtime, tmp_path: Path) -> None:
    path = write(tmp_path, "customers.csv", CUSTOMERS)
    import_customers(rt.db, path)
    before = {ref: c.updated_at for ref, c in customers(rt).items()}
    again = import_customers(rt.db, path)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 2)
    assert {ref: c.updated_at for ref, c in customers(rt).items()} == before


def test_an_empty_cell_keeps_what_amends_knows(rt: Runtime, tmp_path: Path) -> None:
    import_customers(rt.db, write(tmp_path, "a.csv", "ref,name,email\nC-1,Ann,ann@example.com\n"))
    report = import_customers(rt.db, write(tmp_path, "b.csv", "ref,name,email\nC-1,Ann Lee,\n"))
    assert report.updated == 1
    assert (customers(rt)["C-1"].name, customers(rt)["C-1"].email) == ("Ann Lee", "ann@example.com")


def test_activity_moves_forward_only(rt: Runtime, tmp_path: Path) -> None:
    import_customers(rt.db, write(tmp_path, "c.csv", "ref,name\nC-1,Ann\nC-2,Bo\n"))
    newer = write(
        tmp_path,
        "new.csv",
        "customer_ref,last_purchase,last_contact,unanswered_calls\n"
        "C-1,2026-10-01,2026-11-01,2\nC-9,2026-10-01,,\nC-2,yesterday,,\n",
    )
    report = import_activity(rt.db, newer)
    assert (report.updated, report.unchanged) == (1, 0)
    assert report.refused[0] == (3, "customer_ref: no customer 'C-9'; import it first")
    assert report.refused[1][0] == 4 and report.refused[1][1].startswith("last_purchase:")
    assert import_activity(rt.db, newer).unchanged == 1  # the same file again: nothing
    older = write(tmp_path, "old.csv", "customer_ref,last_purchase\nC-1,2025-01-01\n")
    assert import_activity(rt.db, older).unchanged == 1
    ann = customers(rt)["C-1"]
    assert (ann.last_purchase_on, ann.last_contact_on, ann.unanswered_calls) == (
        date(2026, 10, 1),
        date(2026, 11, 1),
        2,
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"ref,name,mail\nC-1,Ann,a@example.com\n", r"unknown column\(s\) mail"),
        (b"name\nAnn\n", "the header needs ref"),
        (b"ref,name\nC-1,Ann\nC-2,Bo \xff\n", "line 3 is not UTF-8 text"),
    ],
)
def test_a_file_that_cannot_be_imported_writes_nothing(
    rt: Runtime, tmp_path: Path, content: bytes, message: str
) -> None:
    with pytest.raises(ImportFileError, match=message):
        import_customers(rt.db, write(tmp_path, "bad.csv", content))
    assert customers(rt) == {}


def test_hostile_cells_are_refused_not_stored(rt: Runtime, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "c.csv",
        'ref,name,email\nC-1,"Ann\r\nBcc: all@example.com",a@example.com\n'
        f"C-2,{'x' * 5000},b@example.com\nC-3,=HYPERLINK(1),c@example.com\n,Nobody,\n",
    )
    report = import_customers(rt.db, path)
    lines = dict(report.refused)
    assert "single line" in lines[2]  # header injection through a name
    assert "at most 120 characters" in lines[4]  # the row after a two-line cell
    assert "ref:" in lines[6]
    # A name that looks like a formula is just a name here; exports neutralise it.
    assert set(customers(rt)) == {"C-3"}


def test_a_new_customer_keeps_the_language_of_its_row(rt: Runtime, tmp_path: Path) -> None:
    # Found by the fuzz test: a new row with a locale once raised a TypeError.
    path = tmp_path / "customers.csv"
    path.write_text("ref,name,locale\nC-9,Ana Ruiz,es\n", encoding="utf-8")
    assert import_customers(rt.db, path).added == 1
    with rt.db.session() as session:
        assert session.scalars(select(models.Customer.locale)).one() == "es"


def test_a_purchase_in_the_future_is_refused_with_its_line(rt: Runtime, tmp_path: Path) -> None:
    # Dates only move forward: 2999-01-01, once kept, could never be corrected.
    import_customers(rt.db, write(tmp_path, "c.csv", "ref,name\nC-1,Ann\n"))
    path = write(
        tmp_path,
        "a.csv",
        "customer_ref,last_purchase,last_contact\nC-1,2999-01-01,\nC-1,,2999-01-01\n",
    )
    report = import_activity(rt.db, path)
    assert report.refused == [
        (2, "last_purchase: is in the future"),
        (3, "last_contact: is in the future"),
    ]
    assert customers(rt)["C-1"].last_purchase_on is None


def test_a_huge_cell_refuses_its_row_by_its_line(rt: Runtime, tmp_path: Path) -> None:
    # Over the csv module's 131,072 characters: once the whole file, named as line 1.
    huge = "x" * 200_000
    path = write(tmp_path, "c.csv", f"ref,name\nC-1,{huge}\nC-2,Bo\n")
    report = import_customers(rt.db, path)
    assert [line for line, _ in report.refused] == [2]
    assert "at most 120 characters" in report.refused[0][1]
    assert set(customers(rt)) == {"C-2"}


def test_a_column_named_twice_refuses_the_file(rt: Runtime, tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "ref,name,name,email\nC-1,Ann,Bo,a@example.com\n")
    with pytest.raises(ImportFileError, match="the header names name twice"):
        import_customers(rt.db, path)
    assert customers(rt) == {}


def test_an_unclosed_quote_refuses_its_row_only(rt: Runtime, tmp_path: Path) -> None:
    # It once swallowed every row after it into one refused row.
    path = write(tmp_path, "c.csv", 'ref,name\nC-1,Ann\nC-2,"Bo\nC-3,Cy\nC-4,Di\n')
    report = import_customers(rt.db, path)
    assert report.refused == [(3, "a quote opened on this line is never closed")]
    assert set(customers(rt)) == {"C-1", "C-3", "C-4"}
    last = write(tmp_path, "d.csv", 'ref,name\nC-5,Ed\nC-6,"Fay')  # at the very end
    assert import_customers(rt.db, last).refused == [
        (3, "a quote opened on this line is never closed")
    ]


def test_a_quoted_cell_over_lines_is_still_one_row(rt: Runtime, tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", 'ref,name,postal_address\nC-1,Ann,"1 Main St\nSpringfield"\n')
    report = import_customers(rt.db, path)
    assert (report.added, report.refused) == (1, [])
    assert customers(rt)["C-1"].postal_address == "1 Main St\nSpringfield"


def test_refs_differing_only_in_case_are_refused_as_a_clash(rt: Runtime, tmp_path: Path) -> None:
    # One customer typed twice, more often than two customers: never merged, never two.
    report = import_customers(rt.db, write(tmp_path, "c.csv", "ref,name\nD-1,Ann\nd-1,Ann\n"))
    assert report.refused == [(3, "ref 'd-1' repeats line 2 ('D-1', differing only in case)")]
    later = import_customers(rt.db, write(tmp_path, "e.csv", "ref,name\nd-1,Ann B\n"))
    assert later.refused == [(2, "ref 'd-1' differs only in case from 'D-1'")]
    assert set(customers(rt)) == {"D-1"}
    activity = write(tmp_path, "a.csv", "customer_ref,last_purchase\nd-1,2026-01-01\n")
    assert import_activity(rt.db, activity).refused == [
        (2, "customer_ref: no customer 'd-1' (customer 'D-1' differs only in case)")
    ]


# --- streamed: a file is read a line at a time and written a batch at a time --------------------


def many(count: int, start: int = 0) -> str:
    return "".join(f"C-{n},Customer {n}\n" for n in range(start, start + count))


def test_a_ref_repeated_batches_later_is_still_refused(rt: Runtime, tmp_path: Path) -> None:
    # The rows a batch holds are forgotten once written; the keys are not.
    path = write(tmp_path, "c.csv", "ref,name\n" + many(BATCH + 500) + "c-7,Seven Again\n")
    report = import_customers(rt.db, path)
    last = BATCH + 500 + 2
    assert report.refused == [(last, "ref 'c-7' repeats line 9 ('C-7', differing only in case)")]
    assert report.added == BATCH + 500
    again = import_customers(rt.db, path)  # and the keys of one import are gone by the next
    assert (again.added, again.unchanged, len(again.refused)) == (0, BATCH + 500, 1)


def test_a_file_unreadable_after_some_batches_writes_nothing(rt: Runtime, tmp_path: Path) -> None:
    text = ("ref,name\n" + many(2 * BATCH + 10)).encode() + b"C-x,Bad \xff byte\n"
    with pytest.raises(ImportFileError, match=f"line {2 * BATCH + 12} is not UTF-8 text"):
        import_customers(rt.db, write(tmp_path, "c.csv", text))
    assert customers(rt) == {}


def test_lines_may_end_in_a_lone_carriage_return(rt: Runtime, tmp_path: Path) -> None:
    # Old spreadsheet exports end lines with CR alone; rows are still named by their line.
    path = write(
        tmp_path, "c.csv", 'ref,name,postal_address\rC-1,Ann,\rC-2,Bo,"1 Main St\rTown"\rC-3,\r'
    )
    report = import_customers(rt.db, path)
    assert report.added == 2
    assert report.refused == [(5, "name: Field required")]
    assert customers(rt)["C-2"].postal_address == "1 Main St\nTown"


def test_a_lone_carriage_return_before_the_last_character_ends_a_line(
    rt: Runtime, tmp_path: Path
) -> None:
    # The file's last line, with no line break of its own: "C" is a row of its own.
    report = import_customers(rt.db, write(tmp_path, "c.csv", "ref,name\nC-1,Ann\rC"))
    assert report.added == 1
    assert report.refused == [(3, "name: Field required")]
