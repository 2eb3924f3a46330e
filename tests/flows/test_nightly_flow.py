"""The nightly-reengagement flow under the Prefect test harness, with mail over real SMTP."""

from __future__ import annotations

import email
from datetime import date, timedelta
from email import policy as email_policy

import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from sqlalchemy import func, select
from typer.testing import CliRunner

from amends.cli import app
from amends.delivery.mailcatcher import MailCatcher
from amends.flows.nightly import nightly_reengagement
from amends.runtime import Runtime
from amends.storage import models
from amends.storage.models import utcnow

pytestmark = pytest.mark.usefixtures("prefect_harness")

LONG_AGO = date(2026, 1, 10)


def lapsed(rt: Runtime, count: int) -> None:
    with rt.db.session() as session:
        session.add_all(
            models.Customer(
                ref=f"L-{n}",
                name=f"Lapsed {n}",
                email=f"lapsed{n}@example.com",
                annual_value=1000.0 * n,
                last_purchase_on=LONG_AGO,
            )
            for n in range(1, count + 1)
        )


def test_a_night_mails_lapsed_customers_once_and_leaves_its_tables(
    smtp_rt: Runtime, mail_catcher: MailCatcher
) -> None:
    lapsed(smtp_rt, 3)
    with smtp_rt.db.session() as session:  # opted out of marketing: never offered anything
        session.add(
            models.Suppression(address="lapsed2@example.com", scope="marketing", reason="opt_out")
        )

    state = nightly_reengagement(return_state=True)
    night = state.result()
    # First the exit questions (the win-back offer waits for their answers).
    asked = next(r for r in night.actions if r.action == "ask_why_they_left")
    assert asked.done == 2 and night.sent.sent == 2
    caught = [
        email.message_from_bytes(path.read_bytes(), policy=email_policy.default)
        for path in mail_catcher.messages()
    ]
    assert sorted(m["To"] for m in caught) == ["lapsed1@example.com", "lapsed3@example.com"]
    assert all(m["List-Unsubscribe"] for m in caught)  # marketing: one click to opt out

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
        artifacts = {a.key: a for a in client.read_latest_artifacts(limit=50)}
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            )
        )
    assert run.name == f"night-{utcnow():%Y-%m-%d}"
    # Set-based: one task run per action, not one per customer; then send, resume the runs
    # answered, publish the night and the views.
    assert len(task_runs) == 7 + 4
    counts = artifacts["nightly-reengagement"].data
    assert "Exit questions" in counts and "Win-back offers" in counts
    assert "Messages sent" in counts
    contacted = artifacts["nightly-contacted"].data
    assert "L-1" in contacted and "L-3" in contacted and "L-2" not in contacted
    assert "@example.com" not in contacted  # references only: the UI is often shared

    again = nightly_reengagement()
    assert again.done == 0 and again.sent.sent == 0
    assert len(mail_catcher.messages()) == 2


def test_amends_nightly_shows_what_the_night_did(
    smtp_rt: Runtime, mail_catcher: MailCatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the command sets for a terminal, undone after the test.
    monkeypatch.setenv("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    lapsed(smtp_rt, 2)
    result = CliRunner().invoke(app, ["nightly"])
    assert result.exit_code == 0, result.output
    assert "Win-back offers" in result.output
    assert "Sent 2;" in result.output
    again = CliRunner().invoke(app, ["nightly"])
    assert "Sent 0;" in again.output
    assert len(mail_catcher.messages()) == 2


@pytest.mark.parametrize(
    ("at", "problem"),
    [
        ("yesterday", "is not an ISO 8601"),
        ("2026-12-01T02:00", "needs its UTC offset"),
        ("2999-01-01T02:00Z", "is in the future"),
    ],
)
def test_amends_nightly_refuses_a_moment_it_cannot_read(
    smtp_rt: Runtime, at: str, problem: str
) -> None:
    result = CliRunner().invoke(app, ["nightly", "--at", at])
    assert result.exit_code == 1
    assert problem in result.output
    with smtp_rt.db.session() as session:
        assert session.scalars(select(models.Message)).all() == []


def test_nightly_runs_a_night_as_of_a_given_moment(smtp_rt: Runtime) -> None:
    lapsed(smtp_rt, 1)
    moment = utcnow() - timedelta(days=400)  # before the customer's last purchase: not lapsed
    night = nightly_reengagement(now=moment)
    assert night.done == 0


def test_a_night_given_as_text_is_named_after_its_date(smtp_rt: Runtime) -> None:
    # As a deployment run passes it: JSON, so an ISO string.
    state = nightly_reengagement(now="2026-12-01T02:00:00+00:00", return_state=True)
    assert state.is_completed()
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.name == "night-2026-12-01"


def test_the_night_counts_the_staff_actions_it_opens_and_brings_the_views_up_to_date(
    smtp_rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from factories import recover

    monkeypatch.setenv("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    case_id = recover(smtp_rt)
    with smtp_rt.db.session() as session:  # the first check-in was three days ago
        first = session.scalar(select(models.CheckIn).where(models.CheckIn.case_id == case_id))
        first.starts_at = utcnow() - timedelta(days=3)

    def staff_actions() -> int:
        with smtp_rt.db.session() as session:
            return session.scalar(select(func.count()).select_from(models.StaffAction))

    before = staff_actions()
    # Nobody recorded how it went: staff are asked.
    result = CliRunner().invoke(app, ["nightly"])
    opened = staff_actions() - before
    assert opened >= 1, result.output
    assert f"{opened} staff action(s) opened;" in result.output, result.output
    with get_client(sync_client=True) as client:
        latest = {a.key: a for a in client.read_latest_artifacts(limit=100)}
    todos = latest["staff-todos"].data
    assert "INC-1001" in todos and "Rodolfo" not in todos  # the customer by reference
    assert "INC-1001" in latest["open-cases"].data
    sent = latest["messages-sent"].data
    assert "r***@***" in sent and "rk@example.com" not in sent
