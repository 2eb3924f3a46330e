"""The schedules fire: amends' deployments on a real Prefect server whose scheduler, not a
person, creates their runs, and a worker with only the installed package (no clone) runs them.

The server's scheduler loops every 2 s instead of 60. monitor-mentions' quarter hour becomes
5 s in an edited copy of the installed prefect.yaml, deployed the way the README deploys the
original; the other schedules are left as they are and only checked for their next runs.
On PostgreSQL with a worker, deployed by `prefect deploy`; on SQLite served by
`python -m amends.deployments.serve` (what `amends serve` runs): both of Prefect's databases
keep a working scheduler, and both fill in the business time zone. (`amends deploy`
deploys for test_scale_out.py and test_ui.py.)
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from e2e.prefect_server import PrefectServer, prefect_server

from amends.business import EXAMPLE_FILE
from amends.deployments import PREFECT_FILE

pytestmark = pytest.mark.e2e

TIMEZONE = "America/New_York"  # not the declaration's example, so it must come from settings
EVERY_SECONDS = 5
TIMEOUT = 120.0


def _quick_monitor(folder: Path) -> Path:
    """A copy of the installed prefect.yaml whose monitor-mentions runs every few seconds."""
    declared = yaml.safe_load(PREFECT_FILE.read_text())
    (monitor,) = [d for d in declared["deployments"] if d["name"] == "monitor-mentions"]
    (schedule,) = monitor["schedules"]
    assert schedule == {"interval": 900}  # what the test shortens
    monitor["schedules"] = [{"interval": EVERY_SECONDS}]
    copy = folder / "prefect.yaml"
    copy.write_text(yaml.safe_dump(declared, sort_keys=False))
    return copy


def _by_deployment(server: PrefectServer, runs: list[dict]) -> dict[str, list[dict]]:
    names = {d["id"]: d["name"] for d in server.api("POST", "/deployments/filter")}
    grouped: dict[str, list[dict]] = {}
    for run in runs:
        grouped.setdefault(names.get(run["deployment_id"], "?"), []).append(run)
    return grouped


def _wait_for_monitor_runs(
    server: PrefectServer, what: str, state_type: str | None = None, timeout: float = TIMEOUT
) -> list[dict]:
    """Wait until monitor-mentions has a run (in that state); returns them."""
    deadline = time.monotonic() + timeout
    while True:
        runs = _by_deployment(server, server.flow_runs()).get("monitor-mentions", [])
        if found := [r for r in runs if state_type in (None, r["state_type"])]:
            return found
        if time.monotonic() > deadline:
            states = [(r["name"], r["state_name"], r["auto_scheduled"]) for r in runs]
            raise AssertionError(f"no {what} after {timeout:.0f} s: {states}")
        time.sleep(1)


def _business_in(home: Path, timezone: str) -> Path:
    """A data folder whose business profile (as `amends init` writes it) is in ``timezone``."""
    home.mkdir(parents=True, exist_ok=True)
    sample = yaml.safe_load(EXAMPLE_FILE.read_text(encoding="utf-8"))
    (home / "business.yaml").write_text(yaml.safe_dump({**sample, "timezone": timezone}))
    return home


def _assert_scheduled_by_the_scheduler(server: PrefectServer, runs: list[dict]) -> None:
    """Every run was created by the scheduler: auto-scheduled, with the scheduler's
    idempotency key, created by a schedule (not a user or an automation); the cron
    deployments' next runs fall at their hour in the business time zone."""
    for run in runs:
        assert run["auto_scheduled"], run
        assert run["idempotency_key"].startswith("scheduled "), run
        assert (run["created_by"] or {}).get("type") == "SCHEDULE", run
    grouped = _by_deployment(server, runs)
    assert {"nightly-reengagement", "recovery-report", "monitor-mentions"} <= set(grouped)
    assert "recover-incident" not in grouped  # no schedule: runs only per incident
    zone = ZoneInfo(TIMEZONE)
    for name, hour, weekdays in (
        ("nightly-reengagement", 2, set(range(7))),
        ("recovery-report", 7, {0}),
    ):
        for run in grouped[name]:
            at = datetime.fromisoformat(run["expected_start_time"]).astimezone(zone)
            assert (at.hour, at.minute) == (hour, 0), (name, at)
            assert at.weekday() in weekdays, (name, at)
            assert run["state_name"] == "Scheduled", run


def test_the_scheduler_starts_runs_a_worker_without_a_clone_completes(tmp_path: Path) -> None:
    with prefect_server(tmp_path, scheduler_loop_seconds=2) as server:
        output = server.deploy(
            prefect_file=_quick_monitor(tmp_path), timezone=TIMEZONE, with_prefect=True
        )
        assert "monitor-mentions/monitor-mentions" in output
        amends = {"AMENDS_HOME": str(_business_in(tmp_path / "var", TIMEZONE))}
        server.worker("scheduled", amends, limit=1)  # one flow process at a time: a quick start

        try:
            done = _wait_for_monitor_runs(server, "completed run", "COMPLETED")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{server.worker_output('scheduled')}") from None
        assert done[0]["name"] == "monitor-mentions"  # renamed by the flow when it started
        assert done[0]["auto_scheduled"], done[0]
        # Nobody created a run: every run there is, the scheduler made.
        _assert_scheduled_by_the_scheduler(server, server.flow_runs())
        assert server.scheduler_errors() == []


def test_the_scheduler_works_on_sqlite_for_what_amends_serve_serves(tmp_path: Path) -> None:
    with prefect_server(tmp_path, database="sqlite", scheduler_loop_seconds=2) as server:
        amends = {"AMENDS_HOME": str(_business_in(tmp_path / "var", TIMEZONE))}
        server.serve(amends, prefect_file=_quick_monitor(tmp_path))
        try:
            done = _wait_for_monitor_runs(server, "completed run", "COMPLETED")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{server.worker_output('serve')}") from None
        assert done[0]["auto_scheduled"], done[0]
        _assert_scheduled_by_the_scheduler(server, server.flow_runs())
        # Served, the incident deployment keeps its event trigger too.
        automations = server.api("POST", "/automations/filter")
        assert "recover-incident__automation_1" in {a["name"] for a in automations}
        assert server.scheduler_errors() == []
