"""Intake refuses bad incidents with a message that names the field, and writes nothing."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from factories import incident_data, make_incident
from sqlalchemy import func, select

from amends.domain import ReplyChannel
from amends.errors import IncidentConflict, InvalidIncident, NotFound, TemplateError
from amends.recovery.intake import (
    MAX_INCIDENT_BYTES,
    check_can_file,
    filed_incident,
    open_case,
    parse_incident,
    validate_incident,
)
from amends.runtime import Runtime
from amends.storage import models


def parse(**changes: object) -> object:
    return parse_incident(json.dumps(incident_data(**changes)))


def test_a_valid_incident_is_normalised() -> None:
    incident = parse(customer={"phone": "+34 612 345 678", "email": "RK@Example.com"})
    assert incident.customer.phone == "+34612345678"
    assert incident.customer.email == "RK@example.com"
    assert incident.received_at.utcoffset().total_seconds() == 3600


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"channel": "carrier_pigeon"}, "channel: Input should be 'email'"),
        ({"customer": {"email": "not-an-address"}}, "customer.email: is not a valid email"),
        ({"customer": {"phone": "555"}}, "customer.phone: is not a phone number"),
        ({"severity": "apocalyptic"}, "severity:"),
        ({"summary": "x" * 201}, "summary: String should have at most 200 characters"),
        ({"details": "x" * 10_001}, "details: String should have at most 10000 characters"),
        ({"received_at": "2026-11-20T09:30:00"}, "received_at: needs its UTC offset"),
        ({"customer": {"name": "Eve\r\nBcc: all@example.com"}}, "customer.name: must be a single"),
        ({"complaint_subject": "Hi\nBcc: x@example.com"}, "complaint_subject: must be a single"),
        ({"customer": {"locale": "xx-nowhere"}}, "customer.locale: is not a known locale"),
        ({"customer": {"timezone": "Mars/Olympus"}}, "customer.timezone: is not a known time"),
        ({"costs": {"economic": -5}}, "costs.economic: Input should be greater than or equal to 0"),
        ({"ref": "bad ref with spaces"}, "ref: String should match pattern"),
        ({"surprise": 1}, "surprise: Extra inputs are not permitted"),
        ({"received_at": "2099-01-01T00:00:00+00:00"}, "received_at: is in the future"),
        ({"complaint_message_id": "<a\x01b@x>"}, "complaint_message_id: String should match"),
        # Times no complaint arrived at: year 1 crashed a later stage, and with an offset the
        # insert, printing the incident to stderr.
        ({"received_at": "0001-01-01T00:00:00+00:00"}, "received_at: is before 1970"),
        ({"received_at": "0001-01-01T00:00:00+05:00"}, "received_at: is before 1970"),
        ({"received_at": "1969-12-31T23:59:59+00:00"}, "received_at: is before 1970"),
        # Unicode line breaks read as one in a text part: "Hello Ann" then "Bcc: ...".
        (
            {"customer": {"name": "Ann\u2028Bcc: all@example.com"}},
            "customer.name: must be a single",
        ),
        (
            {"customer": {"name": "Ann\u2029Bcc: all@example.com"}},
            "customer.name: must be a single",
        ),
        (
            {"customer": {"name": "Ann\u0085Bcc: all@example.com"}},
            "customer.name: must be a single",
        ),
        ({"summary": "Late\u2028again"}, "summary: must be a single line"),
        ({"customer": {"name": "\u200b"}}, "customer.name: must contain a visible character"),
        ({"customer": {"name": "\u200b \u2060"}}, "customer.name: must contain a visible"),
        (
            {"customer": {"name": "Ann \u202egnirts"}},
            "customer.name: must not contain right-to-left",
        ),
        ({"details": "fine\u2066hidden\u2069"}, "details: must not contain right-to-left"),
        (
            {"customer": {"annual_value": True}},
            "customer.annual_value: Input should be a valid num",
        ),
        ({"costs": {"economic": False}}, "costs.economic: Input should be a valid number"),
        ({"customer": {"referrals": True}}, "customer.referrals: Input should be a valid integer"),
        ({"abusive": "yes"}, "abusive: Input should be a valid boolean"),
        ({"abusive": 1}, "abusive: Input should be a valid boolean"),
        ({"customer": {"timezone": "localtime"}}, "customer.timezone: is not a known time zone"),
        # Addresses no postman can use.
        ({"customer": {"postal_address": "1 Ocean Dr, Miami FL 334XX"}}, "has a masked or partial"),
        ({"customer": {"postal_address": "Calle Mayor 12, 28***"}}, "has a masked or partial"),
        ({"customer": {"postal_address": "1 Ocean Dr, Miami, FL 3314"}}, "ZIP code '3314'"),
        ({"customer": {"postal_address": "1 Ocean Dr\nMiami FL 331\nUSA"}}, "ZIP code '331'"),
        ({"customer": {"postal_address": "1 Ocean Drive"}}, "must give the street and the town"),
    ],
)
def test_bad_fields_are_named(changes: dict, names: str) -> None:
    with pytest.raises(InvalidIncident) as caught:
        parse(**changes)
    assert names in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "address",
    [
        "1 Ocean Dr, Miami, FL 33139",
        "1 Ocean Dr\nMiami, FL 33139-1234\nUSA",
        "1 Hay St, Perth WA 6000, Australia",  # a four-digit code, not in the US
        "Calle Mayor 12, 28013 Madrid",
        "221B Baker Street\nLondon NW1 6XE",
        "Apt #4, 12 Rue X, 75001 Paris",
    ],
)
def test_a_whole_postal_address_is_accepted(address: str) -> None:
    assert parse(customer={"postal_address": address}).customer.postal_address == address


def test_numbers_and_names_that_are_fine_still_pass() -> None:
    incident = parse(
        abusive=True,
        costs={"economic": 450, "time_hours": 6.5},
        customer={"annual_value": 12000, "name": "Zoë \u200dRuiz", "timezone": "America/New_York"},
    )
    assert (incident.costs.economic, incident.customer.annual_value) == (450.0, 12000.0)
    assert incident.abusive is True


def test_nan_from_python_names_what_is_wrong() -> None:
    # JSON cannot carry NaN (parse_incident refuses it), but the flow's parameter can.
    data = incident_data()
    data["customer"]["annual_value"] = float("nan")
    with pytest.raises(InvalidIncident, match="customer.annual_value: Input should be a finite"):
        validate_incident(data)


@pytest.mark.parametrize(
    ("channel", "missing", "needs"),
    [
        ("email", {"email": None}, "customer.email"),
        ("letter", {"postal_address": None}, "customer.postal_address"),
        ("voicemail", {"phone": None}, "customer.phone"),
        ("social", {"social": None}, "customer.social"),
        ("in_person", {"phone": None, "postal_address": None, "email": None}, "customer.phone or"),
    ],
)
def test_a_complaint_needs_a_contact_on_its_channel(
    channel: str, missing: dict, needs: str
) -> None:
    with pytest.raises(InvalidIncident, match=f"a complaint by {channel} needs {needs}"):
        parse(channel=channel, customer=missing)


def test_malformed_json_says_where() -> None:
    with pytest.raises(InvalidIncident, match="not valid JSON: .* line 1, column"):
        parse_incident('{"ref": "INC-1",')


def test_a_json_array_is_not_an_incident() -> None:
    with pytest.raises(InvalidIncident, match="must be a JSON object"):
        parse_incident("[1, 2]")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"ref": "A", "ref": "B"}', "incident gives 'ref' twice"),
        ('{"customer": {"name": "A", "name": "B"}}', "incident gives 'name' twice"),
        ('{"costs": {"economic": ' + "9" * 5000 + "}}", "a number of 5,000 digits; at most 15"),
        ('{"costs": {"economic": -' + "9" * 16 + "}}", "a number of 16 digits"),
        ('{"costs": {"economic": NaN}}', "incident has NaN, which is not a number JSON allows"),
        ('{"costs": {"economic": -Infinity}}', "incident has -Infinity"),
    ],
)
def test_json_an_incident_cannot_mean_is_refused_in_one_line(text: str, says: str) -> None:
    with pytest.raises(InvalidIncident, match=says):
        parse_incident(text)


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(InvalidIncident, match="not valid UTF-8"):
        parse_incident(b'{"ref": "\xff\xfe"}')


def test_a_huge_payload_is_refused_before_parsing() -> None:
    huge = json.dumps(incident_data(details="x" * (MAX_INCIDENT_BYTES + 10)))
    with pytest.raises(InvalidIncident, match="incident is larger than the limit of 262,144 bytes"):
        parse_incident(huge)


def _rows(rt, model) -> int:  # type: ignore[no-untyped-def]
    with rt.db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_open_case_is_idempotent(rt) -> None:  # type: ignore[no-untyped-def]
    incident = make_incident()
    first = open_case(rt, incident)
    assert open_case(rt, incident) == first
    assert _rows(rt, models.Case) == 1
    assert _rows(rt, models.Customer) == 1


def test_the_same_ref_with_other_details_is_a_conflict(rt) -> None:  # type: ignore[no-untyped-def]
    open_case(rt, make_incident())
    with pytest.raises(IncidentConflict, match="INC-1001 is already recorded .*severity"):
        open_case(rt, make_incident(severity="low"))
    assert _rows(rt, models.Incident) == 1


def test_no_contact_for_the_reply_channel_writes_nothing(rt) -> None:  # type: ignore[no-untyped-def]
    # A business that answers in-person complaints by email cannot answer one with no email.
    incident = make_incident(channel="in_person", customer={"email": None, "postal_address": None})
    mirror = {**rt.policy.mirror, incident.channel: ReplyChannel.EMAIL}
    strict = replace(rt, policy=rt.policy.model_copy(update={"mirror": mirror}))
    with pytest.raises(InvalidIncident, match="goes by email, which needs customer.email"):
        open_case(strict, incident)
    assert _rows(rt, models.Case) == 0
    assert _rows(rt, models.Customer) == 0


def test_the_same_complaint_email_under_another_ref_is_refused(rt) -> None:  # type: ignore[no-untyped-def]
    open_case(rt, make_incident(ref="INC-1"))
    with pytest.raises(IncidentConflict, match="already filed as incident INC-1"):
        open_case(rt, make_incident(ref="INC-2"))
    assert _rows(rt, models.Incident) == 1


def test_two_incidents_of_a_new_customer_filed_at_once(rt) -> None:  # type: ignore[no-untyped-def]
    incidents = [
        make_incident(ref=f"INC-{n}", complaint_message_id=f"<{n}@customer.example>")
        for n in range(4)
    ]
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(open_case(rt, i))) for i in incidents
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == len(set(results)) == 4
    assert (_rows(rt, models.Case), _rows(rt, models.Customer)) == (4, 1)


def test_deeply_nested_json_is_refused() -> None:
    with pytest.raises(InvalidIncident, match="nested too deeply"):
        parse_incident("[" * 200_000)


def test_a_ref_differing_only_in_case_from_a_customer_on_file_is_refused(rt) -> None:  # type: ignore[no-untyped-def]
    open_case(rt, make_incident(ref="INC-1", customer={"ref": "D-1"}))
    other = make_incident(
        ref="INC-2", complaint_message_id="<2@x.example>", customer={"ref": "d-1"}
    )
    with pytest.raises(IncidentConflict, match="'d-1' differs only in case from customer 'D-1'"):
        check_can_file(rt, other)
    with pytest.raises(IncidentConflict, match="differs only in case"):
        open_case(rt, other)
    assert (_rows(rt, models.Incident), _rows(rt, models.Customer)) == (1, 1)


@pytest.mark.parametrize(
    ("channel", "missing", "names"),
    [
        ("email", "en/apology.email.html.j2", "template en/apology.email.html.j2 is missing"),
        ("email", "en/_common.j2", "template en/_common.j2 is missing"),
        ("email", "en/public_reply.social.txt.j2", "public_reply.social.txt.j2 is missing"),
        ("letter", "en/checkin_invitation.letter.html.j2", "checkin_invitation.letter.html.j2"),
    ],
)
def test_a_missing_template_is_named_before_anything_is_written(
    rt, tmp_path, channel: str, missing: str, names: str
) -> None:  # type: ignore[no-untyped-def]
    # As in a wheel built without some templates: the case would stop half-written.
    import shutil

    from amends.messages.rendering import Templates

    folder = tmp_path / "templates"
    shutil.copytree(rt.templates.root, folder)
    for locale in ("en", "es"):
        (folder / missing.replace("en/", f"{locale}/")).unlink()
    partial = replace(rt, templates=Templates(folder, timezone="Europe/Madrid"))
    incident = make_incident(channel=channel)
    with pytest.raises(TemplateError, match=names) as refused:
        check_can_file(partial, incident)
    assert "\n" not in str(refused.value)
    with pytest.raises(TemplateError, match=names):
        open_case(partial, incident)
    assert (_rows(rt, models.Case), _rows(rt, models.Customer)) == (0, 0)


def test_a_time_without_offset_is_the_business_time(rt: Runtime) -> None:
    # What the Prefect UI's plain text field gives: the business's wall clock, winter and
    # summer, not shifted by a browser's time zone.
    winter = validate_incident(incident_data(received_at="2026-11-20 09:15"), "Europe/Madrid")
    summer = validate_incident(incident_data(received_at="2026-07-01T09:15"), "Europe/Madrid")
    assert winter.received_at.isoformat() == "2026-11-20T09:15:00+01:00"
    assert summer.received_at.isoformat() == "2026-07-01T09:15:00+02:00"
    # An offset given is kept as given.
    given = validate_incident(incident_data(received_at="2026-11-20T09:15+00:00"), "Europe/Madrid")
    assert given.received_at.isoformat() == "2026-11-20T09:15:00+00:00"


def test_received_at_defaults_to_now_and_filing_again_finds_the_same_case(rt: Runtime) -> None:
    data = incident_data()
    del data["received_at"]
    before = datetime.now(UTC)
    first = validate_incident(data, rt.settings.business_timezone)
    assert before <= first.received_at <= datetime.now(UTC)
    case_id = open_case(rt, first)
    # Filed again later without a time: "now" has moved on, and it is still the same case.
    again = validate_incident(data, rt.settings.business_timezone)
    assert again.received_at > first.received_at
    assert open_case(rt, again) == case_id
    # A time given that differs from the recorded one is a change, refused.
    with pytest.raises(IncidentConflict, match="received_at"):
        open_case(rt, make_incident(received_at="2026-11-21T09:15:00+01:00"))


def test_filed_incident_reads_back_what_was_filed(rt: Runtime) -> None:
    incident = make_incident()
    open_case(rt, incident)
    assert filed_incident(rt, incident.ref) == incident
    with pytest.raises(NotFound, match="INC-404"):
        filed_incident(rt, "INC-404")
