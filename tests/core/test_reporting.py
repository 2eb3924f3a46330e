"""The recovery report's figures, against values worked out by hand on a small fixture.

The fixture (times in UTC; the business is in Europe/Madrid, UTC+1 in November). The period is
the days 2026-11-02 to 2026-11-08 in Madrid: [2026-11-01 23:00, 2026-11-08 23:00) UTC. The report
is made on 2026-11-30 12:00. Service levels (shipped policy): first response 24 h, resolution
14 days.

inc cust channel category        fault    received    decision    1st sent    closed      offer
1   A    email   service_failure ours     11-02 09:00 recover     11-02 13:00 11-10 09:00 300 made
2   B    phone   late_delivery   shared   11-03 10:00 recover     11-04 16:00 11-20 10:00 200 made
3   C    email   billing         customer 11-01 23:00 smooth_over 11-02 01:00 11-02 11:00 -
4   D    social  service_failure ours     11-05 12:00 recover     11-05 13:00 11-07 12:00w 150 made
5   A    email   quality         ours     11-06 09:00 lost        11-06 21:00 open        999 prop.
6   E    chat    late_delivery   ours     11-07 15:00 recover     none        open        100 made
0   E    email   other           ours     10-20 10:00 (before the period)             500 made
8   C    email   other           ours     11-08 23:00 (at the period's end: not in it)
9   B    email   other           ours     11-15 10:00 (after the period)
2's first response: the earlier of its two messages (11-05 09:00 and 11-04 16:00).
(w) closed withdrawn. A was lost (win-back barred) by incident 5.
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from amends.domain import (
    CaseState,
    Category,
    Channel,
    Decision,
    Fault,
    MessageKind,
    MessageStatus,
    OfferKind,
    ReplyChannel,
    Severity,
    Stage,
)
from amends.errors import InvalidInput
from amends.nightly.aftercare import WITHDRAWN
from amends.reporting.report import (
    Headline,
    build_headline,
    build_report,
    report_markdown,
    report_period,
    write_report_files,
)
from amends.reporting.views import recovery_figures
from amends.runtime import Runtime
from amends.settings import Settings
from amends.storage import models

ZONE = "Europe/Madrid"
MADE = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def at(month: int, day: int, hour: int) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=UTC)


def seed(rt: Runtime) -> None:
    """The fixture of the module's docstring."""
    with rt.db.session() as s:
        people = {
            key: models.Customer(ref=f"C-{key}", name=f"Customer {key}", annual_value=value)
            for key, value in {"A": 12000, "B": 3000, "C": 500, "D": 800, "E": 1000}.items()
        }
        people["A"].winback_barred = "lost"
        s.add_all(people.values())
        s.flush()
        number = 0

        def case(
            who: str,
            channel: Channel,
            category: Category,
            fault: Fault,
            received: datetime,
            decision: Decision | None,
            *,
            sent: list[datetime],
            closed: datetime | None,
            offer: tuple[float, str] | None,
        ) -> models.Case:
            nonlocal number
            number += 1
            customer = people[who]
            incident = models.Incident(
                ref=f"INC-{number}",
                customer_id=customer.id,
                channel=channel,
                received_at=received,
                summary="Let down",
                category=category,
                severity=Severity.MEDIUM,
                fault=fault,
                costs={},
                payload={},
            )
            record = models.Case(
                incident=incident,
                customer_id=customer.id,
                state=CaseState.CLOSED if closed else CaseState.AWAITING_STAFF,
                decision=decision,
                reply_channel=ReplyChannel.EMAIL,
                first_response_due=received,
                opened_at=received,
                closed_at=closed,
            )
            s.add(record)
            s.flush()
            for index, moment in enumerate(sent):
                s.add(
                    models.Message(
                        customer_id=customer.id,
                        case_id=record.id,
                        key=f"case-{record.id}:{index}",
                        stage=Stage.FOLLOW_UP,
                        kind=MessageKind.APOLOGY,
                        channel=ReplyChannel.EMAIL,
                        recipient="x@example.com",
                        body="Sorry",
                        status=MessageStatus.SENT,
                        sent_at=moment,
                    )
                )
            if offer:
                value, status = offer
                s.add(
                    models.Offer(
                        case_id=record.id,
                        kind=OfferKind.DISCOUNT,
                        value=value,
                        currency="EUR",
                        status=status,
                    )
                )
            return record

        def checkin(record: models.Case, n: int, outcome: datetime, feedback: str | None) -> None:
            s.add(
                models.CheckIn(
                    case_id=record.id,
                    number=n,
                    starts_at=outcome,
                    duration_minutes=30,
                    uid=f"c{record.id}-{n}",
                    status="held",
                    feedback=feedback,
                    outcome_at=outcome,
                )
            )

        e, f, o = Channel, Category, Fault
        made, recover = "offered", Decision.RECOVER
        # The docstring's table, row by row: who, channel, category, fault, received, decision,
        # messages sent, closed, offer.
        rows = [
            ("A", e.EMAIL, f.SERVICE_FAILURE, o.OURS, at(11, 2, 9), recover,
             [at(11, 2, 13)], at(11, 10, 9), (300, made)),
            ("B", e.PHONE, f.LATE_DELIVERY, o.SHARED, at(11, 3, 10), recover,
             [at(11, 5, 9), at(11, 4, 16)], at(11, 20, 10), (200, made)),
            ("C", e.EMAIL, f.BILLING, o.CUSTOMER, at(11, 1, 23), Decision.SMOOTH_OVER,
             [at(11, 2, 1)], at(11, 2, 11), None),
            ("D", e.SOCIAL, f.SERVICE_FAILURE, o.OURS, at(11, 5, 12), recover,
             [at(11, 5, 13)], at(11, 7, 12), (150, made)),
            ("A", e.EMAIL, f.QUALITY, o.OURS, at(11, 6, 9), Decision.LOST,
             [at(11, 6, 21)], None, (999, "proposed")),
            ("E", e.CHAT, f.LATE_DELIVERY, o.OURS, at(11, 7, 15), recover, [], None, (100, made)),
            ("E", e.EMAIL, f.OTHER, o.OURS, at(10, 20, 10), recover,
             [], at(10, 21, 10), (500, made)),
            ("C", e.EMAIL, f.OTHER, o.OURS, at(11, 8, 23), None, [], None, None),
            ("B", e.EMAIL, f.OTHER, o.OURS, at(11, 15, 10), None, [], None, None),
        ]  # fmt: skip
        one, two, _, four, *_ = [
            case(*row[:6], sent=row[6], closed=row[7], offer=row[8]) for row in rows
        ]
        s.add(models.CaseEvent(case_id=four.id, kind=WITHDRAWN, text="Left", at=at(11, 7, 12)))

        checkin(one, 1, at(11, 3, 10), "The crew was late again but the manager called me")
        checkin(two, 1, at(11, 6, 10), "Thank you, much better now")
        checkin(two, 2, at(11, 7, 10), None)  # held without feedback: no quote
        checkin(one, 2, at(11, 20, 10), "Too expensive")  # after the period
        s.add(
            models.ExitAnswers(
                customer_id=people["D"].id,
                case_id=four.id,
                why="Prices went up",
                went_to="A competitor down the road",
                second_chance="=cmd|' /C calc'!A0",
                stay="Someone answering the phone",
                recorded_by="dana",
                recorded_at=at(11, 7, 13),
            )
        )
        s.add(
            models.ExitAnswers(
                customer_id=people["E"].id,
                why="Moved away",
                recorded_by="dana",
                recorded_at=at(11, 25, 9),  # after the period
            )
        )


def the_week() -> object:
    return report_period(ZONE, since=date(2026, 11, 2), until=date(2026, 11, 8), now=MADE)


def test_the_period_is_whole_days_in_the_business_time_zone() -> None:
    period = the_week()
    assert (period.since, period.until) == (at(11, 1, 23), at(11, 8, 23))
    assert period.label == "2026-11-02_2026-11-08"
    # Scheduled with no parameters: the 7 whole days before today (the 30th, in Madrid), so
    # that a run late in the day or on a daylight-saving week still covers the same days.
    default = report_period(ZONE, now=MADE)
    assert (default.since, default.until) == (at(11, 22, 23), at(11, 29, 23))
    assert default.label == "2026-11-23_2026-11-29"
    assert report_period(ZONE, now=at(11, 30, 22)) == default


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        (date(2026, 11, 9), date(2026, 11, 8), "--since 2026-11-09 is after --until 2026-11-08"),
        (date(2026, 12, 1), None, "--since 2026-12-01 is in the future"),
    ],
)
def test_a_bad_period_is_named(since: date, until: date | None, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        report_period(ZONE, since=since, until=until, now=MADE)


def test_the_figures_match_the_hand_count(rt: Runtime) -> None:
    seed(rt)
    r = build_report(rt, the_week(), now=MADE)  # type: ignore[arg-type]
    # Incidents 1-6: incident 3 at the period's first instant is in, 8 at its end is not.
    assert r.complaints == 6
    counts = [(c.name, c.complaints) for c in r.by_channel]
    assert counts == [("email", 3), ("chat", 1), ("phone", 1), ("social", 1)]
    counts = [(c.name, c.complaints) for c in r.by_category]
    assert counts == [("late_delivery", 2), ("service_failure", 2), ("billing", 1), ("quality", 1)]
    assert [(c.name, c.complaints) for c in r.by_fault] == [
        ("ours", 4),
        ("customer", 1),
        ("shared", 1),
    ]
    # Ours: 1, 4, 5, 6 of 6.
    assert (r.our_fault, r.our_fault_share) == (4, 0.6667)
    # First responses, hours: 1 -> 4, 2 -> 30 (the earlier of its two), 3 -> 2, 4 -> 1, 5 -> 12;
    # 6 has none. Sorted 1, 2, 4, 12, 30: median 4; p90 the ceil(4.5) = 5th: 30.
    assert r.first_response.model_dump() == {"cases": 5, "median_hours": 4.0, "p90_hours": 30.0}
    # Resolutions, hours: 1 -> 8 days = 192, 2 -> 17 days = 408, 3 -> 12, 4 -> 48 (withdrawn is
    # closed too). Sorted 12, 48, 192, 408: median (48 + 192) / 2 = 120; p90 the 4th: 408.
    assert r.resolution.model_dump() == {"cases": 4, "median_hours": 120.0, "p90_hours": 408.0}
    # First response over 24 h: 2 (30 h) and 6 (none, 22 days on). Resolution over 14 days:
    # 2 (17 days), 5 and 6 (open 24 and 22.9 days on).
    assert (r.first_response_breaches, r.resolution_breaches) == (2, 3)
    # Pursued: 1, 2, 4, 6. Won back: 2 only (1's customer A was lost since; 4 withdrew; 6 is
    # open): 1 of 4. Lost: A (decided lost in 5) and D (withdrew).
    assert (r.pursued, r.won_back, r.recovery_rate, r.customers_lost) == (4, 1, 0.25, 2)
    # Offers made: 300 + 200 + 150 + 100 (5's 999 was only proposed; 0's 500 is before).
    # Revenue kept: B's 3000 a year.
    assert (r.offers_made, r.compensation_spent, r.revenue_kept) == (4, 750.0, 3000.0)
    # A: incidents 1 and 5; E: 0 and 6. B's 9 comes after the period, C's 8 at its end.
    assert r.repeat_customers == ["C-A", "C-E"]
    # Quotes: check-in 1 of case 1 (late, crew/manager, called), check-in 1 of case 2 (thank,
    # better), D's four exit answers (prices; competitor; the formula matches nothing;
    # answering). Communication: 2; every other theme 1, by name.
    assert [(t.name, t.count) for t in r.themes] == [
        ("communication", 2),
        ("other", 1),
        ("praise", 1),
        ("price and value", 1),
        ("reliability and timing", 1),
        ("staff and attitude", 1),
        ("went to a competitor", 1),
    ]
    (competitor,) = [t for t in r.themes if t.name == "went to a competitor"]
    assert [(q.source, q.customer_ref, q.text) for q in competitor.quotes] == [
        ("where", "C-D", "A competitor down the road")
    ]


def test_the_figures_view_is_the_reports_headline(rt: Runtime) -> None:
    # The view every incident run brings up to date is counted by the database alone, and says
    # what the full report says.
    seed(rt)
    headline = build_headline(rt, the_week(), now=MADE)  # type: ignore[arg-type]
    report = build_report(rt, the_week(), now=MADE)  # type: ignore[arg-type]
    assert headline == Headline(**{name: getattr(report, name) for name in Headline.model_fields})
    assert (headline.complaints, headline.pursued, headline.won_back) == (6, 4, 1)
    assert (headline.customers_lost, headline.revenue_kept, headline.compensation_spent) == (
        2,
        3000.0,
        750.0,
    )
    view = recovery_figures(headline)
    assert "**Recovery rate** 25% · **won back** 1 of 4 pursued · **lost** 2" in view
    assert "late delivery" in view and "kept (EUR/yr)" in view


def test_the_files_and_the_markdown(rt: Runtime, tmp_path: Path) -> None:
    seed(rt)
    report = build_report(rt, the_week(), now=MADE)  # type: ignore[arg-type]
    files = write_report_files(report, tmp_path / "out")
    assert files["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with files["feedback"].open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8  # 6 quotes, one under three themes
    (formula,) = [row for row in rows if row["source"] == "second_chance"]
    assert formula["text"] == "'=cmd|' /C calc'!A0"  # shown as text, never run
    with files["figures"].open(newline="") as handle:
        summary = {row["figure"]: row["value"] for row in csv.DictReader(handle)}
    assert summary["recovery rate"] == "25%" and summary["revenue kept (EUR a year)"] == "3000.00"
    markdown = report_markdown(report, chart=str(files["chart"]))
    assert "750.00 EUR spent on 4 offers kept 3000.00 EUR a year" in markdown
    assert "- communication: 2" in markdown
    # The customers' words and refs stay out of the artifact.
    for words in ("competitor down the road", "manager called", "C-A", "calc"):
        assert words not in markdown


def test_an_empty_period(rt: Runtime, tmp_path: Path) -> None:
    seed(rt)
    period = report_period(ZONE, since=date(2026, 6, 1), until=date(2026, 6, 7), now=MADE)
    report = build_report(rt, period, now=MADE)
    assert (report.complaints, report.our_fault_share, report.recovery_rate) == (0, None, None)
    assert report.first_response.median_hours is None and report.resolution.p90_hours is None
    assert (report.compensation_spent, report.revenue_kept, report.themes) == (0.0, 0.0, [])
    assert "No complaints in this period." in report_markdown(report)
    files = write_report_files(report, tmp_path / "empty")
    assert files["feedback"].read_text().splitlines() == [
        "theme,source,customer_ref,recorded_at,text"
    ]
    assert files["breakdown"].read_text().splitlines() == ["dimension,name,complaints"]
    assert files["chart"].stat().st_size > 0


def test_the_recovery_rate_counts_cases_and_revenue_kept_counts_customers(rt: Runtime) -> None:
    # One customer let down twice in the week and won back twice: 2 of 2 cases recovered
    # (100 %), and their 4,000 a year kept once, not twice.
    with rt.db.session() as s:
        customer = models.Customer(ref="C-R", name="Repeat", annual_value=4000)
        s.add(customer)
        s.flush()
        for number, day in ((1, 3), (2, 5)):
            s.add(
                models.Case(
                    incident=models.Incident(
                        ref=f"INC-R{number}", customer_id=customer.id, channel=Channel.EMAIL,
                        received_at=at(11, day, 9), summary="Let down",
                        category=Category.SERVICE_FAILURE, severity=Severity.MEDIUM,
                        fault=Fault.OURS, costs={}, payload={},
                    ),
                    customer_id=customer.id, state=CaseState.CLOSED, decision=Decision.RECOVER,
                    reply_channel=ReplyChannel.EMAIL, first_response_due=at(11, day, 9),
                    opened_at=at(11, day, 9), closed_at=at(11, day + 1, 9),
                )
            )  # fmt: skip
    r = build_report(rt, the_week(), now=MADE)  # type: ignore[arg-type]
    assert (r.pursued, r.won_back, r.recovery_rate, r.revenue_kept) == (2, 2, 1.0, 4000)
    assert r.repeat_customers and r.customers_lost == 0


def test_a_report_reads_its_period_by_index_never_the_whole_history(tmp_path: Path) -> None:
    """Every incident run's views make the last 30 days' figures: reading every complaint or
    message on file to do so would slow each run as the history grows. Pinned by the query
    plans of SQLite, whose planner has no statistics to lean on (PostgreSQL's follow its
    statistics), not by a timing."""
    rt = Runtime.from_settings(Settings(home=tmp_path / "var"), channels={})
    seed(rt)
    statements: list[tuple[str, Any]] = []

    def note(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append((statement, parameters))

    event.listen(rt.db.engine, "before_cursor_execute", note)
    try:
        build_report(rt, the_week(), now=MADE)  # type: ignore[arg-type]
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", note)
    history = ("incidents", "cases", "messages", "case_events", "customers")
    with rt.db.engine.connect() as connection:
        plans = [
            detail
            for statement, parameters in statements
            for *_, detail in connection.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement}", parameters
            )
        ]
    rt.db.dispose()
    # A whole table ("SCAN incidents"; "SCAN TABLE incidents" before SQLite 3.36), or every
    # message ever sent (searched by its status alone).
    whole = re.compile(rf"^SCAN (TABLE )?({'|'.join(history)})\b|ix_messages_status")
    assert len(statements) >= 5 and plans
    assert [detail for detail in plans if whole.search(detail)] == []
