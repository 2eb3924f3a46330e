"""Check-in meetings: on working days at the policy's hour, with a proper invitation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from icalendar import Calendar

from amends.recovery.checkins import Meeting, Party, calendar_message, checkin_times, moved_time
from amends.recovery.policy import CheckinFigures, load_policy


def figures(*cadence: tuple[int, int], hour: int = 10) -> CheckinFigures:
    return CheckinFigures(
        cadence=[{"every_days": every, "times": times} for every, times in cadence],
        business_hours={"start": 9, "end": 17},
        hour=hour,
        duration_minutes=30,
        reschedule_after_days=2,
        misses_before_call=2,
    )


def test_the_default_cadence_is_weekly_for_four_weeks_then_monthly_for_three() -> None:
    assert load_policy().checkins.offsets == [7, 14, 21, 28, 58, 88, 118]


def test_checkins_keep_the_local_hour_across_a_daylight_saving_change() -> None:
    # New York leaves daylight saving on Sunday 1 November 2026: 10:00 EDT is 14:00 UTC, and
    # 10:00 EST is 15:00 UTC.
    opened = datetime(2026, 10, 20, 15, 0, tzinfo=UTC)  # a Tuesday
    times = checkin_times(opened, figures((7, 2)), "America/New_York")
    assert [t.astimezone(UTC).isoformat() for t in times] == [
        "2026-10-27T14:00:00+00:00",
        "2026-11-03T15:00:00+00:00",
    ]
    assert {t.hour for t in times} == {10}
    # Madrid moves its clocks a week earlier (25 October): same wall-clock hour there too.
    madrid = checkin_times(opened, figures((7, 1)), "Europe/Madrid")
    assert madrid[0].astimezone(UTC).isoformat() == "2026-10-27T09:00:00+00:00"


def test_a_checkin_hour_outside_business_hours_is_refused() -> None:
    with pytest.raises(ValueError, match="outside business hours 9-17"):
        figures((7, 1), hour=17)


def test_checkins_fall_on_working_days_in_the_customers_zone() -> None:
    figures_ = figures((7, 1), (14, 1))
    # Sunday 22 November 2026, late evening in New York (Monday already in UTC).
    opened = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    times = checkin_times(opened, figures_, "America/New_York")
    assert [t.isoformat() for t in times] == [
        "2026-11-30T10:00:00-05:00",  # Sunday + 7 = Sunday 29 -> Monday 30
        "2026-12-14T10:00:00-05:00",
    ]


def test_a_missed_checkin_keeps_its_local_hour_across_a_daylight_saving_change() -> None:
    # Friday 23 October 2026, 10:00 in Madrid (summer time); Europe's clocks go back on the 25th.
    friday = datetime(2026, 10, 23, 8, 0, tzinfo=UTC)
    moved = moved_time(friday, figures((7, 1)), "Europe/Madrid", recorded=friday)
    # Two days on is a Sunday: Monday 26th, 10:00 in Madrid, now an hour later in UTC.
    assert moved == datetime(2026, 10, 26, 9, 0, tzinfo=UTC)


def test_a_miss_recorded_late_moves_from_the_day_it_was_recorded() -> None:
    missed = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # Monday, 10:00 in Madrid
    recorded = datetime(2026, 11, 9, 15, 0, tzinfo=UTC)  # a week later
    moved = moved_time(missed, figures((7, 1)), "Europe/Madrid", recorded=recorded)
    assert moved == datetime(2026, 11, 11, 9, 0, tzinfo=UTC)  # Wednesday 11th, 10:00


def test_the_invitation_is_an_icalendar_request() -> None:
    raw = calendar_message(
        "REQUEST",
        [
            Meeting(
                uid="case-1-checkin-1@acme.example",
                sequence=0,
                starts_at=datetime(2026, 11, 30, 9, tzinfo=UTC),
                duration_minutes=30,
                summary="Check-in",
                description="Check-in 1 of 3",
            )
        ],
        organizer=Party("care@acme.example", "Acme care"),
        attendee=Party("rk@example.com", "Rodolfo K."),
        stamp=datetime(2026, 11, 22, tzinfo=UTC),
    )
    calendar = Calendar.from_ical(raw)
    assert calendar["method"] == "REQUEST"
    event = calendar.walk("VEVENT")[0]
    assert str(event["uid"]) == "case-1-checkin-1@acme.example"
    assert event["sequence"] == 0
    assert event.decoded("dtend") - event.decoded("dtstart") == (
        datetime(2026, 11, 30, 9, 30, tzinfo=UTC) - datetime(2026, 11, 30, 9, tzinfo=UTC)
    )
    assert str(event["attendee"]) == "mailto:rk@example.com"
