"""The one declaration of the deployments (deployments/prefect.yaml, installed as
amends.deployments) and what ``amends serve`` builds from it. No server: the end-to-end test
(tests/e2e/test_schedules.py) deploys it and lets the scheduler run it."""

from __future__ import annotations

import importlib
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

import amends.deployments
from amends.deployments.serving import declared, deployments
from amends.settings import Settings

NAMES = ["recover-incident", "nightly-reengagement", "monitor-mentions", "recovery-report"]


def test_the_declaration_is_installed_with_the_package() -> None:
    assert amends.deployments.PREFECT_FILE.name == "prefect.yaml"
    assert [d["name"] for d in declared()] == NAMES


def test_every_entrypoint_is_a_module_path_of_the_installed_package() -> None:
    for spec in declared():
        entrypoint = spec["entrypoint"]
        assert ":" not in entrypoint and entrypoint.startswith("amends.flows."), entrypoint
        module, _, name = entrypoint.rpartition(".")
        assert hasattr(importlib.import_module(module), name)
    for deployment in deployments(Settings()):
        assert deployment.entrypoint.startswith("amends.flows.")


def test_nothing_to_pull_so_a_worker_needs_no_clone() -> None:
    raw = yaml.safe_load(amends.deployments.PREFECT_FILE.read_text())
    # An explicit empty list: without it `prefect deploy` writes its own folder in.
    assert raw["pull"] == []
    assert "AMENDS_CHECKOUT" not in amends.deployments.PREFECT_FILE.read_text()


def test_importing_the_declaration_does_not_import_prefect() -> None:
    code = "import sys, amends.deployments.serve; print('prefect' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_the_schedules_keep_the_business_time_zone() -> None:
    plumber = Path(__file__).parents[1] / "fixtures" / "businesses" / "plumber.yaml"
    built = {d.name: d for d in deployments(Settings(business_file=plumber))}
    assert list(built) == NAMES
    (night,) = built["nightly-reengagement"].schedules
    assert (night.schedule.cron, night.schedule.timezone) == ("0 2 * * *", "America/New_York")
    (report,) = built["recovery-report"].schedules
    assert (report.schedule.cron, report.schedule.timezone) == ("0 7 * * 1", "America/New_York")
    (monitor,) = built["monitor-mentions"].schedules
    assert monitor.schedule.interval == timedelta(minutes=15)
    assert built["recover-incident"].schedules == []


def test_the_monitor_runs_one_at_a_time_and_the_incident_event_starts_a_recovery() -> None:
    built = {d.name: d for d in deployments(Settings())}
    monitor = built["monitor-mentions"]
    assert monitor.concurrency_limit == 1
    assert monitor.concurrency_options.collision_strategy == "CANCEL_NEW"
    (trigger,) = built["recover-incident"].triggers
    assert trigger.expect == {"amends.incident.filed"}
    # The event carries the incident's reference, nothing personal; the run finds the rest.
    assert trigger.parameters == {"incident_ref": "{{ event.payload.incident_ref }}"}


def test_an_edited_copy_is_built_the_same_way(tmp_path: Path) -> None:
    raw = yaml.safe_load(amends.deployments.PREFECT_FILE.read_text())
    monitor = next(d for d in raw["deployments"] if d["name"] == "monitor-mentions")
    monitor["schedules"] = [{"interval": 5, "anchor_date": "2026-12-01T00:00:00+00:00"}]
    copy = tmp_path / "prefect.yaml"
    copy.write_text(yaml.safe_dump(raw))
    built = {d.name: d for d in deployments(Settings(), copy)}
    (schedule,) = built["monitor-mentions"].schedules
    assert schedule.schedule.interval == timedelta(seconds=5)
    assert schedule.schedule.anchor_date.year == 2026


def test_a_schedule_it_cannot_read_is_refused(tmp_path: Path) -> None:
    raw = yaml.safe_load(amends.deployments.PREFECT_FILE.read_text())
    raw["deployments"][1]["schedules"] = [{"cron": "0 2 * * *", "every": "night"}]
    copy = tmp_path / "prefect.yaml"
    copy.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="unknown schedule keys"):
        deployments(Settings(), copy)


def test_a_deployment_key_it_would_drop_is_refused(tmp_path: Path) -> None:
    raw = yaml.safe_load(amends.deployments.PREFECT_FILE.read_text())
    raw["deployments"][0]["sla"] = [{"name": "fast", "duration": 60}]
    copy = tmp_path / "prefect.yaml"
    copy.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match=r"recover-incident: unknown keys \['sla'\]"):
        deployments(Settings(), copy)
