"""Staff work: replies people deliver, and how closing them moves the case on."""

from __future__ import annotations

import pytest
from factories import make_incident

from amends.domain import STAGES
from amends.errors import AmendsError, NotFound
from amends.recovery.intake import open_case
from amends.recovery.staff import complete_action, find_action, open_actions
from amends.recovery.stages import run_stage
from amends.reporting.casebook import case_outcome
from amends.runtime import Runtime


def recover(rt: Runtime, **changes: object) -> int:
    case_id = open_case(rt, make_incident(**changes))
    for stage in STAGES:
        run_stage(rt, case_id, stage)
    return case_id


def test_a_voicemail_gets_a_call_back_with_its_script(rt: Runtime) -> None:
    recover(rt, channel="voicemail", fault="customer")
    (call,) = [a for a in open_actions(rt.db) if a.kind == "call_back"]
    assert call.instructions == "Call +34612345678 and follow the script."
    assert call.due_at is not None
    assert "CALL-BACK SCRIPT" in (find_action(rt.db, call.id).message_body or "")


def test_closing_the_last_action_closes_a_smoothed_over_case(rt: Runtime) -> None:
    case_id = recover(rt, channel="voicemail", fault="customer")
    assert case_outcome(rt.db, case_id).state == "awaiting_staff"
    (call,) = [a for a in open_actions(rt.db) if a.kind == "call_back"]
    complete_action(rt.db, call.id, note="Spoke to Rodolfo; he accepted the apology.", actor="dana")
    outcome = case_outcome(rt.db, case_id)
    assert outcome.messages[0].status == "sent" and outcome.messages[0].sent_at is not None
    assert outcome.state == "closed"
    done, closed = outcome.timeline[-2:]
    assert (done.actor, done.text) == (
        "dana",
        "Done: call back. Spoke to Rodolfo; he accepted the apology. The apology by phone was "
        "delivered.",
    )
    assert (closed.kind, closed.actor) == ("case_closed", "amends")
    with pytest.raises(AmendsError, match="already done"):
        complete_action(rt.db, call.id, note="", actor="dana")


def test_a_recovered_case_stays_open_for_its_check_ins(rt: Runtime) -> None:
    case_id = recover(
        rt, channel="letter", severity="medium", costs={"economic": 0, "time_hours": 0}
    )
    for action in open_actions(rt.db):
        complete_action(rt.db, action.id, note="", actor="dana")
    assert case_outcome(rt.db, case_id).state == "open"


def test_an_unknown_action_is_named(rt: Runtime) -> None:
    with pytest.raises(NotFound, match="no staff action 999"):
        complete_action(rt.db, 999, note="", actor="dana")
