"""Test data: a valid incident, and variations of it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from amends.delivery.outbox import drain
from amends.domain import STAGES, Incident
from amends.recovery.intake import open_case
from amends.recovery.stages import run_stage
from amends.runtime import Runtime

# Real public complaint data, vendored unchanged in tests/data (source and licence: its README).
DATA = Path(__file__).resolve().parent / "data"


def incident_data(**changes: Any) -> dict[str, Any]:
    """A valid incident as an operator would file it; keyword arguments replace fields
    (``customer`` and ``costs`` are merged)."""
    data: dict[str, Any] = {
        "ref": "INC-1001",
        "channel": "email",
        "received_at": "2026-11-20T09:30:00+01:00",
        "summary": "Cleaning crew missed four days in a row",
        "details": "Dirty offices and accumulated garbage.",
        "category": "service_failure",
        "severity": "high",
        "fault": "ours",
        "costs": {
            "economic": 450.0,
            "time_hours": 6,
            "social": "others_affected",
            "emotional": "angry",
        },
        "complaint_message_id": "<complaint-1@customer.example>",
        "complaint_subject": "Four days without cleaning",
        "customer": {
            "ref": "C-42",
            "name": "Rodolfo K.",
            "email": "rk@example.com",
            "phone": "+34 612 345 678",
            "postal_address": "Calle Mayor 12, Madrid",
            "social": {"platform": "twitter", "handle": "@rk"},
            "locale": "en",
            "annual_value": 12000,
        },
    }
    for key in ("customer", "costs"):
        if key in changes:
            data[key] = {**data[key], **changes.pop(key)}
    data.update(changes)
    return json.loads(json.dumps(data))


def make_incident(**changes: Any) -> Incident:
    return Incident.model_validate(incident_data(**changes))


def recover(rt: Runtime, **changes: Any) -> int:
    """File an incident (``changes`` as for :func:`incident_data`), run its six stages and send
    its mail, as the flow does, without Prefect; returns the case's id."""
    case_id = open_case(rt, make_incident(**changes))
    for stage in STAGES:
        run_stage(rt, case_id, stage)
    drain(rt.db, rt.channels, claim_timeout=timedelta(minutes=10))
    return case_id
