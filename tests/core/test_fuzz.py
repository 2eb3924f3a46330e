"""Hostile and broken input, generated: every input becomes a valid record or a clear error,
never a traceback, and an error writes nothing."""

from __future__ import annotations

import csv
import io
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from factories import incident_data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import func, select

from amends import models
from amends.errors import AmendsError, ImportFileError, InvalidIncident
from amends.imports import ACTIVITY_COLUMNS, CUSTOMER_COLUMNS, import_activity, import_customers
from amends.intake import open_case, parse_incident
from amends.mentions import PublicPost, record_posts
from amends.runtime import Runtime

# The database fixtures are shared by every example on purpose: each example checks what it
# changed, not what the table holds.
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
hostile_text = st.text() | st.sampled_from(
    [
        "Ann\r\nBcc: everyone@example.com",  # header injection
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",  # template injection
        "{% for x in range(10**9) %}x{% endfor %}",
        '=HYPERLINK("http://evil.example")',  # formula injection
        "\x00\x1b[31m",
        "x" * 300_000,  # oversized
    ]
)
EXAMPLES = itertools.count()
INCIDENT_FIELDS = [k for k in incident_data() if k not in ("customer", "costs")]
CUSTOMER_FIELDS = list(incident_data()["customer"])


def counts(rt: Runtime) -> tuple[int, ...]:
    with rt.db.session() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(model))
            for model in (models.Customer, models.Incident, models.Case, models.Message)
        )


@FUZZ
@given(raw=st.binary(max_size=3000))
def test_any_bytes_are_an_incident_or_one_clear_error(raw: bytes) -> None:
    try:
        parse_incident(raw)
    except InvalidIncident as error:
        assert str(error) and "\n" not in str(error)


@FUZZ
@given(
    where=st.sampled_from(["incident", "customer", "costs"]),
    name=st.sampled_from(INCIDENT_FIELDS + CUSTOMER_FIELDS + ["economic", "time_hours", "new"]),
    value=json_values | hostile_text,
)
def test_any_field_value_is_filed_or_refused_without_writing(
    rt: Runtime, where: str, name: str, value: Any
) -> None:
    n = next(EXAMPLES)  # each example files a new incident, for a new customer
    data = incident_data(
        ref=f"INC-F{n}",
        complaint_message_id=f"<f{n}@customer.example>",
        customer={"ref": f"C-F{n}"},
    )
    target = data if where == "incident" else data[where]
    target[name] = value
    before = counts(rt)
    try:
        incident = parse_incident(json.dumps(data))
        case_id = open_case(rt, incident)
    except AmendsError as error:
        assert str(error).strip()
        assert counts(rt) == before  # nothing half-written
        return
    # Filed: a real case whose incident holds exactly what was validated.
    with rt.db.session() as session:
        assert session.get(models.Case, case_id).incident.payload == incident.model_dump(
            mode="json"
        )


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


cells = st.lists(hostile_text.filter(lambda s: len(s) < 2000), min_size=0, max_size=13)
GOOD_CUSTOMER = {
    "name": "Ann Lee", "email": "ann@example.com", "phone": "+34612345678",
    "postal_address": "Calle Mayor 12", "social_platform": "twitter", "social_handle": "@ann",
    "locale": "es", "timezone": "Europe/Madrid", "annual_value": "1200",
    "preferred_channel": "email", "do_not_contact": "no",
}  # fmt: skip


@FUZZ
@given(
    changes=st.lists(
        st.tuples(
            st.sampled_from(list(GOOD_CUSTOMER)), hostile_text.filter(lambda s: len(s) < 2000)
        ),
        min_size=1,
        max_size=6,
    )
)
def test_good_rows_with_one_bad_cell_each_are_kept_or_refused_by_line(
    rt: Runtime, tmp_path: Path, changes: list[tuple[str, str]]
) -> None:
    n = next(EXAMPLES)
    rows = []
    for i, (column, value) in enumerate(changes):
        row = {"ref": f"C-{n}-{i}", **GOOD_CUSTOMER, column: value}
        rows.append([row[c] for c in CUSTOMER_COLUMNS])
    path = tmp_path / "customers.csv"
    write_csv(path, list(CUSTOMER_COLUMNS), rows)
    before = counts(rt)[0]
    report = import_customers(rt.db, path)
    assert report.read == len(rows)
    assert report.added + len(report.refused) == len(rows)  # new refs: kept or refused
    assert all(line >= 2 and reason for line, reason in report.refused)
    assert counts(rt)[0] - before == report.added
    # A kept row is stored as validated: the one changed cell went through the same checks.
    with rt.db.session() as session:
        kept = session.scalars(
            select(models.Customer.ref).where(models.Customer.ref.startswith(f"C-{n}-"))
        ).all()
    assert len(kept) == report.added


@FUZZ
@given(rows=st.lists(cells, max_size=6))
def test_any_customer_rows_are_kept_or_refused_by_line(
    rt: Runtime, tmp_path: Path, rows: list[list[str]]
) -> None:
    path = tmp_path / "customers.csv"
    write_csv(path, list(CUSTOMER_COLUMNS), rows)
    before = counts(rt)[0]
    report = import_customers(rt.db, path)
    assert report.read == len([row for row in rows if row])  # a blank line is no row
    assert all(line >= 2 and reason for line, reason in report.refused)
    assert counts(rt)[0] - before == report.added


@FUZZ
@given(rows=st.lists(st.lists(hostile_text.filter(lambda s: len(s) < 200), max_size=4), max_size=6))
def test_any_activity_rows_are_kept_or_refused_by_line(
    rt: Runtime, tmp_path: Path, rows: list[list[str]]
) -> None:
    path = tmp_path / "activity.csv"
    write_csv(path, list(ACTIVITY_COLUMNS), rows)
    report = import_activity(rt.db, path)
    assert report.read == len([row for row in rows if row])
    assert report.added == 0  # activity never creates customers


@FUZZ
@given(raw=st.binary(max_size=2000))
def test_any_file_is_imported_or_refused_whole(rt: Runtime, tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "customers.csv"
    path.write_bytes(raw)
    before = counts(rt)[0]
    try:
        report = import_customers(rt.db, path)
    except ImportFileError as error:
        assert str(error) and counts(rt)[0] == before
        return
    assert counts(rt)[0] - before == report.added


@FUZZ
@given(
    post=st.fixed_dictionaries(
        {},
        optional={
            "platform": st.sampled_from(["twitter", "mastodon", "rss", ""]) | json_values,
            "handle": hostile_text | json_values,
            "url": hostile_text | json_values,
            "text": hostile_text | json_values,
            "posted_at": st.sampled_from(["2026-11-20T10:00:00Z", "2026-11-20", "yesterday"]),
        },
    )
)
def test_any_public_post_is_a_mention_or_a_validation_error(
    rt: Runtime, post: dict[str, Any]
) -> None:
    try:
        valid = PublicPost.model_validate(post)
    except ValidationError as error:
        assert error.errors()
        return
    # A valid post is stored (on PostgreSQL too), once.
    assert record_posts(rt.db, [valid], rt.policy.listening).new in (0, 1)
    assert record_posts(rt.db, [valid], rt.policy.listening).new == 0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (json.dumps(incident_data(details="x" * 300_000)).encode(), "larger than the limit"),
        (
            json.dumps(incident_data()).encode().replace(b"Rodolfo", b"Rod\xffolfo"),
            "not valid UTF-8",
        ),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
def test_oversized_invalid_or_deep_input_is_refused_clearly(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidIncident, match=message):
        parse_incident(raw)


@pytest.mark.parametrize(
    "changes",
    [
        {"customer": {"name": "Ann\r\nBcc: everyone@example.com"}},
        {"complaint_subject": "Late\r\nBcc: everyone@example.com"},
        {"summary": "Late\nX-Injected: yes"},
        {"customer": {"email": "rk@example.com\r\nBcc: everyone@example.com"}},
    ],
)
def test_header_injection_is_refused_at_intake(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidIncident) as refused:
        parse_incident(json.dumps(incident_data(**changes)))
    assert "single line" in str(refused.value) or "not a valid email" in str(refused.value)
