"""Hostile and broken input, generated: every input becomes a valid record or a clear error,
never a traceback, and an error writes nothing."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from factories import incident_data
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from loopback import serving
from pydantic import ValidationError
from sqlalchemy import func, select

from amends.domain import STAGES
from amends.errors import AmendsError, ImportFileError, InvalidIncident, SourceError
from amends.listening.mentions import PublicPost, record_posts
from amends.listening.sources import SourceSpec, fetch
from amends.recovery.intake import open_case, parse_incident
from amends.recovery.stages import run_stage
from amends.runtime import Runtime
from amends.storage import models
from amends.storage.imports import (
    ACTIVITY_COLUMNS,
    CUSTOMER_COLUMNS,
    import_activity,
    import_customers,
)

# The database fixtures are shared by every example on purpose: each example checks what it
# changed, not what the table holds.
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**15, max_value=10**40)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
hostile_text = st.text() | st.sampled_from(
    [
        "Ann\r\nBcc: everyone@example.com",  # header injection
        "Ann\u2028Bcc: everyone@example.com",  # the same, by a Unicode line separator
        "Ann\x85Bcc: everyone@example.com",
        "\u200b",  # nothing visible
        "Ann \u202eeel",  # reordered on screen
        "0001-01-01T00:00:00+05:00",  # a time too far back to do sums with
        "2999-01-01",
        "1 Ocean Dr, Miami FL 334XX",  # a postal code no postman can use
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


# What hostile input found once (issue 20): numbers of thousands of digits, times far from now
# with any offset, Unicode line breaks and invisible or reordering characters, keys given twice.
big_numbers = st.integers(1, 6000).map(lambda n: "9" * n) | st.sampled_from(
    ["1e400", "-1e400", "1E-400", "-0", "0.0000000000000000001", "NaN", "Infinity", "true"]
)
far_times = st.datetimes(
    min_value=datetime(1, 1, 1),
    max_value=datetime(9999, 12, 31, 23, 59),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12, minutes=-30))]
    ),
)
sneaky_text = st.text(
    alphabet=st.sampled_from(
        ["a", "B", " ", "\u2028", "\u2029", "\x85", "\u200b", "\u202e", "\u2066", "\r", "\n"]
    ),
    min_size=1,
    max_size=12,
)
LINE_BREAKS = ("\r", "\n", "\x85", "\u2028", "\u2029")
RAW = "__RAW__"


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(["received_at", "summary", "name", "annual_value", "economic", "ref"]),
    raw=big_numbers
    | far_times.map(lambda t: json.dumps(t.isoformat()))
    | sneaky_text.map(json.dumps)
    | sneaky_text.map(lambda text: json.dumps("Ann" + text + "Bcc: all@example.com")),
)
def test_any_raw_json_value_is_an_incident_or_one_clear_error(name: str, raw: str) -> None:
    data = incident_data()
    target = data["customer"] if name in ("name", "annual_value") else data
    target = data["costs"] if name == "economic" else target
    target[name] = RAW
    try:
        incident = parse_incident(json.dumps(data).replace(json.dumps(RAW), raw))
    except InvalidIncident as error:
        assert str(error) and "\n" not in str(error)
        return
    for line in (incident.summary, incident.customer.name, incident.ref):
        assert not any(mark in line for mark in LINE_BREAKS)
    assert datetime(1970, 1, 1, tzinfo=UTC) <= incident.received_at


@settings(max_examples=40, deadline=None)
@given(
    where=st.sampled_from(["incident", "customer", "costs"]),
    twice=st.data(),
)
def test_a_key_given_twice_anywhere_is_refused(where: str, twice: st.DataObject) -> None:
    data = incident_data()
    target = data if where == "incident" else data[where]
    key = twice.draw(st.sampled_from(sorted(target)))
    target[RAW] = 0  # where the key goes again, with a value of its own
    text = json.dumps(data).replace(f'"{RAW}": 0', f"{json.dumps(key)}: {json.dumps(target[key])}")
    with pytest.raises(InvalidIncident, match=f"incident gives {key!r} twice"):
        parse_incident(text)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(moment=far_times)
@example(moment=datetime(1, 1, 1, tzinfo=UTC))
@example(moment=datetime(1, 1, 1, 3, tzinfo=timezone(timedelta(hours=5))))
def test_any_time_is_refused_or_recovered_to_the_end(rt: Runtime, moment: datetime) -> None:
    # Year 1 once wrote half a case and crashed the monitor stage with OverflowError.
    n = next(EXAMPLES)
    data = incident_data(
        ref=f"INC-T{n}",
        received_at=moment.isoformat(),
        complaint_message_id=f"<t{n}@customer.example>",
        customer={"ref": f"C-T{n}"},
    )
    before = counts(rt)
    try:
        incident = parse_incident(json.dumps(data))
    except InvalidIncident as error:
        assert "received_at:" in str(error)
        assert counts(rt) == before
        return
    case_id = open_case(rt, incident)
    for stage in STAGES:
        run_stage(rt, case_id, stage)


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


cells = st.lists(hostile_text.filter(lambda s: len(s) < 2000), min_size=0, max_size=13)
GOOD_CUSTOMER = {
    "name": "Ann Lee", "email": "ann@example.com", "phone": "+34612345678",
    "postal_address": "Calle Mayor 12, Madrid", "social_platform": "twitter",
    "social_handle": "@ann",
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
@example(raw=b"\r\x00")  # a lone CR in the header: once a raw csv.Error
@example(raw=b"\xc2\x80\r\x00")  # and before the last character of a file
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


# --- public mentions: file drops, feeds, Mastodon's JSON ------------------------------------

EXPORT_COLUMNS = [
    "tweet_id",
    "author_id",
    "inbound",
    "created_at",
    "text",
    "in_response_to_tweet_id",
]
GOOD_TWEET = {
    "tweet_id": "1", "author_id": "115712", "inbound": "True",
    "created_at": "Tue Oct 31 22:10:47 +0000 2017", "text": "@sprintcare is the worst",
    "in_response_to_tweet_id": "",
}  # fmt: skip


def read_and_keep(rt: Runtime, spec: SourceSpec) -> None:
    """Read a source and keep what it read: every post valid, refusals one line each, and a
    second recording keeps nothing new."""
    try:
        fetched = fetch(spec)
    except SourceError as error:
        assert str(error) and "\n" not in str(error)
        return
    assert all(line and "\n" not in line for line in fetched.refused)
    assert all(len(p.text) <= 10_000 for p in fetched.posts)
    record_posts(rt.db, fetched.posts, rt.policy.listening, ["@acme"])
    assert record_posts(rt.db, fetched.posts, rt.policy.listening, ["@acme"]).new == 0


@FUZZ
@given(
    changes=st.lists(
        st.tuples(st.sampled_from(EXPORT_COLUMNS), hostile_text.filter(lambda s: len(s) < 20_000)),
        min_size=1,
        max_size=5,
    )
)
def test_export_rows_with_one_bad_cell_each_are_kept_or_refused_by_line(
    rt: Runtime, tmp_path: Path, changes: list[tuple[str, str]]
) -> None:
    n = next(EXAMPLES)
    rows = [
        [{**GOOD_TWEET, "tweet_id": f"{n}{i}", column: value}[c] for c in EXPORT_COLUMNS]
        for i, (column, value) in enumerate(changes)
    ]
    path = tmp_path / "export.csv"
    write_csv(path, EXPORT_COLUMNS, rows)
    fetched = fetch(SourceSpec(name="fuzz", kind="file", location=str(path)))
    assert len(fetched.posts) + len(fetched.refused) >= len(rows) - 1  # a stray quote may merge
    read_and_keep(rt, SourceSpec(name="fuzz", kind="file", location=str(path)))


@FUZZ
@given(raw=st.binary(max_size=3000), suffix=st.sampled_from([".csv", ".jsonl"]))
def test_any_dropped_file_is_read_or_refused_by_row(
    rt: Runtime, tmp_path: Path, raw: bytes, suffix: str
) -> None:
    path = tmp_path / f"drop{suffix}"
    path.write_bytes(raw)
    read_and_keep(rt, SourceSpec(name="fuzz", kind="file", location=str(path)))


@FUZZ
@given(lines=st.lists(json_values | hostile_text, max_size=5))
def test_any_json_lines_are_posts_or_refused_by_line(
    rt: Runtime, tmp_path: Path, lines: list[Any]
) -> None:
    path = tmp_path / "drop.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines), encoding="utf-8")
    read_and_keep(rt, SourceSpec(name="fuzz", kind="file", location=str(path)))


class Canned(BaseHTTPRequestHandler):
    """Answers every GET with ``body``."""

    body = b""
    kind = "application/json"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", self.kind)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def canned() -> Iterator[str]:
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Canned)) as url:
        yield url


statuses = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "id": json_values | hostile_text,
            "created_at": st.sampled_from(["2026-11-20T10:00:00.000Z", "", "soon"]) | json_values,
            "url": hostile_text | json_values,
            "content": hostile_text | json_values,
            "account": st.fixed_dictionaries({}, optional={"acct": hostile_text | json_values})
            | json_values,
            "mentions": st.lists(json_values) | json_values,
            "reblog": json_values,
            "in_reply_to_account_id": json_values,
        },
    )
    | json_values,
    max_size=4,
)


@FUZZ
@given(answer=statuses | json_values)
def test_any_mastodon_answer_is_statuses_or_a_clear_error(
    rt: Runtime, canned: str, answer: Any
) -> None:
    Canned.body, Canned.kind = json.dumps(answer).encode(), "application/json"
    read_and_keep(rt, SourceSpec(name="fuzz", kind="mastodon", location=canned, query="#acme"))


feed_text = hostile_text.filter(lambda s: len(s) < 5000)


@FUZZ
@given(
    title=feed_text,
    author=feed_text,
    summary=feed_text,
    date=st.sampled_from(["Fri, 20 Nov 2026 10:00:00 +0000", "2026-11-20T10:00:00Z", "", "nope"]),
    garble=st.binary(max_size=200),
)
def test_any_feed_is_entries_or_a_clear_error(
    rt: Runtime, canned: str, title: str, author: str, summary: str, date: str, garble: bytes
) -> None:
    item = (
        f"<item><title>{escape(title)}</title><author>{escape(author)}</author>"
        f"<link>https://reviews.example/{len(title)}</link><pubDate>{date}</pubDate>"
        f"<description>{escape(summary)}</description></item>"
    )
    feed = (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{item}</channel></rss>'
    )
    Canned.body, Canned.kind = feed.encode("utf-8", "surrogatepass") + garble, "application/rss+xml"
    read_and_keep(rt, SourceSpec(name="fuzz", kind="feed", location=canned))


def test_a_billion_laughs_feed_is_not_expanded(rt: Runtime, canned: str) -> None:
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10 if i else "lol"}">' for i in range(10))
    Canned.body = (
        f'<?xml version="1.0"?><!DOCTYPE rss [{laughs}]><rss version="2.0"><channel>'
        "<title>&l9;</title><item><title>&l9;</title><link>https://x.example/1</link>"
        "<pubDate>Fri, 20 Nov 2026 10:00:00 +0000</pubDate></item></channel></rss>"
    ).encode()
    Canned.kind = "application/rss+xml"
    read_and_keep(rt, SourceSpec(name="fuzz", kind="feed", location=canned))
