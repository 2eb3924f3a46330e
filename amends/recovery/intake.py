"""Intake: turn an operator's JSON into a validated incident, and open its case.

Bad input is refused with one line that names the field, before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from amends.domain import CONTACT_FOR_REPLY, Incident, Ref, ReplyChannel, address_for
from amends.errors import IncidentConflict, InvalidIncident, NotFound
from amends.messages.catalogue import extension, needed_templates
from amends.runtime import Runtime
from amends.storage import models

MAX_INCIDENT_BYTES = 256 * 1024
# No figure of an incident needs more digits (a money amount, hours, a year's value).
MAX_DIGITS = 15


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are each given once: with two, which one counts is a guess."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise InvalidIncident(f"incident gives {key!r} twice: give each field once")
        data[key] = value
    return data


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise InvalidIncident(
            f"incident has a number of {len(text.lstrip('-')):,} digits; at most {MAX_DIGITS}"
        )
    return int(text)


def _constant(name: str) -> float:
    raise InvalidIncident(f"incident has {name}, which is not a number JSON allows")


def describe(error: ValidationError) -> str:
    """One line per problem, each naming the field: ``customer.email: is not a valid ...``."""
    problems = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        # A whole-incident rule names its fields in its own message.
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


def parse_incident(raw: str | bytes, timezone: str | None = None) -> Incident:
    """Parse and validate an incident from JSON text; ``timezone`` is the one a
    ``received_at`` without a UTC offset is in (the business's).

    Raises:
        InvalidIncident: too large, not JSON, or not a valid incident.
    """
    size = len(raw.encode("utf-8") if isinstance(raw, str) else raw)
    if size > MAX_INCIDENT_BYTES:
        raise InvalidIncident(f"incident is larger than the limit of {MAX_INCIDENT_BYTES:,} bytes")
    try:
        data = json.loads(
            raw, object_pairs_hook=_object, parse_int=_integer, parse_constant=_constant
        )
    except RecursionError:
        raise InvalidIncident("incident is nested too deeply to be an incident") from None
    except UnicodeDecodeError:
        raise InvalidIncident("incident is not valid UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise InvalidIncident(
            f"incident is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None
    return validate_incident(data, timezone)


def validate_incident(data: Any, timezone: str | None = None) -> Incident:
    """Validate decoded JSON as an incident; ``timezone`` as for :func:`parse_incident`.

    Raises:
        InvalidIncident: naming each field that is wrong.
    """
    if isinstance(data, Incident):
        return data
    if not isinstance(data, dict):
        raise InvalidIncident("incident must be a JSON object")
    try:
        return Incident.model_validate(data, context={"timezone": timezone})
    except ValidationError as error:
        raise InvalidIncident(describe(error)) from None


_REF = TypeAdapter(Ref)


def valid_ref(value: Any) -> str:
    """An incident's reference, as :class:`Incident` accepts it.

    Raises:
        InvalidIncident: it is not one.
    """
    try:
        return _REF.validate_python(value)
    except ValidationError:
        raise InvalidIncident("incident_ref is not an incident reference") from None


def check_reachable(rt: Runtime, incident: Incident) -> ReplyChannel:
    """The channel the reply goes by, mirrored from the complaint's.

    Raises:
        InvalidIncident: the customer has no contact detail for that channel.
    """
    reply = rt.policy.mirror_channel(incident.channel, rt.channels.keys())
    if address_for(incident.customer, reply) is None:
        needed = CONTACT_FOR_REPLY[reply]
        raise InvalidIncident(
            f"the reply to a {incident.channel.value} complaint goes by {reply.value}, which "
            f"needs {' or '.join('customer.' + f for f in needed)}"
        )
    return reply


def check_can_file(rt: Runtime, incident: Incident) -> None:
    """Everything :func:`open_case` would refuse, checked without writing anything.

    Raises:
        InvalidIncident: the customer cannot be reached on the reply channel.
        IncidentConflict: the ref or the complaint email is already filed with other details,
            or the customer's ref differs only in case from one on file.
        TemplateError: a template the case needs is missing.
    """
    reply = check_reachable(rt, incident)
    check_templates_for(rt, incident, reply)
    with rt.db.session() as session:
        if _existing_case(session, incident, incident.model_dump(mode="json")) is None:
            _refuse_same_complaint(session, incident)
            _refuse_ref_in_other_case(session, incident)


def check_templates_for(rt: Runtime, incident: Incident, reply: ReplyChannel) -> None:
    """Refuse a case whose messages could not be written, before anything of it is.

    Raises:
        TemplateError: naming the first template missing in the customer's language and in
            English (a wheel without its templates, a partial AMENDS_TEMPLATES_DIR).
    """
    for kind, channel in needed_templates(reply):
        rt.templates.require(
            kind.value, channel.value, extension(channel), incident.customer.locale
        )


def refs_on_file_in_other_case(session: Any, refs: Iterable[str]) -> dict[str, str]:
    """Each of ``refs`` that is not on file but differs only in case from a customer's ref that
    is, mapped to that ref: ``d-1`` and ``D-1`` are one customer typed twice more often than
    two, and taking them for one could write one customer's details over another's."""
    given = {ref.lower(): ref for ref in refs}
    on_file = set(
        session.scalars(
            select(models.Customer.ref).where(func.lower(models.Customer.ref).in_(list(given)))
        )
    )
    clashes = {}
    for ref in refs:
        other = next((known for known in on_file if known.lower() == ref.lower()), None)
        if ref not in on_file and other is not None:
            clashes[ref] = other
    return clashes


def _refuse_ref_in_other_case(session: Any, incident: Incident) -> None:
    ref = incident.customer.ref
    other = refs_on_file_in_other_case(session, [ref]).get(ref)
    if other is not None:
        raise IncidentConflict(
            f"customer.ref {ref!r} differs only in case from customer {other!r} on file: "
            "give the ref as it is on file"
        )


def open_case(rt: Runtime, incident: Incident) -> int:
    """Record the incident and open its case; return the case id.

    Filing the same incident again returns the same case, so a re-run resumes it.

    Raises:
        InvalidIncident: the customer cannot be reached on the reply channel.
        IncidentConflict: an incident with this ref is recorded with other details.
    """
    reply = check_reachable(rt, incident)
    check_templates_for(rt, incident, reply)
    payload = incident.model_dump(mode="json")
    try:
        return _record(rt, incident, reply, payload)
    except IntegrityError:
        # Another run filed this incident, or this customer, at the same moment: once more,
        # now that their rows exist.
        return _record(rt, incident, reply, payload)


def _record(rt: Runtime, incident: Incident, reply: ReplyChannel, payload: dict[str, Any]) -> int:
    with rt.db.session() as session:
        case_id = _existing_case(session, incident, payload)
        if case_id is not None:
            return case_id
        _refuse_same_complaint(session, incident)
        _refuse_ref_in_other_case(session, incident)
        return record_case(session, rt, incident, reply, payload).id


def record_case(
    session: Any, rt: Runtime, incident: Incident, reply: ReplyChannel, payload: dict[str, Any]
) -> models.Case:
    """Write the incident, its customer and its case in the caller's transaction (checked
    first by the caller)."""
    customer = _upsert_customer(session, incident)
    record = models.Incident(
        ref=incident.ref,
        customer=customer,
        channel=incident.channel,
        received_at=incident.received_at,
        summary=incident.summary,
        details=incident.details,
        category=incident.category,
        severity=incident.severity,
        fault=incident.fault,
        abusive=incident.abusive,
        costs=incident.costs.model_dump(mode="json"),
        complaint_message_id=incident.complaint_message_id,
        complaint_subject=incident.complaint_subject,
        payload=payload,
    )
    hours = rt.policy.service_levels.first_response_hours
    case = models.Case(
        incident=record,
        customer=customer,
        reply_channel=reply,
        first_response_due=incident.received_at + timedelta(hours=hours),
    )
    session.add(case)
    session.flush()
    session.add(
        models.CaseEvent(
            case_id=case.id,
            kind="opened",
            # No summary: the timeline reaches the run's artifact, and the summary is the
            # customer's own words when a public post opened the case.
            text=f"Case opened for incident {incident.ref} ({incident.channel.value} "
            f"complaint); the reply goes by {reply.value}.",
        )
    )
    return case


def _refuse_same_complaint(session: Any, incident: Incident) -> None:
    """Refuse this very complaint email if it was already filed under another ref."""
    if incident.complaint_message_id is None:
        return
    filed_as = session.scalar(
        select(models.Incident.ref).where(
            models.Incident.complaint_message_id == incident.complaint_message_id,
            models.Incident.ref != incident.ref,
        )
    )
    if filed_as is not None:
        raise IncidentConflict(
            f"this complaint email ({incident.complaint_message_id}) was already filed as "
            f"incident {filed_as}"
        )


def _existing_case(session: Any, incident: Incident, payload: dict[str, Any]) -> int | None:
    ref = incident.ref
    found = session.execute(
        select(models.Case.id, models.Incident.payload)
        .join(models.Incident, models.Case.incident_id == models.Incident.id)
        .where(models.Incident.ref == ref)
    ).first()
    if found is None:
        return None
    case_id, recorded = found
    if "received_at" not in incident.model_fields_set:
        # Filed again without a time: "now" differs each time, and the first one stands.
        payload = {**payload, "received_at": recorded.get("received_at")}
    if recorded != payload:
        changed = sorted(
            k for k in payload.keys() | recorded.keys() if payload.get(k) != recorded.get(k)
        )
        raise IncidentConflict(
            f"incident {ref} is already recorded with other details ({', '.join(changed)}); "
            "file the change under a new ref"
        )
    return case_id


def filed_incident(rt: Runtime, ref: str) -> Incident:
    """The incident filed under ``ref``, as it was filed.

    Raises:
        NotFound: no incident with that ref is on file (or its customer was forgotten).
    """
    with rt.db.session() as session:
        payload = session.scalar(select(models.Incident.payload).where(models.Incident.ref == ref))
    if payload is None or payload.get("erased"):
        raise NotFound(f"no incident {ref!r} on file")
    return Incident.model_validate(payload)


def _upsert_customer(session: Any, incident: Incident) -> models.Customer:
    given = incident.customer
    customer = session.scalar(select(models.Customer).where(models.Customer.ref == given.ref))
    if customer is None:
        customer = models.Customer(ref=given.ref)
        session.add(customer)
    # The newest incident carries the newest contact details.
    customer.name = given.name
    customer.addressed_as = given.addressed_as or customer.addressed_as
    customer.email = given.email or customer.email
    customer.phone = given.phone or customer.phone
    customer.postal_address = given.postal_address or customer.postal_address
    if given.social:
        customer.social_platform = given.social.platform.value
        customer.social_handle = given.social.handle
    customer.locale = given.locale
    customer.timezone = given.timezone or customer.timezone
    customer.annual_value = given.annual_value
    return customer
