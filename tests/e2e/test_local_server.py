"""``amends server``: one Prefect server for the data folder, used by every command after it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from e2e.prefect_server import clean_env
from factories import incident_data

from amends.delivery.mailcatcher import MailCatcher, free_port

pytestmark = pytest.mark.e2e


def folder_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """No amends or Prefect setting of this process's, the test's own data folder and Prefect
    home, and ``values``."""
    home = {"AMENDS_HOME": str(tmp_path / "var"), "PREFECT_HOME": str(tmp_path / "prefect")}
    return clean_env(**home, **values)


def python(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    """Python run with these arguments, as from a terminal."""
    command = [sys.executable, *arguments]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def amends(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    """The ``amends`` command, as from a terminal."""
    return python(env, "-m", "amends", *arguments)


def test_commands_use_the_data_folders_server_until_it_stops(tmp_path: Path) -> None:
    env = folder_env(tmp_path)
    port = free_port()

    try:
        started = amends(env, "server", "start", "--port", str(port))
        assert started.returncode == 0, started.stderr
        assert f"the UI at http://127.0.0.1:{port}" in started.stdout
        assert amends(env, "server", "status").returncode == 0

        with MailCatcher(tmp_path / "mail") as catcher:
            env |= {"AMENDS_SMTP_PORT": str(catcher.port)}
            incident = tmp_path / "incident.json"
            incident.write_text(json.dumps(incident_data()))
            filed = amends(env, "incident", str(incident))
            assert filed.returncode == 0, filed.stderr
            assert "temporary server" not in filed.stderr  # it used the running one
            assert len(catcher.messages()) == 2  # the apology and the check-in invitation

        # The run is in the data folder's server, for the UI to show.
        runs = httpx.post(f"http://127.0.0.1:{port}/api/flow_runs/filter", json={}).json()
        assert {"recover-incident"} <= {
            httpx.get(f"http://127.0.0.1:{port}/api/flows/{run['flow_id']}").json()["name"]
            for run in runs
        }
        assert all(run["state_type"] == "COMPLETED" for run in runs)
    finally:
        stopped = amends(env, "server", "stop")
    assert stopped.returncode == 0 and "Prefect server stopped." in stopped.stdout
    status = amends(env, "server", "status")
    assert status.returncode == 1 and "no Prefect server runs" in status.stderr
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/api/health")


def test_with_nothing_configured_the_first_command_starts_the_server_and_the_next_reuse_it(
    tmp_path: Path,
) -> None:
    env = folder_env(tmp_path)

    try:
        with MailCatcher(tmp_path / "mail") as catcher:
            env |= {"AMENDS_SMTP_PORT": str(catcher.port)}
            incidents = []
            for number in (1, 2):
                incident = tmp_path / f"incident-{number}.json"
                incident.write_text(
                    json.dumps(
                        incident_data(
                            ref=f"INC-{number}",
                            complaint_message_id=f"<c{number}@customer.example>",
                            customer={"ref": f"C-{number}", "email": f"c{number}@example.com"},
                        )
                    )
                )
                incidents.append(amends(env, "incident", str(incident)))
        first, second = incidents
        assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
        # One line says the first command started it, and where the UI is; the second says
        # nothing of servers: it used the running one.
        (started,) = [line for line in first.stderr.splitlines() if "Prefect server" in line]
        assert started.startswith("Prefect server started for this data folder: the UI at ")
        assert "amends server stop" in started and "Traceback" not in first.stderr
        assert "server" not in second.stderr and "temporary" not in second.stderr
        record = json.loads((tmp_path / "var" / "prefect" / "server.json").read_text())
        port = record["port"]
        # Both runs are in the data folder's server, for the UI to show.
        runs = httpx.post(f"http://127.0.0.1:{port}/api/flow_runs/filter", json={}).json()
        assert sorted(run["name"] for run in runs) == ["INC-1", "INC-2"]
        assert all(run["state_type"] == "COMPLETED" for run in runs)
        assert amends(env, "server", "status").returncode == 0
    finally:
        stopped = amends(env, "server", "stop")
    assert stopped.returncode == 0 and "Prefect server stopped." in stopped.stdout


def test_two_commands_started_at_once_share_one_server(tmp_path: Path) -> None:
    env = folder_env(tmp_path)
    command = [sys.executable, "-m", "amends", "server", "start"]
    try:
        starting = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)
        ]
        lines = [process.communicate(timeout=300)[0] for process in starting]
        assert all(process.returncode == 0 for process in starting), lines
        assert lines[0] == lines[1]  # the same address: one server
        server = json.loads((tmp_path / "var" / "prefect" / "server.json").read_text())
    finally:
        stopped = amends(env, "server", "stop")
    assert stopped.returncode == 0
    with pytest.raises(ProcessLookupError):  # nothing of it is left running
        os.killpg(server["pid"], 0)


def test_a_server_that_cannot_start_is_one_line_naming_its_log(tmp_path: Path) -> None:
    # The server's own database is unreachable: it stops as it starts.
    unreachable = "postgresql+asyncpg://nobody@127.0.0.1:1/none"
    env = folder_env(tmp_path, PREFECT_SERVER_DATABASE_CONNECTION_URL=unreachable)
    result = amends(env, "report")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    log = tmp_path / "var" / "prefect" / "server.log"
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: the data folder's Prefect server stopped as it started")
    assert line.endswith(f"its log says why: {log}")
    assert "Application startup failed" in log.read_text()
    assert not (tmp_path / "var" / "reports").exists()  # nothing ran


# Flows one after another, as the command line and the demo run incidents; prints how many
# times the server turned a call away busy (the client logs each retry it makes).
ONE_AFTER_ANOTHER = """
import logging
from prefect import flow, task
from prefect.cache_policies import NONE
from amends.flows.in_process import in_process_run

turned_away = []

class Retries(logging.Handler):
    def emit(self, record):
        if "retryable status code 503" in record.getMessage():
            turned_away.append(record)

client_log = logging.getLogger("prefect.client")
client_log.setLevel(logging.DEBUG)
client_log.addHandler(Retries())

@task(cache_policy=NONE)
def step(number):
    return number

@flow
def six_steps():
    for number in range(6):
        step(number)

with in_process_run():
    for _ in range(8):
        six_steps()
print(len(turned_away))
"""


def test_runs_one_after_another_are_never_turned_away_by_a_busy_database(tmp_path: Path) -> None:
    """Prefect's server on SQLite refused the next run's creation with a 503 while it recorded
    the last run's task runs (the client then waits two seconds): the data folder's server
    begins its write transactions IMMEDIATE, so each waits its turn instead."""
    env = folder_env(tmp_path)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    try:
        started = amends(env, "server", "start", "--port", str(port))
        assert started.returncode == 0, started.stderr
        probe = python(env | {"PREFECT_API_URL": api}, "-c", ONE_AFTER_ANOTHER)
        runs = httpx.post(f"{api}/flow_runs/filter", json={}).json()
    finally:
        amends(env, "server", "stop")
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split()[-1] == "0"
    assert [run["state_type"] for run in runs] == ["COMPLETED"] * 8
