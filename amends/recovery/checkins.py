"""Check-in meetings kept faithfully (seed 004): when to hold them, their calendar messages,
and what happened at each.

A check-in keeps one iCalendar UID for life: moving it sends a REQUEST with SEQUENCE+1, and
closing the case sends a CANCEL, so the customer's calendar always shows the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress, vText

from amends.business import Business
from amends.recovery.policy import CheckinFigures

SATURDAY = 5

CalendarMethod = Literal["REQUEST", "CANCEL"]


def working_day_at(
    day: date, hour: int, zone: ZoneInfo, business: Business | None = None
) -> datetime:
    """``hour`` o'clock local time on ``day``, or on the business's next open day if it is
    closed then (a closed weekday, a holiday); without a business, off weekends to Monday."""
    if business is not None:
        day = business.next_open_day(day)
    while business is None and day.weekday() >= SATURDAY:
        day += timedelta(days=1)
    return datetime.combine(day, time(hour), tzinfo=zone)


def checkin_times(
    opened: datetime,
    figures: CheckinFigures,
    timezone: str,
    *,
    count: int | None = None,
    business: Business | None = None,
) -> list[datetime]:
    """The check-ins' start times: the first ``count`` of the policy's cadence (all of it when
    None; see :meth:`CheckinFigures.count_for`), counted from the day the case opened, at the
    policy's hour in the customer's time zone, moved to the business's next open day.

    The hour is wall-clock time: across a daylight-saving change the meeting stays at 10:00
    local, and its UTC time moves.
    """
    zone = ZoneInfo(timezone)
    local_start = opened.astimezone(zone).date()
    offsets = figures.offsets if count is None else figures.offsets[:count]
    return [
        working_day_at(local_start + timedelta(days=days), figures.hour, zone, business)
        for days in offsets
    ]


def moved_time(
    missed: datetime,
    figures: CheckinFigures,
    timezone: str,
    *,
    recorded: datetime,
    business: Business | None = None,
) -> datetime:
    """Where a missed check-in moves: the first working day ``reschedule_after_days`` after it
    was missed, or after the miss was recorded if that came later (never into the past), at the
    policy's hour in the customer's zone."""
    zone = ZoneInfo(timezone)
    since = max(missed, recorded).astimezone(zone).date()
    return working_day_at(
        since + timedelta(days=figures.reschedule_after_days), figures.hour, zone, business
    )


@dataclass(frozen=True)
class Meeting:
    """One check-in as a calendar sees it."""

    uid: str
    sequence: int
    starts_at: datetime
    duration_minutes: int
    summary: str
    description: str


@dataclass(frozen=True)
class Party:
    email: str
    name: str


def calendar_message(
    method: CalendarMethod,
    meetings: list[Meeting],
    *,
    organizer: Party,
    attendee: Party,
    stamp: datetime,
) -> bytes:
    """An iCalendar message: a REQUEST adds or updates the meetings in the attendee's calendar
    with one click, a CANCEL removes them. Each meeting's SEQUENCE says which version wins."""
    calendar = Calendar()
    calendar.add("prodid", "-//amends//customer recovery//EN")
    calendar.add("version", "2.0")
    calendar.add("method", method)
    for meeting in meetings:
        event = Event()
        event.add("uid", meeting.uid)
        event.add("sequence", meeting.sequence)
        event.add("dtstamp", stamp)
        event.add("dtstart", meeting.starts_at)
        event.add("dtend", meeting.starts_at + timedelta(minutes=meeting.duration_minutes))
        event.add("summary", meeting.summary)
        event.add("description", meeting.description)
        event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
        organizer_address = vCalAddress(f"mailto:{organizer.email}")
        organizer_address.params["cn"] = vText(organizer.name)
        event["organizer"] = organizer_address
        attendee_address = vCalAddress(f"mailto:{attendee.email}")
        attendee_address.params["cn"] = vText(attendee.name)
        attendee_address.params["role"] = vText("REQ-PARTICIPANT")
        attendee_address.params["rsvp"] = vText("TRUE")
        event.add("attendee", attendee_address, encode=0)
        calendar.add_component(event)
    # A VTIMEZONE for each TZID, as Outlook requires, with the zone's rules from a year before
    # the first meeting to a year after the last: by default they run from 1970 to 2038, which
    # makes each invitation kilobytes longer and takes most of the time to build.
    days = [meeting.starts_at.date() for meeting in meetings] or [stamp.date()]
    calendar.add_missing_timezones(
        first_date=min(days) - timedelta(days=366), last_date=max(days) + timedelta(days=366)
    )
    return calendar.to_ical()
