"""Check-in meetings kept faithfully (seed 004): when to hold them, and their invitations."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress, vText

from amends.policy import CheckinFigures

SATURDAY = 5


def checkin_times(opened: datetime, figures: CheckinFigures, timezone: str) -> list[datetime]:
    """The check-ins' start times: the policy's cadence counted from the day the case opened, at
    the policy's hour in the customer's time zone, moved off weekends to the next Monday.

    The hour is wall-clock time: across a daylight-saving change the meeting stays at 10:00
    local, and its UTC time moves.
    """
    zone = ZoneInfo(timezone)
    local_start = opened.astimezone(zone).date()
    times = []
    for days in figures.offsets:
        day = local_start + timedelta(days=days)
        while day.weekday() >= SATURDAY:
            day += timedelta(days=1)
        times.append(datetime.combine(day, time(figures.hour), tzinfo=zone))
    return times


def invitation(
    *,
    uid: str,
    sequence: int,
    starts_at: datetime,
    duration_minutes: int,
    summary: str,
    description: str,
    organizer: str,
    organizer_name: str,
    attendee: str,
    attendee_name: str,
    stamp: datetime,
) -> bytes:
    """An iCalendar REQUEST for one check-in, which calendar programs add with one click."""
    calendar = Calendar()
    calendar.add("prodid", "-//amends//customer recovery//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "REQUEST")
    event = Event()
    event.add("uid", uid)
    event.add("sequence", sequence)
    event.add("dtstamp", stamp)
    event.add("dtstart", starts_at)
    event.add("dtend", starts_at + timedelta(minutes=duration_minutes))
    event.add("summary", summary)
    event.add("description", description)
    organizer_address = vCalAddress(f"mailto:{organizer}")
    organizer_address.params["cn"] = vText(organizer_name)
    event["organizer"] = organizer_address
    attendee_address = vCalAddress(f"mailto:{attendee}")
    attendee_address.params["cn"] = vText(attendee_name)
    attendee_address.params["role"] = vText("REQ-PARTICIPANT")
    attendee_address.params["rsvp"] = vText("TRUE")
    event.add("attendee", attendee_address, encode=0)
    calendar.add_component(event)
    calendar.add_missing_timezones()  # a VTIMEZONE for the TZID, as Outlook requires
    return calendar.to_ical()
