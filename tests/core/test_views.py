"""The operator's views, as rows and markdown: references, masked contacts, business time."""

from __future__ import annotations

from datetime import date

from factories import recover

from amends.recovery.approvals import decide
from amends.reporting.report import build_report, report_period
from amends.reporting.views import (
    approvals_waiting,
    masked_recipient,
    messages_sent,
    open_cases,
    recovery_figures,
)
from amends.runtime import Runtime


def test_the_views_show_a_case_by_reference_with_contacts_masked(rt: Runtime) -> None:
    recover(rt)  # INC-1001: an apology and an invitation by email to rk@example.com
    (case,) = open_cases(rt)
    assert (case["case"], case["stage"], case["owner"]) == ("INC-1001", "reengage", "frontline")
    sent = messages_sent(rt)
    assert {m["to"] for m in sent} == {"r***@***"}
    assert all(m["case"] == "INC-1001" for m in sent)
    # Times as the business reads them (Europe/Madrid by default), with the zone's name.
    assert all(m["sent"].endswith((" CET", " CEST")) for m in sent if m["sent"])
    text = str([case, *sent])
    assert "Rodolfo" not in text and "rk@example.com" not in text


def test_an_offer_waiting_for_a_manager_is_listed_until_answered(rt: Runtime) -> None:
    case_id = recover(
        rt,
        ref="INC-3001",
        severity="critical",
        costs={"economic": 1400},
        customer={"ref": "C-3001", "annual_value": 4000},
    )
    (waiting,) = approvals_waiting(rt)
    assert (waiting["case"], waiting["asked"]) == ("INC-3001", "1765.00 EUR")
    assert "amends approve INC-3001 --by NAME" in waiting["answer"]
    decide(rt, case_id, approve=True, approver="Maria")
    assert approvals_waiting(rt) == []


def test_a_letter_or_a_handle_is_never_shown() -> None:
    assert masked_recipient("letter", "Calle Mayor 1, 28013 Madrid") == "postal address"
    assert masked_recipient("social", "@rk") == "social handle"
    assert masked_recipient("sms", "+34 612 345 678") == "+34***678"


def test_the_figures_chart_is_text_the_ui_shows(rt: Runtime) -> None:
    recover(rt)  # a service failure received on 2026-11-20
    period = report_period("Europe/Madrid", since=date(2026, 11, 20), until=date(2026, 11, 20))
    markdown = recovery_figures(build_report(rt, period))
    assert "**complaints** 1" in markdown
    assert "service failure ██████████████████████████████ 1" in markdown
    assert "](" not in markdown  # no image link to break
