"""The recovery report: every complaint of a period followed until it is closed, in figures.

A period's complaints are the incidents *received* in it (``since`` included, ``until`` not);
what became of them is what is known when the report is made, so a late resolution still counts.
The definitions, as the README gives them:

- first response: the first message for the case marked sent (by a channel, or by the person
  whose staff action delivered it), measured from the complaint's receipt;
- resolution: the case closed, measured from the complaint's receipt;
- median, and the 90th percentile by the nearest-rank method (the ceil(0.9 n)-th smallest);
- service-level breaches: a first response later than ``first_response_hours`` (or none yet
  and that long already past), a resolution later than ``resolution_days`` (or none yet and
  that long already past); a past complaint imported as history breaches nothing, and its first
  response is the one its import gave;
- recovery rate: of the cases decided *recover* (pursued), those closed resolved (not
  withdrawn) whose customer has not been lost since (no win-back bar);
- customers lost: distinct customers of the period's complaints decided *lost* under the
  one-forgiveness rule or whose case was closed withdrawn;
- compensation spent: the value of the offers made (status ``offered``); revenue kept: the
  annual value of the customers won back (seed 003's "do the math");
- repeat failures: customers of the period's complaints with more than one incident by the end
  of the period;
- feedback themes: check-in feedback recorded and exit answers given in the period, grouped by
  keyword.

Counting is done by the database (grouped queries); only the percentiles, which SQLite cannot
compute, are taken in Python from one column of durations.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select
from sqlalchemy.orm import Session

from amends import exit_questions
from amends.domain import CaseState, Decision, Fault, MessageStatus
from amends.errors import InvalidInput
from amends.nightly.aftercare import WITHDRAWN
from amends.reporting.spreadsheet import write_csv
from amends.runtime import Runtime
from amends.storage import models

DEFAULT_DAYS = 7

# Feedback themes for the marketing team: a theme is named by the words that signal it. A quote
# can fall under several themes; one that matches none is "other".
THEMES: dict[str, tuple[str, ...]] = {
    "price and value": ("price", "expensive", "cost", "cheap", "money", "value", "refund"),
    "reliability and timing": ("late", "delay", "wait", "slow", "missed", "on time", "schedule"),
    "quality of the work": ("dirty", "quality", "broken", "poor", "clean", "mess", "damage"),
    "staff and attitude": ("rude", "staff", "crew", "manager", "attitude", "friendly", "polite"),
    "communication": ("call", "email", "answer", "respond", "told", "listen", "contact", "reply"),
    "went to a competitor": ("competitor", "elsewhere", "another", "switched", "cheaper"),
    "praise": ("thank", "great", "happy", "better", "improved", "good", "love"),
}
OTHER_THEME = "other"


class Period(BaseModel):
    """A half-open span of time, [since, until), in UTC, with its name in the business's days."""

    since: datetime
    until: datetime
    label: str  # e.g. 2026-11-23_2026-11-29: the first and last day, in the business time zone


def parse_day(value: str, option: str) -> date:
    """A day given on the command line (YYYY-MM-DD).

    Raises:
        InvalidInput: it is not a date; the message names the option.
    """
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"{option} {value!r} is not a date (YYYY-MM-DD)") from None


def report_period(
    zone: str, *, since: date | None = None, until: date | None = None, now: datetime | None = None
) -> Period:
    """The period a report covers: from the start of ``since`` to the end of ``until`` (both
    whole days in the business time zone ``zone``); by default the 7 whole days before today,
    so that weekly reports neither overlap nor leave a gap, whenever in the day they run.

    Raises:
        InvalidInput: ``since`` is after ``until`` or in the future.
    """
    tz = ZoneInfo(zone)
    now = now or models.utcnow()
    today = now.astimezone(tz).date()
    if since is None and until is None:
        start = datetime.combine(today - timedelta(days=DEFAULT_DAYS), time(), tz)
        end = datetime.combine(today, time(), tz)
    else:
        since = since or (until or today) - timedelta(days=DEFAULT_DAYS - 1)
        if since > today:
            raise InvalidInput(f"--since {since} is in the future (today is {today})")
        if until is not None and since > until:
            raise InvalidInput(f"--since {since} is after --until {until}")
        start = datetime.combine(since, time(), tz)
        end = datetime.combine(until + timedelta(days=1), time(), tz) if until else now
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    last_day = (end - timedelta(microseconds=1)).astimezone(tz).date()
    return Period(since=start, until=end, label=f"{start.astimezone(tz).date()}_{last_day}")


class Count(BaseModel):
    name: str
    complaints: int


class Durations(BaseModel):
    """How long something took, over the cases where it happened, in hours."""

    cases: int
    median_hours: float | None
    p90_hours: float | None


class Quote(BaseModel):
    """One piece of feedback: personal data, for staff only (CLI and CSV, never artifacts)."""

    source: str  # checkin, or the exit question answered: why, where, second_chance, stay
    customer_ref: str
    recorded_at: datetime
    text: str
    themes: list[str]


class Theme(BaseModel):
    name: str
    count: int
    quotes: list[Quote]


class Headline(BaseModel):
    """What an operator asks first: the complaints, and what became of their cases. Counted by
    the database alone (no row per case comes back), for the figures view every incident run
    brings up to date."""

    period: Period
    made_at: datetime
    currency: str
    complaints: int
    by_category: list[Count]
    pursued: int
    won_back: int
    recovery_rate: float | None
    customers_lost: int
    compensation_spent: float
    offers_made: int
    revenue_kept: float


class Report(Headline):
    """The period's figures; ``None`` where a rate or a time has nothing to be taken of."""

    by_channel: list[Count]
    by_fault: list[Count]
    our_fault: int
    our_fault_share: float | None
    first_response: Durations
    resolution: Durations
    first_response_breaches: int
    resolution_breaches: int
    repeat_customers: list[str]  # their refs, for staff
    themes: list[Theme]

    @property
    def repeat_failures(self) -> int:
        return len(self.repeat_customers)


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile: the smallest value with at least ``share`` of the values at
    or below it; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)), 1) - 1]


def _durations(hours: list[float]) -> Durations:
    return Durations(
        cases=len(hours),
        median_hours=round(statistics.median(hours), 2) if hours else None,
        p90_hours=round(percentile(hours, 0.9), 2) if hours else None,  # type: ignore[arg-type]
    )


def _hours(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() / 3600


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _in_period(period: Period) -> ColumnElement[bool]:
    return and_(
        models.Incident.received_at >= period.since, models.Incident.received_at < period.until
    )


def _counts(session: Session, period: Period, column: Any) -> list[Count]:
    """The period's complaints by ``column``, most first."""
    rows = session.execute(
        select(column, func.count())
        .where(_in_period(period))
        .group_by(column)
        .order_by(func.count().desc(), column)
    ).all()
    return [Count(name=value.value, complaints=n) for value, n in rows]


def _headline(session: Session, period: Period, currency: str, now: datetime) -> Headline:
    by_category = _counts(session, period, models.Incident.category)
    in_period = _in_period(period)
    cases = (
        select(models.Case.id)
        .join(models.Incident, models.Case.incident_id == models.Incident.id)
        .where(in_period)
    )
    # One pass over the period's cases, each read once, then one row per customer: revenue
    # kept counts a customer won back twice once.
    each = (
        select(
            models.Case.customer_id,
            models.Customer.annual_value,
            models.Customer.winback_barred.is_(None).label("welcome"),
            models.Case.decision,
            and_(models.Case.state == CaseState.CLOSED, models.Case.closed_at.is_not(None)).label(
                "closed"
            ),
            exists()
            .where(models.CaseEvent.case_id == models.Case.id, models.CaseEvent.kind == WITHDRAWN)
            .label("withdrawn"),
        )
        .join(models.Incident, models.Case.incident_id == models.Incident.id)
        .join(models.Customer, models.Case.customer_id == models.Customer.id)
        .where(in_period)
        .subquery()
    )
    pursued = each.c.decision == Decision.RECOVER
    won = and_(pursued, each.c.closed, ~each.c.withdrawn, each.c.welcome)
    lost = or_(each.c.decision == Decision.LOST, and_(each.c.closed, each.c.withdrawn))
    customers = (
        select(
            func.max(each.c.annual_value).label("value"),
            func.count(case((pursued, 1))).label("pursued"),
            func.count(case((won, 1))).label("won"),
            func.count(case((lost, 1))).label("lost"),
        )
        .group_by(each.c.customer_id)
        .subquery()
    )
    counted = session.execute(
        select(
            func.coalesce(func.sum(customers.c.pursued), 0),
            func.coalesce(func.sum(customers.c.won), 0),
            func.count(case((customers.c.lost > 0, 1))),
            func.coalesce(func.sum(case((customers.c.won > 0, customers.c.value))), 0.0),
        )
    ).one()
    # PostgreSQL sums counts as numeric.
    pursued_count, won_back, customers_lost = (int(n) for n in counted[:3])
    offers = session.execute(
        select(func.count(models.Offer.id), func.coalesce(func.sum(models.Offer.value), 0.0)).where(
            models.Offer.case_id.in_(cases), models.Offer.status == "offered"
        )
    ).one()
    return Headline(
        period=period,
        made_at=now,
        currency=currency,
        complaints=sum(c.complaints for c in by_category),
        by_category=by_category,
        pursued=pursued_count,
        won_back=won_back,
        recovery_rate=_share(won_back, pursued_count),
        customers_lost=customers_lost,
        compensation_spent=round(float(offers[1]), 2),
        offers_made=offers[0],
        revenue_kept=round(float(counted[3]), 2),
    )


def build_headline(rt: Runtime, period: Period, *, now: datetime | None = None) -> Headline:
    """The period's headline figures (see the module's definitions)."""
    with rt.db.session() as session:
        return _headline(session, period, rt.policy.currency, now or models.utcnow())


def build_report(rt: Runtime, period: Period, *, now: datetime | None = None) -> Report:
    """Compute the period's figures (see the module's definitions)."""
    now = now or models.utcnow()
    levels = rt.policy.service_levels
    with rt.db.session() as session:
        headline = _headline(session, period, rt.policy.currency, now)
        by_fault = _counts(session, period, models.Incident.fault)
        our_fault = sum(c.complaints for c in by_fault if c.name == Fault.OURS.value)

        # Case by case (its messages by their case's index): grouping every message ever sent
        # would make each report slower as the business's history grows.
        first_sent = (
            select(func.min(models.Message.sent_at))
            .where(models.Message.case_id == models.Case.id)
            .where(models.Message.status == MessageStatus.SENT)
            .correlate(models.Case)
            .scalar_subquery()
        )
        rows = session.execute(
            select(
                models.Case.state,
                models.Case.closed_at,
                models.Incident.received_at,
                first_sent,
                models.Case.history,
                models.Case.first_response_at,
            )
            .join(models.Incident, models.Case.incident_id == models.Incident.id)
            .where(_in_period(period))
        ).all()
        responded: list[float] = []
        resolved: list[float] = []
        response_breaches = resolution_breaches = 0
        response_limit = timedelta(hours=levels.first_response_hours)
        resolution_limit = timedelta(days=levels.resolution_days)
        for state, closed_at, received, first, history, first_response_at in rows:
            # A past complaint imported as history keeps its own times, and breaches nothing.
            first = first or first_response_at
            if first is not None:
                responded.append(_hours(first, received))
            if (first or now) - received > response_limit and not history:
                response_breaches += 1
            closed = closed_at if state is CaseState.CLOSED else None
            if closed is not None:
                resolved.append(_hours(closed, received))
            if (closed or now) - received > resolution_limit and not history:
                resolution_breaches += 1

        theirs = select(models.Incident.customer_id).where(_in_period(period))
        repeat = session.scalars(
            select(models.Customer.ref)
            .join(models.Incident, models.Incident.customer_id == models.Customer.id)
            .where(models.Customer.id.in_(theirs), models.Incident.received_at < period.until)
            .group_by(models.Customer.ref)
            .having(func.count(models.Incident.id) > 1)
            .order_by(models.Customer.ref)
        ).all()

        return Report(
            **dict(headline),
            by_channel=_counts(session, period, models.Incident.channel),
            by_fault=by_fault,
            our_fault=our_fault,
            our_fault_share=_share(our_fault, headline.complaints),
            first_response=_durations(responded),
            resolution=_durations(resolved),
            first_response_breaches=response_breaches,
            resolution_breaches=resolution_breaches,
            repeat_customers=list(repeat),
            themes=_themes(_quotes(session, period)),
        )


def _quotes(session: Session, period: Period) -> list[Quote]:
    """Check-in feedback and exit answers recorded in the period, oldest first."""
    quotes = [
        Quote(source="checkin", customer_ref=ref, recorded_at=at, text=text, themes=[])
        for ref, at, text in session.execute(
            select(models.Customer.ref, models.CheckIn.outcome_at, models.CheckIn.feedback)
            .join(models.Case, models.CheckIn.case_id == models.Case.id)
            .join(models.Customer, models.Case.customer_id == models.Customer.id)
            .where(
                models.CheckIn.feedback.is_not(None),
                models.CheckIn.outcome_at >= period.since,
                models.CheckIn.outcome_at < period.until,
            )
        )
    ]
    for answers, ref in session.execute(
        select(models.ExitAnswers, models.Customer.ref)
        .join(models.Customer, models.ExitAnswers.customer_id == models.Customer.id)
        .where(
            models.ExitAnswers.recorded_at >= period.since,
            models.ExitAnswers.recorded_at < period.until,
        )
    ):
        for question in exit_questions.QUESTIONS:
            text = getattr(answers, question.key)
            if text:
                quotes.append(
                    Quote(
                        source=question.report_source,
                        customer_ref=ref,
                        recorded_at=answers.recorded_at,
                        text=text,
                        themes=[],
                    )
                )
    quotes.sort(key=lambda q: (q.recorded_at, q.customer_ref, q.source))
    return quotes


def themes_of(text: str) -> list[str]:
    """The themes a piece of feedback speaks of, by whole words (``late`` is not in
    ``chocolate``); ``other`` when none."""
    lowered = text.lower()
    found = [
        theme
        for theme, words in THEMES.items()
        if any(re.search(rf"\b{re.escape(word)}", lowered) for word in words)
    ]
    return found or [OTHER_THEME]


def _themes(quotes: list[Quote]) -> list[Theme]:
    grouped: dict[str, list[Quote]] = {}
    for quote in quotes:
        quote.themes = themes_of(quote.text)
        for theme in quote.themes:
            grouped.setdefault(theme, []).append(quote)
    return [
        Theme(name=name, count=len(items), quotes=items)
        for name, items in sorted(grouped.items(), key=lambda item: (-len(item[1]), item[0]))
    ]


# --- what the report is shown as ------------------------------------------------------------


def _hours_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} h"


def _rate_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def figures(report: Report) -> list[dict[str, Any]]:
    """The headline figures as rows of (figure, value): the table artifact and summary CSV."""
    r = report
    rows: list[tuple[str, Any]] = [
        ("complaints", r.complaints),
        ("our fault", r.our_fault),
        ("our fault share", _rate_text(r.our_fault_share)),
        ("first response median", _hours_text(r.first_response.median_hours)),
        ("first response p90", _hours_text(r.first_response.p90_hours)),
        ("resolved", r.resolution.cases),
        ("resolution median", _hours_text(r.resolution.median_hours)),
        ("resolution p90", _hours_text(r.resolution.p90_hours)),
        ("first response breaches", r.first_response_breaches),
        ("resolution breaches", r.resolution_breaches),
        ("pursued", r.pursued),
        ("won back", r.won_back),
        ("recovery rate", _rate_text(r.recovery_rate)),
        ("customers lost", r.customers_lost),
        ("offers made", r.offers_made),
        (f"compensation spent ({r.currency})", f"{r.compensation_spent:.2f}"),
        (f"revenue kept ({r.currency} a year)", f"{r.revenue_kept:.2f}"),
        ("repeat failures", r.repeat_failures),
    ]
    return [{"figure": name, "value": value} for name, value in rows]


def report_markdown(report: Report, chart: str | None = None) -> str:
    """The report for its markdown artifact: figures and theme counts, no customer's words
    (quotes are personal data: staff read them in the CLI and the CSV)."""
    r, p = report, report.period
    title = f"# Recovery report {p.since:%Y-%m-%d %H:%M} to {p.until:%Y-%m-%d %H:%M} UTC"
    if not r.complaints:
        lines = [title, "", "No complaints in this period."]
    else:
        lines = [
            title,
            "",
            f"{r.complaints} complaints; {_rate_text(r.our_fault_share)} our fault. "
            f"Of {r.pursued} cases pursued, {r.won_back} won back "
            f"({_rate_text(r.recovery_rate)}); {r.customers_lost} lost.",
            "",
            f"**Do the math:** {r.compensation_spent:.2f} {r.currency} spent on "
            f"{r.offers_made} offers kept {r.revenue_kept:.2f} {r.currency} a year of revenue.",
            "",
            "| figure | value |",
            "|---|---|",
            *[f"| {row['figure']} | {row['value']} |" for row in figures(r)],
            "",
            "## By channel",
            "",
            *[f"- {c.name.replace('_', ' ')}: {c.complaints}" for c in r.by_channel],
            "",
            "## By category",
            "",
            *[f"- {c.name.replace('_', ' ')}: {c.complaints}" for c in r.by_category],
        ]
    lines += [
        "",
        "## Feedback themes (for marketing)",
        "",
        *([f"- {t.name}: {t.count}" for t in r.themes] or ["No feedback recorded in this period."]),
        "",
        "The quotes are personal data: `amends report` and the CSV beside the chart show them "
        "to staff.",
    ]
    if chart:
        lines += ["", f"Chart: `{chart}`"]
    return "\n".join(lines) + "\n"


FIGURE_COLUMNS = ["figure", "value"]
BREAKDOWN_COLUMNS = ["dimension", "name", "complaints"]
QUOTE_COLUMNS = ["theme", "source", "customer_ref", "recorded_at", "text"]


def breakdown(report: Report) -> list[dict[str, Any]]:
    """The complaints by channel, category and fault, as rows for ``breakdown.csv``."""
    return [
        {"dimension": dimension, "name": c.name, "complaints": c.complaints}
        for dimension, counts in (
            ("channel", report.by_channel),
            ("category", report.by_category),
            ("fault", report.by_fault),
        )
        for c in counts
    ]


def quote_rows(report: Report) -> list[dict[str, Any]]:
    """Every quote under each of its themes, as rows for ``feedback.csv`` (staff only)."""
    return [
        {
            "theme": theme.name,
            "source": q.source,
            "customer_ref": q.customer_ref,
            "recorded_at": q.recorded_at.isoformat(),
            "text": q.text,
        }
        for theme in report.themes
        for q in theme.quotes
    ]


def report_folder(rt: Runtime, period: Period, output: Path | None = None) -> Path:
    """Where a period's files go: ``output``, or AMENDS_HOME/reports/<period>/."""
    return output or rt.settings.home / "reports" / period.label


def write_report_files(report: Report, folder: Path) -> dict[str, Path]:
    """Write the report's CSV files (formula-safe) and its chart; returns them by name."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "figures": (folder / "figures.csv", figures(report), FIGURE_COLUMNS),
        "breakdown": (folder / "breakdown.csv", breakdown(report), BREAKDOWN_COLUMNS),
        "feedback": (folder / "feedback.csv", quote_rows(report), QUOTE_COLUMNS),
    }
    written = {}
    for name, (path, rows, columns) in files.items():
        with path.open("w", newline="", encoding="utf-8") as handle:
            write_csv(rows, columns, handle)
        written[name] = path
    written["chart"] = draw_chart(report, folder / "chart.png")
    return written


def draw_chart(report: Report, path: Path) -> Path:
    """A PNG: complaints by category, and the money spent against the revenue kept, where bars
    read faster than numbers."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    from matplotlib import pyplot
    from matplotlib.ticker import MaxNLocator

    figure, (left, right) = pyplot.subplots(1, 2, figsize=(10, 4), dpi=100)
    try:
        names = [c.name.replace("_", " ") for c in report.by_category]
        if names:
            left.barh(names[::-1], [c.complaints for c in report.by_category][::-1])
            left.set_xlabel("complaints")
            left.xaxis.set_major_locator(MaxNLocator(integer=True))
        else:
            left.text(0.5, 0.5, "no complaints", ha="center", va="center")
            left.set_axis_off()
        left.set_title("Complaints by category")
        right.bar(
            ["compensation spent", "revenue kept (a year)"],
            [report.compensation_spent, report.revenue_kept],
            color=["tab:red", "tab:green"],
        )
        right.set_ylabel(report.currency)
        right.set_title("Do the math")
        figure.suptitle(f"Recovery report {report.period.label.replace('_', ' to ')}")
        figure.tight_layout()
        figure.savefig(path, format="png")
    finally:
        pyplot.close(figure)
    return path
