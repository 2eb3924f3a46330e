"""Check-in meetings: on working days at the policy's hour, with a proper invitation."""

from __future__ import annotations

from datetime import UTC, datetime

from icalendar import Calendar

from amends.checkins import checkin_times, invitation
from amends.policy import CheckinFigures


def test_checkins_fall_on_working_days_in_the_customers_zone() -> None:
    figures = CheckinFigures(cadence_days=[7, 21], hour=10, duration_minutes=30)
    # Sunday 22 November 2026, late evening in New York (Monday already in UTC).
    opened = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    times = checkin_times(opened, figures, "America/New_York")
    assert [t.isoformat() for t in times] == [
        "2026-11-30T10:00:00-05:00",  # Sunday + 7 = Sunday 29 -> Monday 30
        "2026-12-14T10:00:00-05:00",
    ]


def test_the_invitation_is_an_icalendar_request() -> None:
    raw = invitation(
        uid="case-1-checkin-1@acme.example",
        sequence=0,
        starts_at=datetime(2026, 11, 30, 9, tzinfo=UTC),
        duration_minutes=30,
        summary="Check-in",
        description="Check-in 1 of 3",
        organizer="care@acme.example",
        organizer_name="Acme care",
        attendee="rk@example.com",
        attendee_name="Rodolfo K.",
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
