"""The ``amends`` command as an operator uses it."""

from __future__ import annotations

import csv
import dataclasses
import email
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from email import policy as email_policy
from pathlib import Path
from typing import Any

import pytest
from e2e.prefect_server import clean_env
from factories import DATA, incident_data, make_incident
from icalendar import Calendar
from sqlalchemy import func, select
from typer.testing import CliRunner

from amends.cli import app
from amends.domain import Stage
from amends.recovery.intake import open_case
from amends.recovery.stages import run_stage
from amends.runtime import Runtime, use_runtime
from amends.storage import models

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "amends" / "recovery" / "policy.yaml"  # the shipped policy, wherever pytest runs
runner = CliRunner()


def amends(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), input=input)


def test_help_answers_without_importing_prefect() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from amends.cli import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "assert 'incident' in result.output and 'demo' in result.output\n"
        "print(any(m.split('.')[0] == 'prefect' for m in sys.modules))\n"
        # Nor the core's rules and listening (the recogniser's model): --help stays instant.
        "print(sorted(m for m in sys.modules if m.startswith(('amends.recovery', "
        "'amends.listening'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split("\n")[:2] == ["False", "[]"]


@pytest.mark.usefixtures("prefect_harness")
def test_incident_json_output_has_the_documented_keys(smtp_rt: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "incident.json"
    path.write_text(json.dumps(incident_data()))
    result = amends("incident", str(path), "--json")
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    for key in (
        "case_id", "incident_ref", "customer_ref", "complaint_channel", "reply_channel",
        "decision", "stages", "messages", "offer", "checkins",
    ):  # fmt: skip
        assert key in outcome
    assert [s["name"] for s in outcome["stages"]] == [
        "assess", "empower", "monitor", "report", "follow_up", "reengage",
    ]  # fmt: skip
    assert {"channel", "kind", "status"} <= set(outcome["messages"][0])

    listed = json.loads(amends("cases", "--json").stdout)
    assert [(c["incident_ref"], c["stage"]) for c in listed] == [("INC-1001", "reengage")]
    shown = amends("case", "INC-1001")
    assert (
        shown.exit_code == 0 and "Timeline" in shown.stdout and "Decision: recover" in shown.stdout
    )


@pytest.mark.usefixtures("prefect_harness")
def test_an_incident_run_from_the_cli_carries_its_channel_and_severity_tags(
    smtp_rt: Runtime, tmp_path: Path
) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    path = tmp_path / "incident.json"
    path.write_text(
        json.dumps(incident_data(ref="INC-TAGS", complaint_message_id="<tags@customer.example>"))
    )
    result = amends("incident", str(path), "--json")
    assert result.exit_code == 0, result.output
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["INC-TAGS"]))
        )
    assert runs  # one per database this test runs on, in the session's one harness
    for run in runs:
        assert {"channel:email", "severity:high"} <= set(run.tags)


@pytest.mark.usefixtures("prefect_harness")
def test_incident_from_standard_input(smtp_rt: Runtime) -> None:
    result = amends("incident", "-", "--json", input=json.dumps(incident_data(ref="INC-STDIN")))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["incident_ref"] == "INC-STDIN"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ('{"ref": ', "error: incident is not valid JSON"),
        (json.dumps(incident_data(channel="pigeon")), "error: channel: Input should be"),
        (json.dumps(incident_data(channel="letter", customer={"postal_address": None})),
         "error: a complaint by letter needs customer.postal_address"),
        (json.dumps(incident_data(customer={"email": None})),
         "error: a complaint by email needs customer.email"),
        (json.dumps(incident_data(customer={"email": "rk@@example"})),
         "error: customer.email: is not a valid email address"),
        (json.dumps(incident_data(details="x" * 300_000)),
         "error: incident is larger than the limit"),
    ],
)  # fmt: skip
def test_bad_input_is_one_clear_line_and_writes_nothing(
    rt: Runtime, tmp_path: Path, payload: str, message: str
) -> None:
    path = tmp_path / "incident.json"
    path.write_text(payload)
    result = amends("incident", str(path))
    assert result.exit_code == 1
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    with rt.db.session() as session:
        for model in (models.Customer, models.Incident, models.Case):
            assert session.scalar(select(func.count()).select_from(model)) == 0


def test_a_missing_file_is_named(rt: Runtime) -> None:
    result = amends("incident", "nowhere.json")
    assert result.exit_code == 1 and "no such file: nowhere.json" in result.stderr


def test_an_unknown_case_is_named(rt: Runtime) -> None:
    result = amends("case", "INC-404")
    assert result.exit_code == 1 and "no case for 'INC-404'" in result.stderr


def test_db_upgrade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMENDS_HOME", str(tmp_path))
    first = amends("db", "upgrade")
    assert first.exit_code == 0 and "Applied 0001, 0002, 0003" in first.stdout
    again = amends("db", "upgrade")
    assert "is up to date (revision 0011)" in again.stdout
    assert (tmp_path / "amends.db").is_file()


@pytest.mark.e2e  # two `amends demo` processes and the data folder's Prefect server
def test_the_demo_runs_end_to_end_on_a_fresh_machine(tmp_path: Path) -> None:
    """The README's first command, as a new user runs it: a fresh process and data folder,
    nothing configured, so the demo starts the data folder's Prefect server and the second
    demo uses it."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AMENDS_", "PREFECT_"))
    }
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    env["AMENDS_HOME"] = str(tmp_path / "var")
    run = {"cwd": tmp_path, "env": env, "capture_output": True, "text": True, "timeout": 300}
    try:
        _the_demo_twice(tmp_path, run)
    finally:
        stopped = subprocess.run([sys.executable, "-m", "amends", "server", "stop"], **run)
    assert "Prefect server stopped." in stopped.stdout


def _the_demo_twice(tmp_path: Path, run: dict[str, Any]) -> None:
    demo = subprocess.run([sys.executable, "-m", "amends", "demo"], stdin=subprocess.DEVNULL, **run)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "Prefect server started for this data folder: the UI at http://127.0.0.1:" in (
        demo.stderr
    )
    assert "8 incidents recovered" in demo.stdout
    # One run pauses for a manager; the demo says how to answer, and answers.
    assert "DEMO-1008 is Paused" in demo.stderr
    assert "amends approve DEMO-1008 --by NAME" in demo.stderr
    assert "amends cases" in demo.stdout
    assert "The runs in the Prefect UI: http://127.0.0.1:" in demo.stdout
    mail = sorted((tmp_path / "var" / "mail").glob("*.eml"))
    # Apologies by email to Rodolfo, Lucía, Priya and Amara, and Rodolfo's and Amara's check-in
    # invitations; the others' apologies wait for staff, and their check-ins are agreed by
    # whoever calls.
    assert len(mail) == 6
    messages = [email.message_from_bytes(m.read_bytes(), policy=email_policy.default) for m in mail]
    (spanish,) = [
        m for m in messages
        if m["To"] == "rodolfo@kendhall-offices.example" and "In-Reply-To" in m
    ]  # fmt: skip
    html = spanish.get_body(("html",)).get_content()
    assert spanish["Subject"] == "Re: Cuatro días sin limpieza"
    # Every email parses cleanly: real text, unique ids, invitations that are invitations.
    assert len({m["Message-ID"] for m in messages}) == len(messages)
    for message in messages:
        text = message.get_body(("plain",)).get_content()
        assert "<" not in text and ">" not in text, text
    invitations = [
        part for m in messages for part in m.walk() if part.get_content_type() == "text/calendar"
    ]
    assert len(invitations) == 2
    assert Calendar.from_ical(invitations[0].get_payload(decode=True))["method"] == "REQUEST"
    assert "Le hemos fallado y lo sentimos" in html
    assert "20 de noviembre de 2026" in html, html
    assert "815,00\xa0€" in html, html
    (amara,) = [
        m for m in messages if m["To"] == "amara@okafor-family.example" and "In-Reply-To" in m
    ]
    assert "1,850.00" in amara.get_body(("html",)).get_content()  # as the manager approved
    assert list((tmp_path / "var" / "letters").glob("case-*-DEMO-1003-apology.html"))

    cases = subprocess.run([sys.executable, "-m", "amends", "cases", "--json"], check=True, **run)
    decisions = {c["incident_ref"]: c["decision"] for c in json.loads(cases.stdout)}
    assert decisions == {
        "DEMO-1001": "recover", "DEMO-1002": "recover", "DEMO-1003": "recover",
        "DEMO-1004": "recover", "DEMO-1005": "smooth_over", "DEMO-1006": "do_not_pursue",
        "DEMO-1007": "lost", "DEMO-1008": "recover",
    }  # fmt: skip

    again = subprocess.run(
        [sys.executable, "-m", "amends", "demo"], stdin=subprocess.DEVNULL, **run
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Prefect server started" not in again.stderr  # the first demo's is still running
    assert "Paused" not in again.stderr  # answered in the first run
    assert sorted((tmp_path / "var" / "mail").glob("*.eml")) == mail  # nothing sent twice


def test_a_folder_is_not_an_incident(rt: Runtime, tmp_path: Path) -> None:
    result = amends("incident", str(tmp_path))
    assert result.exit_code == 1 and "is a folder, not an incident file" in result.stderr


@pytest.mark.usefixtures("prefect_harness")
def test_a_conflicting_refiling_is_refused_in_one_line(smtp_rt: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "incident.json"
    path.write_text(json.dumps(incident_data()))
    assert amends("incident", str(path)).exit_code == 0
    path.write_text(json.dumps(incident_data(severity="low")))
    result = amends("incident", str(path))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: incident INC-1001 is already recorded with other details (severity); "
        "file the change under a new ref"
    ]


@pytest.mark.usefixtures("prefect_harness")
def test_mail_that_cannot_go_out_yet_exits_3_and_says_why(
    rt_without_smtp: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.logging.handlers import PrefectConsoleHandler

    from amends.tasks.delivery import deliver_messages

    monkeypatch.setattr(deliver_messages, "retry_delay_seconds", [0, 0])
    # As `amends` sets it up in a terminal (PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL=CRITICAL);
    # Prefect configures its logging once per process, before this test could say so.
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler):
            monkeypatch.setattr(handler, "level", logging.CRITICAL)
    path = tmp_path / "incident.json"
    path.write_text(json.dumps(incident_data()))
    result = amends("incident", str(path))
    assert result.exit_code == 3
    assert "2 message(s) could not be sent yet and stay queued: cannot reach SMTP" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("AMENDS_SMTP_PORT", "abc", "error: configuration: AMENDS_SMTP_PORT: Input should be"),
        ("AMENDS_POLICY_FILE", "/nowhere/policy.yaml", "error: cannot read policy file"),
        (
            "AMENDS_DATABASE_URL",
            "postgresql://nobody@127.0.0.1:1/none",
            "error: cannot use the database",
        ),
    ],
)
def test_configuration_mistakes_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv("AMENDS_HOME", str(tmp_path))
    monkeypatch.setenv(variable, value)
    result = amends("cases")
    assert result.exit_code == 1
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_templates_check_passes_on_the_shipped_templates(rt: Runtime) -> None:
    result = amends("templates", "check")
    assert result.exit_code == 0, result.output
    assert "All 64 messages render in en, es." in result.stdout


def test_templates_check_names_what_is_broken_or_untranslated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "templates"
    shutil.copytree(REPO / "templates", broken)
    (broken / "es" / "thank_you.sms.txt.j2").unlink()
    (broken / "en" / "offer.email.html.j2").write_text("{{ offer.missing_field }}")
    monkeypatch.setenv("AMENDS_HOME", str(tmp_path / "var"))
    monkeypatch.setenv("AMENDS_TEMPLATES_DIR", str(broken))
    result = amends("templates", "check")
    assert result.exit_code == 1
    assert "es/thank_you.sms.txt.j2: missing" in result.stderr
    assert "en/offer.email.html.j2: 'dict object' has no attribute 'missing_field'" in result.stderr
    assert "error: 2 of 64 messages have problems" in result.stderr


def test_preview_with_sample_data(rt: Runtime) -> None:
    result = amends("preview", "apology", "--channel", "email", "--locale", "es")
    assert result.exit_code == 0, result.output
    assert "Subject: Lo sentimos, Rodolfo" in result.stdout
    assert "Le hemos fallado y lo sentimos" in result.stdout


def test_preview_with_a_real_case(rt: Runtime) -> None:
    case_id = open_case(rt, make_incident(customer={"locale": "es", "name": "Ana Ruiz"}))
    for stage in (Stage.ASSESS, Stage.EMPOWER):
        run_stage(rt, case_id, stage)
    result = amends("preview", "offer", "--channel", "sms", "--case", "INC-1001")
    assert result.exit_code == 0, result.output
    # Her offer, greeting her by her first name (a warm tone).
    assert "Ana, para compensarle" in result.stdout and "815,00" in result.stdout


def test_preview_names_the_channels_a_kind_goes_by(rt: Runtime) -> None:
    result = amends("preview", "thank_you", "--channel", "visit")
    assert result.exit_code == 1
    assert "thank_you is not written for visit; it goes by email, letter, sms" in result.stderr


def test_staff_list_show_and_close_their_work(rt: Runtime) -> None:
    case_id = open_case(rt, make_incident(channel="voicemail", fault="customer"))
    for stage in Stage:
        run_stage(rt, case_id, stage)
    listed = json.loads(amends("actions", "--json").stdout)
    (call,) = [a for a in listed if a["kind"] == "call_back"]
    shown = amends("actions", "show", str(call["id"]))
    assert shown.exit_code == 0 and "CALL-BACK SCRIPT" in shown.stdout
    done = amends("actions", "done", str(call["id"]), "--note", "Called; all good.", "--by", "dana")
    assert done.exit_code == 0 and "noted on incident INC-1001" in done.stdout
    assert [a["kind"] for a in json.loads(amends("actions", "--json").stdout)] == [
        "improvement_item"
    ]
    again = amends("actions", "done", str(call["id"]))
    assert again.exit_code == 1 and "is already done" in again.stderr


def test_policy_check_shows_what_a_policy_decides() -> None:
    result = amends("policy", "check", str(POLICY))
    assert result.exit_code == 0, result.output
    assert "is valid" in result.stdout
    row = next(line for line in result.stdout.splitlines() if "DEMO-1008" in line)
    assert "recover" in row and "manager:" in row
    assert "1850.00" in result.stdout  # what a manager may approve


def test_policy_check_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.read_text().replace("currency: EUR", "currency: €"))
    result = amends("policy", "check", str(path))
    assert result.exit_code == 1
    assert "line 3: currency: String should match pattern" in result.stderr


def test_approve_refuses_a_case_that_asked_nothing(rt: Runtime) -> None:
    case_id = open_case(rt, make_incident())
    for stage in (Stage.ASSESS, Stage.EMPOWER):
        run_stage(rt, case_id, stage)
    result = amends("approve", "INC-1001", "--by", "Maria")
    assert result.exit_code == 1
    assert "case INC-1001 has no offer awaiting approval" in result.stderr


def awaiting_approval(rt: Runtime) -> None:
    """Case INC-1001, whose offer (1765 EUR, frontline limit 1000) waits for a manager."""
    incident = make_incident(
        severity="critical", costs={"economic": 1400}, customer={"annual_value": 4000}
    )
    case_id = open_case(rt, incident)
    for stage in (Stage.ASSESS, Stage.EMPOWER):
        run_stage(rt, case_id, stage)


def test_approve_records_an_answer_once(rt: Runtime) -> None:
    awaiting_approval(rt)
    both = amends("approve", "INC-1001", "--by", "Maria", "--amount", "5", "--decline")
    assert both.exit_code == 1 and "contradict" in both.stderr
    too_much = amends("approve", "INC-1001", "--by", "Maria", "--amount", "9000")
    assert too_much.exit_code == 1 and "outside 1000.00 to 5000.00" in too_much.stderr
    too_little = amends("approve", "INC-1001", "--by", "Maria", "--amount", "10")
    assert too_little.exit_code == 1 and "--decline keeps the frontline offer" in too_little.stderr
    nameless = amends("approve", "INC-1001", "--by", " ")
    assert nameless.exit_code == 1 and "name the approver" in nameless.stderr
    adjusted = amends(
        "approve", "INC-1001", "--by", "Maria", "--amount", "1200", "--reason", "Fair"
    )
    assert adjusted.exit_code == 0, adjusted.output
    assert "Case INC-1001: adjusted at 1200.00 EUR by Maria." in adjusted.stdout
    again = amends("approve", "INC-1001", "--by", "Omar", "--decline")
    assert again.exit_code == 1
    assert "already adjusted at 1200.00 EUR by Maria; the first answer stands" in again.stderr
    shown = amends("case", "INC-1001")
    assert "Approval: Adjusted at 1200.00 EUR by Maria: Fair" in shown.stdout


def test_import_reports_rows_and_exits_1_on_refusals(rt: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text("ref,name,email\nC-1,Ann,ann@example.com\nC-2,Bo,bad\n")
    result = amends("import", "customers", str(path))
    assert result.exit_code == 1
    assert "2 rows: 1 added, 0 updated, 0 unchanged, 1 refused." in result.stdout
    assert "line 3: email: is not a valid email address" in result.stderr
    path.write_text("ref,name,email\nC-1,Ann,ann@example.com\n")
    again = amends("import", "customers", str(path))
    assert again.exit_code == 0 and "0 added, 0 updated, 1 unchanged" in again.stdout


def test_names_with_markup_are_printed_as_written(rt: Runtime) -> None:
    awaiting_approval(rt)
    approved = amends("approve", "INC-1001", "--by", "Ana [/]", "--reason", "[link=x]y[/link]")
    assert approved.exit_code == 0, approved.output
    assert "by Ana [/]" in approved.stdout
    shown = amends("case", "INC-1001")
    assert shown.exit_code == 0, shown.output
    assert "by Ana [/]: [link=x]y[/link]" in shown.stdout


def recovered(rt: Runtime) -> None:
    case_id = open_case(rt, make_incident())
    for stage in Stage:
        run_stage(rt, case_id, stage)


def test_checkin_held_records_the_feedback(rt: Runtime) -> None:
    recovered(rt)
    result = amends(
        "checkin", "INC-1001", "--held", "--feedback", "New crew is great", "--by", "Ana"
    )
    assert result.exit_code == 0, result.output
    assert "Check-in 1 of INC-1001 held." in result.stdout
    with rt.db.session() as session:
        checkin = session.scalars(select(models.CheckIn).filter_by(number=1)).one()
        assert (checkin.status, checkin.feedback, checkin.recorded_by) == (
            "held",
            "New crew is great",
            "Ana",
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--by", "Ana"], "say how it went: --held or --missed"),
        (["--held", "--missed", "--by", "Ana"], "say how it went: --held or --missed"),
        (["--missed", "--feedback", "x", "--by", "Ana"], "--feedback goes with --held"),
        (["--missed", "--by", "Ana"], "cannot be missed yet"),  # the first is next week
        (["--held", "--by", "Ana\r\nBcc: x@evil.example"], "who recorded it must be a single"),
        (["--held", "--feedback", "x" * 5000, "--by", "Ana"], "feedback is 5000 characters"),
        (["--held", "--number", "99", "--by", "Ana"], "has no check-in 99"),
    ],
)  # fmt: skip
def test_checkin_refuses_what_it_cannot_record_and_changes_nothing(
    rt: Runtime, args: list[str], message: str
) -> None:
    recovered(rt)
    result = amends("checkin", "INC-1001", *args)
    assert result.exit_code != 0
    assert message in result.output
    with rt.db.session() as session:
        statuses = set(session.scalars(select(models.CheckIn.status)))
        assert statuses == {"scheduled"}
        assert session.scalar(select(func.sum(models.CheckIn.misses))) == 0


def test_close_cancels_the_checkins_and_a_second_close_is_refused(rt: Runtime) -> None:
    recovered(rt)
    result = amends("close", "INC-1001", "--by", "Ana", "--reason", "customer is happy")
    assert result.exit_code == 0, result.output
    assert "5 check-in(s) cancelled" in result.stdout  # high severity, a valued customer
    again = amends("close", "INC-1001", "--by", "Ana", "--reason", "again")
    assert again.exit_code == 1 and "already closed" in again.output
    missing = amends("close", "INC-404", "--by", "Ana", "--reason", "x")
    assert missing.exit_code == 1 and "no case for 'INC-404'" in missing.output


def test_done_records_the_put_right_and_only_then_may_the_case_close(rt: Runtime) -> None:
    case_id = open_case(rt, make_incident(put_right="We refund the missed visits in full."))
    for stage in Stage:
        run_stage(rt, case_id, stage)
    early = amends("close", "INC-1001", "--by", "Ana", "--reason", "customer is happy")
    assert early.exit_code == 1 and "amends done INC-1001 --by NAME" in early.output
    done = amends("done", "INC-1001", "--by", "Ana")
    assert done.exit_code == 0, done.output
    assert "Put-right of INC-1001 recorded as done." in done.stdout
    twice = amends("done", "INC-1001", "--by", "Ana")
    assert twice.exit_code == 1 and "recorded as done by Ana" in twice.output
    closed = amends("close", "INC-1001", "--by", "Ana", "--reason", "customer is happy")
    assert closed.exit_code == 0, closed.output
    nothing = amends("done", "INC-404", "--by", "Ana")
    assert nothing.exit_code == 1 and "no case for 'INC-404'" in nothing.output


def test_unsubscribe_records_an_opt_out_once(rt: Runtime) -> None:
    first = amends("unsubscribe", " RK@Example.com ")
    assert first.exit_code == 0 and "now gets no win-back offers" in first.stdout
    second = amends("unsubscribe", "rk@example.com")
    assert "already got no" in second.stdout
    bad = amends("unsubscribe", "not an address")
    assert bad.exit_code == 1 and "is neither an email address nor a phone number" in bad.output
    with rt.db.session() as session:
        rows = session.execute(select(models.Suppression.address, models.Suppression.scope)).all()
    assert [tuple(row) for row in rows] == [("rk@example.com", "marketing")]


def test_serve_says_it_needs_a_prefect_server_that_outlives_it() -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # The tests' setting (conftest): Prefect's temporary server, which would end with serve.
    assert os.environ["AMENDS_PREFECT_SERVER"] == "temporary"
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        result = amends("serve")
    assert result.exit_code == 1
    assert "needs a Prefect server that outlives it" in result.output


@pytest.mark.parametrize(
    "name", ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)"]
)
def test_cases_as_csv_never_hands_a_spreadsheet_a_formula(rt: Runtime, name: str) -> None:
    open_case(rt, make_incident(customer={"name": name}))
    result = amends("cases", "--csv")
    assert result.exit_code == 0, result.output
    (row,) = list(csv.DictReader(io.StringIO(result.stdout)))
    assert row["customer_name"] == "'" + name
    assert row["incident_ref"] == "INC-1001" and row["case_id"] == "1"


def test_export_to_a_folder_that_does_not_exist_is_one_line(rt: Runtime, tmp_path: Path) -> None:
    recovered(rt)
    result = amends("export", "C-42", "--output", str(tmp_path / "missing" / "c42.json"))
    assert result.exit_code == 1
    assert "No such file or directory" in result.output and "Traceback" not in result.output
    written = amends("export", "C-42", "--output", str(tmp_path / "c42.json"))
    assert written.exit_code == 0
    assert json.loads((tmp_path / "c42.json").read_text())["customer"]["ref"] == "C-42"


@pytest.mark.usefixtures("prefect_harness")  # forget removes the customer from Prefect first
def test_forget_asks_first(rt: Runtime) -> None:
    recovered(rt)
    kept = amends("forget", "C-42", input="n\n")
    assert kept.exit_code == 1
    with rt.db.session() as session:
        assert session.scalars(select(models.Customer.name)).one() == "Rodolfo K."
    gone = amends("forget", "C-42", "--yes")
    assert gone.exit_code == 0 and "C-42 is forgotten" in gone.stdout, gone.output


def test_a_case_s_timeline_tells_each_step_when_and_who(rt: Runtime) -> None:
    from amends.reporting.casebook import case_markdown, case_outcome

    recovered(rt)
    noted = amends("note", "INC-1001", "Called Rodolfo; he sounded calmer", "--by", "Ana")
    assert noted.exit_code == 0, noted.output
    amends("checkin", "INC-1001", "--held", "--feedback", "The new crew is great", "--by", "Ana")
    amends("close", "INC-1001", "--by", "Ben", "--reason", "customer is happy")
    outcome = case_outcome(rt.db, "INC-1001")
    kinds = [event.kind for event in outcome.timeline]
    for kind in (
        "opened", "stage_completed", "message", "checkins_scheduled", "note", "checkin_held",
        "checkins_cancelled", "case_closed",
    ):  # fmt: skip
        assert kind in kinds
    assert kinds[0] == "opened" and kinds[-1] == "case_closed"
    who = {event.kind: event.actor for event in outcome.timeline}
    assert (who["note"], who["checkin_held"], who["case_closed"]) == ("Ana", "Ana", "Ben")
    shown = amends("case", "INC-1001")
    assert "Called Rodolfo; he sounded calmer" in shown.stdout and "Ben" in shown.stdout
    # The artifact's timeline has the staff's note, and not the customer's feedback.
    markdown = case_markdown(outcome)
    assert "## Timeline" in markdown and "Called Rodolfo; he sounded calmer" in markdown
    assert "new crew is great" not in markdown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["INC-1001", "Line\x1bone", "--by", "Ana"], "note must be a single line"),
        (["INC-1001", "x" * 1001, "--by", "Ana"], "note is longer than 1000 characters"),
        (["INC-1001", "  ", "--by", "Ana"], "give its text"),
        (["INC-404", "Hello", "--by", "Ana"], "no case for 'INC-404'"),
    ],
)  # fmt: skip
def test_a_bad_note_is_one_line_and_writes_nothing(
    rt: Runtime, args: list[str], message: str
) -> None:
    recovered(rt)
    result = amends("note", *args)
    assert result.exit_code == 1 and message in result.output
    with rt.db.session() as session:
        assert session.scalar(select(func.count()).where(models.CaseEvent.kind == "note")) == 0


def test_exit_answers_are_kept_for_the_report(rt: Runtime) -> None:
    recovered(rt)
    result = amends(
        "exit-answers", "C-42", "--why", "Too many missed visits", "--where", "CleanCo",
        "--stay", "A call when the crew is late", "--by", "Ana",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "noted on case INC-1001" in result.stdout
    with rt.db.session() as session:
        answers = session.scalars(select(models.ExitAnswers)).one()
        assert (answers.why, answers.went_to, answers.second_chance, answers.recorded_by) == (
            "Too many missed visits",
            "CleanCo",
            None,
            "Ana",
        )
    for args, message in (
        (["C-42", "--by", "Ana"], "give at least one answer"),
        (["C-404", "--why", "x", "--by", "Ana"], "no customer 'C-404'"),
        (["C-42", "--why", "a\nb", "--by", "Ana"], "why must be a single line"),
    ):
        refused = amends("exit-answers", *args)
        assert refused.exit_code == 1 and message in refused.output
    with rt.db.session() as session:
        assert session.scalar(select(func.count(models.ExitAnswers.id))) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "last week"], "--since 'last week' is not a date (YYYY-MM-DD)"),
        (["--since", "2026-11-10", "--until", "2026-11-01"], "is after --until 2026-11-01"),
        (["--since", "2999-01-01"], "--since 2999-01-01 is in the future"),
        (["--until", "11/30/2026"], "--until '11/30/2026' is not a date"),
    ],
)  # fmt: skip
def test_a_bad_report_period_is_one_line(rt: Runtime, args: list[str], message: str) -> None:
    result = amends("report", *args)
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.usefixtures("prefect_harness")
def test_report_shows_the_figures_and_the_quotes_to_staff(rt: Runtime, tmp_path: Path) -> None:
    recovered(rt)
    amends("checkin", "INC-1001", "--held", "--feedback", "The new crew is great", "--by", "Ana")
    result = amends("report", "--since", "2026-11-20", "--output", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "complaints" in result.stdout and "email 1" in result.stdout
    assert "C-42 (checkin): The new crew is great" in result.stdout
    written = sorted(path.name for path in (tmp_path / "out").iterdir())
    assert written == ["breakdown.csv", "chart.png", "feedback.csv", "figures.csv"]


def test_a_bad_monitor_source_is_one_line(rt: Runtime) -> None:
    result = amends("monitor", "--feed", "https://reviews.example/" + "x" * 2000)
    assert result.exit_code == 1
    assert "a source is not right: location:" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.usefixtures("prefect_harness")
def test_monitor_reads_an_export_and_names_a_failing_source(rt: Runtime) -> None:
    # The export's tweets are of 2017: a business answering them widens its answer window.
    listening = rt.policy.listening.model_copy(update={"answer_within_days": 3650})
    use_runtime(
        dataclasses.replace(rt, policy=rt.policy.model_copy(update={"listening": listening}))
    )
    threads = str(DATA / "twitter_support_threads_93.csv")
    args = ["monitor", "--file", threads, "--handle", "@AppleSupport", "--max-incidents", "0"]
    result = amends(*args, "--feed", "http://127.0.0.1:9/reviews.rss")
    assert result.exit_code == 3, result.output  # read what it could, and says what it could not
    assert "Complaints only about the business" in result.stdout
    assert "feed-1" in result.stdout and "cannot read http://127.0.0.1:9" in result.stderr
    again = json.loads(amends(*args, "--json").stdout)
    with open(threads, encoding="utf-8", newline="") as handle:
        theirs = sum(1 for row in csv.DictReader(handle) if row["author_id"] != "AppleSupport")
    assert (again["recorded"]["new"], again["recorded"]["seen_before"]) == (0, theirs)
    assert again["opened"] == [] and again["pending"] > 0  # left for a later run


def test_import_writes_every_refused_row_to_a_file_and_says_where(
    rt: Runtime, tmp_path: Path
) -> None:
    path = tmp_path / "customers.csv"
    path.write_text("ref,name,email\n" + "".join(f"C-{n},Ann,bad\n" for n in range(60)))
    result = amends("import", "customers", str(path))
    assert result.exit_code == 1
    assert result.stderr.count("  line ") == 50  # the first 50 on the terminal
    report = rt.settings.imports_dir / "customers.refused.csv"
    assert f"… and 10 more. All 60 refused rows are in {report}." in result.stderr
    rows = list(csv.DictReader(io.StringIO(report.read_text(encoding="utf-8"))))
    assert [int(row["line"]) for row in rows] == list(range(2, 62))
    assert rows[-1]["problem"].startswith("email: is not a valid email address")


def test_cases_say_when_more_exist_and_all_lists_them(rt: Runtime) -> None:
    for n in range(3):
        open_case(rt, make_incident(ref=f"INC-{n}", complaint_message_id=f"<{n}@customer.example>"))
    for output in ("--json", "--csv", "--table"):
        args = ["cases", "--limit", "2"] + ([output] if output != "--table" else [])
        result = amends(*args)
        assert result.exit_code == 0, result.output
        assert "The newest 2 of 3 cases; --limit N or --all shows more." in result.stderr
    listed = json.loads(amends("cases", "--json", "--limit", "2").stdout)  # stdout stays JSON
    assert [line["incident_ref"] for line in listed] == ["INC-2", "INC-1"]
    every = amends("cases", "--json", "--all")
    assert len(json.loads(every.stdout)) == 3 and "newest" not in every.stderr
    assert "newest" not in amends("cases", "--json", "--limit", "3").stderr


def test_prefect_s_temporary_server_starting_too_slowly_is_one_line(tmp_path: Path) -> None:
    # As on a busy machine: the server is not up when its start-up timeout passes.
    env = clean_env(
        AMENDS_HOME=str(tmp_path / "var"),
        PREFECT_HOME=str(tmp_path / "prefect"),
        AMENDS_PREFECT_SERVER="temporary",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="0",
    )
    result = subprocess.run(
        [sys.executable, "-m", "amends", "report"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    # The line that says a temporary server starts, then the one that says it did not.
    starting, line = result.stderr.strip().splitlines()
    assert starting.startswith("Prefect starts a temporary server for this command")
    assert line.startswith("error: Prefect's temporary server did not start within 0 s")
    assert "run the command again" in line and "PREFECT_API_URL" in line
    assert not (tmp_path / "var" / "reports").exists()  # nothing ran


@pytest.mark.usefixtures("prefect_harness")
def test_an_incident_waiting_for_approval_returns_at_once_and_is_finished_after_the_answer(
    smtp_rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    # A standard customer (4,000 a year) in a critical failure: above the frontline limit.
    data = incident_data(
        ref="INC-3001",
        severity="critical",
        costs={"economic": 1400},
        customer={"ref": "C-3001", "annual_value": 4000},
    )
    path = tmp_path / "incident.json"
    path.write_text(json.dumps(data))
    waiting = amends("incident", str(path))
    assert waiting.exit_code == 4, waiting.output
    assert "INC-3001 waits for a manager's approval" in waiting.stderr
    assert "amends approve INC-3001 --by NAME" in waiting.stderr
    assert f"then amends incident {path} finishes the case" in waiting.stderr
    assert "Traceback" not in waiting.stderr
    approved = amends("approve", "INC-3001", "--by", "Maria")
    assert approved.exit_code == 0 and "approved at 1765.00" in approved.stdout
    finished = amends("incident", str(path), "--json")
    assert finished.exit_code == 0, finished.output
    outcome = json.loads(finished.stdout)
    assert (outcome["offer"]["value"], outcome["approval"]["status"]) == (1765, "approved")
