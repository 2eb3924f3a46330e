"""The ``amends`` command as an operator uses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from factories import incident_data
from sqlalchemy import func, select
from typer.testing import CliRunner

from amends import models
from amends.cli import app
from amends.runtime import Runtime

REPO = Path(__file__).resolve().parents[2]
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
        "print(any(m.split('.')[0] == 'prefect' for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


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
    assert first.exit_code == 0 and "Applied 0001" in first.stdout
    again = amends("db", "upgrade")
    assert "is up to date (revision 0001)" in again.stdout
    assert (tmp_path / "amends.db").is_file()


def test_the_demo_runs_end_to_end_on_a_fresh_machine(tmp_path: Path) -> None:
    """The README's first command, as a new user runs it: a fresh process and data folder,
    Prefect's own temporary server, nothing configured."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AMENDS_", "PREFECT_"))
    }
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    env["AMENDS_HOME"] = str(tmp_path / "var")
    run = {"cwd": tmp_path, "env": env, "capture_output": True, "text": True, "timeout": 300}
    demo = subprocess.run([sys.executable, "-m", "amends", "demo"], stdin=subprocess.DEVNULL, **run)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "7 incidents recovered" in demo.stdout
    assert "amends cases" in demo.stdout and "prefect server start" in demo.stdout
    mail = sorted((tmp_path / "var" / "mail").glob("*.eml"))
    assert len(mail) == 6
    assert list((tmp_path / "var" / "letters").glob("case-*-DEMO-1003-apology.html"))

    cases = subprocess.run([sys.executable, "-m", "amends", "cases", "--json"], check=True, **run)
    decisions = {c["incident_ref"]: c["decision"] for c in json.loads(cases.stdout)}
    assert decisions == {
        "DEMO-1001": "recover", "DEMO-1002": "recover", "DEMO-1003": "recover",
        "DEMO-1004": "recover", "DEMO-1005": "smooth_over", "DEMO-1006": "do_not_pursue",
        "DEMO-1007": "lost",
    }  # fmt: skip

    again = subprocess.run(
        [sys.executable, "-m", "amends", "demo"], stdin=subprocess.DEVNULL, **run
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert sorted((tmp_path / "var" / "mail").glob("*.eml")) == mail  # nothing sent twice
